"""Per-model adapter state, removable handles and read-only residual block hooks (docs/design.md, "Extension
mechanism").

Per-call tensors (control residuals, identity features) never travel through the host model's `forward`: an
adapter computes them before the backbone runs and puts them in the model's `AdapterState`; hooks on
`transformer.blocks[i]` only *read* that state, so gradient checkpointing (which re-runs blocks, and their hooks,
during backward) sees the same tensors twice, and several models (student / teacher / critic) never share state.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from ..errors import CinetuneError


@dataclass
class AdapterState:
    """Tensors for the next forward of one model instance, per owner (an attached adapter's name).

    residuals[owner][block_index]: (B, N, D) added to that block's output hidden states; scales[owner]: a float or
    a per-block dict multiplying them (control scale; 0 switches an adapter off for a step without detaching it)."""

    residuals: dict[str, dict[int, torch.Tensor]] = field(default_factory=dict)
    scales: dict[str, float | dict[int, float]] = field(default_factory=dict)
    extras: dict[str, dict] = field(default_factory=dict)

    def set_residuals(self, owner: str, residuals: dict[int, torch.Tensor]) -> None:
        self.residuals[owner] = dict(residuals)

    def clear(self, owner: str | None = None) -> None:
        for d in (self.residuals, self.extras, self.scales):
            if owner is None:
                d.clear()
            else:
                d.pop(owner, None)

    def scale(self, owner: str, block: int) -> float:
        s = self.scales.get(owner, 1.0)
        return float(s.get(block, 1.0) if isinstance(s, dict) else s)


_STATES: "weakref.WeakKeyDictionary[nn.Module, AdapterState]" = weakref.WeakKeyDictionary()


def state_of(model: nn.Module) -> AdapterState:
    """The adapter state of one model instance (created on first use, dropped with the model)."""
    st = _STATES.get(model)
    if st is None:
        st = _STATES[model] = AdapterState()
    return st


class Handle:
    """What `attach` returns: `remove()` undoes the attachment exactly (hooks, state, added modules). Also a
    context manager."""

    def __init__(self, removers: list[Callable[[], None]] | None = None, name: str = ""):
        self._removers, self.name, self.removed = list(removers or []), name, False

    def add(self, remover: Callable[[], None]) -> None:
        self._removers.append(remover)

    def remove(self) -> None:
        if self.removed:
            return
        for r in reversed(self._removers):
            r()
        self.removed = True

    def __enter__(self) -> "Handle":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def _hidden(output):
    return output[0] if isinstance(output, tuple) else output


def _add(h: torch.Tensor, r: torch.Tensor, scale: float, block: int) -> torch.Tensor:
    return h + scale * r.to(h.dtype)


def add_residual_hooks(model: nn.Module, blocks: nn.ModuleList, owner: str, indices: list[int],
                       combine: Callable[[torch.Tensor, torch.Tensor, float, int], torch.Tensor] = _add) -> Handle:
    """Forward hooks that merge state_of(model).residuals[owner][i] into block i's output hidden states:
    `combine(hidden_states, residual, scale, i)`, by default hidden_states + scale * residual (an adapter may pass
    e.g. a cross-normalisation that reads the hidden states' statistics). Pure reads: absent residuals (or scale 0)
    leave the block's output untouched. Works for blocks that return a tensor (Wan) or a tuple whose first item is
    the hidden states (CogVideoX)."""
    state = state_of(model)

    def make(i: int):
        def hook(module, args, output):
            r = state.residuals.get(owner, {}).get(i)
            s = state.scale(owner, i)
            if r is None or s == 0.0:
                return output
            h = _hidden(output)
            if r.shape != h.shape:
                raise CinetuneError(f"adapter {owner!r}: residual for block {i} has shape {tuple(r.shape)}, the block "
                                    f"output {tuple(h.shape)}")
            h = combine(h, r, s, i)
            return (h, *output[1:]) if isinstance(output, tuple) else h
        return hook

    n = len(blocks)
    bad = [i for i in indices if not 0 <= i < n]
    if bad:
        raise CinetuneError(f"block indices {bad} out of range for a model with {n} blocks")
    hooks = [blocks[i].register_forward_hook(make(i)) for i in indices]
    return Handle([lambda: [h.remove() for h in hooks], lambda: state.clear(owner)], name=owner)
