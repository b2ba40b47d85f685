"""The shipped toy feature networks make the default metrics meaningful on toy clips (small, fast versions of the
checks `cinetune bench metrics` runs at full size)."""

from __future__ import annotations

import numpy as np
import pytest

from cinetune.bench.corruptions import blur, noise
from cinetune.metrics import EvalConfig, evaluate
from cinetune.metrics.evaluate import adherence
from cinetune.toyworld import RenderConfig, caption, clip_seed, render, sample_scene


@pytest.fixture(scope="module")
def clips():
    specs = [sample_scene(clip_seed(77, i)) for i in range(8)]
    return specs, [render(s, RenderConfig()) for s in specs]


def test_alignment_prefers_the_true_caption(clips):
    specs, cl = clips
    videos = [c.video for c in cl]
    right = evaluate(videos, prompts=[caption(s) for s in specs], cfg=EvalConfig(metrics=("alignment",), progress=False))
    wrong = evaluate(videos, prompts=[caption(s) for s in specs[1:] + specs[:1]],
                     cfg=EvalConfig(metrics=("alignment",), progress=False))
    assert right["summary"]["alignment"] > wrong["summary"]["alignment"] + 0.2


def test_distances_grow_with_corruption(clips):
    _, cl = clips
    A = [c.video for c in cl]
    cfg = EvalConfig(metrics=("perceptual", "fvd"), progress=False)
    same = evaluate(A, A, cfg=cfg)["summary"]
    assert same["perceptual"] == 0 and same["fvd"] == pytest.approx(0, abs=1e-6)
    light = evaluate([blur(v, 0.3) for v in A], A, cfg=cfg)["summary"]
    heavy = evaluate([noise(blur(v, 1.0), 1.0, seed=i) for i, v in enumerate(A)], A, cfg=cfg)["summary"]
    assert 0 < light["perceptual"] < heavy["perceptual"] and 0 < light["fvd"] < heavy["fvd"]


def test_condition_adherence_ranks_the_right_condition_first(clips):
    from cinetune.conditions import get_extractor

    _, cl = clips
    for kind in ("depth", "segmentation"):
        ex = get_extractor(kind)
        right = np.mean([adherence(kind, ex, noise(c.video, 0.2, seed=1), c.video) for c in cl[:4]])
        wrong = np.mean([adherence(kind, ex, noise(c.video, 0.2, seed=1), d.video) for c, d in zip(cl[:4], cl[1:5])])
        assert (right < wrong) if kind == "depth" else (right > wrong), kind


def test_identity_similarity_prefers_the_true_identities():
    from cinetune.metrics.identity import ToyFaces, identity_similarity

    faces = ToyFaces()
    right, wrong = [], []
    for i in range(40):
        spec = sample_scene(clip_seed(78, i))
        if not spec.actors:
            continue
        clip = render(spec, RenderConfig())
        emb = faces.video_embeddings(clip.video)
        ids = [a.identity for a in spec.actors]
        right.append(identity_similarity(emb, faces.reference_embeddings(ids))["face_sim_min"])
        wrong.append(identity_similarity(emb, faces.reference_embeddings([(k + 5) % 20 for k in ids]))["face_sim_min"])
        if len(right) == 6:
            break
    assert np.mean(right) > np.mean(wrong) + 0.2
