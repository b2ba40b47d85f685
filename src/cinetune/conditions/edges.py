"""Edge-family conditions: canny (OpenCV), and scribble, lineart and mlsd derived from an edge map."""

from __future__ import annotations

import cv2
import numpy as np

from .base import Extractor, grey


class Canny(Extractor):
    """Canny edges on the luminance (OpenCV), thresholds as in ControlNet's annotator. Structured: (F,H,W) uint8
    in {0,255}."""

    kind = "canny"

    def __init__(self, low: int = 100, high: int = 200):
        self.low, self.high = low, high

    def analyse_frames(self, frames: np.ndarray) -> np.ndarray:
        return np.stack([cv2.Canny(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), self.low, self.high) for f in frames])

    def render(self, structured: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return grey(structured)


class _FromEdges(Extractor):
    """Conditions computed from another edge extractor's map (canny by default, HED when asked)."""

    def __init__(self, edges: Extractor | None = None):
        self.edges = edges or Canny()

    def render(self, structured: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return grey(structured)


class Scribble(_FromEdges):
    """Thick, simplified strokes, like a user's scribble: blur the edges, keep the strong ones, dilate."""

    kind = "scribble"

    def analyse_frames(self, frames: np.ndarray) -> np.ndarray:
        e = self.edges.analyse_frames(frames)
        k = np.ones((3, 3), np.uint8)
        out = []
        for f in e:
            s = cv2.GaussianBlur(f, (0, 0), 1.0)
            out.append(cv2.dilate(((s > 48) * 255).astype(np.uint8), k))
        return np.stack(out)


class Lineart(_FromEdges):
    """Thin anti-aliased line drawing (white on black, ControlNet's convention): softened edges, re-normalised."""

    kind = "lineart"

    def analyse_frames(self, frames: np.ndarray) -> np.ndarray:
        e = self.edges.analyse_frames(frames).astype(np.float32)
        out = np.stack([cv2.GaussianBlur(f, (0, 0), 0.6) for f in e])
        peak = np.maximum(out.reshape(len(out), -1).max(1), 1.0)[:, None, None]
        return np.clip(out / peak * 255, 0, 255).astype(np.uint8)


class MLSD(_FromEdges):
    """Straight line segments (M-LSD's output form): probabilistic Hough transform on the edge map, segments drawn
    white on black. Segments shorter than `min_length` (fraction of the shorter side) are dropped."""

    kind = "mlsd"

    def __init__(self, edges: Extractor | None = None, min_length: float = 0.15, max_gap: float = 0.03,
                 thickness: int = 1):
        super().__init__(edges)
        self.min_length, self.max_gap, self.thickness = min_length, max_gap, thickness

    def analyse_frames(self, frames: np.ndarray) -> np.ndarray:
        e = self.edges.analyse_frames(frames)
        out = np.zeros_like(e)
        for f, img in zip(e, out):
            s = min(f.shape)
            lines = cv2.HoughLinesP(f, 1, np.pi / 180, threshold=max(8, int(0.1 * s)),
                                    minLineLength=max(4, int(self.min_length * s)),
                                    maxLineGap=max(1, int(self.max_gap * s)))
            for x0, y0, x1, y1 in ([] if lines is None else lines.reshape(-1, 4)):
                cv2.line(img, (int(x0), int(y0)), (int(x1), int(y1)), 255, self.thickness)
        return out
