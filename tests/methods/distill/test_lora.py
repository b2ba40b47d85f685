"""A student's LoRA export: the truncated SVD of its linear deltas, written by diffusers' LoRA writer and loaded
back with diffusers' own `WanPipeline.load_lora_weights` onto the base; full rank reproduces the linear deltas."""

from __future__ import annotations

import torch

from cinetune.core.lora_file import save_lora
from cinetune.methods.distill.lora_export import linear_names, lora_from_deltas
from tests.conftest import tiny_wan_components


def _student_deltas(transformer, scale=0.02, seed=0):
    """Random deltas on every linear weight (a student that differs from its teacher only there) plus one bias."""
    g = torch.Generator().manual_seed(seed)
    linear = set(linear_names(transformer))
    out = {n: scale * torch.randn(p.shape, generator=g) for n, p in transformer.named_parameters()
           if n.rpartition(".")[0] in linear and n.endswith(".weight")}
    bias = next(n for n, _ in transformer.named_parameters() if n.endswith(".bias"))
    out[bias] = torch.ones_like(dict(transformer.named_parameters())[bias])
    return out


def _forward(transformer):
    g = torch.Generator().manual_seed(1)
    x, e = torch.randn(1, 16, 2, 8, 8, generator=g), torch.randn(1, 5, 32, generator=g)
    with torch.no_grad():
        return transformer(hidden_states=x, timestep=torch.tensor([500.0]), encoder_hidden_states=e,
                           return_dict=False)[0]


def test_full_rank_lora_loads_with_diffusers_and_matches_the_linear_deltas(tmp_path):
    from diffusers import WanPipeline

    from cinetune.core import apply_trained_state

    comps = tiny_wan_components()
    tr = comps["transformer"].eval()
    deltas = _student_deltas(tr)
    lora, report = lora_from_deltas(deltas, tr, rank=64)  # >= every layer's size: exact
    assert abs(report["kept"] - 1.0) < 1e-6 and report["linear"] < 1.0  # the bias delta is not in a LoRA
    linear_only = {k: v for k, v in deltas.items() if not k.endswith(".bias")}
    undo = apply_trained_state(tr, linear_only, delta=True)
    want = _forward(tr)
    undo()
    base = _forward(tr)
    save_lora(tmp_path / "lora", lora)
    pipe = WanPipeline(**comps)
    pipe.load_lora_weights(str(tmp_path / "lora"), adapter_name="student")
    got = _forward(pipe.transformer)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)
    assert not torch.allclose(got, base)


def test_low_rank_keeps_the_leading_energy():
    tr = tiny_wan_components()["transformer"]
    deltas = _student_deltas(tr)
    _, r1 = lora_from_deltas(deltas, tr, rank=1)
    _, r4 = lora_from_deltas(deltas, tr, rank=4)
    assert 0 < r1["kept"] < r4["kept"] < 1.0
