"""Condition extractors: video (F,H,W,3) uint8 -> condition video (F,H,W,3) uint8, one interface for every kind."""

from __future__ import annotations

from ..errors import CinetuneError
from .base import PALETTE, Extractor, check_video
from .dense import Depth, Normal, Segmentation
from .edges import MLSD, Canny, Lineart, Scribble
from .exact import EXACT_KINDS, annotations_for, exact_condition, exact_structured
from .pose import Pose

KINDS = ("canny", "hed", "depth", "normal", "pose", "segmentation", "scribble", "lineart", "mlsd")


def get_extractor(kind: str, backend: str = "auto", edges: str = "canny", **options) -> Extractor:
    """Build the extractor for `kind`.

    backend: for depth / normal / segmentation / pose: "auto" (the shipped toy annotator on toy-world sizes, else a
    request for a model), "toy" (the toy annotator always), a local transformers model directory (depth, normal,
    segmentation: their Auto classes; pose: ViTPose) or "module:function" (see each class). edges: the edge map
    scribble, lineart and mlsd start from ("canny" or "hed"). options: the class's own keyword arguments."""
    if kind not in KINDS:
        raise CinetuneError(f"unknown condition {kind!r}; known: {', '.join(KINDS)}")
    if edges not in ("canny", "hed"):  # checked for every kind: a wrong value is refused, not ignored
        raise CinetuneError(f"edges must be canny or hed, got {edges!r}")
    if kind == "canny":
        return Canny(**options)
    if kind == "hed":
        from .hed import HED

        return HED(**options)
    if kind in ("scribble", "lineart", "mlsd"):
        if edges not in ("canny", "hed"):
            raise CinetuneError(f"edges must be canny or hed, got {edges!r}")
        base = get_extractor(edges)
        return {"scribble": Scribble, "lineart": Lineart, "mlsd": MLSD}[kind](base, **options)
    return {"depth": Depth, "normal": Normal, "segmentation": Segmentation, "pose": Pose}[kind](backend, **options)


def extract(kind: str, video, **kwargs):
    """One-shot: the condition video of `video` (F,H,W,3) uint8."""
    return get_extractor(kind, **kwargs)(video)


__all__ = ["EXACT_KINDS", "KINDS", "MLSD", "PALETTE", "Canny", "Depth", "Extractor", "Lineart", "Normal", "Pose",
           "Scribble", "Segmentation", "annotations_for", "check_video", "exact_condition", "exact_structured",
           "extract", "get_extractor"]
