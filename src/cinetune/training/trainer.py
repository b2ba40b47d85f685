"""The shared accelerate trainer: accumulation, clipping, EMA, LR schedule, atomic checkpoints, exact resume, logs."""

from __future__ import annotations

import csv
import json
import math
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..config import to_yaml
from ..errors import CinetuneError
from ..io import atomic_dir, atomic_path, write_text
from .checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .ema import EMA
from .tasks import make_task

LOG_FIELDS = ["step", "loss", "lr", "grad_norm", "sec_per_step", "extra"]


def _accelerator(cfg: TrainConfig):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    # AcceleratorState is a process-wide singleton; a second run in one process (API use, tests) may ask for another
    # precision. Reset it, but not the distributed PartialState (the process group).
    AcceleratorState._reset_state(reset_partial_state=False)
    # Without cpu=True, `accelerate launch --multi_gpu` on a CPU-only machine does not form a real process group.
    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=cfg.mixed_precision)


def plot_loss(csv_path: Path, png_path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(csv_path.open()))
    if not rows:
        return
    steps = [int(r["step"]) for r in rows]
    loss = [float(r["loss"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(steps, loss, lw=0.8, alpha=0.5, label="loss")
    k = max(1, len(loss) // 20)
    smooth = [sum(loss[max(0, i - k):i + 1]) / len(loss[max(0, i - k):i + 1]) for i in range(len(loss))]
    ax.plot(steps, smooth, lw=1.6, label=f"moving mean ({k})")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


class _Log:
    """metrics.csv (truncated to the resume step, so a resumed run has one row per step) + optional TensorBoard."""

    def __init__(self, out: Path, start: int, enabled: bool):
        self.enabled, self.path = enabled, out / "metrics.csv"
        if not enabled:
            return
        rows = list(csv.DictReader(self.path.open())) if self.path.is_file() else []
        rows = [r for r in rows if int(r["step"]) <= start]
        with atomic_path(self.path) as tmp, tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, LOG_FIELDS)
            w.writeheader()
            w.writerows(rows)
        self.file = self.path.open("a", newline="")
        self.writer = csv.DictWriter(self.file, LOG_FIELDS)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tensorboard"))
        except ImportError:  # optional extra: pip install cinetune[tensorboard]
            self.tb = None

    def write(self, step: int, loss: float, lr: float, grad_norm: float, sec: float, extra: dict) -> None:
        if not self.enabled:
            return
        self.writer.writerow({"step": step, "loss": f"{loss:.6g}", "lr": f"{lr:.6g}", "grad_norm": f"{grad_norm:.4g}",
                              "sec_per_step": f"{sec:.4f}", "extra": json.dumps(extra) if extra else ""})
        self.file.flush()
        if self.tb is not None:
            self.tb.add_scalar("loss", loss, step)
            self.tb.add_scalar("lr", lr, step)
            for k, v in extra.items():
                self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.enabled:
            self.file.close()
            if self.tb is not None:
                self.tb.close()


def train(cfg: TrainConfig, resume: bool = False, stop_after: int | None = None, progress: bool = True) -> Path:
    """Run (or resume) training. `stop_after` ends the process after that many total steps, as a kill would
    after a checkpoint (used by the resume tests). Returns the output directory."""
    from diffusers.optimization import get_scheduler

    cfg.validate()
    out = Path(cfg.output_dir)
    ckpt_root = out / "checkpoints"
    if not resume and (found := list_checkpoints(ckpt_root)):
        # A fresh run here would mix its checkpoints with the old run's (and prune its own as the older ones).
        raise CinetuneError(f"{out} already holds a run (checkpoint at step {int(found[-1].name.split('-')[-1])}"
                            f"): pass --resume to continue it, or set another output_dir=...")
    accelerator = _accelerator(cfg)
    main = accelerator.is_main_process
    torch.manual_seed(cfg.seed)  # model initialisation is identical on every process and every run
    task = make_task(cfg, accelerator.device)
    if cfg.gradient_checkpointing:
        task.enable_gradient_checkpointing()
    task.model.train()
    params = task.parameters()
    if not params:
        raise CinetuneError("nothing to train: the task has no trainable parameters")
    o = cfg.optim
    groups = [{"params": g["params"], "lr": o.lr * g.get("lr_scale", 1.0)} for g in task.param_groups()] \
        if hasattr(task, "param_groups") else params
    optimizer = torch.optim.AdamW(groups, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps, weight_decay=o.weight_decay)
    lr_scheduler = get_scheduler(o.schedule, optimizer, num_warmup_steps=o.warmup_steps, num_training_steps=cfg.steps)
    ema = EMA(params, cfg.ema_decay) if cfg.ema_decay else None
    start = 0
    if resume:
        found = list_checkpoints(ckpt_root)
        if not found:
            raise CinetuneError(f"--resume: no checkpoint under {ckpt_root}")
        state = load_checkpoint(found[-1], task.model, optimizer, lr_scheduler, ema.shadow if ema else None)
        start = int(state["step"])
        if main:
            print(f"resumed from {found[-1]} at step {start}")
    if main:
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "config.yaml", to_yaml(cfg))
    model, optimizer = accelerator.prepare(task.model, optimizer)
    log = _Log(out, start, main)
    rank, world = accelerator.process_index, accelerator.num_processes
    bar = tqdm(total=cfg.steps, initial=start, desc=f"train {cfg.task}", disable=not (main and progress),
               dynamic_ncols=True)
    t_start = time.perf_counter()
    step = start
    try:
        for step in range(start, cfg.steps):
            t0 = time.perf_counter()
            total, extra = 0.0, {}
            for micro in range(cfg.grad_accum):
                batch = task.batch(step, micro, rank, world)
                sync = micro == cfg.grad_accum - 1
                ctx = accelerator.no_sync(model) if not sync else nullcontext()
                with ctx, accelerator.autocast():
                    loss, extra = task.loss(model, batch)
                    accelerator.backward(loss / cfg.grad_accum)
                total += loss.detach().float() / cfg.grad_accum
            total = accelerator.reduce(total, reduction="mean").item()
            if not math.isfinite(total):
                raise CinetuneError(f"loss became {total} at step {step + 1}; the last good checkpoint is kept in "
                                    f"{ckpt_root} (lower optim.lr or use mixed_precision=no)")
            grad_norm = accelerator.clip_grad_norm_(params, o.grad_clip) if o.grad_clip > 0 else torch.tensor(0.0)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                ema.update()
            done = step + 1
            dt = time.perf_counter() - t0
            if done % cfg.log_every == 0 or done == cfg.steps or done == start + 1:
                log.write(done, total, lr_scheduler.get_last_lr()[0], float(grad_norm), dt, extra)
            bar.set_postfix(loss=f"{total:.4f}")
            bar.update(1)
            if cfg.validate_every and done % cfg.validate_every == 0 and done != cfg.steps and main:
                log_extra = _with_ema(task, ema, lambda: task.validate(out, done))
                if log_extra:
                    log.write(done, total, lr_scheduler.get_last_lr()[0], float(grad_norm), dt, log_extra)
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                accelerator.wait_for_everyone()
                if main:
                    save_checkpoint(ckpt_root, done, accelerator.unwrap_model(model).state_dict(), optimizer,
                                    lr_scheduler, ema.shadow if ema else None, {"config": to_yaml(cfg)},
                                    cfg.keep_checkpoints)
                    plot_loss(log.path, out / "loss.png", cfg.preset or f"{cfg.backbone} {cfg.task}")
            if stop_after is not None and done >= stop_after:
                return out
        bar.close()
        accelerator.wait_for_everyone()
        if main:
            wall = time.perf_counter() - t_start
            final = _with_ema(task, ema, lambda: task.validate(out, cfg.steps)) or {}
            with atomic_dir(out / "final") as tmp:
                _with_ema(task, ema, lambda: task.export(tmp))
            summary = {"steps": cfg.steps, "wall_seconds_this_run": round(wall, 1), "processes": world,
                       "final_loss": total, **final}
            write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
            plot_loss(log.path, out / "loss.png", cfg.preset or f"{cfg.backbone} {cfg.task}")
    finally:
        log.close()
        bar.close()
    return out


def _with_ema(task, ema: EMA | None, fn):
    """Run fn with EMA weights swapped in (if EMA is on), restoring the live weights afterwards."""
    if ema is None:
        return fn()
    params = task.parameters()
    live = [p.detach().clone() for p in params]
    ema.copy_to(params)
    try:
        return fn()
    finally:
        with torch.no_grad():
            for p, v in zip(params, live):
                p.copy_(v)
