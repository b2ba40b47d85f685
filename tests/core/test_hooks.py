"""Adapter infrastructure on a tiny Wan transformer: read-only hooks, exact removal, selective fine-tuning,
LoRA through PEFT, gradient checkpointing, safetensors round trips."""

from __future__ import annotations

import pytest
import torch

from cinetune.core import (Handle, add_lora, add_residual_hooks, apply_trained_state, enable_finetune,
                                    load_lora_state, load_tensors, lora_state, save_tensors, state_of, trained_state)
from cinetune.errors import CinetuneError
from tests.conftest import tiny_wan_components


@pytest.fixture
def tiny():
    t = tiny_wan_components()["transformer"].eval()
    torch.manual_seed(1)
    x = torch.randn(2, 16, 3, 8, 8)
    ts = torch.tensor([500, 700])
    ehs = torch.randn(2, 7, 32)
    return t, (x, ts, ehs)


def fwd(t, inp):
    x, ts, ehs = inp
    return t(hidden_states=x, timestep=ts, encoder_hidden_states=ehs, return_dict=False)[0]


def test_residual_hooks_read_state_and_removal_restores(tiny):
    t, inp = tiny
    base = fwd(t, inp)
    h = add_residual_hooks(t, t.blocks, "ctl", [0, 1])
    assert torch.equal(fwd(t, inp), base)  # nothing in state: untouched
    N, D = 3 * 4 * 4, 24
    state_of(t).set_residuals("ctl", {0: torch.zeros(2, N, D)})
    assert torch.equal(fwd(t, inp), base)  # zero residual: exact identity
    state_of(t).set_residuals("ctl", {0: torch.randn(2, N, D)})
    changed = fwd(t, inp)
    assert not torch.allclose(changed, base)
    assert torch.equal(fwd(t, inp), changed)  # hooks do not consume the state
    state_of(t).scales["ctl"] = 0.0
    assert torch.equal(fwd(t, inp), base)
    state_of(t).scales["ctl"] = 1.0
    h.remove()
    assert torch.equal(fwd(t, inp), base) and "ctl" not in state_of(t).residuals
    h.remove()  # idempotent


def test_state_is_per_model_instance(tiny):
    t, inp = tiny
    other = tiny_wan_components()["transformer"].eval()
    with add_residual_hooks(t, t.blocks, "ctl", [0]), add_residual_hooks(other, other.blocks, "ctl", [0]):
        state_of(t).set_residuals("ctl", {0: torch.randn(2, 48, 24)})
        assert torch.equal(fwd(other, inp), fwd(tiny_wan_components()["transformer"].eval(), inp))


def test_wrong_residual_shape_and_index_are_clear_errors(tiny):
    t, inp = tiny
    with pytest.raises(CinetuneError, match="out of range"):
        add_residual_hooks(t, t.blocks, "ctl", [5])
    with add_residual_hooks(t, t.blocks, "ctl", [0]):
        state_of(t).set_residuals("ctl", {0: torch.randn(2, 10, 24)})
        with pytest.raises(CinetuneError, match="residual for block 0"):
            fwd(t, inp)


def test_gradient_checkpointing_gives_the_same_gradients_through_hooks(tiny):
    t, inp = tiny
    t.train()
    enc = torch.nn.Linear(4, 24)
    src = torch.randn(2, 48, 4)

    def grads(ckpt: bool):
        if ckpt:
            t.enable_gradient_checkpointing()
        else:
            t.disable_gradient_checkpointing()
        t.zero_grad()
        enc.zero_grad()
        with add_residual_hooks(t, t.blocks, "ctl", [1]):
            state_of(t).set_residuals("ctl", {1: enc(src)})
            fwd(t, inp).square().mean().backward()
        return [p.grad.clone() for p in enc.parameters()] + [p.grad.clone() for p in t.parameters() if p.grad is not None]

    a, b = grads(False), grads(True)
    assert len(a) == len(b) and len(a) > 2
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-7)


def test_regex_finetune_trains_only_the_selection_and_deltas_round_trip(tiny, tmp_path):
    t, inp = tiny
    names = enable_finetune(t, r"attn1\.to_out")
    assert names and all("attn1.to_out" in n for n in names)
    assert {n for n, p in t.named_parameters() if p.requires_grad} == set(names)
    base = {n: p.detach().clone() for n, p in t.named_parameters()}
    with torch.no_grad():
        for n, p in t.named_parameters():
            if n in names:
                p.add_(0.01)
    tuned_out = fwd(t, inp)
    delta = trained_state(t, names, base)
    save_tensors(tmp_path / "ft.safetensors", delta, {"kind": "finetune", "delta": True})
    loaded, meta = load_tensors(tmp_path / "ft.safetensors")
    assert meta == {"kind": "finetune", "delta": True} and set(loaded) == set(names)
    fresh = tiny_wan_components()["transformer"].eval()
    undo = apply_trained_state(fresh, loaded, delta=True)
    torch.testing.assert_close(fwd(fresh, inp), tuned_out)
    undo()
    for n, p in fresh.named_parameters():
        assert torch.equal(p, base[n])
    with pytest.raises(CinetuneError, match="matches"):
        enable_finetune(t, r"no_such_module")


def test_lora_is_identity_at_init_trains_alone_and_round_trips(tiny, tmp_path):
    t, inp = tiny
    base = fwd(t, inp)
    t.requires_grad_(False)
    h = add_lora(t, rank=4)
    assert torch.equal(fwd(t, inp), base)
    trainable = [n for n, p in t.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    with torch.no_grad():
        for n, p in t.named_parameters():
            if "lora_B" in n:
                p.normal_()
    tuned = fwd(t, inp)
    assert not torch.allclose(tuned, base)
    sd = lora_state(t)
    save_tensors(tmp_path / "lora.safetensors", sd, {"rank": 4})
    h.remove()
    assert torch.equal(fwd(t, inp), base) and not any("lora_" in n for n, _ in t.named_parameters())
    fresh = tiny_wan_components()["transformer"].eval()
    add_lora(fresh, rank=4)
    load_lora_state(fresh, load_tensors(tmp_path / "lora.safetensors")[0])
    torch.testing.assert_close(fwd(fresh, inp), tuned)


def test_handles_and_bad_files(tmp_path):
    calls = []
    with Handle([lambda: calls.append(1)]) as h:
        h.add(lambda: calls.append(2))
    assert calls == [2, 1]
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(CinetuneError, match="cannot read"):
        load_tensors(bad)
    with pytest.raises(CinetuneError, match="not found"):
        load_tensors(tmp_path / "missing.safetensors")
