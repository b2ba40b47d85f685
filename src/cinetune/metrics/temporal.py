"""Temporal metrics: consistency (adjacent-frame feature cosine, as CLIP-based temporal consistency) and VBench's
dynamic degree (optical-flow magnitude; OpenCV Farneback flow in place of RAFT, which cannot be downloaded)."""

from __future__ import annotations

import cv2
import numpy as np


def temporal_consistency(frame_embeddings: np.ndarray) -> float:
    """Mean cosine similarity of adjacent frames' embeddings (F,D); 1.0 for a single frame."""
    e = np.asarray(frame_embeddings, np.float64)
    if len(e) < 2:
        return 1.0
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
