"""`cinetune bench prompt-following`: how often the shipped text-to-video models draw what a one-object prompt states
(issue: foundation, item 6: "generated videos must visibly follow the prompt's shapes, colours and motions").

Held-out one-object, no-actor toy clips give the prompts. Each generated video is read back by the shipped toy
networks: shape = the majority shape class among the pixels the toy annotator segments as a shape; colour and motion
= the toy video encoder's most probable colour / motion. The same readers applied to the rendered clips themselves
give each reader's own accuracy (the ceiling a perfect generator would reach); chance is 1 / the number of values."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..io import write_text


def read_back(videos: list[np.ndarray]) -> list[dict]:
    """Per video (F,H,W,3) uint8: {"shape", "colour", "motion"} as read by the toy annotator / video encoder."""
    from ..conditions import get_extractor
    from ..metrics.features import ToyFeatures, _to_tensor
    from ..toynets.labels import GROUPS
    from ..toyworld.roster import CLASS_ID, SHAPES

    seg, feats = get_extractor("segmentation"), ToyFeatures()
    shape_ids = np.array([CLASS_ID[s] for s in SHAPES])
    out = []
    for v in videos:
        counts = np.bincount(seg.analyse(v).ravel(), minlength=int(shape_ids.max()) + 1)[shape_ids]
        with torch.no_grad():
            probs = feats.net.probabilities(_to_tensor(v))
        out.append({"shape": SHAPES[int(counts.argmax())] if counts.any() else None,
                    "colour": GROUPS["colour"][int(probs["colour"][0].argmax())],
                    "motion": GROUPS["motion"][int(probs["motion"][0].argmax())]})
    return out


def accuracy(read: list[dict], stated: list[dict]) -> dict:
    return {k: float(np.mean([r[k] == s[k] for r, s in zip(read, stated)])) for k in ("shape", "colour", "motion")}


def held_out_prompts(n: int) -> tuple[list, list[str], list[dict]]:
    """n held-out one-object, no-actor clips (toy-world seed 13) -> (clips, captions, stated attributes)."""
    from ..toyworld import RenderConfig, clip_seed, render_clip

    clips = [render_clip(clip_seed(13, i), RenderConfig(), max_objects=1, max_actors=0) for i in range(n)]
    stated = [{"shape": c.spec.objects[0].shape, "colour": c.spec.objects[0].colour,
               "motion": c.spec.objects[0].motion} for c, _ in clips]
    return [c for c, _ in clips], [t for _, t in clips], stated


def follow(pipe, prompts: list[str], stated: list[dict], steps: int, guidance: float = 5.0) -> dict:
    """Generate one video per prompt (seed = its index) and score what is read back."""
    videos = [pipe(t, steps=steps, guidance=guidance, seed=i, progress=False).videos[0] for i, t in enumerate(prompts)]
    return accuracy(read_back(videos), stated)


def run(out: Path, quick: bool = False) -> Path:
    from ..backbones import load_backbone
    from ..pipelines import TextToVideoPipeline, to_uint8
    from ..toyworld import video_to_tensor
    from ..toynets.labels import GROUPS

    t0 = time.perf_counter()
    n, steps = (6, 10) if quick else (40, 25)
    clips, prompts, stated = held_out_prompts(n)
    rows = [("rendered clips (each reader's own accuracy)", accuracy(read_back([c.video for c in clips]), stated))]
    codec = load_backbone("toy-small").codec
    with torch.no_grad():
        rec = [to_uint8(codec.decode(codec.encode(video_to_tensor(c.video)[None])))[0] for c in clips]
    rows.append(("rendered clips through the toy VAE (the ceiling for generated videos)",
                 accuracy(read_back(rec), stated)))
    for name in ("toy-small", "toy-large"):
        rows.append((f"{name} generated", follow(TextToVideoPipeline.from_pretrained(name, device="cpu"), prompts,
                                                 stated, steps)))
    chance = {"shape": 1 / len(GROUPS["shape"]), "colour": 1 / len(GROUPS["colour"]), "motion": 1 / len(GROUPS["motion"])}
    lines = ["# Prompt following of the shipped text-to-video models", "",
             f"`cinetune bench prompt-following{' --quick' if quick else ''}`: {n} held-out one-object prompts "
             f"(toy-world seeds 13:0..{n - 1}), {steps} sampling steps, guidance 5, one video per prompt. Read back by "
             "the toy annotator (shape: majority shape class of the segmented pixels) and the toy video encoder "
             "(colour, motion: most probable value). Fraction of videos whose read-back value is the stated one.", "",
             "| source | shape | colour | motion |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {a['shape']:.2f} | {a['colour']:.2f} | {a['motion']:.2f} |" for name, a in rows]
    lines += [f"| chance | {chance['shape']:.2f} | {chance['colour']:.2f} | {chance['motion']:.2f} |", "",
              f"Wall time {time.perf_counter() - t0:.0f} s.", ""]
    path = Path(out) / ("prompt-following.md" if not quick else "prompt-following-quick.md")
    write_text(path, "\n".join(lines))
    return path
