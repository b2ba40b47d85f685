"""Scale-Adapter on random-init toy backbones (toy-large steered by a concat-conditioned toy-small): pairing,
routing, expert addition, identity at init, removal, frozen backbones, gradient checkpointing, save/load."""

from __future__ import annotations

import pytest
import torch

from cinetune.methods.control.model import new_control_model
from cinetune.methods.scale_adapter.model import ScaleAdapterModel, new_scale_adapter, slot_for
from cinetune.methods.scale_adapter.module import ConditionExperts, ScaleAdapter
from cinetune.methods.scale_adapter.pairing import large_blocks, pair_blocks
from cinetune.backbones import load_backbone
from cinetune.errors import CinetuneError
from tests.methods.conftest import control_inputs

KINDS = ["canny", "depth", "pose"]


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    large = load_backbone("toy-large", random_init=True)
    small = load_backbone("toy-small", random_init=True)
    for b in (large, small):
        b.transformer.eval().requires_grad_(False)
    return large, small, new_control_model("concat", small, KINDS)


def cond_latents(B=1, frames=3, seed=5):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(B, 16, frames, 16, 16, generator=g) for k in KINDS}


def attached(pair, **kw):
    large, small, ctl = pair
    torch.manual_seed(2)
    adapter = new_scale_adapter(large, small, ctl, **kw)
    model = ScaleAdapterModel(adapter, "unused", "toy-small", KINDS)
    return model, model.attach(large, small=small, small_control=ctl)


def test_pairing_strategies():
    assert large_blocks(8, 3) == [0, 4, 7]
    assert large_blocks(40, 10)[:2] == [0, 1] and large_blocks(40, 10)[-2:] == [38, 39]  # denser at both ends
    assert large_blocks(8, 3, "first") == [0, 1, 2] and large_blocks(8, 3, "last") == [5, 6, 7]
    assert large_blocks(8, 4, "even") == [0, 2, 5, 7]
    for n, c in ((8, 5), (40, 12), (30, 7)):
        got = large_blocks(n, c)
        assert len(got) == c == len(set(got)) and got[0] == 0 and got[-1] == n - 1
    assert pair_blocks(8, 4, 3) == [(0, 0), (4, 2), (7, 3)]
    assert pair_blocks(8, 4, large=[1, 6], small=[0, 3]) == [(1, 0), (6, 3)]
    with pytest.raises(CinetuneError, match="count"):
        large_blocks(8, 9)
    with pytest.raises(CinetuneError, match="strategy"):
        large_blocks(8, 2, "middle")
    with pytest.raises(CinetuneError, match="small blocks"):
        pair_blocks(8, 4, large=[1], small=[4])


def test_routing_weights_sum_to_one_with_exactly_k_experts():
    torch.manual_seed(0)
    mce = ConditionExperts(32, 16, num_experts=5, top_k=2)
    w = mce.route(torch.randn(6, 10, 32), torch.randn(6, 16))
    torch.testing.assert_close(w.sum(-1), torch.ones(6))
    assert ((w > 0).sum(-1) == 2).all()
    with pytest.raises(CinetuneError, match="top_k"):
        ConditionExperts(8, 8, num_experts=2, top_k=3)


def test_only_routed_experts_contribute_and_new_experts_copy_or_start_neutral():
    torch.manual_seed(0)
    mce = ConditionExperts(16, 8, num_experts=3, top_k=1)
    for e in mce.experts:  # trained experts differ from the shared one
        torch.nn.init.normal_(e.fc2.weight)
    x, t = torch.randn(2, 5, 16), torch.randn(2, 8)
    only0 = torch.tensor([[1.0, 0, 0], [1.0, 0, 0]])
    x_t = x + mce.time_shift(t)[:, None]
    torch.testing.assert_close(mce(x, t, only0), mce.shared(x_t) + mce.experts[0](x_t))
    i = mce.add_expert(init_from=1)
    assert i == 3 and mce.router[-1].out_features == 4
    torch.testing.assert_close(mce.experts[3](x), mce.experts[1](x))
    torch.testing.assert_close(mce.router[-1].weight[3], mce.router[-1].weight[1])
    j = mce.add_expert()
    assert torch.equal(mce.experts[j](x), torch.zeros_like(x))  # fresh: starts as the shared expert alone
    w = mce.route(torch.randn(2, 4, 16), t)
    assert w.shape == (2, 5)


def test_untrained_adapter_is_an_exact_identity_and_removal_restores(pair):
    large = pair[0]
    lat, t, emb, _ = control_inputs()
    base = large.view(lat, t, emb)
    model, att = attached(pair)
    att.prepare(cond_latents())
    att.before_step(lat, t, emb)
    assert torch.equal(large.view(lat, t, emb), base)
    for a in model.adapter.adapters:  # a trained up-projection changes the large model's output ...
        torch.nn.init.normal_(a.up.weight, std=0.02)
    att.before_step(lat, t, emb)
    assert not torch.allclose(large.view(lat, t, emb), base)
    att.before_step(lat, t, emb, scale=0.0)  # ... scale 0 and removal restore it exactly
    assert torch.equal(large.view(lat, t, emb), base)
    att.before_step(lat, t, emb)
    att.remove()
    assert torch.equal(large.view(lat, t, emb), base)
    assert large.transformer.patch_embedding.in_channels == 16


def test_only_adapter_parameters_train_and_checkpointing_keeps_gradients(pair):
    large, small, _ = pair
    lat, t, emb, _ = control_inputs()
    model, att = attached(pair)
    for a in model.adapter.adapters:
        torch.nn.init.normal_(a.up.weight, std=0.02)
    att.prepare(cond_latents(), keep={k: torch.tensor([on]) for k, on in zip(KINDS, (True, False, True))})

    def grads(ckpt: bool):
        large.transformer.train()
        (large.transformer.enable_gradient_checkpointing if ckpt else large.transformer.disable_gradient_checkpointing)()
        model.adapter.zero_grad()
        att.before_step(lat, t, emb)
        large.view(lat, t, emb).square().mean().backward()
        large.transformer.eval()
        return {n: p.grad.clone() for n, p in model.adapter.named_parameters() if p.grad is not None}

    plain, ckpt = grads(False), grads(True)
    large.transformer.disable_gradient_checkpointing()
    assert all(p.grad is None for p in large.transformer.parameters())
    assert all(p.grad is None for p in small.transformer.parameters())
    assert any(n.startswith("adapters.0.attn.") for n in plain) and "adapters.0.up.weight" in plain
    assert set(plain) == set(ckpt)
    for n in plain:
        torch.testing.assert_close(plain[n], ckpt[n], rtol=1e-4, atol=1e-7)
    w = att.routing  # (B, adapters, K, E): each condition routes to exactly top-k experts
    assert w.shape[1:] == (3, 3, 3) and ((w > 0).sum(-1) == 2).all()
    att.remove()


def test_several_and_unseen_conditions(pair):
    large = pair[0]
    lat, t, emb, _ = control_inputs()
    model, att = attached(pair)
    for a in model.adapter.adapters:  # trained-like: an up-projection and experts that differ
        torch.nn.init.normal_(a.up.weight, std=0.02)
        for e in a.mce.experts:
            torch.nn.init.normal_(e.fc2.weight, std=0.5)
    outs = {}
    for name, conds in {"depth": {"depth": cond_latents()["depth"]},
                        "depth+pose": {"depth": cond_latents()["depth"], "pose": cond_latents()["pose"]},
                        "normal": {"normal": cond_latents(seed=9)["depth"]}}.items():
        att.prepare(conds)
        att.before_step(lat, t, emb)
        outs[name] = large.view(lat, t, emb)
        assert att.routing.shape[2] == len(conds)
    assert not torch.allclose(outs["depth"], outs["depth+pose"])
    assert slot_for("normal", KINDS) == "depth" and slot_for("scribble", KINDS) == "canny"
    with pytest.raises(CinetuneError, match="slot"):
        slot_for("depth", ["canny"])
    att.remove()


def test_save_load_round_trip_with_an_added_expert(pair, tmp_path):
    model, att = attached(pair, count=2, strategy="last")
    att.remove()
    model.adapter.add_expert(init_from=0)
    model.save(tmp_path / "sa")
    back = ScaleAdapterModel.load(tmp_path / "sa")
    assert back.adapter.pairs == [(6, 3), (7, 3)] and back.adapter.config.num_experts == 4
    assert back.small_backbone == "toy-small" and back.kinds == KINDS
    for (n, x), (_, y) in zip(model.adapter.state_dict().items(), back.adapter.state_dict().items()):
        assert torch.equal(x, y), n
    assert ScaleAdapterModel.load(tmp_path).adapter.pairs == back.adapter.pairs  # the folder above it works too
    (tmp_path / "empty").mkdir()
    with pytest.raises(CinetuneError, match="Scale-Adapter"):
        ScaleAdapterModel.load(tmp_path / "empty")


def test_without_mce_and_width_checks(pair):
    large, small, ctl = pair
    plain = new_scale_adapter(large, small, ctl, mce=False)
    full = new_scale_adapter(large, small, ctl)
    assert plain.cond_embed is None and all(a.mce is None for a in plain.adapters)
    assert sum(p.numel() for p in plain.parameters()) < sum(p.numel() for p in full.parameters())
    wrong = ScaleAdapter([[0, 0]], small_dim=64, large_dim=256)
    with pytest.raises(CinetuneError, match="widths"):
        ScaleAdapterModel(wrong, "x", "toy-small", KINDS).attach(large, small=small, small_control=ctl)


def test_on_cogvideox_a_small_model_steers_a_large_one():
    """CogVideoX-2B steering 5B, at toy size: the small model's time embedding and projected text are captured from
    CogVideoX's own modules, its joint attention initialises the adapters'."""
    torch.manual_seed(0)
    large, small = load_backbone("toy-cogvideox", random_init=True), load_backbone("toy-cogvideox", random_init=True)
    for b in (large, small):
        b.transformer.eval().requires_grad_(False)
    ctl = new_control_model("concat", small, KINDS)
    adapter = new_scale_adapter(large, small, ctl, count=2)
    assert adapter.adapters[0].time_proj.in_features == small.transformer.config.time_embed_dim
    model = ScaleAdapterModel(adapter, "unused", "toy-cogvideox", KINDS)
    g = torch.Generator().manual_seed(1)
    lat, t = torch.randn(1, 16, 3, 16, 16, generator=g), torch.tensor([400.0])
    emb = large.text_encoder(["a red circle moves left"])
    with torch.no_grad():
        base = large.view(lat, t, emb)
        with model.attach(large, small=small, small_control=ctl) as att:
            att.prepare(cond_latents())
            att.before_step(lat, t, emb)
            assert torch.equal(large.view(lat, t, emb), base)  # zero-initialised up-projections
            assert att.captured["text"].shape == (1, emb.shape[1], small.view.hidden_size)
            for a in adapter.adapters:
                torch.nn.init.normal_(a.up.weight, std=0.02)
            att.before_step(lat, t, emb)
            assert not torch.allclose(large.view(lat, t, emb), base)
        assert torch.equal(large.view(lat, t, emb), base)
