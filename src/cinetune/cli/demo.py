"""`cinetune demo`: the shipped toy models at work, each method beside the base (same prompts, same seeds)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

DEMO_CONTROL_SEED = 11  # held-out toy-world clips (training uses dataset seed 0)
DEMO_ADAPTERS = {"controlnext": "toy-large-controlnext", "scale-adapter": "toy-large-scale-adapter"}  # shipped
DEMO_STUDENT = "toy-large-4step"  # shipped distilled student of toy-large
DEMO_IDENTITIES = "toy-large-ingredients"  # shipped Ingredients model of toy-large
# UniPC at 16 steps lands as close to the converged sample as Euler at 25 (benchmarks/results/schedulers.md)
DEMO_SCHEDULER, DEMO_STEPS = "unipc", 16
DEMO_PROMPTS = [
    "A red circle moves to the right on a plain navy backdrop.",
    "A large yellow star spins on a black background.",
    "On a beige background, a blue square bounces.",
    "A person with tan skin, short blond hair, blue eyes and a hat in an orange shirt nods on a grey background.",
]


def cmd_demo(a: argparse.Namespace) -> None:
    from ..io import video_grid, write_json, write_video
    from ..pipelines import TextToVideoPipeline

    t0 = time.perf_counter()
    out = Path(a.out)
    pipe = TextToVideoPipeline.from_pretrained(a.model, device=a.device)
    pipe(DEMO_PROMPTS[0], steps=1, guidance=1.0, progress=False)  # warm-up, so that the timed calls compare fairly
    t1 = time.perf_counter()
    res = pipe(DEMO_PROMPTS, **_sampling(a), seed=a.seed)
    teacher = (np.concatenate(list(res.videos), 2), time.perf_counter() - t1)
    fps = pipe.backbone.preset.fps
    paths = [write_video(out / f"t2v-{i:02d}.mp4", v, fps) for i, v in enumerate(res.videos)]
    grid = write_video(out / "t2v-grid.gif", video_grid(list(res.videos), cols=len(res.videos)), fps)
    write_json(out / "prompts.json", {p.name: prompt for p, prompt in zip(paths, DEMO_PROMPTS)})
    for p, prompt in zip(paths, DEMO_PROMPTS):
        print(f"{p}  <- {prompt}")
    print(grid)
    if a.model == "toy-large":
        print(_demo_control(pipe, out, a, fps))
        _demo_distill(pipe, out, a, fps, teacher)
        _demo_ingredients(pipe, out, a, fps)
    print(f"demo finished in {time.perf_counter() - t0:.1f} s")


def _sampling(a: argparse.Namespace) -> dict:
    """The sampling options every guided generation of the demo shares."""
    return dict(steps=a.steps, guidance=a.guidance, scheduler=a.scheduler)


def _demo_control(pipe, out: Path, a: argparse.Namespace, fps: int) -> Path:
    """Controlled generation on held-out toy clips with the shipped adapters: reference | canny | depth | pose |
    uncontrolled | ControlNeXt [| Scale-Adapter], side by side (same prompt, same seed)."""
    from ..backbones.presets import assets_root
    from ..io import video_grid, write_video
    from ..methods.control.task import training_condition
    from ..methods.registry import load_adapter
    from ..pipelines import AdaptedPipeline
    from ..toyworld import clip_seed, render_clip

    adapters = {name: load_adapter(asset) for name, asset in DEMO_ADAPTERS.items() if (assets_root() / asset).is_dir()}
    kinds = adapters["controlnext"].kinds
    clips = [c for c in (render_clip(clip_seed(DEMO_CONTROL_SEED, i)) for i in range(64)) if c[0].keypoints.shape[1]][:2]
    prompts = [prompt for _, prompt in clips]
    conds = {k: [training_condition(clip, k) for clip, _ in clips] for k in kinds}  # one video per prompt
    columns = [[clip.video for clip, _ in clips], *conds.values(),
               pipe(prompts, **_sampling(a), seed=a.seed, progress=False).videos]
    for name, model in adapters.items():  # both clips in one call each: the same noise as the uncontrolled column
        videos = AdaptedPipeline(pipe, model)(prompts, controls=conds, **_sampling(a),
                                              seed=a.seed, progress=False).videos
        columns.append(videos)
        for i, (video, prompt) in enumerate(zip(videos, prompts)):
            print(write_video(out / f"{name}-{i:02d}.mp4", video, fps), f" <- {prompt} + {', '.join(kinds)} of a "
                  "held-out clip")
    rows = [np.concatenate([col[i] for col in columns], 2) for i in range(len(clips))]
    print("control-grid.gif columns: reference | " + " | ".join(kinds) + " | uncontrolled | " + " | ".join(adapters))
    return write_video(out / "control-grid.gif", video_grid(rows, cols=1), fps)


def _demo_distill(pipe, out: Path, a: argparse.Namespace, fps: int, teacher: tuple) -> None:
    """Teacher (its steps, guidance: the demo's first generation, `teacher` = (its row, its seconds)) | student (its
    steps) | student + frame interpolation, on the demo prompts, with each row's wall time from prompt to pixels."""
    from ..backbones.presets import assets_root
    from ..io import video_grid, write_video
    from ..methods.registry import load_adapter

    if not (assets_root() / DEMO_STUDENT).is_dir():
        return
    student = load_adapter(DEMO_STUDENT)
    rows, times = [teacher[0]], {f"teacher ({a.steps} {a.scheduler} steps x CFG)": teacher[1]}
    with student.attach(pipe.backbone) as att:
        for name, interpolate in (("student", False), ("student + interpolation", True)):
            if interpolate and student.interpolator is None:
                continue
            t0 = time.perf_counter()
            res = pipe(DEMO_PROMPTS, guidance=1.0, seed=a.seed, progress=False, sampler=att.sampler,
                       interpolate=interpolate)
            times[f"{name} ({len(student.timesteps)} steps)"] = time.perf_counter() - t0
            rows.append(np.concatenate(list(res.videos), 2))
    grid = write_video(out / "distill-grid.gif", video_grid(rows, cols=1), fps)
    print(f"{grid}  rows: " + "; ".join(f"{n} {t:.1f} s" for n, t in times.items()))


def _demo_ingredients(pipe, out: Path, a: argparse.Namespace, fps: int) -> None:
    """Two held-out two-person scenes, their prompts silent on the people: the reference photos | no identities |
    Ingredients (same prompt, same seed)."""
    from ..backbones.presets import assets_root
    from ..io import video_grid, write_video
    from ..methods.ingredients.bench import held_out_scenes, reference_photo
    from ..methods.registry import load_adapter
    from ..pipelines import AdaptedPipeline

    if not (assets_root() / DEMO_IDENTITIES).is_dir():
        return
    model = load_adapter(DEMO_IDENTITIES)
    scenes = [s for s in held_out_scenes(2) if len(s[2]) == 2][:2]
    texts = [text for _, text, _ in scenes]
    people = [[reference_photo(k) for k in ids] for _, _, ids in scenes]  # (H, W, 3) each, the video's frame size
    plain = pipe(texts, **_sampling(a), seed=a.seed, progress=False).videos
    ing = AdaptedPipeline(pipe, model)(texts, identities=people, **_sampling(a), seed=a.seed,
                                       progress=False).videos
    rows = []
    for photos, p, v in zip(people, plain, ing):
        H = photos[0].shape[0]
        frame = np.full_like(photos[0], 255)
        frame[H // 4:H // 4 + H // 2] = np.concatenate(photos, 1)[::2, ::2]  # both photos at half size, on white
        rows.append(np.concatenate([np.repeat(frame[None], len(p), 0), p, v], 2))
    grid = write_video(out / "ingredients-grid.gif", video_grid(rows, cols=1), fps)
    print(f"{grid}  columns: reference photos | no identities | Ingredients")
