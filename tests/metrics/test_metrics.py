"""Each metric on hand-made inputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from cinetune.errors import CinetuneError
from cinetune.metrics import (chunk_flicker, depth_error, dynamic_degree, edge_f1, first_frame_jump, frechet_distance, greedy_match,
                              identity_similarity, instance_events, instance_preservation, miou, oversaturation,
                              pose_pck, psnr, saturation_stats, ssim, temporal_consistency)
from cinetune.metrics.fidelity import MAX_PSNR
from cinetune.toyworld import render_clip

RNG = np.random.default_rng(0)


def video(F=5, H=32, W=32):
    return RNG.integers(0, 256, (F, H, W, 3), dtype=np.uint8)


def test_psnr_known_values():
    a = np.full((2, 8, 8, 3), 100, np.uint8)
    assert psnr(a, a) == MAX_PSNR
    b = a + 1  # MSE 1 -> 20 log10(255)
    assert psnr(a, b) == pytest.approx(20 * np.log10(255), abs=1e-9)
    with pytest.raises(CinetuneError, match="shape"):
        psnr(a, a[:1])


def test_ssim_identical_is_one_and_noise_lowers_it():
    clip, _ = render_clip(1)
    v = clip.video
    assert ssim(v, v) == pytest.approx(1.0, abs=1e-6)
    noisy = np.clip(v + RNG.normal(0, 20, v.shape), 0, 255).astype(np.uint8)
    noisier = np.clip(v + RNG.normal(0, 60, v.shape), 0, 255).astype(np.uint8)
    assert 1 > ssim(v, noisy) > ssim(v, noisier)


def test_frechet_distance_known_answers():
    x = RNG.normal(size=(4000, 3))
    assert frechet_distance(x, x) == pytest.approx(0, abs=1e-6)
    shift = np.array([1.0, 2.0, 0.0])
    assert frechet_distance(x, x + shift) == pytest.approx(5.0, rel=1e-6)  # covariances equal: ||mu1 - mu2||^2
    # N(0, I) vs N(0, 4I) in 3-D: tr(I + 4I - 2*2I) = 3
    assert frechet_distance(x, 2 * x) == pytest.approx(3 * x.var(0).mean(), rel=0.05)
    small = RNG.normal(size=(5, 16))  # fewer samples than dimensions: rank-deficient covariances still work
    assert frechet_distance(small, small) == pytest.approx(0, abs=1e-8)
    with pytest.raises(CinetuneError):
        frechet_distance(x[:1], x)


def test_edge_f1():
    e = np.zeros((1, 16, 16), np.uint8)
    e[0, 8, :] = 255
    assert edge_f1(e, e) == 1.0
    assert edge_f1(np.roll(e, 1, axis=1), e, tolerance=1) == 1.0  # within tolerance
    assert edge_f1(np.roll(e, 4, axis=1), e, tolerance=1) == 0.0
    assert edge_f1(np.zeros_like(e), np.zeros_like(e)) == 1.0
    half = e.copy()
    half[0, 8, 8:] = 0
    assert edge_f1(half, e, tolerance=0) == pytest.approx(2 * 1 * 0.5 / 1.5)


def test_depth_error_is_scale_and_shift_invariant_when_aligned():
    d = RNG.random((2, 8, 8))
    assert depth_error(0.3 * d + 0.2, d) == pytest.approx(0, abs=1e-12)
    assert depth_error(0.3 * d + 0.2, d, align=False) > 0.1
    assert depth_error(RNG.random((2, 8, 8)), d) > 0.1


def test_miou():
    a = np.array([[0, 0, 1, 1], [2, 2, 2, 2]])
    assert miou(a, a, 3) == 1.0
    b = np.array([[0, 0, 1, 2], [2, 2, 2, 2]])  # class 1: IoU 1/2; class 2: 4/5; class 0: 1
    assert miou(b, a, 3) == pytest.approx((1 + 0.5 + 0.8) / 3)


def test_pck_of_exact_keypoints_is_one():
    clip = None
    for seed in range(60):
        clip, _ = render_clip(seed)
        if clip.keypoints.shape[1] == 1:  # one person: a shifted keypoint cannot land on someone else's
            break
    kp = list(clip.keypoints)
    assert pose_pck(kp, kp, threshold=0.5) == 1.0
    shifted = [k + np.array([5.0, 0, 0], np.float32) for k in kp]
    assert pose_pck(shifted, kp, threshold=2.0) == 0.0
    assert pose_pck(shifted, kp, threshold=6.0) == 1.0
    none = [np.zeros((0, 18, 3), np.float32)] * 2
    assert np.isnan(pose_pck(none, none, 1.0))


def test_temporal_consistency():
    e = np.tile(RNG.normal(size=(1, 8)), (5, 1))
    assert temporal_consistency(e) == pytest.approx(1.0)
    assert temporal_consistency(np.array([[1.0, 0], [0, 1.0], [1.0, 0]])) == pytest.approx(0.0)
    assert np.isnan(temporal_consistency(np.array([[1.0, 0]])))  # one frame: no adjacent pair


def test_dynamic_degree_separates_frozen_from_moving():
    clip, _ = render_clip(1)
    moving, score = dynamic_degree(clip.video)
    frozen, fscore = dynamic_degree(np.repeat(clip.video[:1], 17, 0))
    # Farneback leaves a few hundredths of a pixel on identical textured frames; the threshold is 1.5 px at 64x64
    assert moving and not frozen and score > 1.0 and fscore < 0.05


def test_first_frame_jump_flags_a_noisy_first_frame():
    clip, _ = render_clip(2)
    real = first_frame_jump(clip.video)
    noisy = clip.video.copy()
    noisy[0] = np.clip(noisy[0].astype(int) + RNG.integers(-40, 41, noisy[0].shape), 0, 255)
    assert 0.3 < real < 3 and first_frame_jump(noisy) > 5 * real
    frozen = np.repeat(clip.video[:1], 17, 0)
    assert first_frame_jump(frozen) == 0.0  # static: the floor keeps it finite
    still = frozen.copy()
    still[0] = 0  # one bad frame in a static video
    assert first_frame_jump(still) == pytest.approx(np.abs(frozen[0].astype(float)).mean())
    with pytest.raises(ValueError):
        first_frame_jump(clip.video[:2])


def test_chunk_flicker_flags_jumps_at_latent_chunk_boundaries():
    clip, _ = render_clip(2)
    real = chunk_flicker(clip.video)
    assert 0.5 < real < 1.6
    # a decoder whose brightness is off by a different amount in every latent chunk (frame 0, 1-4, 5-8, ...)
    chunked = clip.video.astype(int)
    for j, start in enumerate(range(1, 17, 4)):
        chunked[start:start + 4] += 12 * (j % 2)
    assert chunk_flicker(np.clip(chunked, 0, 255).astype(np.uint8)) > 2 * real
    # the same jumps inside the chunks instead raise the denominator, not the numerator
    inside = clip.video.astype(int)
    inside[2::4] += 12
    assert chunk_flicker(np.clip(inside, 0, 255).astype(np.uint8)) < real
    frozen = np.repeat(clip.video[:1], 17, 0)
    assert chunk_flicker(frozen) == 0.0  # static: the floor keeps it finite
    with pytest.raises(ValueError):
        chunk_flicker(clip.video[:5])


def _blob(lab, t, y0, y1, x0, x1, c=1):
    lab[t, y0:y1, x0:x1] = c


def test_instance_events_on_hand_made_label_maps():
    lab = np.zeros((4, 32, 32), np.int64)
    for t in range(4):
        _blob(lab, t, 10, 20, 10, 20)  # a square that persists
    assert instance_events(lab) == {"appear": 0, "vanish": 0, "split": 0, "merge": 0}
    assert instance_preservation(lab) == 1.0
    split = lab.copy()
    split[2:, 10:20, 14:16] = 0  # cut in two from frame 2
    assert instance_events(split)["split"] == 1 and instance_preservation(split) == pytest.approx(2 / 3)
    merge = split[::-1].copy()
    assert instance_events(merge)["merge"] == 1
    vanish = lab.copy()
    vanish[3] = 0
    assert instance_events(vanish) == {"appear": 0, "vanish": 1, "split": 0, "merge": 0}
    assert instance_events(vanish[::-1].copy())["appear"] == 1
    leaving = np.zeros((2, 32, 32), np.int64)
    _blob(leaving, 0, 10, 20, 0, 6)  # touching the border: it may leave the view
    assert instance_events(leaving)["vanish"] == 0
    tiny = lab.copy()
    tiny[1, 0:2, 28:30] = 2  # a 4-pixel speck is noise, not an object
    assert instance_preservation(tiny) == 1.0


def test_saturation_and_oversaturation():
    grey = np.full((1, 8, 8, 3), 128, np.uint8)
    red = np.zeros((1, 8, 8, 3), np.uint8)
    red[..., 0] = 255
    assert saturation_stats([grey])["sat_mean"] == 0 and saturation_stats([red])["sat_high"] == 1
    clip, _ = render_clip(2)
    assert oversaturation([clip.video], [clip.video]) == 0
    from cinetune.bench.corruptions import saturate

    a, b = oversaturation([saturate(clip.video, 0.5)], [clip.video]), oversaturation([saturate(clip.video, 1)], [clip.video])
    assert 0 < a < b
    assert oversaturation([grey], [clip.video]) == 0  # less saturated is not oversaturated


def test_greedy_matching_and_identity_similarity():
    sim = np.array([[0.9, 0.8], [0.85, 0.1]])
    assert greedy_match(sim) == [(0, 0, 0.9), (1, 1, 0.1)]
    refs = np.eye(3)
    frames = [np.eye(3)[:2], np.array([[0.0, 0.6, 0.8]])]
    out = identity_similarity(frames, refs)
    assert out["face_sim_min"] == pytest.approx(0.8) and out["face_found"] == 1.0
    assert identity_similarity([np.zeros((0, 3))], refs) == {"face_sim_min": 0.0, "face_sim_mean": 0.0, "face_found": 0.0}


def test_evaluate_frame_pair_metrics_skip_videos_too_short_for_them():
    from cinetune.metrics import EvalConfig, evaluate

    clip, _ = render_clip(2)
    cfg = EvalConfig(metrics=("first-frame", "chunk-flicker"), progress=False)
    rep = evaluate([clip.video, clip.video[:4]], cfg=cfg)
    both = np.mean([first_frame_jump(clip.video), first_frame_jump(clip.video[:4])])
    assert rep["summary"] == pytest.approx({"first_frame_jump": both, "chunk_flicker": chunk_flicker(clip.video)})
    assert np.isnan(rep["per_video"][1]["chunk_flicker"]) and np.isfinite(rep["per_video"][1]["first_frame_jump"])
