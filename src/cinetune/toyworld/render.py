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
        r = r * np.exp(0.35 * g.tc)
    elif o.motion == "shrink":
        r = r * np.exp(-0.35 * g.tc)
    elif o.motion == "rotate":
        ang = ang + 2 * np.pi * 0.35 * g.t
    return x, y, r, ang


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside test in local coordinates normalised by the radius (v points down)."""
    if shape == "circle":
        return u * u + v * v < 1.0
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) < 0.8
    if shape == "diamond":
        return np.abs(u) + np.abs(v) < 1.0
    if shape == "triangle":
        u, v = u / 1.15, v / 1.15 - 0.15
        return (v < 0.5) & (-0.866 * u - 0.5 * v < 0.5) & (0.866 * u - 0.5 * v < 0.5)
    if shape == "hexagon":
        au, av = np.abs(u), np.abs(v)
        return (av < 0.85) & (0.866 * au + 0.5 * av < 0.9)
    if shape == "star":
        rho = np.sqrt(u * u + v * v)
        th = np.arctan2(u, -v)
        return rho < 0.45 + 0.6 * ((1 + np.cos(5 * th)) / 2) ** 2
    if shape == "cross":
        au, av = np.abs(u), np.abs(v)
        return (np.minimum(au, av) < 0.3) & (np.maximum(au, av) < 0.95)
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
    head = neck + np.array([0.0, -_HEAD_R - 0.02], np.float32)
    kp[:, 0] = head
    kp[:, 14] = head + np.array([-0.045, -0.01])
    kp[:, 15] = head + np.array([0.045, -0.01])
    kp[:, 16] = head + np.array([-0.11, 0.0])
    kp[:, 17] = head + np.array([0.11, 0.0])
    kp[..., 0] += dx[:, None]
    kp[..., 1] += dy[:, None]
    kp *= bh
    kp[..., 0] += a.x * g.W - pan_px[:, None]
    kp[..., 1] += a.y * g.H
    return kp


def _segment_dist(p: np.ndarray, q: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Distance from each pixel to segments p->q. p, q: (F,L,2) -> (F,L,h,w)."""
    d = (q - p)[..., None, None, :]  # (F,L,1,1,2)
    px = xs[None, None, None, :] - p[..., 0, None, None]
    py = ys[None, None, :, None] - p[..., 1, None, None]
    dd = (d[..., 0] ** 2 + d[..., 1] ** 2) + 1e-9
    h = np.clip((px * d[..., 0] + py * d[..., 1]) / dd, 0.0, 1.0)
    return np.sqrt((px - h * d[..., 0]) ** 2 + (py - h * d[..., 1]) ** 2)


def _actor_layers(a: ActorSpec, idx: int, kp: np.ndarray, g: _Grid, inst: int) -> tuple[_Layer, _Layer]:
    """Body and face layers of actor `idx` (face slot idx+1)."""
    ident = IDENTITIES[a.identity]
    F, H, W = g.F, g.H, g.W
    bh = a.scale * g.unit
    # Work inside the actor's bounding box only: the figure covers a small part of the frame.
    m = 0.2 * bh + 2
    x0 = int(max(0, np.floor(kp[..., 0].min() - m)))
    x1 = int(min(W, np.ceil(kp[..., 0].max() + m)))
    y0 = int(max(0, np.floor(kp[..., 1].min() - m)))
    y1 = int(min(H, np.ceil(kp[..., 1].max() + m)))
    body = np.zeros((F, H, W), bool)
    face = np.zeros((F, H, W), bool)
    col = np.zeros((F, H, W, 3), np.float32)
    fcol = np.zeros((F, H, W, 3), np.float32)
    if x1 > x0 and y1 > y0:
        xs, ys = g.x[x0:x1], g.y[y0:y1]
        lim = np.array([LIMBS[i] for i in BODY_LIMBS])
        dist = _segment_dist(kp[:, lim[:, 0]], kp[:, lim[:, 1]], xs, ys)  # (F,12,h,w)
        rad = 0.035 * bh + 0.6
        shirt = np.array(COLOURS[ident.shirt], np.float32)
        skin = np.array(SKIN_TONES[ident.skin], np.float32)
        # Part colours by limb: shoulders/upper arms/torso in the shirt, forearms skin, legs trousers.
        limb_colour = [shirt, shirt, shirt, skin, shirt, skin, shirt, _TROUSERS, _TROUSERS, shirt, _TROUSERS, _TROUSERS]
        on = dist < rad
        # Torso: a thick segment from the neck to the hip centre.
        mid_hip = (kp[:, 8] + kp[:, 11]) / 2
        torso = _segment_dist(kp[:, None, 1], mid_hip[:, None], xs, ys)[:, 0] < 0.09 * bh + 0.5
        crop = np.zeros(on.shape[:1] + on.shape[2:] + (3,), np.float32)
        for li in range(len(BODY_LIMBS) - 1, -1, -1):
            crop[on[:, li]] = limb_colour[li]
        crop[torso] = shirt
        body[:, y0:y1, x0:x1] = on.any(1) | torso
        col[:, y0:y1, x0:x1] = crop
        # Head and face features, in head-radius units around the nose keypoint.
        hr = _HEAD_R * bh
        u = (xs[None, None, :] - kp[:, 0, 0, None, None]) / hr
        v = (ys[None, :, None] - kp[:, 0, 1, None, None]) / hr
        rho2 = u * u + v * v
        head = rho2 < 1.0
        fc = np.zeros(head.shape + (3,), np.float32)
        fc[head] = skin
        hair_c = np.array(HAIR_COLOURS[ident.hair_colour], np.float32)
        style = ident.hair_style
        if style != "bald":
            cap = (rho2 < 1.25 ** 2) & (v < -0.35)
            if style == "long":
                cap |= (rho2 < 1.25 ** 2) & (np.abs(u) > 0.7) & (v < 0.9)
            if style == "spiky":
                cap |= (v < -0.3) & (v > -1.7) & (np.abs(u) < 1.0) & (-v - 0.9 < 0.8 * np.abs(np.cos(2.5 * np.pi * u)))
            fc[cap] = hair_c
            head |= cap
        eyes = ((np.abs(u) - 0.4) ** 2 + (v + 0.05) ** 2) < 0.28 ** 2
        if ident.accessory == "glasses":
            frame = (np.abs(v + 0.05) < 0.3) & (np.abs(u) < 0.95) & head
            fc[frame] = _GLASSES
        fc[eyes & head] = EYE_COLOURS[ident.eyes]
        if ident.accessory == "hat":
            hat = ((v < -0.75) & (v > -1.9) & (np.abs(u) < 0.8)) | ((v < -0.75) & (v > -1.05) & (np.abs(u) < 1.4))
            fc[hat] = _HAT
            head |= hat
        elif ident.accessory == "bow":
            bow = ((np.abs(u - 0.75) < 0.55) & (np.abs(v + 0.95) < 0.35 * (0.3 + np.abs(u - 0.75) / 0.55)))
            fc[bow] = _BOW
            head |= bow
        face[:, y0:y1, x0:x1] = head
        fcol[:, y0:y1, x0:x1] = fc
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
    width = max(0.7, 0.018 * g.unit)
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
