"""Scale-Adapter trains on the shared trainer (tiny run: a concat-conditioned toy-small steering a random toy-large),
exports, loads, and generates from the CLI with trained, multi and unseen conditions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cinetune.methods.scale_adapter.model import ScaleAdapterModel
from cinetune.cli import main
from cinetune.io import write_video
from cinetune.training import preset_config, train

DATA = {"frames": 5, "height": 32, "width": 32}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("scale")
    small = train(preset_config("toy-small-control", {
        "output_dir": str(root / "small"), "steps": 2, "batch_size": 2, "checkpoint_every": 2, "validate_every": 0,
        "num_validation": 1, "validation_steps": 2, "data": {**DATA, "cache_path": str(root / "cache.safetensors")},
        "control": {"clip_cache": 4}}), progress=False)
    cfg = preset_config("toy-scale-adapter", {
        "init": "", "output_dir": str(root / "scale"), "steps": 2, "batch_size": 2, "checkpoint_every": 1,
        "validate_every": 0, "num_validation": 1, "validation_steps": 2,
        "data": {**DATA, "cache_path": str(root / "cache.safetensors")},
        "scale": {"small": str(small / "final" / "control"), "clip_cache": 4, "count": 2}})
    return root, cfg, train(cfg, progress=False)


def test_only_the_adapters_train_and_export(runs):
    root, cfg, out = runs
    model = ScaleAdapterModel.load(out / "final" / "scale")
    assert model.kinds == ["canny", "depth", "pose"] and model.adapter.pairs == [(0, 0), (7, 3)]
    assert model.info["steps"] == 2 and (out / "samples" / "step-0000002.gif").is_file()
    from safetensors.torch import load_file

    ck = load_file(str(out / "checkpoints" / "step-0000001" / "model.safetensors"))
    final = load_file(str(out / "checkpoints" / "step-0000002" / "model.safetensors"))
    changed = {k for k in ck if not torch.equal(ck[k], final[k])}
    assert changed and all(k.startswith("adapter.") for k in changed)  # the large transformer stayed frozen
    from cinetune.assets.cards import export_asset

    dest = export_asset(out, "tiny-scale", root=root / "assets")
    assert "cinetune train scale-adapter --preset toy-scale-adapter --large toy-large" in (dest / "README.md").read_text()
    assert ScaleAdapterModel.load(dest / "scale").adapter.pairs == [(0, 0), (7, 3)]


def test_scale_training_resumes_bit_identically(runs):
    root, cfg, out = runs
    cfg.output_dir = str(root / "scale-b")
    train(cfg, stop_after=1, progress=False)
    b = train(cfg, resume=True, progress=False)
    x, y = ScaleAdapterModel.load(out / "final" / "scale"), ScaleAdapterModel.load(b / "final" / "scale")
    for (n, p), (_, q) in zip(x.adapter.state_dict().items(), y.adapter.state_dict().items()):
        assert torch.equal(p, q), n


def test_cli_generates_with_trained_multi_and_unseen_conditions(runs, tmp_path):
    root, cfg, out = runs
    rng = np.random.default_rng(0)
    vid = rng.integers(0, 255, (5, 32, 32, 3), dtype=np.uint8)
    write_video(tmp_path / "c.mp4", vid, 8)
    sa = str(out / "final" / "scale")
    common = ["generate", "--model", "toy-large", "--scale-adapter", sa, "--prompt", "a red circle", "--frames", "5",
              "--height", "32", "--width", "32", "--steps", "2"]
    assert main([*common, "--control", f"depth={tmp_path / 'c.mp4'}", "--control", f"pose={tmp_path / 'c.mp4'}",
                 "--out", str(tmp_path / "multi.mp4")]) == 0
    assert main([*common, "--control", f"normal={tmp_path / 'c.mp4'}", "--out", str(tmp_path / "zs.mp4")]) == 0
    assert main([*common, "--control", f"segmentation={tmp_path / 'c.mp4'}", "--slot", "segmentation=canny",
                 "--out", str(tmp_path / "slot.mp4")]) == 0
    assert (tmp_path / "multi.mp4").is_file() and (tmp_path / "zs.mp4").is_file()
    assert main([*common, "--out", str(tmp_path / "x.mp4")]) == 2  # no conditions
    # --adapter and --scale-adapter name adapters alike; several compose in one call (the run's final/ works too)
    assert main([*common, "--adapter", str(out / "final"), "--control", f"depth={tmp_path / 'c.mp4'}",
                 "--out", str(tmp_path / "two.mp4")]) == 0 and (tmp_path / "two.mp4").is_file()
    assert main([*common, "--adapter", str(tmp_path), "--control", f"depth={tmp_path / 'c.mp4'}"]) == 2  # none there


def test_cli_train_scale_adapter_errors():
    assert main(["train", "scale-adapter", "--conditions", "thermal", "steps=1"]) == 2
    assert main(["train", "scale-adapter", "scale.strategy=middle", "steps=1"]) == 2
    assert main(["train", "control", "--small", "x", "steps=1"]) == 2
