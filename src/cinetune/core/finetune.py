"""Regex-selected fine-tuning of base weights, saved (as deltas) and re-applied with an exact undo."""

from __future__ import annotations

import re
from typing import Callable

import torch
from torch import nn

from ..errors import CinetuneError


def select_parameters(model: nn.Module, pattern: str) -> list[str]:
    """Names of `model`'s parameters matching the regex `pattern` (re.search), e.g. r"attn1\\.to_out"."""
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise CinetuneError(f"bad parameter regex {pattern!r}: {e}") from None
    names = [n for n, _ in model.named_parameters() if rx.search(n)]
    if not names:
        raise CinetuneError(f"no parameter of {type(model).__name__} matches {pattern!r}")
    return names


def enable_finetune(model: nn.Module, pattern: str) -> list[str]:
    """Freeze `model` except the parameters matching `pattern`; returns their names."""
    names = set(select_parameters(model, pattern))
    for n, p in model.named_parameters():
        p.requires_grad_(n in names)
    return sorted(names)


def trained_state(model: nn.Module, names: list[str], base: dict[str, torch.Tensor] | None = None) -> dict:
    """The selected parameters only; as deltas from `base` when given (smaller to compress, exact to re-apply)."""
    params = dict(model.named_parameters())
    return {n: (params[n].detach() - base[n] if base is not None else params[n].detach()).contiguous().clone()
            for n in names}


def apply_trained_state(model: nn.Module, tensors: dict[str, torch.Tensor], delta: bool) -> Callable[[], None]:
    """Write fine-tuned base weights into `model` (adding deltas, or replacing); returns an undo function that
    restores the original weights exactly."""
    params = dict(model.named_parameters())
    missing = [n for n in tensors if n not in params]
    if missing:
        raise CinetuneError(f"fine-tuned weights for parameters this model lacks: {missing[:3]}")
    saved = {n: params[n].detach().clone() for n in tensors}
    with torch.no_grad():
        for n, t in tensors.items():
            if t.shape != params[n].shape:
                raise CinetuneError(f"{n}: saved shape {tuple(t.shape)} vs model {tuple(params[n].shape)}")
            params[n].copy_(params[n] + t.to(params[n].dtype) if delta else t.to(params[n].dtype))

    def undo() -> None:
        with torch.no_grad():
            for n, t in saved.items():
                params[n].copy_(t)
    return undo
