"""The adapter contract, run over every registered method (methods.registry) on tiny random-init toy backbones:
identity at init where the method promises it, removal restores the base bit-exactly, only the method's parameters
receive gradients, gradient checkpointing gives the same gradients, save/load round-trips through the registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cinetune.backbones import load_backbone
from cinetune.methods.registry import load_adapter, methods


def _backbone(name: str):
    torch.manual_seed(0)
    b = load_backbone(name, random_init=True)
    b.transformer.eval().requires_grad_(False)
    return b


EXAMPLES = [(m, ex) for m in methods().values() for ex in m.examples(_backbone)]


def _inputs(backbone, kinds, extra=None):
    """Latents, timesteps, text and the conditions: a condition video per kind plus the example's own (e.g. reference
    faces)."""
    g = torch.Generator().manual_seed(3)
    lat = torch.randn(2, 16, 3, 16, 16, generator=g)
    rng = np.random.default_rng(0)
    conds = {k: rng.integers(0, 255, (9, 64, 64, 3), dtype=np.uint8) for k in kinds} | dict(extra or {})
    return lat, torch.tensor([300.0, 800.0]), backbone.text_encoder(["a red circle", ""]), conds


def _run(ex, att, inputs):
    lat, t, emb, conds = inputs
    att.prepare(conds)
    att.before_step(lat, t, emb, 1.0)
    return ex["backbone"].view(lat, t, emb)


@pytest.fixture(params=EXAMPLES, ids=[ex["name"] for _, ex in EXAMPLES])
def case(request):
    return request.param


def test_every_registered_method_has_examples():
    assert {m.name for m, _ in EXAMPLES} == set(methods())


def test_identity_at_init_and_removal_restores_the_base(case):
    _, ex = case
    inputs = _inputs(ex["backbone"], ex["model"].kinds, ex.get("conditions"))
    tr = ex["backbone"].transformer
    names = [n for n, _ in tr.named_parameters()]
    with torch.no_grad():
        base = ex["backbone"].view(*inputs[:3])
        att = ex["model"].attach(ex["backbone"])
        out = _run(ex, att, inputs)
        if ex["identity"]:
            assert torch.equal(out, base)
        ex["perturb"](ex["model"], att)
        assert not torch.allclose(_run(ex, att, inputs), base)
        att.remove()
        assert torch.equal(ex["backbone"].view(*inputs[:3]), base)
    assert [n for n, _ in tr.named_parameters()] == names  # module for module the base (no PEFT wrapper left)


def _grads(ex, ckpt: bool) -> dict:
    tr = ex["backbone"].transformer
    att = ex["model"].attach(ex["backbone"], trainable=True)
    try:
        tr.train()
        (tr.enable_gradient_checkpointing if ckpt else tr.disable_gradient_checkpointing)()
        _run(ex, att, _inputs(ex["backbone"], ex["model"].kinds, ex.get("conditions"))).square().mean().backward()
        own = {id(p) for p in att.trainable_parameters()}
        everything = list(tr.named_parameters()) + [(f"{k}.{n}", p) for k, m in ex["model"].modules().items()
                                                    for n, p in m.named_parameters()]
        stray = [n for n, p in everything if p.grad is not None and id(p) not in own]
        assert not stray, stray[:3]
        grads = {i: p.grad.clone() for i, p in enumerate(att.trainable_parameters()) if p.grad is not None}
        assert grads
        for p in att.trainable_parameters():
            p.grad = None
        return grads
    finally:
        tr.eval().disable_gradient_checkpointing()
        att.remove()


def test_only_its_parameters_train_and_checkpointing_keeps_gradients(case):
    _, ex = case
    with torch.no_grad():  # non-zero branches, so that gradients reach every trained parameter
        att = ex["model"].attach(ex["backbone"])
        ex["perturb"](ex["model"], att)
        att.remove()
    torch.manual_seed(1)
    plain = _grads(ex, ckpt=False)
    torch.manual_seed(1)
    ckpt = _grads(ex, ckpt=True)
    assert plain.keys() == ckpt.keys()
    for k in plain:
        torch.testing.assert_close(plain[k], ckpt[k], atol=1e-6, rtol=1e-5)


def test_save_load_round_trips_through_the_registry(case, tmp_path):
    _, ex = case
    inputs = _inputs(ex["backbone"], ex["model"].kinds, ex.get("conditions"))
    with torch.no_grad():
        att = ex["model"].attach(ex["backbone"])
        ex["perturb"](ex["model"], att)
        want = _run(ex, att, inputs)
        att.remove()
    ex["model"].save(tmp_path / "saved")
    back = load_adapter(tmp_path)  # the folder above the saved adapter (a run's final/, an asset) works too
    assert type(back) is type(ex["model"]) and back.kinds == ex["model"].kinds
    if "saved_extra" in ex:
        ex["saved_extra"](back)
    with torch.no_grad():
        att = back.attach(ex["backbone"])
        got = _run(ex, att, inputs)
        att.remove()
    assert torch.equal(got, want)
