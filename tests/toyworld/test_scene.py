"""World v2's design constraints, measured on rendered clips: sizes against the DiT's token grid, distinct shapes,
thick limbs, and portrait scenes with large faces whose masks, boxes and ids match the people."""

import dataclasses

import numpy as np
import pytest

from cinetune.errors import CinetuneError
from cinetune.toyworld import IDENTITIES, RenderConfig, caption, render, sample_scene
from cinetune.toyworld.render import _shape_mask
from cinetune.toyworld.roster import CLASS_ID, HAIR_COLOURS, LIMBS, SCENE_KINDS, SHAPES, SIZES, SKIN_TONES

TOKEN_PX = 8  # toy VAE 4x spatial, DiT patch 2 -> one token covers 8x8 px at 64x64


def _specs(kind, n=200):
    return [s for s in (sample_scene(i) for i in range(n)) if s.kind == kind]


def test_every_scene_kind_is_drawn_and_counts_respect_the_caps():
    kinds = [sample_scene(i).kind for i in range(300)]
    assert set(kinds) == set(SCENE_KINDS)
    for i in range(100):
        s = sample_scene(i, max_objects=1, max_actors=0)
        assert s.kind == "objects" and len(s.objects) == 1 and not s.actors
        s = sample_scene(i, max_objects=0, max_actors=1)
        assert not s.objects and len(s.actors) == 1
    for bad in (dict(max_objects=9), dict(max_actors=99), dict(max_objects=0, max_actors=0)):
        with pytest.raises(CinetuneError):
            sample_scene(0, **bad)


def test_the_smallest_object_spans_about_three_tokens():
    spans = []
    for shape in SHAPES:
        for phase in np.linspace(0, np.pi, 7):
            spec = sample_scene(1, max_objects=1, max_actors=0)
            obj = dataclasses.replace(spec.objects[0], shape=shape, size="small", motion="still", phase=float(phase),
                                      x=0.5, y=0.5)
            m = render(dataclasses.replace(spec, objects=[obj]), RenderConfig(frames=1)).instance[0] == 1
            spans.append(max(np.ptp(np.nonzero(m.any(0))[0]), np.ptp(np.nonzero(m.any(1))[0])) + 1)
    assert min(spans) >= 2.5 * TOKEN_PX and np.mean(spans) >= 3 * TOKEN_PX


def test_shapes_stay_apart_at_every_rotation():
    """Best IoU over rotations between two shapes' masks at the small size: world v1's hexagon vs circle was 0.87."""
    r = SIZES["small"] * 64
    ys, xs = np.mgrid[0:64, 0:64] + 0.5

    def mask(shape, ang):
        c, s = np.cos(ang), np.sin(ang)
        return _shape_mask(shape, (c * (xs - 32) + s * (ys - 32)) / r, (-s * (xs - 32) + c * (ys - 32)) / r)

    for i, a in enumerate(SHAPES):
        A = mask(a, 0.0)
        for b in SHAPES[i + 1:]:
            best = max((A & mask(b, t)).sum() / (A | mask(b, t)).sum() for t in np.linspace(0, 2 * np.pi, 36))
            assert best < 0.85, (a, b, best)


@pytest.mark.parametrize("spec", _specs("figures")[:6], ids=lambda s: str(s.seed))
def test_figure_limbs_are_at_least_three_pixels_thick(spec):
    clip = render(spec)
    person = (clip.classes == CLASS_ID["person"]) | (clip.classes == CLASS_ID["face"])
    F, H, W = person.shape
    for j in range(len(spec.actors)):
        for a, b in [LIMBS[k] for k in (2, 3, 4, 5, 7, 8, 10, 11)]:  # arms and legs
            mid = (clip.keypoints[:, j, a, :2] + clip.keypoints[:, j, b, :2]) / 2
            for f in range(F):
                x, y = int(mid[f, 0]), int(mid[f, 1])
                if 1 <= x < W - 1 and 1 <= y < H - 1 and clip.instance[f, y, x] == len(spec.objects) + j + 1:
                    assert person[f, y - 1:y + 2, x - 1:x + 2].all()


@pytest.mark.parametrize("spec", _specs("portrait")[:10], ids=lambda s: str(s.seed))
def test_portrait_faces_are_large_and_annotated_per_person(spec):
    clip = render(spec)
    F, H, W = clip.face_masks.shape
    assert clip.identities == [a.identity for a in spec.actors] and all(a.framing == "portrait" for a in spec.actors)
    for j, actor in enumerate(spec.actors):
        solo = render(dataclasses.replace(spec, actors=[actor], objects=[]))
        fm = solo.face_masks == 1
        inside = solo.face_boxes[:, 0, 0] > 0  # frames where the face is not cut by the frame's left / right edge
        inside &= solo.face_boxes[:, 0, 2] < W
        assert inside.any()
        heights = solo.face_boxes[inside, 0, 3] - solo.face_boxes[inside, 0, 1]
        assert heights.min() >= 16
        # the face mask holds this person's skin and hair colours, and lies on their instance
        ident = IDENTITIES[actor.identity]
        pixels = {tuple(p) for p in solo.video[fm]}
        assert SKIN_TONES[ident.skin] in pixels
        if ident.hair_style != "bald":
            assert HAIR_COLOURS[ident.hair_colour] in pixels
        full = clip.face_masks == j + 1
        assert (clip.instance[full] == len(spec.objects) + j + 1).all()
        assert (clip.classes[full] == CLASS_ID["face"]).all()
    words = caption(spec).lower()
    for a in spec.actors:
        ident = IDENTITIES[a.identity]
        assert f"{ident.skin} skin" in words and f"{ident.eyes} eyes" in words and f"{ident.shirt} shirt" in words


def test_portrait_motions_move_what_they_name():
    base = _specs("portrait")[0]
    base = dataclasses.replace(base, background=dataclasses.replace(base.background, pan=0.0))
    a = dataclasses.replace(base.actors[0], x=0.5, facing=1)
    clips = {act: render(dataclasses.replace(base, actors=[dataclasses.replace(a, action=act)], objects=[]),
                         RenderConfig()) for act in ("walk past", "nod", "turn", "talk")}
    box = clips["walk past"].face_boxes[:, 0]
    assert box[-1, 0] - box[0, 0] > 20  # walks to the right
    nod = clips["nod"].keypoints[:, 0, 0, 1]
    assert nod.max() - nod.min() > 2 and np.ptp(clips["nod"].keypoints[:, 0, 1, 1]) == 0  # head moves, neck does not
    turn = clips["turn"].keypoints[:, 0, 14, 0]
    assert turn.max() - turn.min() > 4 and np.ptp(clips["turn"].face_boxes[:, 0, 0]) <= 1  # eyes move, head stays
    mouth = (clips["talk"].video == (150, 30, 40)).all(-1).sum((1, 2))
    assert mouth.max() >= 2 * max(mouth.min(), 1)
