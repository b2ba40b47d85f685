"""Control adapters train on the shared trainer: tiny runs per method end to end, export, load, resume."""

from __future__ import annotations

import pytest
import torch

from cinetune.methods.control.model import ControlModel
from cinetune.cli import main
from cinetune.training import preset_config, train


def tiny(tmp_path, method, **extra):
    return preset_config("toy-control", {
        "backbone": "toy-small", "init": "", "output_dir": str(tmp_path / method), "steps": 2, "batch_size": 2,
        "checkpoint_every": 1, "validate_every": 0, "num_validation": 1, "validation_steps": 2,
        "data": {"frames": 5, "height": 32, "width": 32, "cache_path": str(tmp_path / "cache.safetensors")},
        "control": {"method": method, "conditions": "canny,depth", "clip_cache": 4, **extra}})


@pytest.mark.parametrize("method", ["controlnext", "dit-controlnet", "concat"])
def test_each_method_trains_and_exports(method, tmp_path):
    out = train(tiny(tmp_path, method), progress=False)
    model = ControlModel.load(out / "final" / "control")
    assert model.method == method and model.kinds == ["canny", "depth"]
    if method == "controlnext":
        assert model.finetuned and all("attn1.to_out" in n for n in model.finetuned)  # self-attention outputs
    if method == "concat":
        assert model.patch and model.finetuned  # full fine-tune by default
    assert (out / "samples" / "step-0000002.gif").is_file()


def test_control_training_resumes_bit_identically(tmp_path):
    cfg = tiny(tmp_path, "controlnext")
    cfg.steps = 3
    a = train(cfg, progress=False)
    cfg_b = tiny(tmp_path, "controlnext")
    cfg_b.steps, cfg_b.output_dir = 3, str(tmp_path / "b")
    train(cfg_b, stop_after=2, progress=False)
    b = train(cfg_b, resume=True, progress=False)
    ma, mb = ControlModel.load(a / "final" / "control"), ControlModel.load(b / "final" / "control")
    for x, y in zip(ma.module.state_dict().values(), mb.module.state_dict().values()):
        assert torch.equal(x, y)
    for n in ma.finetuned:
        assert torch.equal(ma.finetuned[n], mb.finetuned[n])


def test_cli_train_control_errors():
    assert main(["train", "control", "--method", "controlnet-xl", "steps=1"]) == 2
    assert main(["train", "control", "--conditions", "thermal", "steps=1"]) == 2
    assert main(["train", "base", "--preset", "tiny", "--method", "concat"]) == 2


def test_control_runs_export_as_assets_with_a_card(tmp_path):
    from cinetune.assets.cards import export_asset

    out = train(tiny(tmp_path, "controlnext"), progress=False)
    dest = export_asset(out, "tiny-control", root=tmp_path / "assets")
    card = (dest / "README.md").read_text()
    assert "cinetune train control --preset toy-control --method controlnext --conditions canny,depth" in card
    assert (dest / "samples.gif").is_file() and "Controlled samples" in card
    model = ControlModel.load(dest / "control")
    assert model.method == "controlnext" and model.info["steps"] == 2


def test_shipped_controlnext_loads_by_name():
    from cinetune.methods.control.model import SHIPPED_CONTROL

    model = ControlModel.load(SHIPPED_CONTROL)
    assert model.method == "controlnext" and model.kinds == ["canny", "depth", "pose"]
    assert model.info["backbone"] == "toy-large"



@pytest.fixture(scope="module")
def cog_dir(tmp_path_factory):
    """A random-init CogVideoX-architecture backbone saved as a diffusers directory (config paths and all)."""
    from cinetune.backbones import load_backbone
    from cinetune.backbones.loading import save_backbone

    torch.manual_seed(0)
    return save_backbone(load_backbone("toy-cogvideox", random_init=True), tmp_path_factory.mktemp("cog") / "model")


@pytest.mark.parametrize("method", ["dit-controlnet", "controlnext", "concat"])
def test_each_method_trains_on_a_cogvideox_directory_and_generates(method, cog_dir, tmp_path):
    import imageio.v3 as iio
    import numpy as np

    cfg = tiny(tmp_path, method)
    cfg.backbone = str(cog_dir)
    out = train(cfg, progress=False)
    model = ControlModel.load(out / "final" / "control")
    assert model.method == method
    if method == "dit-controlnet":
        assert type(model.module).__name__ == "CogVideoXControlNet"
    iio.imwrite(tmp_path / "depth.mp4", np.random.default_rng(0).integers(0, 255, (9, 32, 32, 3), np.uint8), fps=8)
    assert main(["generate", "--model", str(cog_dir), "--prompt", "a red circle", "--frames", "9", "--height", "32",
                 "--width", "32", "--steps", "2", "--adapter", str(out / "final"), "--control",
                 f"depth={tmp_path / 'depth.mp4'}", "--control-end", "0.5", "--out", str(tmp_path / "o.mp4")]) == 0
    assert (tmp_path / "o.mp4").stat().st_size > 0
