"""The distillation task end to end on a tiny random teacher: the critic / student schedule, a teacher that never
trains, bit-identical resume across both optimizers and the task state, and the exported student's round trip."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from cinetune.methods.distill.model import StudentModel
from cinetune.methods.distill.task import DistillTask
from cinetune.training import preset_config, train


def _cfg(tmp_path: Path, name: str, **kw):
    return preset_config("tiny-distill", {"output_dir": str(tmp_path / name), "ema_decay": 0.9, "log_every": 1,
                                          "data": {"cache_path": str(tmp_path / "latents.safetensors")}, **kw})


class Recording(DistillTask):
    def __init__(self, cfg, device):
        super().__init__(cfg, device)
        self.calls = []
        self.teacher_before = {n: p.detach().clone() for n, p in self.teacher.named_parameters()}

    def update_loss(self, name, model, batch):
        self.calls.append(name)
        return super().update_loss(name, model, batch)


def test_schedule_teacher_frozen_and_bit_identical_resume(tmp_path):
    made = []

    def make(cfg, device):
        made.append(Recording(cfg, device))
        return made[-1]

    straight = train(_cfg(tmp_path, "straight"), progress=False, make_task_fn=make)
    task = made[-1]
    # generator_every 2: steps 0..3 -> critic, student+critic, critic, student+critic (the student first)
    assert task.calls == ["critic", "student", "critic", "critic", "student", "critic"]
    assert all(not p.requires_grad and p.grad is None for p in task.teacher.parameters())
    assert all(torch.equal(p, task.teacher_before[n]) for n, p in task.teacher.named_parameters())
    assert task.regression.mean.abs().sum() > 0  # the regression ran and its running means moved
    cfg = _cfg(tmp_path, "resumed")
    train(cfg, stop_after=2, progress=False, make_task_fn=make)
    resumed = train(cfg, resume=True, progress=False, make_task_fn=make)
    assert torch.equal(made[-1].regression.mean, task.regression.mean)
    a = load_file(straight / "final" / "student" / "student.safetensors")
    b = load_file(resumed / "final" / "student" / "student.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(a[k].abs().sum() > 0 for k in a)  # the student moved off the teacher
    ck = "checkpoints/step-0000004"
    for name in ("optimizer-critic.safetensors", "optimizer-student.safetensors", "task.safetensors", "model.safetensors"):
        x, y = load_file(straight / ck / name), load_file(resumed / ck / name)
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), name


def test_exported_student_attaches_onto_its_teacher(tmp_path):
    made = []
    out = train(_cfg(tmp_path, "run", ema_decay=0.0, steps=2), progress=False,
                make_task_fn=lambda c, d: made.append(DistillTask(c, d)) or made[-1])
    task = made[-1]
    student = StudentModel.load(out / "final")
    teacher = dict(task.teacher.named_parameters())
    before = {n: p.detach().clone() for n, p in teacher.items()}
    with student.attach(task.backbone):
        for n, p in task.model.student.named_parameters():
            assert torch.allclose(teacher[n], p, atol=1e-6), n
    assert all(torch.equal(p, before[n]) for n, p in teacher.items())  # removal restores the teacher bit-exactly
