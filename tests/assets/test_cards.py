import pytest
import torch
from safetensors.torch import load_file

from cinetune.assets.cards import export_asset
from cinetune.errors import CinetuneError
from cinetune.training import preset_config, train


def test_export_asset_writes_weights_and_a_card_with_measured_numbers(tmp_path):
    run = train(preset_config("tiny", {"output_dir": str(tmp_path / "run"), "steps": 2}), progress=False)
    dest = export_asset(run, "tiny-model", root=tmp_path / "assets")
    card = (dest / "README.md").read_text()
    weights = dest / "transformer" / "diffusion_pytorch_model.safetensors"
    assert {t.dtype for t in load_file(weights).values()} == {torch.float16}  # shipped at half size
    assert (dest / "samples.gif").is_file() and (dest / "loss.png").is_file()
    assert "Training wall time" in card and "Parameters:" in card and "cinetune train base --preset" in card
    with pytest.raises(CinetuneError, match="no final"):
        export_asset(tmp_path / "nothing", "x", root=tmp_path / "assets")


def test_card_says_when_a_decoder_was_replaced():
    from cinetune.assets.cards import _init_line

    assert _init_line({"init": ""}) == []
    assert _init_line({"init": "a"}) == ["- Initialised from `a`"]
    kept = _init_line({"init": "a", "decoder_only": True})[0]
    assert "encoder and latents unchanged" in kept and "replaced" not in kept
    assert "fresh one of base width 32" in _init_line({"init": "a", "decoder_only": True, "decoder_base_dim": 32})[0]
