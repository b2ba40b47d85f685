"""A tiny student for the shared contract test: zero deltas on a random toy-small (the teacher itself)."""

from __future__ import annotations

import torch

from .model import StudentModel, fingerprint


def _perturb(model, att) -> None:
    """Move the student off the teacher: new deltas, written into the attached transformer."""
    tr = att.backbone.transformer
    with torch.no_grad():
        att.remove()
        g = torch.Generator().manual_seed(0)
        model.deltas = {n: 0.02 * torch.randn(p.shape, generator=g) for n, p in tr.named_parameters()}
    fresh = model.attach(att.backbone)
    att.__dict__.update(fresh.__dict__)


def examples(make_backbone) -> list[dict]:
    b = make_backbone("toy-small")
    deltas = {n: torch.zeros_like(p) for n, p in b.transformer.named_parameters()}
    model = StudentModel(deltas, [1000, 900, 757, 522], 2.0, "toy-small", fingerprint(b.transformer))
    return [dict(name="distill", model=model, backbone=b, identity=True, perturb=_perturb)]
