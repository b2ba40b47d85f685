"""Toy-world scene specifications: everything a clip shows, sampled deterministically from a seed."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import CinetuneError

from .roster import (ACTIONS, BACKGROUND_COLOURS, BACKGROUND_KINDS, COLOUR_NAMES, IDENTITIES, MOTIONS,
                     PORTRAIT_ACTIONS, SCENE_KINDS, SHAPES, SIZES)

MAX_OBJECTS, MAX_ACTORS = 3, 3


@dataclass
class RenderConfig:
    """Clip geometry. Defaults are the toy world's standard clip (17 frames, 64x64, 8 fps)."""

    frames: int = 17
    height: int = 64
    width: int = 64
    fps: int = 8

    def validate(self) -> "RenderConfig":
        if not (1 <= self.frames <= 33):
            raise CinetuneError(f"frames must be in 1..33, got {self.frames}")
        for name in ("height", "width"):
            v = getattr(self, name)
            if not (16 <= v <= 128) or v % 8:
                raise CinetuneError(f"{name} must be a multiple of 8 in 16..128, got {v}")
        if self.fps <= 0:
            raise CinetuneError(f"fps must be positive, got {self.fps}")
        return self


@dataclass
class Background:
    kind: str  # one of BACKGROUND_KINDS
    colour: str
    colour2: str  # second colour for gradient / stripes / checker
    pan: float  # camera pan speed in widths per second (positive: camera moves right)


@dataclass
class ObjectSpec:
    shape: str
    colour: str
    size: str
    motion: str
    x: float  # centre at mid-clip, fractions of width / height
    y: float
    depth: float  # 0 (near) .. 1 (far); backgrounds sit at 1
    phase: float  # start angle for rotation / orbit


@dataclass
class ActorSpec:
    """A person. framing "full": a stick figure, y its hip height, scale its body height; framing "portrait": a
    person from the shoulders up, y the head centre's height, scale the head radius (fractions of min(H, W) for the
    sizes, of the frame for x and y)."""

    identity: int  # index into IDENTITIES
    action: str  # ACTIONS (full) or PORTRAIT_ACTIONS (portrait)
    x: float
    y: float
    depth: float
    facing: int  # +1 walks (turns) right, -1 left
    scale: float
    framing: str = "full"


@dataclass
class SceneSpec:
    seed: int
    background: Background
    kind: str = "objects"  # SCENE_KINDS
    objects: list[ObjectSpec] = field(default_factory=list)
    actors: list[ActorSpec] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _motion_for(rng: np.random.Generator, shape: str) -> str:
    # A spinning circle looks still: never caption one as spinning.
    motions = [m for m in MOTIONS if not (shape == "circle" and m == "rotate")]
    return str(rng.choice(motions))


def _background(rng: np.random.Generator) -> Background:
    bg_names = list(BACKGROUND_COLOURS)
    c1, c2 = rng.choice(len(bg_names), size=2, replace=False)
    return Background(kind=str(rng.choice(BACKGROUND_KINDS, p=[0.4, 0.25, 0.2, 0.15])),
                      colour=bg_names[c1], colour2=bg_names[c2], pan=float(rng.choice([0.0, 0.0, 0.0, -0.08, 0.08])))


def _scene_kind(rng: np.random.Generator, max_objects: int, max_actors: int) -> str:
    # Most clips show one or two objects: the shape, colour and motion words then tie to what moves.
    kinds, p = zip(*[(k, w) for k, w in zip(SCENE_KINDS, (0.45, 0.15, 0.25, 0.15))
                     if (max_objects or k in ("figures", "portrait")) and (max_actors or k == "objects")])
    return str(rng.choice(kinds, p=np.array(p) / sum(p)))


def _objects(rng: np.random.Generator, n: int, depths, xs: list[float]) -> list[ObjectSpec]:
    colours = rng.choice(len(COLOUR_NAMES), size=max(n, 1), replace=False)
    shapes = rng.choice(len(SHAPES), size=max(n, 1), replace=False)  # two objects never share a shape
    out = []
    for k in range(n):
        shape = SHAPES[shapes[k]]
        out.append(ObjectSpec(
            shape=shape, colour=COLOUR_NAMES[colours[k]], size=str(rng.choice(list(SIZES))),
            motion=_motion_for(rng, shape), x=float(xs[k % len(xs)] + rng.uniform(-0.1, 0.1)),
            y=float(rng.uniform(0.35, 0.65)), depth=float(depths[k]), phase=float(rng.uniform(0, 2 * np.pi)),
        ))
    return out


def _figures(rng: np.random.Generator, n: int, depths, xs: list[float]) -> list[ActorSpec]:
    ids = rng.choice(len(IDENTITIES), size=max(n, 1), replace=False)
    return [ActorSpec(identity=int(ids[k]), action=str(rng.choice(ACTIONS)), x=float(xs[k] + rng.uniform(-0.05, 0.05)),
                      y=float(rng.uniform(0.58, 0.64)), depth=float(depths[k]), facing=int(rng.choice([-1, 1])),
                      scale=float(rng.uniform(0.6, 0.7))) for k in range(n)]


# Portraits: head radius by the number of people, so even three faces are >= 16 px tall at 64x64.
_HEAD_RADIUS = {1: (0.17, 0.21), 2: (0.14, 0.17), 3: (0.125, 0.14)}
_PORTRAIT_X = {1: [0.5], 2: [0.3, 0.7], 3: [0.2, 0.5, 0.8]}


def _portraits(rng: np.random.Generator, n: int, depths, xs=None) -> list[ActorSpec]:
    ids = rng.choice(len(IDENTITIES), size=n, replace=False)
    lo, hi = _HEAD_RADIUS[n]
    return [ActorSpec(identity=int(ids[k]), action=str(rng.choice(PORTRAIT_ACTIONS)),
                      x=float(_PORTRAIT_X[n][k] + rng.uniform(-0.015, 0.015)), y=float(rng.uniform(0.36, 0.44)),
                      depth=float(depths[k]), facing=int(rng.choice([-1, 1])), scale=float(rng.uniform(lo, hi)),
                      framing="portrait") for k in range(n)]


def sample_scene(seed: int, max_objects: int = 2, max_actors: int = 3) -> SceneSpec:
    """Sample a scene from `seed` (same seed -> same scene, on every machine).

    Kinds (SCENE_KINDS): "objects" (1-2 objects), "figures" (1-2 stick figures), "portrait" (1-3 people from the
    shoulders up) and "mixed" (one object and one figure). `max_objects` / `max_actors` cap the counts; 0 rules out
    the kinds that need them (max_objects=1, max_actors=0: one-object clips only)."""
    if not (0 <= max_objects <= MAX_OBJECTS and 0 <= max_actors <= MAX_ACTORS) or not (max_objects or max_actors):
        raise CinetuneError(f"max_objects must be in 0..{MAX_OBJECTS} and max_actors in 0..{MAX_ACTORS}, not both 0; "
                            f"got {max_objects}, {max_actors}")
    rng = np.random.default_rng(seed)
    background = _background(rng)
    kind = _scene_kind(rng, max_objects, max_actors)
    if kind == "portrait":  # the people's own motions are the point (and three of them fill a 64-token caption)
        background.pan = 0.0
    n_obj = {"objects": int(rng.choice([1, 2], p=[0.6, 0.4])), "mixed": 1}.get(kind, 0)
    n_act = {"figures": int(rng.choice([1, 2], p=[0.7, 0.3])), "mixed": 1,
             "portrait": int(rng.choice([1, 2, 3], p=[0.4, 0.35, 0.25]))}.get(kind, 0)
    n_obj, n_act = min(n_obj, max_objects), min(n_act, max_actors)
    # Depths are distinct so occlusion order is well defined.
    depths = rng.permutation(np.linspace(0.2, 0.8, n_obj + n_act))
    # Side by side: one thing in the middle, two at a third and two thirds (mixed: the object takes a random side).
    xs = [0.5] if n_obj + n_act == 1 else list(rng.permutation([0.3, 0.7])) if kind == "mixed" else [0.3, 0.7]
    objects = _objects(rng, n_obj, depths[:n_obj], xs)
    people = _portraits if kind == "portrait" else _figures
    actors = people(rng, n_act, depths[n_obj:], xs[n_obj:] or xs) if n_act else []
    return SceneSpec(seed=seed, background=background, kind=kind, objects=objects, actors=actors)
