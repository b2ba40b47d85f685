"""A tiny Scale-Adapter for the shared contract test: toy-large steered by a fresh concat model on toy-small."""

from __future__ import annotations

import torch

from ..control.model import new_control_model
from .model import ScaleAdapterModel, new_scale_adapter

KINDS = ["canny", "depth"]


def _perturb(model, att) -> None:
    with torch.no_grad():
        for a in model.adapter.adapters:
            a.up.weight.normal_(0, 0.02)


def examples(make_backbone) -> list[dict]:
    large, small = make_backbone("toy-large"), make_backbone("toy-small")
    torch.manual_seed(0)
    ctl = new_control_model("concat", small, KINDS)
    model = ScaleAdapterModel(new_scale_adapter(large, small, ctl, count=2), "unused", "toy-small", KINDS)
    model._loaded.update(backbone=small, control=ctl)  # attach uses these instead of loading by name
    return [dict(name="scale-adapter", model=model, backbone=large, identity=True, perturb=_perturb,
                 saved_extra=lambda back: back._loaded.update(backbone=small, control=ctl))]
