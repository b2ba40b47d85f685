"""Pose condition: OpenPose-18 keypoints per person, rendered as an OpenPose-style skeleton video.

Backends: "toy" (the toy annotator's keypoint heatmaps -> peaks -> people), or "module:function" mapping frames
(N,H,W,3) uint8 -> keypoints (N,P,18,3) (x, y, confidence; confidence 0 = missing), e.g. a wrapper around a local
ViTPose or MediaPipe model."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import CinetuneError
from ..toyworld.render import draw_skeleton
from .base import Extractor, Plugin
from .dense import _toy_frames

NECK = 1


def group_people(peaks: np.ndarray, max_people: int) -> np.ndarray:
    """Per-type detections (K,M,3) -> people (max_people,K,3). People are seeded by neck detections (strongest
    first); every other detection joins the nearest seed that has no keypoint of that type yet (greedy by distance)."""
    K = peaks.shape[0]
    out = np.zeros((max_people, K, 3), np.float32)
    seeds = [p for p in peaks[NECK] if p[2] > 0][:max_people]
    if not seeds:
        return out
    centres = np.array([s[:2] for s in seeds])
    for k in range(K):
        det = [p for p in peaks[k] if p[2] > 0]
        pairs = sorted(((float(np.hypot(*(d[:2] - c))), i, j) for i, d in enumerate(det) for j, c in enumerate(centres)))
        used_d, used_p = set(), set()
        for _, i, j in pairs:
            if i in used_d or j in used_p:
                continue
            out[j, k] = det[i]
            used_d.add(i)
            used_p.add(j)
    return out


class Pose(Extractor):
    """Structured: (F,P,18,3) float32 keypoints (x, y, confidence>0 if present), P = max_people."""

    kind = "pose"

    def __init__(self, backend: str = "toy", threshold: float = 0.3, max_people: int = 4):
        self.threshold, self.max_people = threshold, max_people
        self.fn = None
        if backend == "toy":
            from ..toynets import load_toy_net

            self.net = load_toy_net("annotator")
        elif ":" in backend:
            self.fn = Plugin(backend, "pose")
        else:
            raise CinetuneError(f"pose: backend must be 'toy' or 'module:function', got {backend!r}")

    @torch.no_grad()
    def analyse_frames(self, frames: np.ndarray) -> np.ndarray:
        if self.fn is not None:
            kp = self.fn(frames, (len(frames), None, 18, 3), np.float32)
            out = np.zeros((len(frames), self.max_people, 18, 3), np.float32)
            out[:, :min(self.max_people, kp.shape[1])] = kp[:, :self.max_people]
            return out
        from ..toynets import heatmap_peaks

        heat = self.net(_toy_frames(frames))["heatmaps"]
        return np.stack([group_people(heatmap_peaks(h, self.threshold, self.max_people).numpy(), self.max_people)
                         for h in heat])

    def render(self, structured: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return draw_skeleton(structured, *size)
