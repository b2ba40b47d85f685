import dataclasses

import numpy as np
import pytest

from cinetune.toyworld import IDENTITIES, RenderConfig, ToyWorldDataset, render, render_clip, sample_scene
from cinetune.toyworld.captions import ACTION_PHRASES, MOTION_PHRASES, SHAPE_WORDS
from cinetune.toyworld.roster import CLASS_ID

SEEDS = range(40)


def test_same_seed_same_bytes_and_different_seeds_differ():
    a, ta = render_clip(123)
    b, tb = render_clip(123)
    c, _ = render_clip(124)
    for f in ("video", "depth", "instance", "classes", "edges", "keypoints", "skeleton", "face_boxes", "face_masks"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    assert ta == tb
    assert not np.array_equal(a.video, c.video)


def test_shapes_dtypes_and_sizes():
    cfg = RenderConfig(frames=33, height=128, width=96)
    clip, _ = render_clip(5, cfg)
    F, H, W = 33, 128, 96
    assert clip.video.shape == (F, H, W, 3) and clip.video.dtype == np.uint8
    assert clip.depth.shape == (F, H, W) and clip.depth.min() >= 0 and clip.depth.max() <= 1
    assert clip.keypoints.shape[0] == F and clip.keypoints.shape[2:] == (18, 3)
    assert clip.skeleton.shape == (F, H, W, 3)
    for bad in (dict(frames=0), dict(frames=34), dict(height=130), dict(width=60)):
        with pytest.raises(ValueError):
            RenderConfig(**bad).validate()


def test_roster_has_at_least_16_distinct_identities():
    assert len(IDENTITIES) >= 16
    keys = {dataclasses.astuple(i)[1:] for i in IDENTITIES}
    assert len(keys) == len(IDENTITIES)


def _layer_depths(spec):
    depths = {i + 1: o.depth for i, o in enumerate(spec.objects)}
    for j, a in enumerate(spec.actors):
        depths[len(spec.objects) + j + 1] = a.depth
    return depths


@pytest.mark.parametrize("seed", SEEDS)
def test_depth_agrees_with_segmentation(seed):
    clip, _ = render_clip(seed)
    depths = _layer_depths(clip.spec)
    bg = clip.instance == 0
    assert (clip.depth[bg] >= 0.9 - 1e-6).all()
    for inst, d in depths.items():
        m = clip.instance == inst
        if m.any():  # face pixels sit 1e-3 in front of their body
            assert np.all(np.abs(clip.depth[m] - d) <= 1.001e-3)
    assert set(np.unique(clip.classes[~bg])) <= set(range(1, len(CLASS_ID)))


@pytest.mark.parametrize("seed", [s for s in range(200) if len(sample_scene(s, max_actors=0).objects) >= 2][:10])
def test_occlusion_follows_depth(seed):
    """Where object A would be seen alone but object B is seen in the full scene, B is nearer than A."""
    spec = sample_scene(seed, max_actors=0)
    full = render(spec)
    for k, obj in enumerate(spec.objects):
        solo = render(dataclasses.replace(spec, objects=[obj]))
        covered = solo.instance == 1
        other = covered & (full.instance != k + 1) & (full.instance != 0)
        for inst in np.unique(full.instance[other]):
            assert spec.objects[inst - 1].depth < obj.depth


@pytest.mark.parametrize("seed", [s for s in range(300) if sample_scene(s).actors][:12])
def test_keypoints_lie_on_skeleton_image_and_faces_in_boxes(seed):
    clip, _ = render_clip(seed)
    F, H, W = clip.face_masks.shape
    drawn = clip.skeleton.any(-1)
    for j in range(len(clip.identities)):
        kp = clip.keypoints[:, j]
        vis = kp[..., 2] > 0
        xs = np.clip(kp[..., 0].astype(int), 0, W - 1)
        ys = np.clip(kp[..., 1].astype(int), 0, H - 1)
        f_idx = np.broadcast_to(np.arange(F)[:, None], xs.shape)
        # every visible keypoint has a rendered skeleton pixel within one pixel
        near = np.zeros_like(vis)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                near |= drawn[f_idx, np.clip(ys + dy, 0, H - 1), np.clip(xs + dx, 0, W - 1)]
        assert near[vis].all()
        for f in range(F):
            m = clip.face_masks[f] == j + 1
            box = clip.face_boxes[f, j]
            if not m.any():
                assert (box == -1).all()
                continue
            yy, xx = np.nonzero(m)
            # the box is exactly the tight box of the face mask
            assert (box == [xx.min(), yy.min(), xx.max() + 1, yy.max() + 1]).all()
            assert (clip.classes[f][m] == CLASS_ID["face"]).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_edges_are_region_boundaries(seed):
    clip, _ = render_clip(seed)
    label = clip.instance.astype(int) * 16 + clip.classes
    e = clip.edges > 0
    diff_right = label[:, :, :-1] != label[:, :, 1:]
    assert e[:, :, :-1][diff_right].all()
    flat = (label[:, 1:-1, 1:-1] == label[:, 1:-1, 2:]) & (label[:, 1:-1, 1:-1] == label[:, 2:, 1:-1])
    assert not e[:, 1:-1, 1:-1][flat].any()


@pytest.mark.parametrize("seed", SEEDS)
def test_caption_states_every_object_and_actor(seed):
    clip, text = render_clip(seed)
    low = text.lower()
    for o in clip.spec.objects:
        assert o.colour in low
        assert any(w in low for w in SHAPE_WORDS[o.shape])
        assert any(p in low for p in MOTION_PHRASES[o.motion])
    for a in clip.spec.actors:
        assert IDENTITIES[a.identity].description(eyes=a.framing == "portrait") in low
        phrases = ACTION_PHRASES[a.action]
        assert any(p in low for p in (phrases[a.facing] if isinstance(phrases, dict) else phrases))
    assert clip.spec.background.colour in low


def test_motion_moves_the_object():
    for seed in range(300):
        spec = sample_scene(seed, max_actors=0)
        if len(spec.objects) == 1 and spec.objects[0].motion == "right" and spec.background.pan == 0:
            break
    clip = render(spec)
    xs = [np.nonzero(clip.instance[f] == 1)[1].mean() for f in (0, clip.instance.shape[0] - 1)]
    assert xs[1] - xs[0] > 5


def test_dataset_items():
    ds = ToyWorldDataset(3, seed=1, cfg=RenderConfig(frames=9, height=32, width=32), annotations=True)
    item = ds[2]
    assert item["video"].shape == (3, 9, 32, 32)
    assert -1 <= item["video"].min() and item["video"].max() <= 1
    assert item["depth"].shape == (9, 32, 32) and isinstance(item["caption"], str)
    assert ds[2]["seed"] == item["seed"]
    with pytest.raises(IndexError):
        ds[3]


def test_dataset_caption_without_rendering_is_the_items_caption():
    ds = ToyWorldDataset(6, seed=3, cfg=RenderConfig(frames=5, height=32, width=32), max_objects=2, max_actors=1)
    assert [ds.caption(i) for i in range(6)] == [ds[i]["caption"] for i in range(6)]
