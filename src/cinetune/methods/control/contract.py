"""Tiny instances of each control method for the shared contract test (tests/contract): a fresh model on the given
backbone, with a perturbation that makes its untrained zero branches non-zero."""

from __future__ import annotations

import torch

from .model import CONTROL_METHODS, new_control_model

KINDS = ["canny", "depth"]


def _perturb(model, att) -> None:
    with torch.no_grad():
        for m in att.own_modules():
            for p in m.parameters():
                p.add_(torch.randn_like(p) * 0.05)
    att.collect()  # layers that live in the attachment (concat's patch embedding) go back into the model


def examples(make_backbone) -> list[dict]:
    """[{name, model, backbone, identity (exact identity at init), perturb(model, attachment)}]."""
    out = []
    for method in CONTROL_METHODS:
        backbone = make_backbone("toy-small")
        torch.manual_seed(0)
        model = new_control_model(method, backbone, KINDS)
        identity = method != "controlnext" or model.module.config.norm == "zero"
        out.append(dict(name=method, model=model, backbone=backbone, identity=identity, perturb=_perturb))
    return out
