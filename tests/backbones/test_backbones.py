import pytest
import torch

from cinetune.backbones import PRESETS, VideoDiTView, get_preset, load_backbone
from cinetune.backbones.loading import load_directory
from cinetune.errors import CinetuneError


def _block_macs_per_token(cfg: dict) -> int:
    d = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    # self-attention q,k,v,o + cross-attention q,o (k,v act on text tokens) + FFN
    return cfg["num_layers"] * (4 * d * d + 2 * d * d + 2 * d * cfg["ffn_dim"])


def test_large_is_6_to_10x_small_with_identical_token_grids():
    small, large = get_preset("toy-small"), get_preset("toy-large")
    ratio = _block_macs_per_token(large.transformer) / _block_macs_per_token(small.transformer)
    assert 6 <= ratio <= 10
    assert small.vae == large.vae and small.transformer["patch_size"] == large.transformer["patch_size"]


@pytest.mark.parametrize("name", ["toy-small", "toy-large", "toy-cogvideox"])
def test_toy_presets_build_and_run(name):
    torch.manual_seed(0)
    b = load_backbone(name, random_init=True)
    view = b.view
    x = torch.randn(1, 16, 5, 16, 16)
    emb = b.text_encoder(["a red circle moves left"])
    assert emb.shape == (1, b.preset.max_text_len, 384)
    out = view(x, torch.tensor([500.0]), emb)
    assert out.shape == x.shape
    assert view.token_grid(x.shape) == (5, 8, 8)
    assert len(view.blocks) == view.num_blocks > 0


def test_text_encoder_has_real_semantics():
    enc = load_backbone("toy-small", random_init=True).text_encoder

    def pooled(p):
        e = enc([p])[0]
        return e[e.abs().sum(-1) > 0].mean(0)

    cos = torch.nn.functional.cosine_similarity
    cat, kitten, stocks = pooled("a cat"), pooled("a kitten"), pooled("stock market prices")
    assert cos(cat, kitten, dim=0) > cos(cat, stocks, dim=0)


def test_cogvideox_layout_conversion_round_trips():
    b = load_backbone("toy-cogvideox", random_init=True)
    v = b.view
    x = torch.randn(2, 16, 5, 8, 8)
    assert v.to_model(x).shape == (2, 5, 16, 8, 8)
    assert torch.equal(v.from_model(v.to_model(x)), x)


def test_real_presets_name_the_missing_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("CINETUNE_MODELS_DIR", str(tmp_path))
    for name, p in PRESETS.items():
        if p.is_toy:
            continue
        with pytest.raises(CinetuneError, match=p.dirname):
            load_backbone(name)


def test_unknown_preset_and_incomplete_directory(tmp_path):
    with pytest.raises(CinetuneError, match="unknown model preset"):
        load_backbone("toy-huge")
    (tmp_path / "transformer").mkdir()
    with pytest.raises(CinetuneError, match="incomplete"):
        load_directory(tmp_path)


def test_a_directory_with_a_corrupt_json_file_is_a_clear_error(tiny_wan_dir, tmp_path):
    import shutil

    for name in ("transformer/config.json", "cinetune.json"):
        broken = tmp_path / name.replace("/", "_")
        shutil.copytree(tiny_wan_dir, broken)
        (broken / name).write_text("{not json")
        with pytest.raises(CinetuneError, match="cannot read .*JSONDecodeError"):
            load_directory(broken)


def test_diffusers_wan_directory_loads(tiny_wan_dir):
    b = load_backbone(str(tiny_wan_dir))
    assert b.preset.family == "wan" and isinstance(b.view, VideoDiTView)
    emb = b.text_encoder(["a red circle"])
    assert emb.shape == (1, 512, 32)
    assert (emb[0, 4:] == 0).all()  # padding zeroed, as WanPipeline does


def test_toy_text_length_fits_every_toy_caption():
    """The toy presets' max_text_len cuts no caption the toy world writes (at 32 tokens, 46% were cut)."""
    from cinetune.backbones.presets import get_preset
    from cinetune.backbones.text import minilm_encoder
    from cinetune.toyworld import ToyWorldDataset

    tok = minilm_encoder().tokenizer
    ds = ToyWorldDataset(400, seed=0)
    longest = max(len(tok(ds.caption(i))["input_ids"]) for i in range(len(ds)))
    assert longest <= get_preset("toy-large").max_text_len == get_preset("toy-small").max_text_len
    assert longest > 32


def test_a_toy_preset_without_weights_names_commands_that_exist(tmp_path, monkeypatch):
    import shutil

    from cinetune.backbones.presets import PACKAGE_ASSETS
    from cinetune.training.config import PRESETS as TRAINING

    monkeypatch.setenv("CINETUNE_ASSETS", str(tmp_path))
    shutil.copytree(PACKAGE_ASSETS / "toy-vae", tmp_path / "toy-vae")
    for name in ("toy-cogvideox", "toy-small"):
        with pytest.raises(CinetuneError, match=f"no shipped weights for {name}") as e:
            load_backbone(name)
        presets = [w.split()[0].rstrip("`") for w in str(e.value).split("--preset ")[1:]]
        assert presets and all(p in TRAINING for p in presets)  # (toy-cogvideox has no training preset of its own)


def test_a_directory_takes_its_defaults_from_the_checkpoint(tiny_wan_dir, tmp_path):
    p = load_backbone(str(tiny_wan_dir)).preset  # a Wan directory: the release defaults, the scheduler's own shift
    assert (p.frames, p.height, p.width, p.fps, p.flow_shift) == (81, 480, 832, 16, 7.0)
    from cinetune.backbones.loading import _directory_preset

    cog = _directory_preset(tmp_path, "cogvideox", {"sample_frames": 81, "sample_height": 96, "sample_width": 170,
                                                    "patch_size_t": 2, "max_text_seq_length": 224}, {})
    assert (cog.frames, cog.height, cog.width, cog.fps, cog.max_text_len) == (81, 768, 1360, 16, 224)  # CogVideoX 1.5
    assert _directory_preset(tmp_path, "cogvideox", {"sample_frames": 49}, {}).fps == 8  # 1.0: no temporal patch
