"""Attention-level hooks: an extra term added to the output of one attention module per block (e.g. a per-block
cross-attention from the video tokens to identity tokens), with the same read-only-state rules as the block hooks.

The hooked attention is `blocks[i].<attention>` (Wan: `attn2`, the text cross-attention, whose input is the block's
normalised hidden states); `compute(i, hidden_states, extras)` returns (B, N, D) and reads only what the adapter put
in `state_of(model).extras[owner]` before the forward, so gradient checkpointing's re-run sees the same tensors."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..errors import CinetuneError
from .state import Handle, state_of

Compute = Callable[[int, torch.Tensor, dict], torch.Tensor]


def add_attention_hooks(model: nn.Module, blocks: nn.ModuleList, owner: str, indices: list[int], compute: Compute,
                        attention: str = "attn2") -> Handle:
    """Forward hooks on blocks[i].<attention> for i in `indices`: output + scale * compute(i, hidden_states, extras),
    hidden_states being the attention's first input (B, N, D). No extras for `owner` (or scale 0) leaves the output
    untouched; remove() takes the hooks and the owner's state away."""
    state = state_of(model)
    n = len(blocks)
    bad = [i for i in indices if not 0 <= i < n]
    if bad:
        raise CinetuneError(f"block indices {bad} out of range for a model with {n} blocks")
    missing = [i for i in indices if not isinstance(getattr(blocks[i], attention, None), nn.Module)]
    if missing:
        raise CinetuneError(f"blocks {missing} have no attention module {attention!r}")

    def make(i: int):
        def hook(module, args, kwargs, output):
            extras = state.extras.get(owner)
            s = state.scale(owner, i)
            if not extras or s == 0.0:
                return output
            h = args[0] if args else kwargs["hidden_states"]
            out = output[0] if isinstance(output, tuple) else output
            extra = compute(i, h, extras)
            if extra.shape != out.shape:
                raise CinetuneError(f"adapter {owner!r}: attention term for block {i} has shape {tuple(extra.shape)}, "
                                    f"the attention output {tuple(out.shape)}")
            out = out + s * extra.to(out.dtype)
            return (out, *output[1:]) if isinstance(output, tuple) else out
        return hook

    hooks = [getattr(blocks[i], attention).register_forward_hook(make(i), with_kwargs=True) for i in indices]
    return Handle([lambda: [h.remove() for h in hooks], lambda: state.clear(owner)], name=owner)
