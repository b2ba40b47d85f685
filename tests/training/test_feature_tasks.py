"""The toy feature networks train on the shared trainer: tiny runs end to end, export, load, resume."""

from __future__ import annotations

import json

import pytest
import torch

from cinetune.toynets import load_toy_net
from cinetune.training import preset_config, train

TINY = {
    "toy-video-encoder": dict(steps=2, batch_size=4, data=dict(clip_cache=6, frames=5), num_validation=4),
    "toy-identity-encoder": dict(steps=2, batch_size=16, data=dict(clip_cache=3), num_validation=2),
    "toy-annotator": dict(steps=2, batch_size=4, data=dict(clip_cache=2, frames=5), num_validation=1),
}
KIND = {"toy-video-encoder": "video_encoder", "toy-identity-encoder": "identity_encoder", "toy-annotator": "annotator"}


@pytest.mark.parametrize("preset", list(TINY))
def test_feature_network_trains_exports_and_loads(preset, tmp_path):
    cfg = preset_config(preset, {**TINY[preset], "output_dir": str(tmp_path / preset), "checkpoint_every": 1,
                                 "validate_every": 0})
    out = train(cfg, progress=False)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2
    held_out = {k: v for k, v in summary.items()
                if k not in ("steps", "wall_seconds_this_run", "processes", "final_loss", "device", "precision")}
    assert held_out and all(isinstance(v, float) for v in held_out.values())
    net = load_toy_net(KIND[preset], str(out / "final" / KIND[preset]))
    assert not any(p.requires_grad for p in net.parameters())


def test_feature_task_resume_is_bit_identical(tmp_path):
    over = {**TINY["toy-video-encoder"], "steps": 3, "checkpoint_every": 1, "validate_every": 0}
    full = train(preset_config("toy-video-encoder", {**over, "output_dir": str(tmp_path / "a")}), progress=False)
    part = preset_config("toy-video-encoder", {**over, "output_dir": str(tmp_path / "b")})
    train(part, stop_after=2, progress=False)
    train(part, resume=True, progress=False)
    a = load_toy_net("video_encoder", str(full / "final" / "video_encoder"))
    b = load_toy_net("video_encoder", str(tmp_path / "b" / "final" / "video_encoder"))
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(x, y)
