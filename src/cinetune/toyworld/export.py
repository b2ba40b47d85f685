"""`cinetune render-toy`: clips as mp4, one mp4 per condition, exact arrays as safetensors, metadata.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

from ..conditions.base import PALETTE as _PALETTE
from ..errors import CinetuneError
from ..io import atomic_path, write_text, write_video
from .dataset import clip_seed, render_clip
from .render import Clip
from .roster import CLASSES, IDENTITIES
from .scene import RenderConfig, sample_scene



def condition_videos(clip: Clip) -> dict[str, np.ndarray]:
    """Every annotation as an (F,H,W,3) uint8 video: the form control adapters consume."""
    near = (255 * (1.0 - clip.depth)).clip(0, 255).astype(np.uint8)  # near = bright, as MiDaS-style depth maps
    grey = lambda a: np.repeat(a[..., None], 3, -1)  # noqa: E731
    return {
        "depth": grey(near),
        "edges": grey(clip.edges),
        "segmentation": _PALETTE[clip.classes],
        "instance": _PALETTE[clip.instance],
        "pose": clip.skeleton,
        "face_masks": _PALETTE[clip.face_masks * 7 % 64],
    }


def export_clips(out: Path, n: int, seed: int = 0, frames: int = 17, height: int = 64, width: int = 64,
                 max_objects: int = 2, max_actors: int = 3) -> Path:
    cfg = RenderConfig(frames=frames, height=height, width=width).validate()
    sample_scene(0, max_objects=max_objects, max_actors=max_actors)  # refuse bad caps before anything is written
    if (out / "metadata.jsonl").exists():
        raise CinetuneError(f"{out} already holds a rendered set (metadata.jsonl); render into another --out")
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in tqdm(range(n), desc="render-toy"):
        s = clip_seed(seed, i)
        clip, text = render_clip(s, cfg, max_objects=max_objects, max_actors=max_actors)
        name = f"{i:06d}"
        write_video(out / "clips" / f"{name}.mp4", clip.video, cfg.fps)
        for kind, video in condition_videos(clip).items():
            write_video(out / kind / f"{name}.mp4", video, cfg.fps)
        arrays = {"video": clip.video, "depth": clip.depth.astype(np.float16), "instance": clip.instance,
                  "classes": clip.classes, "edges": clip.edges, "skeleton": clip.skeleton,
                  "keypoints": clip.keypoints, "face_boxes": clip.face_boxes, "face_masks": clip.face_masks}
        with atomic_path(out / "annotations" / f"{name}.safetensors") as tmp:
            save_file({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}, str(tmp))
        lines.append(json.dumps({
            "name": name, "seed": s, "caption": text, "frames": frames, "height": height, "width": width,
            "fps": cfg.fps, "kind": clip.spec.kind, "identities": [{"index": k, "name": IDENTITIES[k].name} for k in clip.identities],
            "scene": clip.spec.to_dict(), "classes": list(CLASSES),
        }))
        # Rewritten atomically after each clip: an interrupted run leaves a consistent index of what exists.
        write_text(out / "metadata.jsonl", "\n".join(lines) + "\n")
    print(out / "metadata.jsonl")
    return out
