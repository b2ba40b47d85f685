"""Pose condition: OpenPose-18 keypoints per person, rendered as an OpenPose-style skeleton video.

Backends: "auto" (the toy annotator on toy-world sizes, a request for a model beyond), "toy" (the toy annotator's
keypoint heatmaps -> peaks -> people), a local transformers top-down pose model directory (ViTPose:
`VitPoseForPoseEstimation` and its image processor; COCO-17 keypoints, one person per frame with the whole frame as
its box, as no person detector ships), or "module:function" mapping frames (N,H,W,3) uint8 -> keypoints (N,P,18,3)
(x, y, confidence; confidence 0 = missing), e.g. a detector + pose model for several people."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import CinetuneError
from ..toyworld.render import draw_skeleton
from .base import Extractor, Plugin, is_model_dir
from .dense import _toy_frames

NECK = 1
# OpenPose-18 keypoint i is COCO-17 keypoint COCO_OF_OPENPOSE[i] (the neck, None, is the shoulders' midpoint)
COCO_OF_OPENPOSE = (0, None, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)


def openpose_from_coco(xy: np.ndarray, score: np.ndarray, threshold: float) -> np.ndarray:
    """COCO-17 (17, 2) positions and (17,) scores -> OpenPose-18 (18, 3) (x, y, confidence; 0 below `threshold`)."""
    out = np.zeros((18, 3), np.float32)
    for i, c in enumerate(COCO_OF_OPENPOSE):
        if c is None:
            s = min(score[5], score[6])
            out[i] = (*((xy[5] + xy[6]) / 2), s)
        else:
            out[i] = (*xy[c], score[c])
    out[out[:, 2] < threshold] = 0.0
    return out


class _TransformersPose:
    """A local ViTPose-style directory: frames (N,H,W,3) uint8 -> (N,1,18,3), the whole frame as the person's box."""

    def __init__(self, path: str, threshold: float):
        import transformers

        try:
            self.processor = transformers.AutoImageProcessor.from_pretrained(path)
            self.model = transformers.VitPoseForPoseEstimation.from_pretrained(path, use_safetensors=True).eval()
        except (OSError, ValueError) as e:
            raise CinetuneError(f"cannot load a pose model from {path}: {str(e).splitlines()[0]}") from None
        if self.model.config.num_labels != 17:
            raise CinetuneError(f"pose model {path}: expected COCO's 17 keypoints, it predicts "
                                f"{self.model.config.num_labels}")
        self.threshold = threshold

    @torch.no_grad()
    def __call__(self, frames: np.ndarray, shape=None, dtype=None) -> np.ndarray:
        """(`shape`, `dtype`: what a plugin's output is checked against; this output has them by construction.)"""
        H, W = frames.shape[1:3]
        boxes = [[[0.0, 0.0, float(W), float(H)]] for _ in frames]  # COCO boxes: x, y, width, height
        inputs = self.processor(images=list(frames), boxes=boxes, return_tensors="pt")
        found = self.processor.post_process_pose_estimation(self.model(**inputs), boxes=boxes)
        return np.stack([[openpose_from_coco(p["keypoints"].numpy(), p["scores"].numpy(), self.threshold)
                          for p in people] for people in found]).astype(np.float32)


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

    def __init__(self, backend: str = "auto", threshold: float = 0.3, max_people: int = 4):
        self.threshold, self.max_people = threshold, max_people
        self.fn, self.auto = None, backend == "auto"
        if backend in ("auto", "toy"):
            from ..toynets import load_toy_net

            self.net = load_toy_net("annotator")
        elif is_model_dir(backend):
            self.fn = _TransformersPose(backend, threshold)
        elif ":" in backend:
            self.fn = Plugin(backend, "pose")
        else:
            raise CinetuneError(f"pose: backend must be 'auto', 'toy', a local transformers pose model directory or "
                                f"'module:function', got {backend!r}")

    @torch.no_grad()
    def analyse_frames(self, frames: np.ndarray) -> np.ndarray:
        if self.fn is not None:
            kp = self.fn(frames, (len(frames), None, 18, 3), np.float32)
            out = np.zeros((len(frames), self.max_people, 18, 3), np.float32)
            out[:, :min(self.max_people, kp.shape[1])] = kp[:, :self.max_people]
            return out
        from ..toynets import heatmap_peaks

        heat = self.net(_toy_frames(frames, "pose", self.auto))["heatmaps"]
        return np.stack([group_people(heatmap_peaks(h, self.threshold, self.max_people).numpy(), self.max_people)
                         for h in heat])

    def render(self, structured: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return draw_skeleton(structured, *size)
