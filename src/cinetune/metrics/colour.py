"""Colour saturation statistics and an oversaturation score against a reference set (the failure mode of
high-guidance / few-step distilled samplers)."""

from __future__ import annotations

import cv2
import numpy as np

QUANTILES = np.linspace(0.01, 0.99, 99)


def saturation(video: np.ndarray) -> np.ndarray:
    """HSV saturation in [0,1] of every pixel of a (F,H,W,3) uint8 video, flattened."""
    v = np.asarray(video)
    hsv = cv2.cvtColor(v.reshape(-1, v.shape[2], 3), cv2.COLOR_RGB2HSV)
    return hsv[..., 1].ravel().astype(np.float32) / 255.0


def saturation_stats(videos: list[np.ndarray]) -> dict[str, float]:
    """Mean, 95th percentile and fraction of strongly saturated pixels (S > 0.9) over a set of videos."""
    s = np.concatenate([saturation(v) for v in videos])
    return {"sat_mean": float(s.mean()), "sat_p95": float(np.quantile(s, 0.95)), "sat_high": float((s > 0.9).mean())}


def oversaturation(generated: list[np.ndarray], reference: list[np.ndarray]) -> float:
    """How far the generated saturation distribution sits above the reference's: the positive part of the quantile
    differences, averaged (a one-sided 1-Wasserstein distance). 0 when generated is no more saturated."""
    g = np.quantile(np.concatenate([saturation(v) for v in generated]), QUANTILES)
    r = np.quantile(np.concatenate([saturation(v) for v in reference]), QUANTILES)
    return float(np.clip(g - r, 0, None).mean())
