"""The trainer with several updates: a two-optimizer task (a "critic" every step, a "student" every 2nd step, a
running mean as task state) trains on its schedule, checkpoints every optimizer and resumes bit-identically."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from cinetune.training import preset_config, train
from cinetune.training.dit import DiTTask
from cinetune.training.task import Update


class TwoUpdateTask(DiTTask):
    """The DiT task split into two updates over disjoint parameters, with a per-run running mean of the loss."""

    def __init__(self, cfg, device):
        super().__init__(cfg, device)
        self.running = torch.zeros(1)
        self.calls = {"critic": [], "student": []}

    def updates(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        half = len(params) // 2
        return [Update("critic", [{"params": params[:half], "lr_scale": 1.0}], ema=False),
                Update("student", [{"params": params[half:], "lr_scale": 1.0}], every=2, offset=1, lr_scale=0.5)]

    def update_loss(self, name, model, batch):
        loss, extra = self.loss(model, batch)
        if name == "critic":
            self.running = 0.9 * self.running + 0.1 * loss.detach().cpu().reshape(1)
        self.calls[name].append(batch["gens"][0].initial_seed())
        return loss, extra

    def state_dict(self):
        return {"running": self.running}

    def load_state_dict(self, state):
        self.running = state["running"].clone()


def _cfg(tmp_path: Path, name: str):
    return preset_config("tiny", {"output_dir": str(tmp_path / name), "steps": 6, "checkpoint_every": 3,
                                  "ema_decay": 0.9, "log_every": 1})


def test_two_updates_follow_their_schedules_and_resume_bit_identically(tmp_path):
    made = []

    def make(cfg, device):
        made.append(TwoUpdateTask(cfg, device))
        return made[-1]

    straight = train(_cfg(tmp_path, "straight"), progress=False, make_task_fn=make)
    task = made[-1]
    assert len(task.calls["critic"]) == 6 and len(task.calls["student"]) == 3  # steps 1, 3, 5 (0-based)
    ck = straight / "checkpoints" / "step-0000006"
    assert {"optimizer-critic.safetensors", "optimizer-student.safetensors", "task.safetensors"} <= \
        {p.name for p in ck.iterdir()}
    # the student's schedule counts its own 3 steps; its LR is half the critic's
    rows = (straight / "metrics.csv").read_text().splitlines()
    assert "loss_student" in rows[2] and "loss_critic" in rows[1]

    cfg = _cfg(tmp_path, "resumed")
    train(cfg, stop_after=3, progress=False, make_task_fn=make)
    resumed = train(cfg, resume=True, progress=False, make_task_fn=make)
    assert torch.equal(made[-1].running, task.running)  # the task state came back from the checkpoint
    a = load_file(straight / "final" / "transformer" / "diffusion_pytorch_model.safetensors")
    b = load_file(resumed / "final" / "transformer" / "diffusion_pytorch_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for name in ("optimizer-critic.safetensors", "optimizer-student.safetensors", "task.safetensors"):
        x, y = load_file(ck / name), load_file(resumed / "checkpoints" / "step-0000006" / name)
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), name
