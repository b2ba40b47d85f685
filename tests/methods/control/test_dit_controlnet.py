"""DiT-ControlNet baseline: copies initialised from the base, zero projections (identity at init), stride map,
removal, trainable set, gradient checkpointing, save/load."""

from __future__ import annotations

import pytest
import torch

from cinetune.methods.control.dit_controlnet import DiTControlNet, attach_dit_controlnet
from cinetune.errors import CinetuneError
from tests.methods.conftest import control_inputs


def net_for(backbone, **kw):
    torch.manual_seed(1)
    return DiTControlNet.from_base(backbone.transformer, spatial_stride=4, encoder_widths=(32, 16, 8), **kw)


def test_copies_start_from_the_base_and_the_branch_is_an_identity(backbone):
    lat, t, emb, cond = control_inputs()
    net = net_for(backbone, num_blocks=2, stride=2)
    for copy, src in zip(net.blocks, backbone.transformer.blocks):
        for a, b in zip(copy.state_dict().values(), src.state_dict().values()):
            assert torch.equal(a, b)
    base = backbone.view(lat, t, emb)
    h = attach_dit_controlnet(net, backbone.view)
    res = net.residuals(backbone.transformer, lat, t, emb, cond)
    assert sorted(res) == [0, 2] and res[0].shape == (2, 3 * 8 * 8, 128)
    h.set_inputs(lat, t, emb, cond)
    assert torch.equal(backbone.view(lat, t, emb), base)
    with torch.no_grad():
        for p in net.proj_out:
            p.weight.normal_(0, 0.02)
    h.set_inputs(lat, t, emb, cond)
    assert not torch.allclose(backbone.view(lat, t, emb), base)
    h.remove()
    assert torch.equal(backbone.view(lat, t, emb), base)


def test_only_the_branch_trains_and_checkpointing_matches(backbone):
    lat, t, emb, cond = control_inputs()
    net = net_for(backbone)

    def grads(ckpt):
        net.gradient_checkpointing = ckpt
        net.zero_grad()
        with attach_dit_controlnet(net, backbone.view) as h:
            h.set_inputs(lat, t, emb, cond)
            backbone.view(lat, t, emb).square().mean().backward()
        return {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}

    a, b = grads(False), grads(True)
    assert set(a) == set(b) and any(n.startswith("proj_out") for n in a)
    assert all(p.grad is None for p in backbone.transformer.parameters())
    for n in a:
        torch.testing.assert_close(a[n], b[n], rtol=1e-5, atol=1e-8)


def test_save_load_and_errors(backbone, tmp_path):
    net = net_for(backbone)
    net.save_pretrained(tmp_path, safe_serialization=True)
    back = DiTControlNet.from_pretrained(tmp_path, use_safetensors=True)
    for a, b in zip(net.state_dict().values(), back.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(CinetuneError, match="do not fit"):
        DiTControlNet.from_base(backbone.transformer, num_blocks=3, stride=2)
    lat, t, emb, cond = control_inputs()
    with pytest.raises(CinetuneError, match="frames and size"):
        net.residuals(backbone.transformer, lat, t, emb, cond[:, :, :5])
