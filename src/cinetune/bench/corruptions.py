"""Controlled corruptions of toy clips for metric validation: each takes (F,H,W,3) uint8 and a level in [0, 1]
(0 = untouched) and is deterministic given its seed."""

from __future__ import annotations

import cv2
import numpy as np


def blur(video: np.ndarray, level: float, seed: int = 0) -> np.ndarray:
    """Gaussian blur, sigma = 2.5 * level pixels."""
    if level <= 0:
        return video.copy()
    return np.stack([cv2.GaussianBlur(f, (0, 0), 2.5 * level) for f in video])


def noise(video: np.ndarray, level: float, seed: int = 0) -> np.ndarray:
    """Additive Gaussian noise, std = 40 * level grey levels."""
    rng = np.random.default_rng(seed)
    return np.clip(video + rng.normal(0, 40 * level, video.shape), 0, 255).astype(np.uint8)


def shuffle_frames(video: np.ndarray, level: float, seed: int = 0) -> np.ndarray:
    """Permute a random fraction `level` of the frames among themselves."""
    rng = np.random.default_rng(seed)
    F = len(video)
    k = int(round(level * F))
    idx = np.arange(F)
    if k >= 2:
        pick = rng.choice(F, k, replace=False)
        perm = pick.copy()
        while np.array_equal(perm, pick):
            perm = rng.permutation(pick)
        idx[pick] = perm
    return video[idx]


def colour_shift(video: np.ndarray, level: float, seed: int = 0) -> np.ndarray:
    """Hue rotation by 60 * level degrees (OpenCV hue units are 2 degrees)."""
    if level <= 0:
        return video.copy()  # the HSV round trip alone moves some pixels by one grey level
    hsv = cv2.cvtColor(video.reshape(-1, video.shape[2], 3), cv2.COLOR_RGB2HSV)
    hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + int(round(30 * level))) % 180).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).reshape(video.shape)


def freeze(video: np.ndarray, level: float, seed: int = 0) -> np.ndarray:
    """Freeze the last fraction `level` of the clip on the frame before it."""
    F = len(video)
    start = F - int(round(level * (F - 1)))
    out = video.copy()
    if start < F:
        out[start:] = video[start - 1]
    return out


def saturate(video: np.ndarray, level: float, seed: int = 0) -> np.ndarray:
    """Multiply HSV saturation by 1 + 2 * level (the oversaturation of high-guidance samplers)."""
    if level <= 0:
        return video.copy()
    hsv = cv2.cvtColor(video.reshape(-1, video.shape[2], 3), cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 1] = np.clip(hsv[..., 1] * (1 + 2 * level), 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).reshape(video.shape)


CORRUPTIONS = {"blur": blur, "noise": noise, "shuffle": shuffle_frames, "colour shift": colour_shift,
               "freeze": freeze, "saturate": saturate}


def _isolated_object(clip, t: int) -> int:
    """Index of the object that is most clearly a lone instance at frame t (largest visible area among objects that
    touch neither the frame border nor another instance); -1 if none qualifies (an object overlapping another forms
    one connected region with it, so its vanishing is not an instance event a segmentation can show)."""
    import cv2

    inst = clip.instance[t]
    best, best_area = -1, 0
    for j in range(len(clip.spec.objects)):
        m = inst == j + 1
        area = int(m.sum())
        if not area or m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any():
            continue
        ring = cv2.dilate(m.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~m
        if (inst[ring] != 0).any():
            continue
        if area > best_area:
            best, best_area = j, area
    return best


def inject_instance_event(spec, cfg, event: str, start: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """Render `spec` with an injected event from frame `start` on an object standing alone there (see
    `_isolated_object`; default: the first such frame from mid-clip on, else before it): "vanish" removes it; "split"
    cuts it in two with a vertical band of what lies behind it. Returns (video (F,H,W,3) uint8, exact class labels
    (F,H,W) of that video), or None when no object ever stands alone."""
    from dataclasses import replace

    from ..toyworld import render

    if event not in ("vanish", "split"):
        raise ValueError(f"unknown event {event!r}")
    clip = render(spec, cfg)
    F = len(clip.video)
    # the first frame from mid-clip on (then before it) where some object stands alone in that frame and the previous
    starts = [start] if start is not None else list(range(F // 2, F - 1)) + list(range(F // 2 - 1, 1, -1))
    for start in starts:
        j = _isolated_object(clip, start)
        if j >= 0 and _isolated_object(clip, start - 1) == j:
            break
    else:
        return None
    behind = render(replace(spec, objects=[o for k, o in enumerate(spec.objects) if k != j]), cfg)
    video, labels = clip.video.copy(), clip.classes.copy()
    for t in range(start, F):
        mask = clip.instance[t] == j + 1
        if event == "split":
            xs = np.nonzero(mask)[1]
            if not len(xs):
                continue
            cx, w = xs.mean(), xs.max() - xs.min() + 1
            mask = mask & (np.abs(np.arange(mask.shape[1])[None, :] + 0.5 - cx) < max(1.5, 0.15 * w))
        video[t][mask] = behind.video[t][mask]
        labels[t][mask] = behind.classes[t][mask]
    return video, labels
