"""Adapted text-to-video: the text-to-video sampler with any number of attached adapters (any registered method),
applied together inside a guidance window."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from ..errors import CinetuneError
from .text_to_video import TextToVideoPipeline, VideoOutput

LABEL_KINDS = ("segmentation", "pose")  # resized with nearest neighbour: colours are labels


def fit_condition(video: np.ndarray, frames: int, height: int, width: int, kind: str = "", name: str = "condition"
                  ) -> np.ndarray:
    """Make a condition video (F,H,W,3) uint8 match the generation: resize when safe (same aspect ratio within 2%;
    more frames than needed are subsampled evenly), refuse otherwise with a clear error."""
    v = np.asarray(video)
    if v.ndim != 4 or v.shape[-1] != 3:
        raise CinetuneError(f"{name}: expected (F,H,W,3) frames, got {v.shape}")
    F, H, W = v.shape[:3]
    if F < frames:
        raise CinetuneError(f"{name} has {F} frames; the generation needs {frames} (give at least that many)")
    if F > frames:
        v = v[np.round(np.linspace(0, F - 1, frames)).astype(int)]
    if (H, W) != (height, width):
        if abs(W / H - width / height) > 0.02 * (width / height):
            raise CinetuneError(f"{name} is {W}x{H}; the generation is {width}x{height} (a different aspect ratio: "
                                "crop it first)")
        interp = cv2.INTER_NEAREST if kind in LABEL_KINDS else (cv2.INTER_AREA if H > height else cv2.INTER_LINEAR)
        v = np.stack([cv2.resize(f, (width, height), interpolation=interp) for f in v])
    return np.ascontiguousarray(v.astype(np.uint8))


class AdaptedPipeline:
    """pipe(prompt, controls={"depth": video, ...}, control_scale=1.0, control_start=0.0, control_end=1.0, ...)

    `adapters`: one saved model of any registered method (core.AdapterModel) or a list of them; all are attached to
    the backbone for the call and removed after it. They act on denoising steps whose fraction i/steps lies in
    [control_start, control_end) (the ControlNet "guidance start/end" knobs), on both classifier-free-guidance
    branches."""

    def __init__(self, base: TextToVideoPipeline, adapters):
        from ..core import AdapterModel

        self.adapters = list(adapters) if isinstance(adapters, (list, tuple)) else [adapters]
        bad = [type(a).__name__ for a in self.adapters if not isinstance(a, AdapterModel)]
        if bad or not self.adapters:
            raise CinetuneError(f"adapters must be saved models of a registered method, got {bad or 'none'}")
        self.base = base

    @property
    def backbone(self):
        return self.base.backbone

    @torch.no_grad()
    def __call__(self, prompt=None, *, controls: dict[str, np.ndarray], control_scale: float = 1.0,
                 control_start: float = 0.0, control_end: float = 1.0, frames: int | None = None,
                 height: int | None = None, width: int | None = None, steps: int = 30, **kwargs) -> VideoOutput:
        if not 0.0 <= control_start < control_end <= 1.0:
            raise CinetuneError(f"need 0 <= control_start < control_end <= 1, got {control_start}, {control_end}")
        p = self.backbone.preset
        frames, height, width = frames or p.frames, height or p.height, width or p.width
        self.base.check_size(frames, height, width)
        fitted = {k: fit_condition(v, frames, height, width, k, f"{k} condition") for k, v in controls.items()}
        view = self.backbone.view
        attached = []
        try:
            for a in self.adapters:
                attached.append(a.attach(self.backbone))
                attached[-1].prepare(fitted)

            def model_fn(x, t, e, i):
                on = control_start <= i / steps < control_end
                for att in attached:
                    att.before_step(x, t, e, control_scale if on else 0.0)
                return view(x, t, e)

            return self.base(prompt, frames=frames, height=height, width=width, steps=steps, model_fn=model_fn, **kwargs)
        finally:
            for att in reversed(attached):
                att.remove()


ControlledPipeline = AdaptedPipeline  # the name before methods other than control existed
