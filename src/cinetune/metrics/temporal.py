"""Temporal metrics: consistency (adjacent-frame feature cosine, as CLIP-based temporal consistency), VBench's
dynamic degree (optical-flow magnitude; OpenCV Farneback flow in place of RAFT, which cannot be downloaded) and the
first-frame jump (this project's check on causal-VAE first frames)."""

from __future__ import annotations

import cv2
import numpy as np


def temporal_consistency(frame_embeddings: np.ndarray) -> float:
    """Mean cosine similarity of adjacent frames' embeddings (F,D); NaN for a single frame (no adjacent pair: a
    still image is not perfectly consistent video, it is not video; reports leave NaN out of means and write null)."""
    e = np.asarray(frame_embeddings, np.float64)
    if len(e) < 2:
        return float("nan")
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    return float((e[1:] * e[:-1]).sum(1).mean())


def flow_scores(video: np.ndarray) -> np.ndarray:
    """Per adjacent frame pair: mean of the top 5% optical-flow magnitudes (VBench's per-pair score), in pixels."""
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in np.asarray(video)]
    out = []
    for a, b in zip(grey[:-1], grey[1:]):
        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 9, 3, 5, 1.1, 0)
        mag = np.sqrt((flow ** 2).sum(-1)).ravel()
        k = max(1, int(mag.size * 0.05))
        out.append(float(np.partition(mag, -k)[-k:].mean()))
    return np.array(out)


def dynamic_degree(video: np.ndarray) -> tuple[bool, float]:
    """VBench dynamic degree of one video: (is_dynamic, mean per-pair score).

    A video is dynamic when at least round(4 * F/16) frame pairs score above 6 * min(H,W)/256 pixels (VBench's
    thresholds, scaled to the frame size and length); the dataset metric is the fraction of dynamic videos."""
    v = np.asarray(video)
    scores = flow_scores(v)
    if not len(scores):
        return False, 0.0
    thres = 6.0 * min(v.shape[1:3]) / 256.0
    count = max(1, round(4 * v.shape[0] / 16.0))
    return bool((scores > thres).sum() >= count), float(scores.mean())


def _pair_changes(video: np.ndarray) -> np.ndarray:
    """(F-1,) mean absolute difference (0-255 scale) of each frame and the next, of a (F,H,W,3) video."""
    v = np.asarray(video, np.float32)
    return np.abs(v[1:] - v[:-1]).mean(axis=(1, 2, 3))


def first_frame_jump(video: np.ndarray, floor: float = 1.0) -> float:
    """How much more frame 0 differs from frame 1 than later frames differ from their successors: mean absolute
    difference (0-255 scale) of frames 0 and 1 over the median of frames k, k+1 for k >= 1, that median floored at
    `floor` so static videos stay finite. About 1 for real clips; large when frame 0 is noisier than the rest (a causal
    VAE encodes frame 0 alone, and a DiT that denoises it worse shows it here). Needs >= 3 frames."""
    if len(video) < 3:
        raise ValueError(f"first_frame_jump needs at least 3 frames, got {len(video)}")
    d = _pair_changes(video)
    return float(d[0] / max(float(np.median(d[1:])), floor))


def chunk_flicker(video: np.ndarray, temporal: int = 4, floor: float = 1.0) -> float:
    """How much more a video changes across the causal VAE's latent-chunk boundaries than inside a chunk: mean
    absolute difference (0-255 scale) of the frame pairs (temporal*j, temporal*j + 1), where latent frame j hands over
    to j+1 (frame 0 is chunk 0), over that of all other adjacent pairs (floored at `floor` so static videos stay
    finite). About 1 for real clips; above 1 when the decoder (or the latents) jump at every chunk boundary. Needs
    frames > temporal + 1 so both kinds of pair exist."""
    if len(video) <= temporal + 1:
        raise ValueError(f"chunk_flicker needs more than {temporal + 1} frames, got {len(video)}")
    d = _pair_changes(video)
    at = np.zeros(len(d), bool)
    at[::temporal] = True
    return float(d[at].mean() / max(float(d[~at].mean()), floor))
