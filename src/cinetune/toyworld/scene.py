"""Toy-world scene specifications: everything a clip shows, sampled deterministically from a seed."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import CinetuneError

from .roster import (ACTIONS, BACKGROUND_COLOURS, BACKGROUND_KINDS, COLOUR_NAMES, IDENTITIES, MOTIONS, SHAPES,
                     SIZES)


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
    identity: int  # index into IDENTITIES
    action: str
    x: float
    y: float  # hip height, fraction of height
    depth: float
    facing: int  # +1 walks right, -1 walks left
    scale: float  # body height as a fraction of min(H, W)


@dataclass
class SceneSpec:
    seed: int
    background: Background
    objects: list[ObjectSpec] = field(default_factory=list)
    actors: list[ActorSpec] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _motion_for(rng: np.random.Generator, shape: str) -> str:
    # A spinning circle looks still: never caption one as spinning.
    motions = [m for m in MOTIONS if not (shape == "circle" and m == "rotate")]
    return str(rng.choice(motions))


def sample_scene(seed: int, max_objects: int = 3, max_actors: int = 2) -> SceneSpec:
    """Sample a scene from `seed` (same seed -> same scene, on every machine)."""
    rng = np.random.default_rng(seed)
    bg_names = list(BACKGROUND_COLOURS)
    c1, c2 = rng.choice(len(bg_names), size=2, replace=False)
    background = Background(
        kind=str(rng.choice(BACKGROUND_KINDS, p=[0.4, 0.25, 0.2, 0.15])),
        colour=bg_names[c1], colour2=bg_names[c2],
        pan=float(rng.choice([0.0, 0.0, 0.0, -0.08, 0.08])),
    )
    n_actors = int(rng.choice([0, 1, 2], p=[0.5, 0.35, 0.15])) if max_actors else 0
    n_actors = min(n_actors, max_actors)
    lo = 0 if n_actors else 1
    n_objects = int(rng.integers(lo, max(lo, min(max_objects, 3 - n_actors)) + 1))
    # Depths are distinct so occlusion order is well defined.
    depths = rng.permutation(np.linspace(0.2, 0.8, n_objects + n_actors)) if n_objects + n_actors else []
    objects = []
    colours = rng.choice(len(COLOUR_NAMES), size=max(n_objects, 1), replace=False)
    for k in range(n_objects):
        shape = str(rng.choice(SHAPES))
        objects.append(ObjectSpec(
            shape=shape, colour=COLOUR_NAMES[colours[k]], size=str(rng.choice(list(SIZES))),
            motion=_motion_for(rng, shape), x=float(rng.uniform(0.3, 0.7)), y=float(rng.uniform(0.3, 0.7)),
            depth=float(depths[k]), phase=float(rng.uniform(0, 2 * np.pi)),
        ))
    actors = []
    ids = rng.choice(len(IDENTITIES), size=max(n_actors, 1), replace=False)
    xs = [0.5] if n_actors == 1 else [0.3, 0.7]
    for k in range(n_actors):
        actors.append(ActorSpec(
            identity=int(ids[k]), action=str(rng.choice(ACTIONS)), x=float(xs[k] + rng.uniform(-0.05, 0.05)),
            y=float(rng.uniform(0.6, 0.68)), depth=float(depths[n_objects + k]), facing=int(rng.choice([-1, 1])),
            scale=float(rng.uniform(0.5, 0.6)),
        ))
    return SceneSpec(seed=seed, background=background, objects=objects, actors=actors)
