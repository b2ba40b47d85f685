import json

import pytest
import torch
from diffusers import AutoencoderKLWan

from cinetune.backbones import get_preset, load_backbone
from cinetune.backbones.codec import FRAME_STATS, LatentCodec, carry_over, measure_frame_stats
from cinetune.backbones.loading import load_directory, save_backbone
from cinetune.errors import CinetuneError


def _tiny_vae(seed: int = 0) -> AutoencoderKLWan:
    torch.manual_seed(seed)
    vae = AutoencoderKLWan(**get_preset("toy-small").vae).eval()
    vae.register_to_config(latents_mean=torch.linspace(-0.5, 0.5, 16).tolist(),
                           latents_std=torch.linspace(0.5, 1.5, 16).tolist())
    return vae


def _frame_stats(frames: int = 3) -> dict:
    g = torch.Generator().manual_seed(1)
    return {"latents_mean": torch.randn(16, frames, generator=g).tolist(),
            "latents_std": (torch.rand(16, frames, generator=g) + 0.2).tolist()}


def test_per_frame_statistics_normalise_each_latent_frame_and_extend_with_the_last():
    stats = _frame_stats(3)
    codec = LatentCodec(_tiny_vae(), stats)
    assert codec.per_frame
    for k in stats:
        torch.testing.assert_close(torch.tensor(codec.frame_stats()[k]), torch.tensor(stats[k]))
    raw = torch.randn(2, 16, 5, 4, 4)
    z = codec.normalize(raw)
    m, s = torch.tensor(stats["latents_mean"]), torch.tensor(stats["latents_std"])
    for f, sf in enumerate([0, 1, 2, 2, 2]):  # frames past the third use the third's statistics
        torch.testing.assert_close(z[:, :, f], (raw[:, :, f] - m[None, :, sf, None, None]) / s[None, :, sf, None, None])
    torch.testing.assert_close(codec.denormalize(z), raw)
    # per-channel codecs (Wan's convention, real checkpoints) are unchanged
    plain = LatentCodec(_tiny_vae())
    assert not plain.per_frame and plain.frame_stats() is None
    torch.testing.assert_close(plain.normalize(raw), (raw - plain.mean) / plain.std)


def test_measured_statistics_give_unit_scale_latents():
    vae = _tiny_vae()
    clips = torch.rand(6, 3, 9, 16, 16) * 2 - 1
    stats = measure_frame_stats(vae, clips, batch=4)
    assert torch.tensor(stats["latents_mean"]).shape == (16, 3)
    z = LatentCodec(vae, stats).encode(clips)
    zf = z.permute(1, 2, 0, 3, 4).flatten(2)  # (C, F', N*H'*W')
    torch.testing.assert_close(zf.mean(2), torch.zeros(16, 3), atol=1e-4, rtol=0)
    torch.testing.assert_close(zf.pow(2).mean(2).sqrt(), torch.ones(16, 3), atol=1e-3, rtol=0)


def test_caches_are_carried_over_exactly_and_only_once():
    vae = _tiny_vae()
    old, new = LatentCodec(vae), LatentCodec(vae, _frame_stats(3))
    raw = torch.randn(4, 16, 5, 4, 4)
    legacy = {"latents": old.normalize(raw), "cond_x": old.normalize(raw.flip(0)), "text": torch.zeros(4, 2)}
    assert carry_over(legacy, ["latents", "cond_x"], new)  # no record: written with the config's per-channel stats
    torch.testing.assert_close(legacy["latents"], new.normalize(raw), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(legacy["cond_x"], new.normalize(raw.flip(0)), atol=1e-5, rtol=1e-5)
    for k, v in new.tables().items():
        assert torch.equal(legacy[k], v)
    before = legacy["latents"].clone()
    assert not carry_over(legacy, ["latents", "cond_x"], new)  # already in these statistics
    assert torch.equal(legacy["latents"], before)
    assert carry_over(legacy, ["latents", "cond_x"], old)  # and back
    torch.testing.assert_close(legacy["latents"], old.normalize(raw), atol=1e-5, rtol=1e-5)


def test_saved_directory_keeps_the_per_frame_statistics(tmp_path):
    b = load_backbone("toy-small", random_init=True)
    b.codec = LatentCodec(b.vae, _frame_stats(2))
    out = save_backbone(b, tmp_path / "model")
    saved = json.loads((out / "vae" / FRAME_STATS).read_text())
    for k, v in _frame_stats(2).items():
        torch.testing.assert_close(torch.tensor(saved[k]), torch.tensor(v))
    back = load_directory(out)
    assert back.codec.per_frame
    torch.testing.assert_close(back.codec.mean, b.codec.mean)
    torch.testing.assert_close(back.codec.std, b.codec.std)


def test_unreadable_statistics_are_a_one_line_error(tmp_path):
    vae = _tiny_vae()
    per_channel = {"latents_mean": [0.0] * 16, "latents_std": [1.0] * 16}  # flat lists, not (C, F') tables
    for text in ("{not json", '{"latents_mean": [[0.0]]}', json.dumps(_frame_stats(2) | {"latents_std": [[1.0]] * 3}),
                 json.dumps(per_channel)):
        (tmp_path / FRAME_STATS).write_text(text)
        with pytest.raises(CinetuneError, match="latent statistics"):
            LatentCodec.from_dir(vae, tmp_path)
    assert not LatentCodec.from_dir(vae, tmp_path / "absent").per_frame
