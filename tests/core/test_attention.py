"""Attention-level hooks: an extra term on blocks[i].attn2's output, read from per-model state; exact removal."""

from __future__ import annotations

import pytest
import torch

from cinetune.core import add_attention_hooks, state_of
from cinetune.errors import CinetuneError
from tests.conftest import tiny_wan_components


def test_attention_hook_adds_its_term_reads_state_and_removal_restores():
    t = tiny_wan_components()["transformer"].eval()
    torch.manual_seed(1)
    x, ts, ehs = torch.randn(2, 16, 3, 8, 8), torch.tensor([500, 700]), torch.randn(2, 7, 32)
    fwd = lambda: t(hidden_states=x, timestep=ts, encoder_hidden_states=ehs, return_dict=False)[0]  # noqa: E731
    base = fwd()
    proj = torch.nn.Linear(24, 24)
    seen = []

    def compute(i, h, extras):
        seen.append((i, tuple(h.shape)))
        return proj(h) * extras["gain"]

    handle = add_attention_hooks(t, t.blocks, "ids", [1], compute)
    assert torch.equal(fwd(), base) and not seen  # nothing in state: untouched
    state_of(t).extras["ids"] = {"gain": torch.tensor(1.0)}
    assert not torch.allclose(fwd(), base) and seen == [(1, (2, 48, 24))]
    state_of(t).scales["ids"] = 0.0
    assert torch.equal(fwd(), base)
    handle.remove()
    assert torch.equal(fwd(), base) and "ids" not in state_of(t).extras
    with pytest.raises(CinetuneError, match="out of range"):
        add_attention_hooks(t, t.blocks, "ids", [5], compute)
    with pytest.raises(CinetuneError, match="no attention module"):
        add_attention_hooks(t, t.blocks, "ids", [0], compute, attention="attn9")
