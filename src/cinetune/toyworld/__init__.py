"""Toy world: a procedural video domain with exact annotations for every condition (docs/toy-world.md)."""

from .captions import caption
from .dataset import ToyWorldDataset, clip_seed, render_clip, video_to_tensor
from .render import Clip, render
from .roster import CLASSES, IDENTITIES, KEYPOINTS, LIMBS, SCENE_KINDS
from .scene import RenderConfig, SceneSpec, sample_scene

__all__ = ["CLASSES", "Clip", "IDENTITIES", "KEYPOINTS", "LIMBS", "RenderConfig", "SCENE_KINDS", "SceneSpec",
           "ToyWorldDataset",
           "caption", "clip_seed", "render", "render_clip", "sample_scene", "video_to_tensor"]
