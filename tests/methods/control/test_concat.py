"""Channel-concat control: zero-initialised channels (identity), several kinds, dropout, removal, save/load."""

from __future__ import annotations

import pytest
import torch

from cinetune.core import load_tensors, save_tensors
from cinetune.methods.control.concat import attach_concat
from cinetune.backbones import load_backbone
from cinetune.errors import CinetuneError


@pytest.fixture
def backbone():
    torch.manual_seed(0)
    b = load_backbone("toy-small", random_init=True)
    b.transformer.eval()
    return b


def inputs(B=2):
    g = torch.Generator().manual_seed(3)
    return (torch.randn(B, 16, 3, 16, 16, generator=g), torch.tensor([300.0, 800.0]), torch.randn(B, 6, 384, generator=g),
            {k: torch.randn(B, 16, 3, 16, 16, generator=g) for k in ("canny", "depth", "pose")})


def test_identity_at_init_kinds_dropout_and_removal(backbone):
    lat, t, emb, cond = inputs()
    view, tr = backbone.view, backbone.transformer
    base = view(lat, t, emb)
    h = attach_concat(view, ["canny", "depth", "pose"])
    assert tr.patch_embedding.in_channels == 64 and tr.config.in_channels == 64
    h.set_condition(cond)
    assert torch.equal(view(lat, t, emb), base)  # new channels start at zero
    with torch.no_grad():
        tr.patch_embedding.weight[:, 16:].normal_(0, 0.05)
    h.set_condition(cond)
    both = view(lat, t, emb)
    assert not torch.allclose(both, base)
    h.set_condition({"depth": cond["depth"]})
    only_depth = view(lat, t, emb)
    h.set_condition(cond, keep={"canny": torch.tensor([False, False]), "pose": torch.tensor([False, False])})
    torch.testing.assert_close(view(lat, t, emb), only_depth)  # dropped kinds = absent kinds
    h.set_condition(None)
    assert torch.equal(view(lat, t, emb), base)  # no condition: zero slots, the base channels' output
    h.remove()
    assert tr.patch_embedding.in_channels == 16 and tr.config.in_channels == 16
    assert torch.equal(view(lat, t, emb), base)


def test_patch_weights_round_trip(backbone, tmp_path):
    lat, t, emb, cond = inputs()
    h = attach_concat(backbone.view, ["depth"])
    with torch.no_grad():
        backbone.transformer.patch_embedding.weight[:, 16:].normal_(0, 0.05)
    h.set_condition({"depth": cond["depth"]})
    want = backbone.view(lat, t, emb)
    save_tensors(tmp_path / "c.safetensors", dict(backbone.transformer.patch_embedding.state_dict()), {"kinds": ["depth"]})
    h.remove()
    h2 = attach_concat(backbone.view, ["depth"])
    sd, meta = load_tensors(tmp_path / "c.safetensors")
    backbone.transformer.patch_embedding.load_state_dict(sd)
    h2.set_condition({"depth": cond["depth"]})
    torch.testing.assert_close(backbone.view(lat, t, emb), want)
    assert meta == {"kinds": ["depth"]}
    h2.remove()


def test_errors(backbone):
    lat, t, emb, cond = inputs()
    h = attach_concat(backbone.view, ["depth"])
    with pytest.raises(CinetuneError, match="takes depth"):
        h.set_condition({"canny": cond["canny"]})
    h.set_condition({"depth": cond["depth"][:, :, :2]})
    with pytest.raises(CinetuneError, match="do not match"):
        backbone.view(lat, t, emb)
    h.remove()
    with pytest.raises(CinetuneError, match="distinct"):
        attach_concat(backbone.view, ["depth", "depth"])


def test_cogvideox_concat_widens_its_per_frame_patch_conv():
    torch.manual_seed(0)
    b = load_backbone("toy-cogvideox", random_init=True)
    b.transformer.eval()
    view, tr = b.view, b.transformer
    g = torch.Generator().manual_seed(4)
    lat, t = torch.randn(2, 16, 3, 16, 16, generator=g), torch.tensor([300.0, 800.0])
    emb, cond = torch.randn(2, 32, 384, generator=g), {"depth": torch.randn(2, 16, 3, 16, 16, generator=g)}
    with torch.no_grad():
        base = view(lat, t, emb)
        h = attach_concat(view, ["canny", "depth"])
        assert tr.patch_embed.proj.in_channels == 48 and tr.config.in_channels == 48
        h.set_condition(cond)
        assert torch.equal(view(lat, t, emb), base)  # zero-initialised slots
        tr.patch_embed.proj.weight[:, 16:].normal_(0, 0.05)
        assert not torch.allclose(view(lat, t, emb), base)
        h.remove()
        assert tr.patch_embed.proj.in_channels == 16 and torch.equal(view(lat, t, emb), base)
