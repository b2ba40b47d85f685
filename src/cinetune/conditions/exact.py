"""Exact toy conditions: read from the renderer's annotations instead of estimated from pixels.

Used for toy clips the project rendered (training data, references, `render-toy` outputs); generated clips go
through the pixel-based extractors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import CinetuneError
from ..toyworld.render import Clip
from .base import PALETTE, grey
from .dense import normals_from_nearness

EXACT_KINDS = ("depth", "normal", "segmentation", "pose", "edges")


def exact_structured(annotations: dict, kind: str) -> np.ndarray:
    """Structured exact condition from a Clip's arrays (a Clip or the dict a render-toy .safetensors holds), in the
    same form the matching extractor's `analyse` returns."""
    a = annotations
    need = {"depth": "depth", "normal": "depth", "segmentation": "classes", "pose": "keypoints", "edges": "edges"}
    if kind in need and need[kind] not in a:
        raise CinetuneError(f"the annotations have no {need[kind]!r} array (needed for exact {kind})")
    if kind in ("depth", "normal"):
        near = 1.0 - np.asarray(a["depth"], np.float32)
        return near if kind == "depth" else normals_from_nearness(near)
    if kind == "segmentation":
        return np.asarray(a["classes"], np.int64)
    if kind == "pose":
        return np.asarray(a["keypoints"], np.float32)
    if kind == "edges":
        return np.asarray(a["edges"], np.uint8) * (255 if np.asarray(a["edges"]).max() <= 1 else 1)
    raise CinetuneError(f"no exact toy annotation for {kind!r}; exact kinds: {', '.join(EXACT_KINDS)}")


def exact_condition(clip: Clip | dict, kind: str) -> np.ndarray:
    """Exact condition video (F,H,W,3) uint8 of a rendered toy clip."""
    from ..toyworld.render import draw_skeleton

    a = clip if isinstance(clip, dict) else vars(clip)
    s = exact_structured(a, kind)
    if kind == "depth":
        return grey((s * 255 + 0.5).astype(np.uint8))
    if kind == "normal":
        return ((s + 1) * 127.5 + 0.5).clip(0, 255).astype(np.uint8)
    if kind == "segmentation":
        return PALETTE[s % len(PALETTE)]
    if kind == "pose":
        if "skeleton" in a:
            return np.asarray(a["skeleton"])
        H, W = np.asarray(a["depth"]).shape[1:]
        return draw_skeleton(s, H, W)
    return grey(s)


def annotations_for(video_path: str | Path) -> dict:
    """The render-toy annotations of `<out>/clips/<name>.mp4` (or any `<out>/<kind>/<name>.mp4`):
    `<out>/annotations/<name>.safetensors`."""
    from safetensors.numpy import load_file

    p = Path(video_path)
    ann = p.parent.parent / "annotations" / f"{p.stem}.safetensors"
    if not ann.is_file():
        raise CinetuneError(f"{video_path}: no exact annotations at {ann} (only `cinetune render-toy` outputs have "
                            "them; use --backend toy to estimate from pixels)")
    try:
        return load_file(str(ann))
    except Exception as e:  # truncated or not a safetensors file
        raise CinetuneError(f"cannot read the annotations {ann}: {type(e).__name__}: {e}") from None
