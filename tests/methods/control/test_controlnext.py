"""ControlNeXt-DiT on the random-init toy-small backbone: token grid, cross-normalisation forms, identity and
removal, trainable set, gradient checkpointing, save/load."""

from __future__ import annotations

import re

import pytest
import torch

from cinetune.core import enable_finetune, state_of
from cinetune.methods.control.controlnext import ControlNeXtDiT, attach_controlnext
from cinetune.methods.control.encoder import pool_frames, scaled_widths, temporal_groups
from cinetune.methods.control.model import new_control_model
from cinetune.backbones import load_backbone
from cinetune.errors import CinetuneError
from tests.methods.conftest import control_inputs


def adapter(backbone, **kw):
    torch.manual_seed(1)
    return ControlNeXtDiT(hidden_size=backbone.view.hidden_size, spatial_stride=8, widths=(16, 16, 32),
                          block_widths=(32, 64), **kw)


def test_temporal_groups_follow_the_causal_vae():
    assert temporal_groups(9, 4) == [(0, 1), (1, 5), (5, 9)]
    assert temporal_groups(3, 1) == [(0, 1), (1, 2), (2, 3)]
    with pytest.raises(ValueError):
        temporal_groups(8, 4)


def test_encoder_lands_on_the_dit_token_grid(backbone):
    lat, t, emb, cond = control_inputs()
    a = adapter(backbone)
    tokens = a.encode(cond, t)
    f, h, w = backbone.view.token_grid(lat.shape)
    assert tokens.shape == (2, f * h * w, backbone.view.hidden_size)


@pytest.mark.parametrize("norm", ["paper", "code", "zero", "none"])
def test_scale_zero_and_removal_restore_the_base_exactly(backbone, norm):
    lat, t, emb, cond = control_inputs()
    view = backbone.view
    base = view(lat, t, emb)
    a = adapter(backbone, norm=norm)
    h = attach_controlnext(a, view)
    h.set_condition(cond, t, scale=1.0)
    out = view(lat, t, emb)
    if norm == "zero":
        assert torch.equal(out, base)  # zero-initialised projection: exact identity at init
    else:
        assert not torch.allclose(out, base)  # cross-normalised control acts from the first step
    h.set_condition(cond, t, scale=0.0)
    assert torch.equal(view(lat, t, emb), base)
    h.set_condition(cond, t, scale=1.0)
    h.remove()
    assert torch.equal(view(lat, t, emb), base)


def test_cross_normalisation_statistics():
    torch.manual_seed(0)
    h = torch.randn(2, 12, 8) * 3 + 5
    c = torch.randn(2, 12, 8) * 0.1 - 2
    code = ControlNeXtDiT(hidden_size=8, norm="code", widths=(8, 8, 8), block_widths=(8,))
    out = code.combine(h, c, 1.0, frames=3) - h
    torch.testing.assert_close(out.mean((1, 2)), h.mean((1, 2)))
    torch.testing.assert_close(out.std((1, 2)), h.std((1, 2)), rtol=1e-4, atol=1e-4)
    frame = ControlNeXtDiT(hidden_size=8, norm="code", stats="frame", widths=(8, 8, 8), block_widths=(8,))
    out = (frame.combine(h, c, 1.0, frames=3) - h).view(2, 3, 4, 8)
    torch.testing.assert_close(out.mean((2, 3)), h.view(2, 3, 4, 8).mean((2, 3)))
    paper = ControlNeXtDiT(hidden_size=8, norm="paper", widths=(8, 8, 8), block_widths=(8,))
    out = paper.combine(h, c, 1.0, frames=3) - h
    mu = h.sum((1, 2), keepdim=True) / 96  # Eq. 8-9 over n = h*w*c values
    var = (h - mu).square().sum((1, 2), keepdim=True) / 96
    expect = (c - mu) / torch.sqrt(var + 1e-5)
    torch.testing.assert_close(out, expect)


def test_only_adapter_and_selected_base_parameters_train(backbone):
    lat, t, emb, cond = control_inputs()
    tr = backbone.transformer
    names = enable_finetune(tr, r"attn[12]\.to_out")
    a = adapter(backbone)
    h = attach_controlnext(a, backbone.view)
    h.set_condition(cond, t)
    backbone.view(lat, t, emb).square().mean().backward()
    got = {n for n, p in tr.named_parameters() if p.grad is not None}
    assert got == set(names)
    assert all(p.grad is not None for p in a.parameters() if p.requires_grad)
    h.remove()
    tr.zero_grad(set_to_none=True)
    tr.requires_grad_(False)


def test_gradient_checkpointing_gives_the_same_adapter_gradients(backbone):
    lat, t, emb, cond = control_inputs()
    tr = backbone.transformer
    tr.requires_grad_(False)
    a = adapter(backbone)

    def grads(ckpt):
        tr.train()
        (tr.enable_gradient_checkpointing if ckpt else tr.disable_gradient_checkpointing)()
        a.zero_grad()
        with attach_controlnext(a, backbone.view) as h:
            h.set_condition(cond, t)
            backbone.view(lat, t, emb).square().mean().backward()
        tr.eval()
        return [p.grad.clone() for p in a.parameters()]

    for x, y in zip(grads(False), grads(True)):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-8)
    tr.disable_gradient_checkpointing()


def test_save_load_round_trip(backbone, tmp_path):
    a = adapter(backbone, norm="code", stats="frame", inject_block=1)
    a.save_pretrained(tmp_path, safe_serialization=True)
    b = ControlNeXtDiT.from_pretrained(tmp_path, use_safetensors=True)
    assert b.config.norm == "code" and b.config.inject_block == 1
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(x, y)


def test_mismatches_are_clear_errors(backbone):
    with pytest.raises(CinetuneError, match="width"):
        attach_controlnext(ControlNeXtDiT(hidden_size=64, widths=(8, 8, 8), block_widths=(8,)), backbone.view)
    with pytest.raises(CinetuneError, match="inject_block"):
        attach_controlnext(adapter(backbone, inject_block=9), backbone.view)
    with pytest.raises(CinetuneError, match="norm"):
        ControlNeXtDiT(norm="batch")


def test_pool_frames_matches_the_causal_groups():
    x = torch.randn(2, 9, 3, 4, 4)
    expect = torch.stack([x[:, a:b].mean(1) for a, b in temporal_groups(9, 4)], 1)
    torch.testing.assert_close(pool_frames(x, 4), expect)
    assert pool_frames(x, 1) is x
    with pytest.raises(ValueError):
        pool_frames(x[:, :8], 4)


def test_precomputed_features_and_guidance_batches_give_the_same_tokens(backbone):
    lat, t, emb, cond = control_inputs()
    a = adapter(backbone)
    feats = a.features(cond)
    torch.testing.assert_close(a.encode(None, t, feats), a.encode(cond, t))
    # one condition for a CFG batch of 2 at one timestep: encoded once, repeated == encoded twice
    st = state_of(backbone.transformer)
    with attach_controlnext(a, backbone.view) as h:
        t2 = torch.tensor([500.0, 500.0])
        h.set_condition(None, t2, features=feats[:1])
        once = st.residuals[h.name][0].clone()
        h.set_condition(cond[:1].repeat(2, 1, 1, 1, 1), t2)
        torch.testing.assert_close(once, st.residuals[h.name][0])
        h.set_condition(None, t, features=feats[:1])  # different timesteps: repeated before encoding
        torch.testing.assert_close(st.residuals[h.name][0], a.encode(cond[:1].repeat(2, 1, 1, 1, 1), t))


def test_widths_scale_with_the_backbone():
    assert scaled_widths(1536) == dict(widths=(64, 64, 128), block_widths=(128, 256), temb_dim=256)  # public code
    small = scaled_widths(256)
    assert small == dict(widths=(16, 16, 32), block_widths=(32, 64), temb_dim=64)
    assert min(scaled_widths(8)["widths"]) >= 8


def test_default_controlnext_trains_under_ten_percent_of_toy_large():
    torch.manual_seed(0)
    large = load_backbone("toy-large", random_init=True)
    model = new_control_model("controlnext", large, ["canny", "depth", "pose"])
    base = sum(p.numel() for p in large.transformer.parameters())
    finetuned = sum(p.numel() for n, p in large.transformer.named_parameters() if re.search(model.finetune, n))
    own = sum(p.numel() for p in model.module.parameters())
    assert finetuned > 0 and (own + finetuned) / base <= 0.10
