"""The bench harness: train a run or reuse the finished one, held-out clips with their conditions, controlled
generation, condition adherence, per-step latency and step-time reading, shared by every bench."""

from __future__ import annotations

import csv
import json
import statistics
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch

from ..errors import CinetuneError
from . import interleaved_medians

KINDS = ["canny", "depth", "pose"]

# settings that change nothing about the trained weights
def _bookkeeping() -> set[str]:
    from ..training.trainer import RESUME_MAY_CHANGE

    return {"output_dir", *RESUME_MAY_CHANGE}


def _settings(cfg: dict) -> dict:
    """The settings of a saved run config that decide its weights: bookkeeping and other methods' sections left out,
    the init resolved to a path, and the method's own section as its config class says (`reuse_settings`)."""
    from ..methods.registry import methods
    from ..training.config import init_dir

    book = _bookkeeping()
    cfg = {k: v for k, v in cfg.items() if k not in book}
    try:  # the same weights named by path or by shipped name
        cfg["init"] = str(Path(init_dir(cfg.get("init", ""), "transformer")).resolve()) if cfg.get("init") else ""
    except CinetuneError:
        pass
    for name, m in methods().items():
        if name != cfg.get("task") and cfg.get("task") not in m.extra_tasks:
            cfg.pop(m.section, None)
        elif hasattr(m.config, "reuse_settings"):
            cfg[m.section] = m.config.reuse_settings(cfg[m.section])
    return cfg


def input_digest(cfg) -> str:
    """sha256 over every weight file a run starts from or runs through: its init, the frozen toy backbone's shipped
    transformer (when no init), the toy VAE (cached latents depend on it) and the method's own inputs (its config
    section's `input_dirs()`, e.g. Scale-Adapter's small model). Two runs with equal configs but other weights (a
    retrained toy-large) differ here."""
    import hashlib

    from ..backbones.presets import assets_root, get_preset
    from ..methods.registry import methods
    from ..training.config import init_dir

    dirs = [Path(init_dir(cfg.init, "transformer"))] if cfg.init else []
    preset = get_preset(cfg.backbone) if not Path(cfg.backbone).exists() else None
    if preset is not None and preset.is_toy:
        dirs += [assets_root() / "toy-vae"] + ([] if cfg.init else [assets_root() / preset.asset / "transformer"])
    if cfg.task in methods():
        section = getattr(cfg, methods()[cfg.task].section)
        dirs += section.input_dirs() if hasattr(section, "input_dirs") else []
    h = hashlib.sha256()
    for f in sorted({f.resolve() for d in dirs for f in Path(d).rglob("*.safetensors")}):
        h.update(f.read_bytes())
    return h.hexdigest()


def _saved_settings(path: Path) -> dict | None:
    """The settings of a run's saved config.yaml, read into today's TrainConfig (fields added since take their
    defaults, so a run stays reusable when the config grows); None when it no longer fits (a field removed)."""
    import yaml

    from ..config import merge, to_yaml
    from ..training import TrainConfig

    try:
        return _settings(yaml.safe_load(to_yaml(merge(TrainConfig(), yaml.safe_load(path.read_text()) or {}))))
    except (CinetuneError, yaml.YAMLError):
        return None


def train_or_reuse(cfg) -> Path:
    """Train `cfg`, or reuse the finished run already in its output_dir when that run's saved config has the same
    settings (bookkeeping aside) and it started from the same weights (`input_digest`, saved as inputs.json); a run
    stopped part-way resumes from its last checkpoint. A run that differs is removed first (bench runs belong to their
    bench). Benches share runs this way (the Scale-Adapter bench's baselines are the control bench's runs), and a
    re-run costs no training."""
    import shutil

    import yaml

    from ..config import to_yaml
    from ..io import write_json
    from ..training import train
    from ..training.checkpoint import list_checkpoints

    out = Path(cfg.output_dir)
    saved, inputs = out / "config.yaml", out / "inputs.json"
    digest = input_digest(cfg)
    same = saved.is_file() and _saved_settings(saved) == _settings(yaml.safe_load(to_yaml(cfg))) \
        and inputs.is_file() and json.loads(inputs.read_text()).get("sha256") == digest
    if same and (out / "final").is_dir():
        print(f"reusing the finished run {out}")
        return out
    if not same and out.is_dir():
        shutil.rmtree(out)
    resume = same and bool(list_checkpoints(out / "checkpoints"))
    write_json(inputs, {"sha256": digest})
    return train(cfg, resume=resume, progress=False)


def _one_process_threads(threads: int) -> None:
    torch.set_num_threads(threads)


def train_chains(chains: list, jobs: int) -> None:
    """Run each chain (a picklable callable that trains one or more runs in order through train_or_reuse) on `jobs`
    processes at once, each with cores / jobs torch threads, before a bench's own run() reuses what they trained.
    The chains of one bench share no run directory, so two processes never train the same run."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    if jobs <= 1:
        for chain in chains:
            chain()
        return
    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_one_process_threads,
                             initargs=(threads,)) as pool:
        for done in [pool.submit(chain) for chain in chains]:
            done.result()  # a chain's error is raised here, after the others have finished or failed


def eval_set(n: int):
    from ..toyworld import RenderConfig, clip_seed, render_clip
    from ..methods.control.task import training_condition

    clips = [render_clip(clip_seed(7, i), RenderConfig()) for i in range(n)]
    return clips, [{k: training_condition(c, k) for k in KINDS} for c, _ in clips]


def generate(pipe, model, clips, conds, steps: int) -> list[np.ndarray]:
    from ..pipelines import ControlledPipeline

    ctl = ControlledPipeline(pipe, model)
    return [ctl(t, controls=conds[i], steps=steps, guidance=5.0, seed=i, progress=False).videos[0]
            for i, (_, t) in enumerate(clips)]


def through_vae(codec, videos) -> list[np.ndarray]:
    """Each video (F, H, W, 3) uint8 encoded and decoded by `codec`: what a generator's ceiling is, since every
    generated video is a decoded latent."""
    from ..pipelines import to_uint8
    from ..toyworld import video_to_tensor

    with torch.no_grad():
        return [to_uint8(codec.decode(codec.encode(video_to_tensor(v)[None])))[0] for v in videos]


def adherence(videos, clips) -> dict:
    from ..conditions import exact_structured, get_extractor
    from ..metrics import depth_error, edge_f1, pose_pck

    canny, depth, pose = get_extractor("canny"), get_extractor("depth"), get_extractor("pose")
    out = {"canny_f1": [], "depth_error": [], "pose_pck": []}
    for v, (c, _) in zip(videos, clips):
        out["canny_f1"].append(edge_f1(canny.analyse(v), canny.analyse(c.video)))
        out["depth_error"].append(depth_error(depth.analyse(v), exact_structured(vars(c), "depth")))
        if c.keypoints.shape[1]:
            out["pose_pck"].append(pose_pck(list(pose.analyse(v)), list(c.keypoints), 0.05 * 64))
    return {k: float(np.nanmean(v)) if v else float("nan") for k, v in out.items()}


def step_latency(pipe, model, cond, repeats: int) -> tuple[float, float]:
    """Median seconds per denoiser call (CFG batch 2) for the bare base and with the adapter, timed in alternation
    (interleaved_medians) so that a shared machine's load falls on both alike; attaching is off the clock."""
    view, bb = pipe.backbone.view, pipe.backbone
    lat = torch.randn(2, *bb.codec.latent_shape(17, 64, 64))
    emb = bb.text_encoder(["a red circle", ""])
    t = torch.tensor([500.0, 500.0])

    @contextmanager
    def adapted():
        att = model.attach(bb)
        att.prepare(cond)

        def step():
            att.before_step(lat, t, emb, 1.0)
            view(lat, t, emb)
        try:
            yield step
        finally:
            att.remove()

    with torch.no_grad():
        sec = interleaved_medians({"base": lambda: nullcontext(lambda: view(lat, t, emb)), "adapted": adapted},
                                  repeats)
    return sec["base"], sec["adapted"]


def sec_per_step(run: Path) -> float:
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    secs = [float(r["sec_per_step"]) for r in rows[1:]] or [float(rows[0]["sec_per_step"])]
    return statistics.median(secs)
