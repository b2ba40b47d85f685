"""Fréchet distance between Gaussians fitted to two feature sets (FID / FVD, Heusel et al. 2017; Unterthiner et al.
2018): ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^1/2). The feature network is pluggable (`metrics.features`)."""

from __future__ import annotations

import numpy as np

from ..errors import CinetuneError


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise CinetuneError(f"need at least 2 feature vectors (N,D), got {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Fréchet distance between feature sets x (N,D) and y (M,D).

    tr((S1 S2)^1/2) is computed as the sum of square roots of the eigenvalues of S1^1/2 S2 S1^1/2 (symmetric PSD,
    so eigh is stable even for the rank-deficient covariances of small sets)."""
    mu1, s1 = gaussian_stats(x)
    mu2, s2 = gaussian_stats(y)
    w, v = np.linalg.eigh(s1)
    r1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = r1 @ s2 @ r1
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    return float(max(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt, 0.0))
