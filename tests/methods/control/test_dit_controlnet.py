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
    res = net.residuals(backbone.view, lat, t, emb, cond)
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
        net.residuals(backbone.view, lat, t, emb, cond[:, :, :5])


# -- CogVideoX: block copies with the joint text stream -----------------------------------------------------------
COG = dict(num_attention_heads=2, attention_head_dim=32, in_channels=16, out_channels=16, time_embed_dim=64,
           text_embed_dim=48, num_layers=3, sample_width=16, sample_height=16, sample_frames=17, patch_size=2,
           temporal_compression_ratio=4, max_text_seq_length=8)
COG_VERSIONS = {"1.0": dict(use_rotary_positional_embeddings=False),  # 2B: sincos positions, per-frame Conv2d
                # 1.5: rotary positions, time patchified into a bias-free Linear
                "1.5": dict(patch_size_t=2, use_rotary_positional_embeddings=True, patch_bias=False)}


def cog_view(version):
    from diffusers import CogVideoXTransformer3DModel

    from cinetune.backbones.view import VideoDiTView

    torch.manual_seed(0)
    tr = CogVideoXTransformer3DModel(**COG, **COG_VERSIONS[version]).eval().requires_grad_(False)
    return VideoDiTView(tr, "cogvideox")


def cog_inputs(frames):
    """latents (2, 16, F', 16, 16), timesteps, T5-like text (2, 8, 48), condition (2, 3, frames, 64, 64)."""
    g = torch.Generator().manual_seed(3)
    lat = torch.randn(2, 16, (frames - 1) // 4 + 1, 16, 16, generator=g)
    return (lat, torch.tensor([300.0, 800.0]), torch.randn(2, 8, 48, generator=g),
            torch.rand(2, 3, frames, 64, 64, generator=g) * 2 - 1)


@pytest.mark.parametrize("version,frames", [("1.0", 9), ("1.5", 13)])
def test_cogvideox_branch_copies_the_base_and_is_an_identity(version, frames):
    from cinetune.methods.control.dit_controlnet import CogVideoXControlNet, controlnet_from_base

    view = cog_view(version)
    lat, t, emb, cond = cog_inputs(frames)
    torch.manual_seed(1)
    net = controlnet_from_base(view, num_blocks=2, stride=2, spatial_stride=4, encoder_widths=(32, 16, 8))
    assert isinstance(net, CogVideoXControlNet)
    for copy, src in zip(net.blocks, view.transformer.transformer_blocks):
        for a, b in zip(copy.state_dict().values(), src.state_dict().values()):
            assert torch.equal(a, b)
    # the widened patch embedding: latents through the base's weights, control channels through its tiled copy
    base_pe = view.transformer.patch_embed
    c = torch.randn(2, 8, *lat.shape[2:])
    with torch.no_grad():
        wide = net.patch_embed(emb, view.to_model(torch.cat([lat, c], 1)))
        ref = base_pe(emb, view.to_model(lat)) + base_pe(emb, view.to_model(torch.cat([c, 0 * c], 1))) \
            - base_pe(emb, view.to_model(torch.zeros_like(lat)))
    torch.testing.assert_close(wide, ref, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        base = view(lat, t, emb)
        h = attach_dit_controlnet(net, view)
        res = net.residuals(view, lat, t, emb, cond)
        tokens = (lat.shape[2] // view.patch_size[0]) * 8 * 8
        assert sorted(res) == [0, 2] and res[0].shape == (2, tokens, 64)
        h.set_inputs(lat, t, emb, cond)
        assert torch.equal(view(lat, t, emb), base)
        for p in net.proj_out:
            p.weight.normal_(0, 0.02)
        h.set_inputs(lat, t, emb, cond)
        assert not torch.allclose(view(lat, t, emb), base)
        h.remove()
        assert torch.equal(view(lat, t, emb), base)


def test_cogvideox_branch_trains_alone_checkpoints_and_round_trips(tmp_path):
    from cinetune.methods.control.dit_controlnet import controlnet_from_base
    from cinetune.methods.control.model import ControlModel, DiTControlNetModel

    view = cog_view("1.5")
    lat, t, emb, cond = cog_inputs(13)
    torch.manual_seed(1)
    net = controlnet_from_base(view, spatial_stride=4, encoder_widths=(32, 16, 8))
    with torch.no_grad():
        for p in net.proj_out:
            p.weight.normal_(0, 0.02)

    def grads(ckpt):
        net.gradient_checkpointing = ckpt
        net.zero_grad()
        with attach_dit_controlnet(net, view) as h:
            h.set_inputs(lat, t, emb, cond)
            view(lat, t, emb).square().mean().backward()
        return {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}

    a, b = grads(False), grads(True)
    assert set(a) == set(b) and any(n.startswith("blocks.0") for n in a) and any(n.startswith("encoder") for n in a)
    assert all(p.grad is None for p in view.transformer.parameters())
    for n in a:
        torch.testing.assert_close(a[n], b[n], rtol=1e-5, atol=1e-8)
    DiTControlNetModel(["depth"], net).save(tmp_path / "cn")
    back = ControlModel.load(tmp_path / "cn")
    assert type(back.module) is type(net)
    for (n, x), y in zip(net.state_dict().items(), back.module.state_dict().values()):
        assert torch.equal(x, y), n
    with pytest.raises(CinetuneError, match="made for a cogvideox backbone"):
        attach_dit_controlnet(back.module, load_backbone_small().view)


def load_backbone_small():
    from cinetune.backbones import load_backbone

    return load_backbone("toy-small", random_init=True)
