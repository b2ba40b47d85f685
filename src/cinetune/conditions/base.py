"""One interface for every condition kind: video (F,H,W,3) uint8 -> condition video (F,H,W,3) uint8.

Each extractor also exposes the structured result behind its picture (`analyse`): edge maps, nearness maps, label
maps, keypoints. Condition adherence compares those, not colours."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from ..errors import CinetuneError

# Fixed palette for label maps (index 0 = black background); shared by the renderer's exports and the extractors.
PALETTE = np.array([(0, 0, 0)] + [tuple(int(c) for c in np.random.default_rng(k).integers(40, 256, 3))
                                  for k in range(1, 64)], np.uint8)
PROGRESS_FRAMES = 64  # show a progress bar for longer inputs


def check_video(video: np.ndarray, name: str = "video") -> np.ndarray:
    v = np.asarray(video)
    if v.ndim != 4 or v.shape[-1] != 3 or v.dtype != np.uint8:
        raise CinetuneError(f"{name} must be (F,H,W,3) uint8, got {v.shape} {v.dtype}")
    if v.shape[0] == 0:
        raise CinetuneError(f"{name} has no frames")
    return v


def grey(a: np.ndarray) -> np.ndarray:
    """(F,H,W) uint8 -> (F,H,W,3)."""
    return np.repeat(a[..., None], 3, -1)


class Extractor(ABC):
    """Base class. Subclasses implement `analyse_frames` (a batch of frames -> structured array with a leading frame
    axis) and `render` (structured, (H,W) -> (F,H,W,3) uint8). `batch_size` frames are processed at a time."""

    kind = ""
    batch_size = 32

    @abstractmethod
    def analyse_frames(self, frames: np.ndarray) -> np.ndarray:
        """(N,H,W,3) uint8 frames -> structured array with a leading frame axis."""

    @abstractmethod
    def render(self, structured: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Structured array -> (F,H,W,3) uint8 condition video of frame size `size` (H, W)."""

    def analyse(self, video: np.ndarray, progress: bool | None = None) -> np.ndarray:
        video = check_video(video)
        F = video.shape[0]
        show = F > PROGRESS_FRAMES if progress is None else progress
        parts = []
        # a context, so that a failing backend's error line comes after the bar is cleared, not before
        with tqdm(total=F, desc=f"extract {self.kind}", disable=not show, leave=False) as bar:
            for s in range(0, F, self.batch_size):
                parts.append(self.analyse_frames(video[s:s + self.batch_size]))
                bar.update(len(parts[-1]))
        return np.concatenate(parts)

    def __call__(self, video: np.ndarray, progress: bool | None = None) -> np.ndarray:
        return self.render(self.analyse(video, progress), video.shape[1:3])


def load_callable(spec: str) -> Callable:
    """'package.module:function' -> the function (the documented plug-in interface for user models)."""
    mod, _, fn = spec.partition(":")
    try:
        obj = getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError, ValueError) as e:
        raise CinetuneError(f"cannot load backend {spec!r}: {e}") from None
    if not callable(obj):
        raise CinetuneError(f"backend {spec!r} is a {type(obj).__name__}, not a function")
    return obj


class Plugin:
    """A user's 'package.module:function' backend with its output checked: a plug-in that raises, returns the wrong
    shape or non-finite values is a bad input (one line), not a crash or a silently broken condition video."""

    def __init__(self, spec: str, kind: str):
        self.spec, self.kind, self.fn = spec, kind, load_callable(spec)

    def __call__(self, frames: np.ndarray, shape: tuple, dtype) -> np.ndarray:
        """frames (N,H,W,3) uint8 -> the plug-in's array, checked against `shape` (None: any size) and cast."""
        try:
            out = np.asarray(self.fn(frames))
        except Exception as e:  # the user's code: report it as theirs
            raise CinetuneError(f"{self.kind} backend {self.spec!r} failed: {type(e).__name__}: {e}") from None
        if out.ndim != len(shape) or any(w is not None and w != g for w, g in zip(shape, out.shape)):
            want = "(" + ",".join("*" if w is None else str(w) for w in shape) + ")"
            raise CinetuneError(f"{self.kind} backend {self.spec!r} returned shape {out.shape}, expected {want}")
        if not (np.issubdtype(out.dtype, np.number) or out.dtype == bool):
            raise CinetuneError(f"{self.kind} backend {self.spec!r} returned {out.dtype} values, expected numbers")
        if not np.isfinite(out).all():
            raise CinetuneError(f"{self.kind} backend {self.spec!r} returned NaN or infinite values")
        return out.astype(dtype, copy=False)


def is_model_dir(backend: str) -> bool:
    return Path(backend).is_dir() and (Path(backend) / "config.json").is_file()
