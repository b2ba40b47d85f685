"""Collapse guards for distillation runs (the failures DMD2 users report): static video (dynamic degree), colour
drift or flashing (saturation against the teacher's, and its frame-to-frame swings) and tearing (the largest
frame-to-frame change against the typical one), measured on the same held-out prompts at every validation."""

from __future__ import annotations

import numpy as np

from ...metrics.colour import oversaturation, saturation
from ...metrics.temporal import _pair_changes, dynamic_degree

# Where a validation is flagged: dynamic share below half the teacher's; oversaturation above 0.05 (a shift of the
# saturation quantiles by 5% of the range, well visible); flashing or tearing three times the teacher's. Defaults
# chosen by eye, not fitted: the log keeps the raw scores for other limits.
LIMITS = {"dynamic": 0.5, "oversaturation": 0.05, "flashing": 3.0, "tearing": 3.0}


def guard_scores(videos: list[np.ndarray], reference: list[np.ndarray]) -> dict[str, float]:
    """Scores of student videos (F,H,W,3) uint8 against the teacher's on the same prompts and seeds.

    dynamic: fraction of dynamic videos (VBench's dynamic degree); oversaturation: one-sided saturation distance to
    the reference; flashing: the largest frame-to-frame swing of the mean saturation (x 255); tearing: the largest
    frame-to-frame change over the median one (both averaged over videos)."""
    def flashing(v):
        s = saturation(v).reshape(len(v), -1).mean(1) * 255
        return float(np.abs(np.diff(s)).max()) if len(v) > 1 else 0.0

    def tearing(v):
        d = _pair_changes(v) if len(v) > 1 else np.zeros(1)
        return float(d.max() / max(float(np.median(d)), 1.0))

    return {"dynamic": float(np.mean([dynamic_degree(v)[0] for v in videos])),
            "oversaturation": oversaturation(videos, reference),
            "flashing": float(np.mean([flashing(v) for v in videos])),
            "tearing": float(np.mean([tearing(v) for v in videos]))}


def collapse_reasons(scores: dict[str, float], teacher: dict[str, float]) -> list[str]:
    """Which guards a validation fails, given the teacher's own scores on the same prompts."""
    out = []
    if scores["dynamic"] < LIMITS["dynamic"] * teacher["dynamic"]:
        out.append(f"static video (dynamic {scores['dynamic']:.2f} vs teacher {teacher['dynamic']:.2f})")
    if scores["oversaturation"] > LIMITS["oversaturation"]:
        out.append(f"oversaturated ({scores['oversaturation']:.3f})")
    if scores["flashing"] > LIMITS["flashing"] * max(teacher["flashing"], 1.0):
        out.append(f"flashing colours ({scores['flashing']:.1f} vs teacher {teacher['flashing']:.1f})")
    if scores["tearing"] > LIMITS["tearing"] * max(teacher["tearing"], 1.0):
        out.append(f"tearing ({scores['tearing']:.1f} vs teacher {teacher['tearing']:.1f})")
    return out


def health(scores: dict[str, float], teacher: dict[str, float]) -> float:
    """One number to keep the best checkpoint by (higher is better): dynamic share relative to the teacher's, minus
    the oversaturation and the excess flashing and tearing over the teacher's."""
    rel = scores["dynamic"] / max(teacher["dynamic"], 1e-6)
    return float(min(rel, 1.0) - 10 * scores["oversaturation"]
                 - 0.1 * max(scores["flashing"] - teacher["flashing"], 0)
                 - 0.1 * max(scores["tearing"] - teacher["tearing"], 0))
