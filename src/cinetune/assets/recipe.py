"""`cinetune assets`: every shipped toy model rebuilt from nothing by one resumable command.

The rebuild lives in one folder (`root`): `runs/<stage>/` holds each stage's training run (preset-relative paths such
as `init=runs/toy-vae/final/vae` resolve there, because every stage runs with `root` as its working directory) and
`assets/` the exported models, which every stage reads through $CINETUNE_ASSETS instead of the package's. So a stage
never mixes new and old models, and the package's own assets change only at `--install`, once every stage is done.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import CinetuneError
from ..io import atomic_dir, write_json


@dataclass(frozen=True)
class Stage:
    """One training run of the rebuild, trained into `runs/<name>`. `train`: the `cinetune train` arguments;
    `needs`: stages whose results it reads; `asset`: exported under this name when it ends;
    `minutes`: planned one-core minutes, the ETA until the run has measured its own speed."""

    name: str
    train: tuple[str, ...]
    needs: tuple[str, ...] = ()
    asset: str | None = None
    minutes: float = 0.0

    @property
    def preset(self) -> str:
        return self.train[self.train.index("--preset") + 1]


CONTROL = ("--conditions", "canny,depth,pose")
# World v2 (docs/toy-models-and-history.md, "World v2 rebuild"): the VAE first, the feature networks beside it, then
# the two DiTs on the VAE's latents, then the adapters on the DiTs.
STAGES: tuple[Stage, ...] = (
    Stage("toy-vae", ("base", "--preset", "toy-vae-v2"), minutes=70),
    Stage("toy-vae-2", ("base", "--preset", "toy-vae-v2-2"), needs=("toy-vae",), asset="toy-vae", minutes=30),
    Stage("toy-video-encoder", ("features", "--preset", "toy-video-encoder"), asset="toy-video-encoder", minutes=35),
    Stage("toy-identity-encoder", ("features", "--preset", "toy-identity-encoder"), asset="toy-identity-encoder",
          minutes=3),
    Stage("toy-annotator", ("features", "--preset", "toy-annotator"), asset="toy-annotator", minutes=40),
    Stage("toy-small", ("base", "--preset", "toy-small-v2"), needs=("toy-vae-2",), asset="toy-small", minutes=55),
    # toy-large after toy-small: toy-small builds the latent cache both read (two builders would encode it twice).
    Stage("toy-large", ("base", "--preset", "toy-large-v2"), needs=("toy-small",), asset="toy-large", minutes=180),
    Stage("toy-small-control", ("control", "--preset", "toy-small-control", "--method", "concat", *CONTROL),
          needs=("toy-small",), asset="toy-small-control", minutes=16),
    Stage("toy-large-controlnext", ("control", "--preset", "toy-control", "--method", "controlnext", *CONTROL),
          needs=("toy-large",), asset="toy-large-controlnext", minutes=16),
    Stage("toy-large-scale-adapter", ("scale-adapter", "--preset", "toy-scale-adapter", "--large", "toy-large",
                                      "--small", "toy-small-control", *CONTROL),
          needs=("toy-large", "toy-small-control"), asset="toy-large-scale-adapter", minutes=37),
    # The distilled student of toy-large samples with the interpolator, which trains on the shared latent cache.
    Stage("toy-interpolator", ("interpolator", "--preset", "toy-interpolator"), needs=("toy-small",),
          asset="toy-interpolator", minutes=15),
    Stage("toy-large-4step", ("distill", "--preset", "toy-large-4step"), needs=("toy-large", "toy-interpolator"),
          asset="toy-large-4step", minutes=40),
    # Ingredients on toy-large: stage 1 (facial embedding alignment), then stage 2 (router fine-tuning) from it.
    Stage("toy-ingredients-1", ("ingredients", "--preset", "toy-ingredients-1"), needs=("toy-large",), minutes=45),
    Stage("toy-large-ingredients", ("ingredients", "--preset", "toy-ingredients-2"), needs=("toy-ingredients-1",),
          asset="toy-large-ingredients", minutes=20),
)


def _stage_map(stages) -> dict[str, Stage]:
    out = {s.name: s for s in stages}
    for s in stages:
        for n in s.needs:
            if n not in out:
                raise CinetuneError(f"stage {s.name} needs unknown stage {n}")
    return out


def recipe_of(stage: Stage) -> dict:
    """What decides a stage's result: its arguments and its preset as the code defines it today."""
    from ..training.config import PRESETS

    if stage.preset not in PRESETS:
        raise CinetuneError(f"stage {stage.name}: unknown preset {stage.preset!r}")
    return {"train": list(stage.train), "preset": PRESETS[stage.preset]}


def total_steps(stage: Stage) -> int:
    from ..config import parse_overrides
    from ..training.config import preset_config

    overrides = [a for a in stage.train if "=" in a and not a.startswith("-")]
    return preset_config(stage.preset, parse_overrides(overrides) if overrides else None).steps


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_dir(root: Path, stage: Stage) -> Path:
    return root / "runs" / stage.name


def status(root: Path, stage: Stage) -> tuple[str, int, int]:
    """(state, step reached, total steps): state is "done" (trained and exported), "export" (trained, not exported),
    "running" (a live process holds its lock), "resume" (checkpoints, no final weights) or "todo"; a run whose recipe
    changed since it started is an error."""
    from ..training.checkpoint import list_checkpoints

    run = run_dir(root, stage)
    total = total_steps(stage)
    if _running_pid(run) is not None:  # another `cinetune assets` (or one that died) still has it training
        return "running", _last_step(run), total
    mark = run / "recipe.json"
    if mark.is_file() and json.loads(mark.read_text())["digest"] != _digest(recipe_of(stage)):
        raise CinetuneError(f"stage {stage.name}: its recipe changed since {run} was trained; remove that folder to "
                            f"train it again")
    if (run / "final").is_dir():
        exported = stage.asset is None or (root / "assets" / stage.asset / "recipe.json").is_file() and json.loads(
            (root / "assets" / stage.asset / "recipe.json").read_text())["digest"] == _digest(recipe_of(stage))
        return ("done" if exported else "export"), total, total
    found = list_checkpoints(run / "checkpoints") if (run / "checkpoints").is_dir() else []
    if found:
        return "resume", int(found[-1].name.split("-")[-1]), total
    return "todo", 0, total


def _running_pid(run: Path) -> int | None:
    """The pid training this run, from its lock file, while that process lives."""
    lock = run / "running.pid"
    try:
        pid = int(lock.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _last_step(run: Path) -> int:
    path = run / "metrics.csv"
    rows = list(csv.DictReader(path.open())) if path.is_file() else []
    return int(rows[-1]["step"]) if rows else 0


def _sec_per_step(run: Path) -> float | None:
    """Median measured step time of a run in progress (metrics.csv), None before its first logged step."""
    path = run / "metrics.csv"
    if not path.is_file():
        return None
    secs = sorted(float(r["sec_per_step"]) for r in csv.DictReader(path.open()) if r.get("sec_per_step"))
    return secs[len(secs) // 2] if secs else None


def plan(root: Path, stages=STAGES) -> list[dict]:
    """One row per stage: state, progress and the minutes left (measured speed where the run has one)."""
    rows = []
    for s in stages:
        state, step, total = status(root, s)
        sps = _sec_per_step(run_dir(root, s))
        left = 0.0 if state in ("done", "export") else (
            sps * (total - step) / 60 if sps else s.minutes * (1 - step / total))
        rows.append(dict(stage=s.name, state=state, step=step, steps=total, minutes_left=left, asset=s.asset or "",
                         needs=",".join(s.needs)))
    return rows


def critical_path(rows: list[dict], stages=STAGES) -> float:
    """Minutes until the last stage ends with unlimited processes: the longest chain of remaining stages."""
    left = {r["stage"]: r["minutes_left"] for r in rows}
    by = _stage_map(stages)
    memo: dict[str, float] = {}

    def finish(name: str) -> float:
        if name not in memo:
            memo[name] = left[name] + max((finish(n) for n in by[name].needs), default=0.0)
        return memo[name]

    return max((finish(s.name) for s in stages), default=0.0)


def print_plan(root: Path, stages=STAGES, jobs: int = 1) -> list[dict]:
    rows = plan(root, stages)
    print(f"rebuild in {root} ({len(stages)} stages)")
    for r in rows:
        prog = f"{r['step']}/{r['steps']}"
        print(f"  {r['stage']:26s} {r['state']:7s} {prog:>11s}  ~{r['minutes_left']:6.1f} min  "
              f"-> {r['asset'] or '(intermediate)'}" + (f"  after {r['needs']}" if r["needs"] else ""))
    total = sum(r["minutes_left"] for r in rows)
    eta = total if jobs == 1 else max(critical_path(rows, stages), total / jobs)
    print(f"ETA: {total:.0f} one-core minutes left; about {eta:.0f} min of wall time with {jobs} process(es)")
    return rows


def _env(root: Path, threads: int) -> dict:
    env = dict(os.environ, CINETUNE_ASSETS=str(root / "assets"))
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def _launch(root: Path, stage: Stage, state: str, threads: int) -> subprocess.Popen:
    run = run_dir(root, stage)
    run.mkdir(parents=True, exist_ok=True)
    write_json(run / "recipe.json", {"digest": _digest(recipe_of(stage)), **recipe_of(stage)})
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "cinetune.cli"]
    export = [*cli, "export-asset", "--run", str(run), "--name", str(stage.asset), "--stage", stage.name]
    if state == "export":
        cmd = export
    else:
        cmd = [*cli, "train", *stage.train, f"output_dir=runs/{stage.name}",
               *(["--resume"] if state == "resume" else [])]
        if stage.asset:  # train, then export in the same process chain
            cmd = ["/bin/sh", "-c", f"{shlex.join(cmd)} && {shlex.join(export)}"]
    log = (logs / f"{stage.name}.log").open("a")
    log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {state}: {' '.join(cmd)}\n")
    log.flush()
    proc = subprocess.Popen(cmd, cwd=root, env=_env(root, threads), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # outlives an interrupted parent; its lock keeps others off
    (run / "running.pid").write_text(str(proc.pid))
    return proc


def _mark_exported(root: Path, stage: Stage) -> None:
    if stage.asset:
        write_json(root / "assets" / stage.asset / "recipe.json",
                   {"digest": _digest(recipe_of(stage)), "stage": stage.name, **recipe_of(stage)})


def rebuild(root: Path, stages=STAGES, jobs: int = 1, only: list[str] | None = None, poll: float = 5.0,
            threads: int | None = None) -> None:
    """Run every unfinished stage (or `only` these and what they need), `jobs` at a time on `threads` threads each
    (default: the cores shared out), each resumed where it stopped. Stops launching after the first failure, waits for
    the running ones and raises."""
    if jobs < 1:
        raise CinetuneError(f"--jobs must be at least 1, got {jobs}")
    by = _stage_map(stages)
    wanted = selected(only, stages)
    root.mkdir(parents=True, exist_ok=True)
    (root / "assets").mkdir(exist_ok=True)
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    running: dict[str, subprocess.Popen] = {}
    failed: list[str] = []
    while True:
        states = {n: status(root, by[n])[0] for n in wanted}
        pending = [n for n in by if n in wanted and states[n] != "done" and n not in running]
        if not failed:
            for n in pending:
                ready = states[n] != "running" and all(states[d] == "done" for d in by[n].needs)
                if len(running) < jobs and ready:
                    print(f"[{time.strftime('%H:%M:%S')}] start {n} ({states[n]}); log: {root / 'logs' / (n + '.log')}",
                          flush=True)
                    running[n] = _launch(root, by[n], states[n], threads)
        if not running and not any(states[n] == "running" for n in pending):
            break
        time.sleep(poll)
        for n, p in list(running.items()):
            if p.poll() is None:
                continue
            del running[n]
            (run_dir(root, by[n]) / "running.pid").unlink(missing_ok=True)
            if p.returncode == 0:
                _mark_exported(root, by[n])
                print(f"[{time.strftime('%H:%M:%S')}] done {n}", flush=True)
            else:
                failed.append(n)
                print(f"[{time.strftime('%H:%M:%S')}] FAILED {n} (exit {p.returncode}); see "
                      f"{root / 'logs' / (n + '.log')}", flush=True)
    if failed:
        raise CinetuneError(f"stages failed: {', '.join(failed)}; fix and run again (finished stages are kept)")
    left = [n for n in wanted if status(root, by[n])[0] != "done"]
    if left:
        raise CinetuneError(f"stages not reached: {', '.join(left)}")


def selected(only: list[str] | None, stages=STAGES) -> set[str]:
    """The stage names `only` stands for with everything they need (every stage when None); unknown names refused."""
    by = _stage_map(stages)
    return set(by) if not only else _with_needs(only, by)


def _with_needs(names: list[str], by: dict[str, Stage]) -> set[str]:
    out: set[str] = set()
    todo = list(names)
    while todo:
        n = todo.pop()
        if n not in by:
            raise CinetuneError(f"unknown stage {n!r}; stages: {', '.join(by)}")
        if n not in out:
            out.add(n)
            todo.extend(by[n].needs)
    return out


def install(root: Path, stages=STAGES, dest: Path | None = None, only: list[str] | None = None) -> list[Path]:
    """Copy the staged assets into the package (or `dest`), each atomically: every stage's, or `only` those stages'
    with everything they need (so the installed set is always one consistent rebuild: no DiT without its VAE), and
    only once those stages are done."""
    from ..backbones.presets import PACKAGE_ASSETS

    by = _stage_map(stages)
    names = selected(only, stages)
    undone = [n for n in by if n in names and status(root, by[n])[0] != "done"]
    if undone:
        raise CinetuneError(f"--install: stages not done: {', '.join(undone)}")
    out = []
    for n in (n for n in by if n in names):
        if by[n].asset:
            target = Path(dest or PACKAGE_ASSETS) / by[n].asset
            with atomic_dir(target) as tmp:
                shutil.copytree(root / "assets" / by[n].asset, tmp, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("recipe.json"))
            out.append(target)
    return out
