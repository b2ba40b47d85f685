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
    def __call__(self, prompt=None, *, controls: dict[str, np.ndarray] | None = None, control_scale: float = 1.0,
                 control_start: float = 0.0, control_end: float = 1.0, frames: int | None = None,
                 height: int | None = None, width: int | None = None, steps: int | None = None,
                 interpolate: bool = False, identities=None, **kwargs) -> VideoOutput:
        """An attached distilled student (an attachment with a `sampler`) samples in its few steps; `steps` defaults
        to its own (else 30). `identities`: reference images (H, W, 3) uint8, one per person (or aligned faces
        (K, 3, crop, crop)), for the adapters that take references (Ingredients)."""
        if not 0.0 <= control_start < control_end <= 1.0:
            raise CinetuneError(f"need 0 <= control_start < control_end <= 1, got {control_start}, {control_end}")
        p = self.backbone.preset
        frames, height, width = frames or p.frames, height or p.height, width or p.width
        self.base.check_size(frames, height, width)
        fitted = {k: fit_condition(v, frames, height, width, k, f"{k} condition") for k, v in (controls or {}).items()}
        view = self.backbone.view
        attached = []
        try:
            # a model that replaces the base weights (a distilled student) goes first: the others' deltas and hooks
            # then act on the weights it checks for and writes
            for a in sorted(self.adapters, key=lambda a: not getattr(a, "attach_first", False)):
                attached.append(a.attach(self.backbone))
                attached[-1].prepare({**fitted, **self._references(a, identities, prompt, kwargs, height, width)})
            samplers = [att.sampler for att in attached if getattr(att, "sampler", None) is not None]
            if len(samplers) > 1:
                raise CinetuneError("more than one distilled student attached: use one")
            sampler = samplers[0] if samplers else None
            if interpolate and fitted:
                raise CinetuneError("frame interpolation runs the first steps at half the frame rate, which condition "
                                    "videos do not have: generate with controls without --interpolate")
            n = steps or (len(sampler.sigmas()) if sampler else 30)

            def model_fn(x, t, e, i):
                on = control_start <= i / n < control_end
                for att in attached:
                    att.before_step(x, t, e, control_scale if on else 0.0)
                return view(x, t, e)

            return self.base(prompt, frames=frames, height=height, width=width, steps=n, model_fn=model_fn,
                             sampler=sampler, interpolate=interpolate, **kwargs)
        finally:
            for att in reversed(attached):
                att.remove()


    def _references(self, adapter, identities, prompt, kwargs: dict, height: int, width: int) -> dict:
        """The reference conditions of an adapter that takes them (`references`), for every prompt of the call."""
        if not hasattr(adapter, "references"):
            return {}
        if identities is None:
            raise CinetuneError(f"the {adapter.method} model needs reference faces (identities=..., --identity IMAGE)")
        faces = identities if torch.is_tensor(identities) else adapter.faces(identities)
        B = kwargs["prompt_embeds"].shape[0] if kwargs.get("prompt_embeds") is not None else \
            (1 if isinstance(prompt, str) else len(prompt))
        return adapter.references(self.backbone, faces[None].expand(B, *faces.shape), height, width)


ControlledPipeline = AdaptedPipeline  # the name before methods other than control existed
