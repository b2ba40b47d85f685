"""Vectorised toy-world renderer: a SceneSpec -> RGB clip plus exact per-frame annotations."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .roster import (BACKGROUND_COLOURS, BODY_LIMBS, CLASS_ID, COLOURS, EYE_COLOURS, HAIR_COLOURS, IDENTITIES, LIMB_COLOURS,
                     LIMBS, SIZES, SKIN_TONES)
from .scene import ActorSpec, ObjectSpec, RenderConfig, SceneSpec

_TROUSERS = np.array((45, 45, 80), np.float32)
_HAT = np.array((120, 20, 30), np.float32)
_BOW = np.array((250, 60, 140), np.float32)
_GLASSES = np.array((10, 10, 10), np.float32)
_MOUTH = np.array((150, 30, 40), np.float32)


@dataclass
class Clip:
    """One rendered clip. F frames of H x W; A actors.

    video (F,H,W,3) uint8; depth (F,H,W) float32 in [0,1] (0 = near); instance (F,H,W) uint8 (0 = background,
    objects then actors from 1); classes (F,H,W) uint8 (roster.CLASSES); edges (F,H,W) uint8 {0,255}: boundaries of
    the visible instance/class regions; keypoints (F,A,18,3) float32 OpenPose-18 (x, y, visible) in pixels;
    skeleton (F,H,W,3) uint8 OpenPose-style rendering; face_boxes (F,A,4) float32 x0,y0,x1,y1 of visible face pixels
    (-1 when hidden); face_masks (F,H,W) uint8 (0 = none, a+1 = actor a's face); identities: roster index per actor.
    """

    video: np.ndarray
    depth: np.ndarray
    instance: np.ndarray
    classes: np.ndarray
    edges: np.ndarray
    keypoints: np.ndarray
    skeleton: np.ndarray
    face_boxes: np.ndarray
    face_masks: np.ndarray
    identities: list[int]
    spec: SceneSpec


@dataclass
class _Layer:
    mask: np.ndarray  # (F,H,W) bool
    colour: np.ndarray  # (F,H,W,3) or (3,) float32
    depth: float
    instance: int
    cls: int
    face: int = 0  # actor index + 1 for face layers


class _Grid:
    """Pixel-centre coordinates and per-frame times shared by all layers."""

    def __init__(self, cfg: RenderConfig):
        self.F, self.H, self.W = cfg.frames, cfg.height, cfg.width
        self.unit = float(min(self.H, self.W))
        self.t = np.arange(self.F, dtype=np.float32) / cfg.fps  # seconds
        self.tc = self.t - self.t[-1] / 2  # centred on mid-clip
        self.x = np.arange(self.W, dtype=np.float32) + 0.5
        self.y = np.arange(self.H, dtype=np.float32) + 0.5


def _background(spec: SceneSpec, g: _Grid, pan_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    bg = spec.background
    c1 = np.array(BACKGROUND_COLOURS[bg.colour], np.float32)
    c2 = np.array(BACKGROUND_COLOURS[bg.colour2], np.float32)
    wx = g.x[None, None, :] + pan_px[:, None, None]  # world x (F,1,W)
    yy = g.y[None, :, None]
    period = g.unit / 4
    if bg.kind == "flat":
        a = np.zeros((1, 1, 1), np.float32)
    elif bg.kind == "gradient":
        a = yy / g.H
    elif bg.kind == "stripes":
        a = 0.5 * ((np.floor(wx / period) % 2) == 0).astype(np.float32)  # half contrast keeps objects salient
    else:  # checker
        a = 0.5 * (((np.floor(wx / period) + np.floor(yy / period)) % 2) == 0).astype(np.float32)
    a = np.broadcast_to(a, (g.F, g.H, g.W))
    img = c1 + (c2 - c1) * a[..., None]
    # A ground plane: the top of the frame is farthest.
    depth = np.broadcast_to(1.0 - 0.1 * (g.y / g.H)[None, :, None], (g.F, g.H, g.W))
    return img.astype(np.float32), depth.astype(np.float32)


def _object_track(o: ObjectSpec, g: _Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame centre (px), radius (px) and angle (rad) of an object."""
    F = g.F
    x = np.full(F, o.x * g.W, np.float32)
    y = np.full(F, o.y * g.H, np.float32)
    r = np.full(F, SIZES[o.size] * g.unit, np.float32)
    ang = np.full(F, o.phase, np.float32)
    speed = 0.2  # frame widths (heights) per second
    if o.motion == "left":
        x = x - speed * g.W * g.tc
    elif o.motion == "right":
        x = x + speed * g.W * g.tc
    elif o.motion == "up":
        y = y - speed * g.H * g.tc
    elif o.motion == "down":
        y = y + speed * g.H * g.tc
    elif o.motion == "bounce":
        y = y + (0.1 - 0.25 * np.abs(np.sin(2 * np.pi * 0.6 * g.t))) * g.H
    elif o.motion == "orbit":
        w = o.phase + 2 * np.pi * 0.4 * g.t
        x = x + 0.18 * g.W * np.cos(w)
        y = y + 0.18 * g.H * np.sin(w)
    elif o.motion == "grow":
        r = r * np.exp(0.25 * g.tc)
    elif o.motion == "shrink":
        r = r * np.exp(-0.25 * g.tc)
    elif o.motion == "rotate":
        ang = ang + 2 * np.pi * 0.35 * g.t
    return x, y, r, ang


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside test in local coordinates normalised by the radius (v points down)."""
    if shape == "circle":
        return u * u + v * v < 1.0
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) < 0.85
    if shape == "heart":  # (x^2 + y^2 - 1)^3 < x^2 y^3, y up, point at the bottom
        x, y = 1.15 * u, -1.15 * v + 0.15
        return (x * x + y * y - 1) ** 3 < x * x * y ** 3
    if shape == "ring":
        rho2 = u * u + v * v
        return (rho2 < 1.0) & (rho2 > 0.5 ** 2)
    if shape == "triangle":
        u, v = u / 1.15, v / 1.15 - 0.15
        return (v < 0.5) & (-0.866 * u - 0.5 * v < 0.5) & (0.866 * u - 0.5 * v < 0.5)
    if shape == "star":
        rho = np.sqrt(u * u + v * v)
        th = np.arctan2(u, -v)
        return rho < 0.45 + 0.6 * ((1 + np.cos(5 * th)) / 2) ** 2
    if shape == "cross":
        au, av = np.abs(u), np.abs(v)
        return (np.minimum(au, av) < 0.32) & (np.maximum(au, av) < 1.0)
    raise ValueError(f"unknown shape {shape!r}")


def _object_layer(o: ObjectSpec, g: _Grid, pan_px: np.ndarray, inst: int) -> _Layer:
    x, y, r, ang = _object_track(o, g)
    x = x - pan_px
    dx = g.x[None, None, :] - x[:, None, None]
    dy = g.y[None, :, None] - y[:, None, None]
    c, s = np.cos(ang)[:, None, None], np.sin(ang)[:, None, None]
    rr = r[:, None, None]
    u = (c * dx + s * dy) / rr
    v = (-s * dx + c * dy) / rr
    mask = _shape_mask(o.shape, u, v)
    return _Layer(mask, np.array(COLOURS[o.colour], np.float32), o.depth, inst, CLASS_ID[o.shape])


# Stick figure in body-height units, hip centre at the origin, y down.
_UPPER_ARM, _FOREARM, _THIGH, _SHIN = 0.16, 0.15, 0.23, 0.22
_HEAD_R = 0.12


def _limb(start: np.ndarray, angle: np.ndarray, length: float) -> np.ndarray:
    """End point of a limb leaving `start` (F,2) at `angle` from straight down (positive: towards image right)."""
    return start + length * np.stack([np.sin(angle), np.cos(angle)], -1)


def actor_keypoints(a: ActorSpec, g: _Grid, pan_px: np.ndarray) -> np.ndarray:
    """(F,18,2) keypoints in pixels, OpenPose-18 order (person's right = image left, facing the camera)."""
    kp = _portrait_keypoints(a, g) if a.framing == "portrait" else _figure_keypoints(a, g)
    kp[..., 0] += a.x * g.W - pan_px[:, None]
    kp[..., 1] += a.y * g.H
    return kp


def _figure_keypoints(a: ActorSpec, g: _Grid) -> np.ndarray:
    """Stick figure keypoints (F,18,2) in pixels around the hip centre."""
    F, t = g.F, g.t
    bh = a.scale * g.unit
    zero = np.zeros(F, np.float32)
    hip = np.stack([zero, zero], -1)
    arm_r, arm_l = zero - 0.25, zero + 0.25  # image-left arm hangs outward to the left
    fore_r, fore_l = arm_r, arm_l
    leg_r, leg_l = zero - 0.08, zero + 0.08
    knee_r, knee_l = zero, zero
    dx, dy = zero.copy(), zero.copy()
    if a.action == "walk":
        ph = 2 * np.pi * 1.5 * t
        leg_r, leg_l = 0.45 * np.sin(ph), -0.45 * np.sin(ph)
        knee_r = np.maximum(0, -np.sin(ph)) * 0.5
        knee_l = np.maximum(0, np.sin(ph)) * 0.5
        arm_r, arm_l = -0.4 * np.sin(ph), 0.4 * np.sin(ph)
        fore_r, fore_l = arm_r + 0.3 * a.facing, arm_l + 0.3 * a.facing
        dx = a.facing * 0.15 * (g.W / bh) * g.tc
    elif a.action == "wave":
        arm_r = zero - 2.4  # upper arm raised up and out
        fore_r = np.pi + 0.5 * np.sin(2 * np.pi * 2.0 * t)  # forearm points up, swinging
    elif a.action == "jump":
        air = np.abs(np.sin(np.pi * 1.0 * t))
        dy = -0.3 * air
        arm_r, arm_l = -0.4 - 2.0 * air, 0.4 + 2.0 * air
        fore_r, fore_l = arm_r, arm_l
        knee_r, knee_l = 0.6 * (1 - air), -0.6 * (1 - air)
        leg_r, leg_l = -0.3 * (1 - air) - 0.05, 0.3 * (1 - air) + 0.05
    kp = np.zeros((F, 18, 2), np.float32)
    neck = hip + np.array([0.0, -0.42], np.float32)
    kp[:, 1] = neck
    kp[:, 2] = neck + np.array([-0.1, 0.02])
    kp[:, 5] = neck + np.array([0.1, 0.02])
    kp[:, 3] = _limb(kp[:, 2], arm_r, _UPPER_ARM)
    kp[:, 4] = _limb(kp[:, 3], fore_r, _FOREARM)
    kp[:, 6] = _limb(kp[:, 5], arm_l, _UPPER_ARM)
    kp[:, 7] = _limb(kp[:, 6], fore_l, _FOREARM)
    kp[:, 8] = hip + np.array([-0.06, 0.0])
    kp[:, 11] = hip + np.array([0.06, 0.0])
    kp[:, 9] = _limb(kp[:, 8], leg_r, _THIGH)
    kp[:, 10] = _limb(kp[:, 9], leg_r - knee_r, _SHIN)
    kp[:, 12] = _limb(kp[:, 11], leg_l, _THIGH)
    kp[:, 13] = _limb(kp[:, 12], leg_l - knee_l, _SHIN)
    kp[:, 0] = neck + np.array([0.0, -_HEAD_R - 0.02], np.float32)
    _face_keypoints(kp, _HEAD_R, zero, zero)
    kp[..., 0] += dx[:, None]
    kp[..., 1] += dy[:, None]
    return kp * bh


def _face_keypoints(kp: np.ndarray, hr: float, du: np.ndarray, dv: np.ndarray) -> None:
    """Eyes and ears around the nose keypoint kp[:, 0], in place; head radius `hr`, features shifted by (du, dv)
    head radii (a turned or nodding head)."""
    head = kp[:, 0].copy()
    shift = np.stack([du, dv], -1) * hr
    for k, (x, y) in zip((14, 15, 16, 17), ((-0.4, -0.05), (0.4, -0.05), (-0.95, 0.0), (0.95, 0.0))):
        kp[:, k] = head + np.array([x, y], np.float32) * hr + shift * (0.3 if k >= 16 else 1.0)
    kp[:, 0] = head + shift + np.array([0.0, 0.2 * hr], np.float32)


# Portrait body in head radii around the head centre (y down); joints below the frame come out invisible.
_PORTRAIT_JOINTS = {1: (0.0, 1.45), 2: (-1.6, 1.95), 5: (1.6, 1.95), 3: (-1.9, 3.7), 6: (1.9, 3.7), 4: (-1.7, 5.3),
                    7: (1.7, 5.3), 8: (-0.8, 5.4), 11: (0.8, 5.4), 9: (-0.8, 7.6), 12: (0.8, 7.6), 10: (-0.8, 9.8),
                    13: (0.8, 9.8)}


def _portrait_motion(a: ActorSpec, g: _Grid) -> tuple[np.ndarray, ...]:
    """Per-frame (dx px, head dy in head radii, feature shift du in head radii, mouth opening 0..1)."""
    zero = np.zeros(g.F, np.float32)
    dx, dy, du, mouth = zero, zero, zero, zero
    if a.action == "walk past":
        dx = a.facing * 0.3 * g.W * g.tc
    elif a.action == "nod":
        dy = 0.18 * np.sin(2 * np.pi * 1.2 * g.t)
    elif a.action == "turn":
        du = a.facing * 0.45 * np.sin(2 * np.pi * 0.45 * g.t)
    elif a.action == "talk":
        mouth = 0.5 - 0.5 * np.cos(2 * np.pi * 2.5 * g.t)
    return dx.astype(np.float32), dy.astype(np.float32), du.astype(np.float32), mouth.astype(np.float32)


def _portrait_keypoints(a: ActorSpec, g: _Grid) -> np.ndarray:
    hr = a.scale * g.unit
    dx, dy, du, _ = _portrait_motion(a, g)
    kp = np.zeros((g.F, 18, 2), np.float32)
    for k, (x, y) in _PORTRAIT_JOINTS.items():
        kp[:, k] = np.array([x, y], np.float32) * hr
    kp[:, 0, 1] = dy * hr  # the head centre
    _face_keypoints(kp, hr, du, dy * 0)
    kp[..., 0] += dx[:, None]
    return kp


def _segment_dist(p: np.ndarray, q: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Distance from each pixel to segments p->q. p, q: (F,L,2) -> (F,L,h,w)."""
    d = (q - p)[..., None, None, :]  # (F,L,1,1,2)
    px = xs[None, None, None, :] - p[..., 0, None, None]
    py = ys[None, None, :, None] - p[..., 1, None, None]
    dd = (d[..., 0] ** 2 + d[..., 1] ** 2) + 1e-9
    h = np.clip((px * d[..., 0] + py * d[..., 1]) / dd, 0.0, 1.0)
    return np.sqrt((px - h * d[..., 0]) ** 2 + (py - h * d[..., 1]) ** 2)


def _head(ident, u: np.ndarray, v: np.ndarray, du: np.ndarray, mouth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Head mask (F,h,w) and colours (F,h,w,3) in head-radius coordinates (u, v) around the head centre; the eyes,
    mouth and glasses move with the feature shift du (F,1,1) (a turning head), the hair and hat do not."""
    skin = np.array(SKIN_TONES[ident.skin], np.float32)
    rho2 = u * u + v * v
    head = rho2 < 1.0
    fc = np.zeros(head.shape + (3,), np.float32)
    fc[head] = skin
    style = ident.hair_style
    if style != "bald":
        cap = (rho2 < 1.25 ** 2) & (v < -0.35)
        if style == "long":
            cap |= (rho2 < 1.25 ** 2) & (np.abs(u) > 0.7) & (v < 0.9)
        if style == "spiky":
            cap |= (v < -0.3) & (v > -1.7) & (np.abs(u) < 1.0) & (-v - 0.9 < 0.8 * np.abs(np.cos(2.5 * np.pi * u)))
        fc[cap] = HAIR_COLOURS[ident.hair_colour]
        head |= cap
    uf = u - du
    eyes = ((np.abs(uf) - 0.4) ** 2 + (v + 0.05) ** 2) < 0.28 ** 2
    if ident.accessory == "glasses":
        fc[(np.abs(v + 0.05) < 0.3) & (np.abs(uf) < 0.95) & head] = _GLASSES
    fc[eyes & head] = EYE_COLOURS[ident.eyes]
    lips = (np.abs(uf) < 0.32) & (np.abs(v - 0.5) < 0.07 + 0.16 * mouth) & head
    fc[lips] = _MOUTH
    if ident.accessory == "hat":
        hat = ((v < -0.75) & (v > -1.9) & (np.abs(u) < 0.8)) | ((v < -0.75) & (v > -1.05) & (np.abs(u) < 1.4))
        fc[hat] = _HAT
        head |= hat
    elif ident.accessory == "bow":
        bow = ((np.abs(u - 0.75) < 0.55) & (np.abs(v + 0.95) < 0.35 * (0.3 + np.abs(u - 0.75) / 0.55)))
        fc[bow] = _BOW
        head |= bow
    return head, fc


def _box(kp: np.ndarray, margin: float, g: _Grid) -> tuple[int, int, int, int]:
    x0 = int(max(0, np.floor(kp[..., 0].min() - margin)))
    x1 = int(min(g.W, np.ceil(kp[..., 0].max() + margin)))
    y0 = int(max(0, np.floor(kp[..., 1].min() - margin)))
    y1 = int(min(g.H, np.ceil(kp[..., 1].max() + margin)))
    return x0, x1, y0, y1


def _figure_body(ident, kp: np.ndarray, bh: float, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stick figure body mask and colours: limbs >= 3 px thick at the toy size, so they survive the toy VAE."""
    lim = np.array([LIMBS[i] for i in BODY_LIMBS])
    dist = _segment_dist(kp[:, lim[:, 0]], kp[:, lim[:, 1]], xs, ys)  # (F,12,h,w)
    shirt = np.array(COLOURS[ident.shirt], np.float32)
    skin = np.array(SKIN_TONES[ident.skin], np.float32)
    # Part colours by limb: shoulders/upper arms/torso in the shirt, forearms skin, legs trousers.
    limb_colour = [shirt, shirt, shirt, skin, shirt, skin, shirt, _TROUSERS, _TROUSERS, shirt, _TROUSERS, _TROUSERS]
    on = dist < 0.045 * bh + 0.6
    mid_hip = (kp[:, 8] + kp[:, 11]) / 2
    torso = _segment_dist(kp[:, None, 1], mid_hip[:, None], xs, ys)[:, 0] < 0.1 * bh + 0.5
    col = np.zeros(on.shape[:1] + on.shape[2:] + (3,), np.float32)
    for li in range(len(BODY_LIMBS) - 1, -1, -1):
        col[on[:, li]] = limb_colour[li]
    col[torso] = shirt
    return on.any(1) | torso, col


def _portrait_body(ident, kp: np.ndarray, hr: float, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shoulders, upper arms and chest in the shirt colour, and the neck in skin."""
    seg = lambda i, j: _segment_dist(kp[:, None, i], kp[:, None, j], xs, ys)[:, 0]  # noqa: E731
    mid_hip = (kp[:, 8] + kp[:, 11]) / 2
    chest = _segment_dist(kp[:, None, 1], mid_hip[:, None], xs, ys)[:, 0] < 1.35 * hr
    shirt = chest | (seg(2, 5) < 0.5 * hr) | (seg(2, 3) < 0.5 * hr) | (seg(5, 6) < 0.5 * hr)
    head_centre = kp[:, 0] - np.array([0.0, 0.2 * hr], np.float32)
    neck = _segment_dist(head_centre[:, None], kp[:, None, 1], xs, ys)[:, 0] < 0.38 * hr
    col = np.zeros(shirt.shape + (3,), np.float32)
    col[shirt] = COLOURS[ident.shirt]
    col[neck] = SKIN_TONES[ident.skin]
    return shirt | neck, col


def _actor_layers(a: ActorSpec, idx: int, kp: np.ndarray, g: _Grid, inst: int) -> tuple[_Layer, _Layer]:
    """Body and face layers of actor `idx` (face slot idx+1)."""
    ident = IDENTITIES[a.identity]
    F, H, W = g.F, g.H, g.W
    portrait = a.framing == "portrait"
    hr = a.scale * g.unit if portrait else _HEAD_R * a.scale * g.unit
    # Work inside the actor's bounding box only: the figure covers a part of the frame.
    x0, x1, y0, y1 = _box(kp, 2.2 * hr + 2, g)
    body = np.zeros((F, H, W), bool)
    face = np.zeros((F, H, W), bool)
    col = np.zeros((F, H, W, 3), np.float32)
    fcol = np.zeros((F, H, W, 3), np.float32)
    if x1 > x0 and y1 > y0:
        xs, ys = g.x[x0:x1], g.y[y0:y1]
        if portrait:
            _, dy, du, mouth = _portrait_motion(a, g)
            centre = kp[:, 0] - np.array([0.0, 0.2 * hr], np.float32) - (du * hr)[:, None] * np.array([1.0, 0.0])
            m, c = _portrait_body(ident, kp, hr, xs, ys)
        else:
            du, mouth = np.zeros(F, np.float32), np.zeros(F, np.float32)
            centre = kp[:, 0] - np.array([0.0, 0.2 * hr], np.float32)
            m, c = _figure_body(ident, kp, a.scale * g.unit, xs, ys)
        body[:, y0:y1, x0:x1], col[:, y0:y1, x0:x1] = m, c
        u = (xs[None, None, :] - centre[:, 0, None, None]) / hr
        v = (ys[None, :, None] - centre[:, 1, None, None]) / hr
        m, c = _head(ident, u, v, du[:, None, None], mouth[:, None, None])
        face[:, y0:y1, x0:x1], fcol[:, y0:y1, x0:x1] = m, c
    return (_Layer(body, col, a.depth, inst, CLASS_ID["person"]),
            _Layer(face, fcol, a.depth - 1e-3, inst, CLASS_ID["face"], face=idx + 1))


def _skeleton_image(kps: list[np.ndarray], g: _Grid, visible: list[np.ndarray] | None = None) -> np.ndarray:
    """OpenPose-style skeleton rendering (F,H,W,3) uint8 of all actors' keypoints (F,18,2); `visible` (F,18) bool
    per actor hides missing keypoints and the limbs touching them (None: draw everything)."""
    img = np.zeros((g.F, g.H, g.W, 3), np.uint8)
    if not kps:
        return img
    lim = np.array(LIMBS)
    colours = np.array(LIMB_COLOURS, np.uint8)
    width = max(0.7, 0.022 * g.unit)
    for j, kp in enumerate(kps):
        dist = _segment_dist(kp[:, lim[:, 0]], kp[:, lim[:, 1]], g.x, g.y)  # (F,17,H,W)
        on = dist < width
        dots = ((g.x[None, None, None, :] - kp[:, :, 0, None, None]) ** 2
                + (g.y[None, None, :, None] - kp[:, :, 1, None, None]) ** 2) < (1.3 * width) ** 2  # (F,18,H,W)
        if visible is not None:
            v = visible[j]
            on &= (v[:, lim[:, 0]] & v[:, lim[:, 1]])[:, :, None, None]
            dots &= v[:, :, None, None]
        nearest = np.argmin(np.where(on, dist, np.inf), axis=1)
        hit = on.any(1)
        img[hit] = colours[nearest[hit]]
        img[dots.any(1)] = (255, 255, 255)
    return img


def draw_skeleton(keypoints: np.ndarray, height: int, width: int) -> np.ndarray:
    """keypoints (F,A,18,3) (x, y, visible) in pixels -> OpenPose-style skeleton video (F,H,W,3) uint8, drawn as the
    renderer draws its own (so extracted and exact pose conditions look alike)."""
    g = _Grid(RenderConfig(frames=keypoints.shape[0], height=height, width=width))
    kp = np.asarray(keypoints, np.float32)
    return _skeleton_image([kp[:, a, :, :2] for a in range(kp.shape[1])], g,
                           [kp[:, a, :, 2] > 0 for a in range(kp.shape[1])])


def render(spec: SceneSpec, cfg: RenderConfig | None = None) -> Clip:
    """Render a scene. Pure function of (spec, cfg): the same inputs give the same bytes."""
    cfg = (cfg or RenderConfig()).validate()
    g = _Grid(cfg)
    pan_px = (spec.background.pan * g.W * g.t).astype(np.float32)
    img, depth = _background(spec, g, pan_px)
    layers: list[_Layer] = []
    for i, o in enumerate(spec.objects):
        layers.append(_object_layer(o, g, pan_px, inst=i + 1))
    kps = []
    for j, a in enumerate(spec.actors):
        kp = actor_keypoints(a, g, pan_px)
        kps.append(kp)
        layers.extend(_actor_layers(a, j, kp, g, inst=len(spec.objects) + j + 1))
    F, H, W = g.F, g.H, g.W
    instance = np.zeros((F, H, W), np.uint8)
    classes = np.zeros((F, H, W), np.uint8)
    face_masks = np.zeros((F, H, W), np.uint8)
    depth = depth.copy()
    if layers:
        order = sorted(range(len(layers)), key=lambda k: layers[k].depth)  # nearest first
        masks = np.stack([layers[k].mask for k in order])
        vis = np.argmax(masks, axis=0)  # first (nearest) covering layer
        covered = masks.any(0)
        for rank, k in enumerate(order):
            L = layers[k]
            sel = covered & (vis == rank)
            colour = L.colour if L.colour.ndim == 1 else L.colour[sel]
            img[sel] = colour
            depth[sel] = L.depth
            instance[sel] = L.instance
            classes[sel] = L.cls
            if L.face:
                face_masks[sel] = L.face
    label = instance.astype(np.int32) * 16 + classes
    edges = np.zeros((F, H, W), bool)
    edges[:, :, :-1] |= label[:, :, :-1] != label[:, :, 1:]
    edges[:, :-1, :] |= label[:, :-1, :] != label[:, 1:, :]
    A = len(spec.actors)
    keypoints = np.zeros((F, A, 18, 3), np.float32)
    face_boxes = np.full((F, A, 4), -1.0, np.float32)
    for j, kp in enumerate(kps):
        inside = (kp[..., 0] >= 0) & (kp[..., 0] < W) & (kp[..., 1] >= 0) & (kp[..., 1] < H)
        keypoints[:, j, :, :2] = kp
        keypoints[:, j, :, 2] = inside
        fm = face_masks == j + 1
        rows, cols = fm.any(2), fm.any(1)  # (F,H), (F,W)
        has = rows.any(1)
        if has.any():
            ar_h, ar_w = np.arange(H), np.arange(W)
            face_boxes[has, j, 0] = np.where(cols, ar_w, W).min(1)[has]
            face_boxes[has, j, 1] = np.where(rows, ar_h, H).min(1)[has]
            face_boxes[has, j, 2] = np.where(cols, ar_w, -1).max(1)[has] + 1
            face_boxes[has, j, 3] = np.where(rows, ar_h, -1).max(1)[has] + 1
    return Clip(
        video=np.clip(img + 0.5, 0, 255).astype(np.uint8), depth=depth.astype(np.float32), instance=instance,
        classes=classes, edges=edges.astype(np.uint8) * 255, keypoints=keypoints, skeleton=_skeleton_image(kps, g),
        face_boxes=face_boxes, face_masks=face_masks, identities=[a.identity for a in spec.actors], spec=spec,
    )
