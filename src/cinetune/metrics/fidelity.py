"""Paired fidelity of a video to its reference: PSNR and SSIM (Wang et al. 2004), per frame, averaged."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import CinetuneError

MAX_PSNR = 100.0  # identical frames have infinite PSNR; capped so reports stay finite JSON


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise CinetuneError(f"videos differ in shape: {a.shape} vs {b.shape}")
    to = lambda v: torch.from_numpy(np.ascontiguousarray(v)).permute(0, 3, 1, 2).double()  # noqa: E731
    return to(a), to(b)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over frames of per-frame PSNR (dB, peak 255) of (F,H,W,3) uint8 videos; capped at MAX_PSNR."""
    x, y = _pair(a, b)
    mse = ((x - y) ** 2).flatten(1).mean(1)
    db = 10 * torch.log10(255.0 ** 2 / mse.clamp_min(1e-12))
    return float(db.clamp(max=MAX_PSNR).mean())


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over frames of SSIM (Gaussian window 11, sigma 1.5, data range 255, RGB channels averaged)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    x, y = _pair(a, b)
    return float(structural_similarity_index_measure(x, y, data_range=255.0, reduction="elementwise_mean"))
