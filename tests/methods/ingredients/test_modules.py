"""Ingredients' pieces: identity at init, routing (each token exactly one identity under hard routing, soft mixes,
mask routing), the routing loss on a hand-computed case with the background ignored, token labels from masks and
boxes, any number of identities, input dropout, and save/load."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cinetune.methods.ingredients.extractor import face_canvas, face_slots
from cinetune.methods.ingredients.losses import box_masks, routing_loss, token_labels
from cinetune.methods.ingredients.model import IngredientsModel
from cinetune.methods.ingredients.router import IdentityInjector, route_weights


def _inputs(backbone, B=2):
    g = torch.Generator().manual_seed(3)
    return (torch.randn(B, 16, 3, 16, 16, generator=g), torch.tensor([300.0, 800.0][:B]),
            backbone.text_encoder(["a red circle", ""][:B]))


def _faces(B, K, seed=0):
    return torch.rand(B, K, 3, 24, 24, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _perturb(model):
    with torch.no_grad():
        for inj in model.module.injectors.values():
            inj.to_out.weight.normal_(0, 0.05)
        model.module.slot.normal_(0, 0.05)


@pytest.fixture(scope="module")
def model(backbone):
    torch.manual_seed(0)
    return IngredientsModel.new(backbone, interval=2, num_queries=4, id_tokens=2, projector_dim=32)


def test_identity_at_init_for_any_number_of_identities(backbone, model):
    lat, t, emb = _inputs(backbone)
    with torch.no_grad():
        base = backbone.view(lat, t, emb)
        for K in (1, 2, 3, 5):
            with model.attach(backbone) as att:
                att.prepare(model.references(backbone, _faces(2, K), 64, 64))
                att.before_step(lat, t, emb, 1.0)
                assert torch.equal(backbone.view(lat, t, emb), base)
                assert all(lg.shape == (2, 3 * 8 * 8, K) for lg in att.logits.values())


def test_hard_routing_gives_each_token_exactly_one_identity():
    logits = torch.randn(2, 50, 3)
    w = route_weights(logits, "hard")
    assert torch.equal(w.sum(-1), torch.ones(2, 50)) and set(w.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(w.argmax(-1), logits.argmax(-1))
    assert torch.allclose(route_weights(logits, "soft"), logits.softmax(-1))
    labels = torch.tensor([[0, 2, -1]])
    m = route_weights(torch.zeros(1, 3, 3), "mask", labels)
    assert torch.equal(m[0, 0], torch.tensor([1.0, 0, 0])) and torch.equal(m[0, 1], torch.tensor([0, 0, 1.0]))
    assert torch.allclose(m[0, 2], torch.full((3,), 1 / 3))  # no face: an equal mix


def test_hard_routed_output_is_the_chosen_identitys_attention():
    torch.manual_seed(0)
    inj = IdentityInjector(16, 8, 3, heads=2)
    nn_init = torch.nn.init
    nn_init.normal_(inj.to_out.weight, 0, 0.1)
    h, tokens = torch.randn(1, 5, 16), torch.randn(1, 2, 3, 8)
    out, logits = inj(h, tokens, "hard")
    per = inj.attend(h, tokens)  # (1, 2, 5, 16)
    pick = per[0, logits[0].argmax(-1), torch.arange(5)]
    torch.testing.assert_close(out[0], inj.to_out(pick))


def test_routing_loss_by_hand_and_background_ignored():
    logits = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [5.0, -5.0]]])  # 3 tokens, 2 identities
    labels = torch.tensor([[0, 1, -1]])  # token 3 is background
    want = -0.5 * (math.log(math.exp(2) / (math.exp(2) + 1)) + math.log(math.e / (1 + math.e)))
    got = routing_loss({0: logits, 4: logits}, labels)
    assert math.isclose(float(got), want, rel_tol=1e-6)
    # the background token's logits do not matter
    other = logits.clone()
    other[0, 2] = torch.tensor([-9.0, 9.0])
    assert math.isclose(float(routing_loss({0: other}, labels)), want, rel_tol=1e-6)
    p = logits[0, :2].softmax(-1)
    mse = float(((p - F.one_hot(torch.tensor([0, 1]), 2)) ** 2).mean())
    assert math.isclose(float(routing_loss({0: logits}, labels, "mse")), mse, rel_tol=1e-6)
    assert float(routing_loss({0: logits}, torch.full((1, 3), -1))) == 0.0


def test_token_labels_follow_the_latent_and_patch_grid():
    m = torch.full((1, 9, 32, 32), -1)
    m[:, :, :16, :16] = 0
    m[:, 5:, 16:, 16:] = 1  # identity 1 only in frames 5-8: latent frame 2 (frames 5-8)
    lab = token_labels(m, temporal=4, spatial=4, patch=(1, 2, 2)).view(3, 4, 4)
    assert (lab[:, :2, :2] == 0).all() and (lab[2, 2:, 2:] == 1).all() and (lab[:2, 2:, 2:] == -1).all()
    boxes = torch.tensor([[[[0.0, 0.0, 8.0, 8.0], [-1, -1, -1, -1]]]])
    bm = box_masks(boxes, 16, 16)
    assert (bm[0, 0, :8, :8] == 0).all() and (bm[0, 0, 8:] == -1).all()


def test_dropout_switches_local_and_global_inputs_off(backbone, model):
    lat, t, emb = _inputs(backbone)
    _perturb(model)
    try:
        with torch.no_grad():
            base = backbone.view(lat, t, emb)
            cond = model.references(backbone, _faces(2, 2), 64, 64)
            with model.attach(backbone) as att:
                off = {"local": torch.tensor([False, True]), "global": torch.tensor([False, True])}
                att.prepare(cond, keep=off)
                att.before_step(lat, t, emb, 1.0)
                out = backbone.view(lat, t, emb)
        assert torch.equal(out[0], base[0]) and not torch.allclose(out[1], base[1])
    finally:
        with torch.no_grad():
            for inj in model.module.injectors.values():
                inj.to_out.weight.zero_()
            model.module.slot.zero_()


def test_canvas_places_faces_side_by_side():
    faces = -torch.ones(3, 3, 8, 8)  # black faces on the white canvas
    c = face_canvas(faces, 32, 64)
    slots = face_slots(3, 32, 64)
    assert [s for *_, s in slots] == [21, 21, 21]
    x0, y0, s = slots[1]
    assert (c[:, y0:y0 + s, x0:x0 + s] < -0.99).all() and (c[:, :y0] == 1).all()


def test_save_load_round_trip(backbone, model, tmp_path):
    _perturb(model)
    lat, t, emb = _inputs(backbone)
    cond = model.references(backbone, _faces(2, 2), 64, 64)
    try:
        with torch.no_grad(), model.attach(backbone) as att:
            att.prepare(cond)
            att.before_step(lat, t, emb, 1.0)
            want = backbone.view(lat, t, emb)
        model.save(tmp_path / "ing")
        back = IngredientsModel.load(tmp_path)
        with torch.no_grad(), back.attach(backbone) as att:
            att.prepare(cond)
            att.before_step(lat, t, emb, 1.0)
            assert torch.equal(backbone.view(lat, t, emb), want)
    finally:
        with torch.no_grad():
            for inj in model.module.injectors.values():
                inj.to_out.weight.zero_()
            model.module.slot.zero_()


def test_inversion_baseline_fits_a_lora_and_removal_restores(backbone):
    import numpy as np

    from cinetune.methods.ingredients.inversion import tune_lora

    lat, t, emb = _inputs(backbone, B=1)
    photos = [np.random.default_rng(i).integers(0, 255, (64, 64, 3), dtype=np.uint8) for i in range(2)]
    with torch.no_grad():
        before = backbone.view(lat[:, :, :1], t, emb)
    handle = tune_lora(backbone, photos, steps=3, lr=1e-2)
    with torch.no_grad():
        tuned = backbone.view(lat[:, :, :1], t, emb)
    handle.remove()
    with torch.no_grad():
        after = backbone.view(lat[:, :, :1], t, emb)
    assert not torch.allclose(tuned, before) and torch.equal(after, before)
    assert all(not p.requires_grad for p in backbone.transformer.parameters())


def test_box_labels_stack_clips_with_different_numbers_of_people():
    from cinetune.methods.ingredients.task import MAX_REFS, padded_boxes, reference_crops
    from cinetune.toyworld import RenderConfig, render, sample_scene

    clips, i = {}, 0
    while len(clips) < 2:
        spec = sample_scene(i, max_objects=0)
        i += 1
        if spec.kind == "portrait" and len(spec.actors) not in clips:
            clips[len(spec.actors)] = render(spec, RenderConfig(frames=5, height=64, width=64))
    boxes = torch.stack([padded_boxes(c) for c in clips.values()])
    assert boxes.shape == (2, 5, MAX_REFS, 4)
    masks = box_masks(boxes, 64, 64)
    for row, (n, clip) in zip(masks, clips.items()):
        assert set(row.unique().tolist()) <= set(range(-1, n)) and (row >= 0).any()
        refs, present = reference_crops(clip, 24)
        assert int(present.sum()) == n and refs.shape == (MAX_REFS, 3, 24, 24)


def test_on_cogvideox_the_papers_base_identity_at_init_routing_and_removal():
    from cinetune.backbones import load_backbone

    torch.manual_seed(0)
    cog = load_backbone("toy-cogvideox", random_init=True)
    cog.transformer.eval()
    m = IngredientsModel.new(cog, interval=2, num_queries=4, id_tokens=2, projector_dim=32)
    lat, t, emb = _inputs(cog)
    with torch.no_grad():
        base = cog.view(lat, t, emb)
        with m.attach(cog) as att:
            att.prepare(m.references(cog, _faces(2, 3), 64, 64))
            att.before_step(lat, t, emb, 1.0)
            assert torch.equal(cog.view(lat, t, emb), base)  # zero-initialised injectors and canvas slot
            assert att.logits and all(lg.shape == (2, 3 * 8 * 8, 3) for lg in att.logits.values())
            _perturb(m)
            acting = cog.view(lat, t, emb)
            assert not torch.allclose(acting, base)
            m.module.slot.zero_()  # the canvas slot alone moves the output too
            assert not torch.allclose(cog.view(lat, t, emb), acting)
        assert torch.equal(cog.view(lat, t, emb), base)  # removed
