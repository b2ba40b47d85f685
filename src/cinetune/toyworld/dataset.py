"""Toy-world torch Dataset: renders on the fly, clip i of a dataset with seed s is always the same clip."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from .captions import caption
from .render import Clip, render
from .scene import RenderConfig, SceneSpec, sample_scene

# Large odd multiplier so (seed, index) pairs of different datasets never collide in practice.
_SEED_STRIDE = 1_000_003


def clip_seed(seed: int, index: int) -> int:
    return seed * _SEED_STRIDE + index


def render_clip(seed: int, cfg: RenderConfig | None = None, max_objects: int = 3, max_actors: int = 2) -> tuple[Clip, str]:
    """Render the clip with this seed and its caption."""
    spec = sample_scene(seed, max_objects=max_objects, max_actors=max_actors)
    return render(spec, cfg), caption(spec)


def video_to_tensor(video: np.ndarray) -> torch.Tensor:
    """(F,H,W,3) uint8 -> (3,F,H,W) float32 in [-1, 1]."""
    return torch.from_numpy(video).permute(3, 0, 1, 2).float().div_(127.5).sub_(1.0)


class ToyWorldDataset(Dataset):
    """`size` clips rendered on demand.

    Items: {"video": (3,F,H,W) float in [-1,1], "caption": str, "seed": int} plus, when `annotations` is True,
    the Clip's annotation arrays as tensors.
    """

    def __init__(self, size: int, seed: int = 0, cfg: RenderConfig | None = None, annotations: bool = False,
                 max_objects: int = 3, max_actors: int = 2):
        if size <= 0:
            raise ValueError(f"dataset size must be positive, got {size}")
        self.size, self.seed, self.cfg = size, seed, (cfg or RenderConfig()).validate()
        self.annotations, self.max_objects, self.max_actors = annotations, max_objects, max_actors

    def __len__(self) -> int:
        return self.size

    def spec(self, index: int) -> SceneSpec:
        """Clip `index`'s scene (what it shows), without rendering it."""
        if not 0 <= index < self.size:
            raise IndexError(index)
        return sample_scene(clip_seed(self.seed, index), max_objects=self.max_objects, max_actors=self.max_actors)

    def caption(self, index: int) -> str:
        """Clip `index`'s caption without rendering it."""
        return caption(self.spec(index))

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.size:
            raise IndexError(index)
        s = clip_seed(self.seed, index)
        clip, text = render_clip(s, self.cfg, self.max_objects, self.max_actors)
        item = {"video": video_to_tensor(clip.video), "caption": text, "seed": s}
        if self.annotations:
            item.update(depth=torch.from_numpy(clip.depth), instance=torch.from_numpy(clip.instance),
                        classes=torch.from_numpy(clip.classes), edges=torch.from_numpy(clip.edges),
                        skeleton=torch.from_numpy(clip.skeleton), face_masks=torch.from_numpy(clip.face_masks))
        return item
