"""Adapted text-to-video: the text-to-video sampler with any number of attached adapters (any registered method),
applied together inside a guidance window."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from ..errors import CinetuneError
from .control_schedule import ControlSchedule, Value, split_weights
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

    With several prompts, each condition is one video for all of them or one per prompt (a list, or (B,F,H,W,3)),
    and `identities` one set of reference images for all or a list of sets, one per prompt.

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
    def __call__(self, prompt=None, *, controls: dict[str, np.ndarray] | None = None, control_scale: Value = 1.0,
                 control_start: Value = 0.0, control_end: Value = 1.0, frames: int | None = None,
                 height: int | None = None, width: int | None = None, steps: int | None = None,
                 interpolate: bool = False, identities=None, **kwargs) -> VideoOutput:
        """An attached distilled student (an attachment with a `sampler`) samples in its few steps; `steps` defaults
        to its own (else 30). `identities`: reference images (H, W, 3) uint8, one per person (or aligned faces
        (K, 3, crop, crop)), for the adapters that take references (Ingredients); or a list of such sets, one per
        prompt. `controls`: {kind: (F,H,W,3) video for every prompt, or one per prompt}. `control_scale`, `control_start`,
        `control_end`: one number for every condition, or {kind: value} per condition (`ControlSchedule`); adapters
        that take no conditions follow the plain numbers."""
        plain = {k: (v if not isinstance(v, dict) else d) for k, v, d in
                 (("scale", control_scale, 1.0), ("start", control_start, 0.0), ("end", control_end, 1.0))}
        if not 0.0 <= plain["start"] < plain["end"] <= 1.0:
            raise CinetuneError(f"need 0 <= control_start < control_end <= 1, got {plain['start']}, {plain['end']}")
        schedule = ControlSchedule.of(list(controls or {}), control_scale, control_start, control_end)
        p = self.backbone.preset
        frames, height, width = frames or p.frames, height or p.height, width or p.width
        self.base.check_size(frames, height, width)
        B = _batch_size(prompt, kwargs.get("prompt_embeds"))
        fitted = {k: _fit_for_batch(v, B, frames, height, width, k) for k, v in (controls or {}).items()}
        view = self.backbone.view
        attached, order = [], sorted(self.adapters, key=lambda a: not getattr(a, "attach_first", False))
        try:
            # a model that replaces the base weights (a distilled student) goes first: the others' deltas and hooks
            # then act on the weights it checks for and writes
            for a in order:
                attached.append(a.attach(self.backbone))
                attached[-1].prepare({**fitted, **self._references(a, identities, B, height, width)})
            steer = _StepScales(order, attached, schedule, plain)
            samplers = [att.sampler for att in attached if getattr(att, "sampler", None) is not None]
            if len(samplers) > 1:
                raise CinetuneError("more than one distilled student attached: use one")
            sampler = samplers[0] if samplers else None
            if interpolate and fitted:
                raise CinetuneError("frame interpolation runs the first steps at half the frame rate, which condition "
                                    "videos do not have: generate with controls without --interpolate")
            n = steps or (len(sampler.sigmas()) if sampler else 30)

            def model_fn(x, t, e, i):
                for att, scale in zip(attached, steer(i / n)):
                    att.before_step(x, t, e, scale)
                return view(x, t, e)

            return self.base(prompt, frames=frames, height=height, width=width, steps=n, model_fn=model_fn,
                             sampler=sampler, interpolate=interpolate, **kwargs)
        finally:
            for att in reversed(attached):
                att.remove()


    def _references(self, adapter, identities, B: int, height: int, width: int) -> dict:
        """The reference conditions of an adapter that takes them (`references`): one set of people for every
        prompt of the call, or one set per prompt (each with the same number of people)."""
        if not hasattr(adapter, "references"):
            return {}
        if identities is None:
            raise CinetuneError(f"the {adapter.method} model needs reference faces (identities=..., --identity IMAGE)")
        if torch.is_tensor(identities):  # aligned faces: (K, 3, crop, crop) for all, or (B, K, 3, crop, crop)
            faces = identities if identities.ndim == 5 else identities[None].expand(B, *identities.shape)
        elif isinstance(identities, (list, tuple)) and identities and isinstance(identities[0], (list, tuple)):
            if len(identities) != B:
                raise CinetuneError(f"identities: {len(identities)} sets of reference images for {B} prompts")
            if len({len(s) for s in identities}) > 1:
                raise CinetuneError("identities: every prompt of one call needs the same number of people, got "
                                    f"{[len(s) for s in identities]} (generate the others in another call)")
            faces = torch.stack([adapter.faces(list(s)) for s in identities])
        else:
            one = adapter.faces(identities)
            faces = one[None].expand(B, *one.shape)
        if faces.shape[0] != B:
            raise CinetuneError(f"identities: faces for {faces.shape[0]} prompts, the call has {B}")
        return adapter.references(self.backbone, faces, height, width)


def _batch_size(prompt, prompt_embeds) -> int:
    if prompt_embeds is not None:
        return prompt_embeds.shape[0]
    return 1 if prompt is None or isinstance(prompt, str) else len(prompt)


def _fit_for_batch(video, B: int, frames: int, height: int, width: int, kind: str) -> np.ndarray:
    """One condition video for every prompt ((F,H,W,3)) or one per prompt ((B,F,H,W,3) or a list of B videos) ->
    (F,H,W,3) or (B,F,H,W,3) fitted to the generation (`fit_condition`)."""
    name = f"{kind} condition"
    if isinstance(video, (list, tuple)) or (isinstance(video, np.ndarray) and video.ndim == 5):
        if len(video) != B:
            raise CinetuneError(f"{name}: {len(video)} videos for {B} prompts (give one, or one per prompt)")
        return np.stack([fit_condition(v, frames, height, width, kind, f"{name} {i}") for i, v in enumerate(video)])
    return fit_condition(video, frames, height, width, kind, name)


class _StepScales:
    """Each attachment's strength at a point of sampling. An adapter that takes conditions follows the schedule of
    the kinds it takes: the strongest kind's weight as its scale, the others' shares of it set on its inputs
    (`set_condition_weights`, only when they change) - or, for a method that takes its conditions together, one
    scale and window for all of them, else an error. The others follow the plain scale and window."""

    def __init__(self, models: list, attached: list, schedule: ControlSchedule, plain: dict):
        self.attached, self.schedule, self.plain = attached, schedule, plain
        self.kinds = [[k for k in getattr(m, "kinds", []) if k in schedule.scale] for m in models]
        self.shares: dict[int, dict] = {}
        for m, att, kinds in zip(models, attached, self.kinds):
            if not hasattr(att, "set_condition_weights") and not schedule.uniform(kinds):
                raise CinetuneError(f"{m.method} takes its conditions together: give one control scale and window "
                                    f"for {', '.join(kinds)}")

    def __call__(self, fraction: float) -> list[float]:
        out, w = [], self.schedule.weights(fraction)
        for i, (att, kinds) in enumerate(zip(self.attached, self.kinds)):
            if not kinds:
                p = self.plain
                out.append(p["scale"] if p["start"] <= fraction < p["end"] else 0.0)
                continue
            top, shares = split_weights({k: w[k] for k in kinds})
            if hasattr(att, "set_condition_weights") and self.shares.get(i, dict.fromkeys(kinds, 1.0)) != shares \
                    and top != 0.0:
                att.set_condition_weights(shares)
                self.shares[i] = shares
            out.append(top)
        return out


ControlledPipeline = AdaptedPipeline  # the name before methods other than control existed
