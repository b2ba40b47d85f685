"""Metric-validation corruptions: level 0 is the identity, and each one does what its name says."""

from __future__ import annotations

import numpy as np
import pytest

from cinetune.bench.corruptions import CORRUPTIONS, freeze, inject_instance_event, shuffle_frames
from cinetune.metrics import instance_events, psnr
from cinetune.toyworld import RenderConfig, render, render_clip, sample_scene


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_level_zero_is_identity_and_damage_grows(name):
    v = render_clip(4)[0].video
    fn = CORRUPTIONS[name]
    np.testing.assert_array_equal(fn(v, 0.0, seed=1), v)
    p = [psnr(fn(v, lvl, seed=1), v) for lvl in (0.25, 0.5, 1.0)]
    assert p[0] > p[1] > p[2], p
    assert fn(v, 0.5, seed=1).shape == v.shape and fn(v, 0.5, seed=1).dtype == np.uint8


def test_shuffle_and_freeze_keep_the_frames():
    v = render_clip(4)[0].video
    s = shuffle_frames(v, 1.0, seed=0)
    assert sorted(map(bytes, s)) == sorted(map(bytes, v))
    f = freeze(v, 1.0)
    assert all((f[i] == v[0]).all() for i in range(len(v)))


def test_injected_events_are_real_events():
    cfg = RenderConfig()
    spec = next(s for s in (sample_scene(i, max_actors=0) for i in range(100)) if len(s.objects) == 1)
    clean = render(spec, cfg)
    assert sum(instance_events(clean.classes).values()) == 0
    video, labels = inject_instance_event(spec, cfg, "vanish")
    ev = instance_events(labels)
    assert ev["vanish"] == 1 and (video[:8] == clean.video[:8]).all()
    video, labels = inject_instance_event(spec, cfg, "split")
    assert instance_events(labels)["split"] == 1
