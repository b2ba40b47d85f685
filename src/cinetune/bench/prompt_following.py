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
    """Per video (F,H,W,3) uint8: {"shape", "colour", "motion"} as read by the toy annotator / video encoder,
    "area": the fraction of pixels the annotator segments as a shape (how big the drawn objects are), and
    "first_frame": metrics.first_frame_jump (about 1 when frame 0 is as clean as the rest) and "flicker":
    metrics.chunk_flicker (about 1 when the video changes as much inside the VAE's latent chunks as across them)."""
    from ..conditions import get_extractor
    from ..metrics import chunk_flicker, first_frame_jump
    from ..metrics.features import ToyFeatures, _to_tensor
    from ..toynets.labels import GROUPS
    from ..toyworld.roster import CLASS_ID, SHAPES

    seg, feats = get_extractor("segmentation"), ToyFeatures()
    shape_ids = np.array([CLASS_ID[s] for s in SHAPES])
    out = []
    for v in videos:
        labels = seg.analyse(v)
        counts = np.bincount(labels.ravel(), minlength=int(shape_ids.max()) + 1)[shape_ids]
        with torch.no_grad():
            probs = feats.net.probabilities(_to_tensor(v))
        out.append({"shape": SHAPES[int(counts.argmax())] if counts.any() else None,
                    "colour": GROUPS["colour"][int(probs["colour"][0].argmax())],
                    "motion": GROUPS["motion"][int(probs["motion"][0].argmax())],
                    "area": float(counts.sum() / labels.size), "first_frame": first_frame_jump(v),
                    "flicker": chunk_flicker(v)})
    return out


def accuracy(read: list[dict], stated: list[dict]) -> dict:
    """Fraction of videos showing each stated value, and the mean object area, first-frame jump and chunk flicker
    read back."""
    acc = {k: float(np.mean([r[k] == s[k] for r, s in zip(read, stated)])) for k in ("shape", "colour", "motion")}
    return {**acc, **{k: float(np.mean([r[k] for r in read])) for k in ("area", "first_frame", "flicker")}}


def held_out_prompts(n: int) -> tuple[list, list[str], list[dict]]:
    """n held-out one-object, no-actor clips (toy-world seed 13) -> (clips, captions, stated attributes)."""
    from ..toyworld import RenderConfig, clip_seed, render_clip

    clips = [render_clip(clip_seed(13, i), RenderConfig(), max_objects=1, max_actors=0) for i in range(n)]
    stated = [{"shape": c.spec.objects[0].shape, "colour": c.spec.objects[0].colour,
               "motion": c.spec.objects[0].motion} for c, _ in clips]
    return [c for c, _ in clips], [t for _, t in clips], stated


def held_out_people(n: int, kind: str) -> tuple[list, list[str], list[dict]]:
    """n held-out one-person clips of scene kind `kind` ("figures" | "portrait"; toy-world seed 14) -> (clips,
    captions, stated {"action", "hair" (None when bald), "skin"})."""
    from ..toyworld import RenderConfig, caption, clip_seed, render, sample_scene
    from ..toyworld.roster import IDENTITIES

    specs, i = [], 0
    while len(specs) < n:
        spec = sample_scene(clip_seed(14, i), max_objects=0, max_actors=1)
        i += 1
        if spec.kind == kind:
            specs.append(spec)
    stated = []
    for spec in specs:
        ident = IDENTITIES[spec.actors[0].identity]
        stated.append({"action": spec.actors[0].action, "skin": ident.skin,
                       "hair": None if ident.hair_style == "bald" else ident.hair_colour})
    return [render(s, RenderConfig()) for s in specs], [caption(s) for s in specs], stated


def read_people(videos: list[np.ndarray]) -> list[dict]:
    """Per video: the toy video encoder's most probable action, hair colour and skin tone."""
    from ..metrics.features import ToyFeatures, _to_tensor
    from ..toynets.labels import GROUPS

    feats, out = ToyFeatures(), []
    for v in videos:
        with torch.no_grad():
            probs = feats.net.probabilities(_to_tensor(v))
        out.append({g: GROUPS[g][int(probs[g][0].argmax())] for g in ("action", "hair", "skin")})
    return out


def people_accuracy(read: list[dict], stated: list[dict]) -> dict:
    """Fraction of videos whose read-back value is the stated one (hair: over the people who have hair)."""
    return {k: float(np.mean([r[k] == s[k] for r, s in zip(read, stated) if s[k] is not None] or [np.nan]))
            for k in ("action", "hair", "skin")}


def follow(pipe, prompts: list[str], stated: list[dict], steps: int, guidance: float = 5.0) -> dict:
    """Generate one video per prompt (seed = its index) and score what is read back."""
    videos = [pipe(t, steps=steps, guidance=guidance, seed=i, progress=False).videos[0] for i, t in enumerate(prompts)]
    return accuracy(read_back(videos), stated)


def swapped_captions(clips: list, attr: str) -> list[str]:
    """Each one-object clip's caption with the words for its object's `attr` (shape | colour | motion) replaced by
    those of another value (the next one in the roster's order that the caption does not already name); the rest of
    the sentence is unchanged."""
    import re

    from ..toyworld import caption
    from ..toyworld.captions import MOTION_PHRASES, SHAPE_WORDS
    from ..toyworld.roster import COLOUR_NAMES, MOTIONS, SHAPES

    values = {"shape": SHAPES, "colour": COLOUR_NAMES, "motion": MOTIONS}[attr]
    words = {"shape": SHAPE_WORDS, "colour": {c: [c] for c in COLOUR_NAMES}, "motion": MOTION_PHRASES}[attr]
    out = []
    for c in clips:
        obj = c.spec.objects[0]
        text, k = caption(c.spec), values.index(getattr(obj, attr))
        for j in range(1, len(values)):
            v = values[(k + j) % len(values)]
            if not (any(re.search(rf"\b{w}\b", text) for w in words[v])
                    or (attr == "motion" and obj.shape == "circle" and v == "rotate")):
                break
        used = next(w for w in sorted(words[getattr(obj, attr)], key=len, reverse=True)
                    if re.search(rf"\b{w}\b", text))
        out.append(re.sub(rf"\b{used}\b", words[v][0], text, count=1))
    return out


@torch.no_grad()
def word_sensitivity(backbone, clips: list, captions: list[str], sigmas=(0.7, 0.9), seed: int = 0) -> dict:
    """Flow-matching loss on the latent cells the object covers, with the true caption, with its shape, colour or
    motion word swapped, and with no caption. A model that uses a word does worse when that word is swapped.
    -> {sigma: {"true" | "shape" | "colour" | "motion" | "empty": loss}}"""
    from ..toyworld import video_to_tensor
    from ..training.objectives import flow_matching_inputs, foreground_map, weighted_mse

    codec = backbone.codec
    x0 = codec.encode(torch.stack([video_to_tensor(c.video) for c in clips]))
    fg = torch.cat([foreground_map(torch.from_numpy(c.instance)[None], codec.temporal, codec.spatial) for c in clips])
    texts = {"true": captions, **{a: swapped_captions(clips, a) for a in ("shape", "colour", "motion")},
             "empty": [""] * len(clips)}
    emb = {k: backbone.text_encoder(v) for k, v in texts.items()}
    out = {}
    for s in sigmas:
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
        xt, t, target = flow_matching_inputs(x0, torch.full((len(clips),), float(s)), noise)
        out[s] = {k: weighted_mse(backbone.view(xt, t, e, module=backbone.transformer), target, fg).item()
                  for k, e in emb.items()}
    return out


def run(out: Path, quick: bool = False) -> Path:
    from ..backbones import load_backbone
    from ..pipelines import TextToVideoPipeline
    from ..toynets.labels import GROUPS
    from .harness import through_vae

    t0 = time.perf_counter()
    n, steps = (6, 10) if quick else (40, 25)
    clips, prompts, stated = held_out_prompts(n)
    rows = [("rendered clips (each reader's own accuracy)", accuracy(read_back([c.video for c in clips]), stated))]
    rec = through_vae(load_backbone("toy-small").codec, [c.video for c in clips])
    rows.append(("rendered clips through the toy VAE (the ceiling for generated videos)",
                 accuracy(read_back(rec), stated)))
    m = max(4, n // 2)
    people = {k: held_out_people(m, k) for k in ("figures", "portrait")}
    prow = [("rendered clips", {k: people_accuracy(read_people([c.video for c in cl]), st)
                                for k, (cl, _, st) in people.items()})]
    sens = {}
    for name in ("toy-small", "toy-large"):
        pipe = TextToVideoPipeline.from_pretrained(name, device="cpu")
        rows.append((f"{name} generated", follow(pipe, prompts, stated, steps)))
        sens[name] = word_sensitivity(pipe.backbone, clips, prompts)
        gen = {}
        for k, (_, texts, st) in people.items():
            vids = [pipe(t, steps=steps, guidance=5.0, seed=i, progress=False).videos[0] for i, t in enumerate(texts)]
            gen[k] = people_accuracy(read_people(vids), st)
        prow.append((f"{name} generated", gen))
    chance = {"shape": 1 / len(GROUPS["shape"]), "colour": 1 / len(GROUPS["colour"]), "motion": 1 / len(GROUPS["motion"])}
    lines = ["# Prompt following of the shipped text-to-video models", "",
             f"`cinetune bench prompt-following{' --quick' if quick else ''}`: {n} held-out one-object prompts "
             f"(toy-world seeds 13:0..{n - 1}), {steps} sampling steps, guidance 5, one video per prompt. Read back by "
             "the toy annotator (shape: majority shape class of the segmented pixels) and the toy video encoder "
             "(colour, motion: most probable value). Fraction of videos whose read-back value is the stated one. Object "
             "area: mean fraction of pixels the annotator segments as a shape (a generator that draws objects at the "
             "right size matches the rendered clips). First-frame jump: mean of `metrics.first_frame_jump`, the change "
             "from frame 0 to frame 1 over the median change between later neighbours (about 1 when frame 0 is as "
             "clean as the rest). Chunk flicker: mean of `metrics.chunk_flicker`, the change across the VAE's latent-chunk "
             "boundaries (frame pairs 4j, 4j+1) over that inside the chunks (about 1 for real clips).", "",
             "| source | shape | colour | motion | object area | first-frame jump | chunk flicker |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {name} | {a['shape']:.2f} | {a['colour']:.2f} | {a['motion']:.2f} | {a['area']:.3f} | "
              f"{a['first_frame']:.2f} | {a['flicker']:.2f} |" for name, a in rows]
    lines += [f"| chance | {chance['shape']:.2f} | {chance['colour']:.2f} | {chance['motion']:.2f} | | | |", "",
              "## Which words the models use", "",
              "Flow-matching loss on the latent cells the object covers (the same held-out clips, one noise draw per "
              "sigma), with the true caption, with its shape / colour / motion word swapped for another value (the rest "
              "of the sentence unchanged), and with no caption. A word the model uses makes the loss rise when it is "
              "swapped.", "",
              "| model | sigma | true | shape swapped | colour swapped | motion swapped | no caption |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {name} | {sg} | " + " | ".join(f"{r[k]:.4f}" for k in ("true", "shape", "colour", "motion", "empty"))
              + " |" for name, by in sens.items() for sg, r in by.items()]
    lines += ["", "## People", "",
              f"{m} held-out one-person prompts of each kind (toy-world seeds 14:*, one stick figure or one "
              "portrait), read back by the toy video encoder: the figure's action, the portrait's action, hair colour "
              "(over people with hair) and skin tone. Chance: action 1/7, hair 1/6, skin 1/4.", "",
              "| source | figure action | portrait action | portrait hair | portrait skin |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {name} | {g['figures']['action']:.2f} | {g['portrait']['action']:.2f} | {g['portrait']['hair']:.2f} | "
              f"{g['portrait']['skin']:.2f} |" for name, g in prow]
    lines += ["", f"Wall time {time.perf_counter() - t0:.0f} s.", ""]
    path = Path(out) / ("prompt-following.md" if not quick else "prompt-following-quick.md")
    write_text(path, "\n".join(lines))
    return path
