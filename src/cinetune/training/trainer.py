"""The shared accelerate trainer: accumulation, clipping, EMA, LR schedule, atomic checkpoints, exact resume, logs."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..config import to_yaml
from ..core.figures import figure
from ..errors import CinetuneError
from ..io import atomic_dir, atomic_path, write_text
from .checkpoint import list_checkpoints, load_checkpoint, save_checkpoint, verify_checkpoint
from .config import TrainConfig
from .ema import EMA
from .task import Update
from .tasks import make_task

LOG_FIELDS = ["step", "loss", "lr", "grad_norm", "sec_per_step", "extra"]


def _accelerator(cfg: TrainConfig):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    # AcceleratorState is a process-wide singleton; a second run in one process (API use, tests) may ask for another
    # precision. Reset it, but not the distributed PartialState (the process group).
    AcceleratorState._reset_state(reset_partial_state=False)
    # Without cpu=True, `accelerate launch --multi_gpu` on a CPU-only machine does not form a real process group.
    from accelerate.utils import DistributedDataParallelKwargs

    from .tasks import task_class

    # A task whose updates each reach part of its module (distill: student or critic) needs DDP to allow it.
    unused = bool(getattr(task_class(cfg.task), "find_unused_parameters", False))
    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=resolve_precision(cfg.mixed_precision),
                       kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=unused)])


def resolve_precision(name: str) -> str:
    """"auto": bf16 autocast where the hardware computes bf16 natively (CUDA, or a CPU with AVX512-BF16 / AMX;
    `cinetune bench foundation` measured 1.29x for a toy-large training step), fp32 elsewhere, so a recipe runs
    everywhere and uses the fast path where it exists; anything else is returned as given."""
    if name != "auto":
        return name
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return "bf16" if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported() else "no"


def device_description() -> str:
    """Where a run trains, for its model card: the GPU's name, or the CPU's model and core count."""
    import os
    import platform

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def plot_loss(csv_path: Path, png_path: Path, title: str) -> None:
    rows = list(csv.DictReader(csv_path.open()))
    if not rows:
        return
    steps = [int(r["step"]) for r in rows]
    loss = [float(r["loss"]) for r in rows]
    k = max(1, len(loss) // 20)
    smooth = [sum(loss[max(0, i - k):i + 1]) / len(loss[max(0, i - k):i + 1]) for i in range(len(loss))]
    with figure(png_path, dpi=100) as (fig, ax):
        ax.plot(steps, loss, lw=0.8, alpha=0.5, label="loss")
        ax.plot(steps, smooth, lw=1.6, label=f"moving mean ({k})")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(title)
        ax.legend()


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


@dataclass
class _Optim:
    """One update's optimizer and LR schedule (its schedule counts only the steps the update runs on)."""

    update: Update
    optimizer: torch.optim.Optimizer
    scheduler: object

    @property
    def params(self) -> list:
        return self.update.parameters()


def _optimizers(task, cfg: TrainConfig) -> dict[str, _Optim]:
    from diffusers.optimization import get_scheduler

    o, out = cfg.optim, {}
    for u in task.updates():
        if not u.parameters():
            continue
        groups = [{"params": g["params"], "lr": o.lr * u.lr_scale * g.get("lr_scale", 1.0)} for g in u.groups]
        opt = torch.optim.AdamW(groups, lr=o.lr * u.lr_scale, betas=(o.beta1, o.beta2), eps=o.eps,
                                weight_decay=o.weight_decay)
        sched = get_scheduler(o.schedule, opt, num_warmup_steps=o.warmup_steps,
                              num_training_steps=u.steps_within(cfg.steps))
        out[u.name] = _Optim(u, opt, sched)
    if not out:
        raise CinetuneError("nothing to train: the task has no trainable parameters")
    return out


def _setup(cfg: TrainConfig, resume: bool, accelerator, make_task_fn):
    """(task, optimizers, ema, start step), resumed from the newest checkpoint when asked."""
    out, ckpt_root = Path(cfg.output_dir), Path(cfg.output_dir) / "checkpoints"
    if not resume and (found := list_checkpoints(ckpt_root)):
        # A fresh run here would mix its checkpoints with the old run's (and prune its own as the older ones).
        raise CinetuneError(f"{out} already holds a run (checkpoint at step {int(found[-1].name.split('-')[-1])}"
                            f"): pass --resume to continue it, or set another output_dir=...")
    torch.manual_seed(cfg.seed)  # model initialisation is identical on every process and every run
    task = make_task_fn(cfg, accelerator.device)
    _frozen_backbone_memory(task, cfg)
    if cfg.gradient_checkpointing:
        task.enable_gradient_checkpointing()
    task.model.train()
    optims = _optimizers(task, cfg)
    ema_params = [p for o in optims.values() if o.update.ema for p in o.params]
    ema = EMA(ema_params, cfg.ema_decay) if cfg.ema_decay and ema_params else None
    start = 0
    if resume:
        path, state = _resume(ckpt_root, task, optims, ema, accelerator.is_main_process)
        start = int(state["step"])
        if accelerator.is_main_process:
            print(f"resumed from {path} at step {start}")
    return task, optims, ema, start


def _frozen_backbone_memory(task, cfg: TrainConfig) -> None:
    """cfg.backbone_dtype / backbone_fp8: what trains is made fp32, the frozen backbone's other layers stored in fp8."""
    from ..backbones.memory import DTYPES, enable_fp8, upcast_trainable

    if cfg.backbone_dtype == "fp32":
        return
    if resolve_precision(cfg.mixed_precision) == "no":
        raise CinetuneError(f"mixed_precision={cfg.mixed_precision} gives no autocast on this machine; a "
                            f"{cfg.backbone_dtype} backbone needs it: set mixed_precision={cfg.backbone_dtype}")
    upcast_trainable([p for u in task.updates() for p in u.parameters()])
    if cfg.backbone_fp8:
        enable_fp8(task.backbone.transformer, DTYPES[cfg.backbone_dtype], frozen_only=True)


# Fields a resumed run may change: how it logs, validates and checkpoints, not what it trains.
RESUME_MAY_CHANGE = {"log_every", "validate_every", "checkpoint_every", "keep_checkpoints", "num_validation",
                      "validation_steps"}


def _check_resumable(cfg: TrainConfig, saved: Path) -> None:
    """--resume continues the run as it was configured (the checkpoint's optimizer, LR schedule and data order):
    a changed training field would be ignored in part while config.yaml recorded it, so it is refused. Fields the
    saved config does not name (added since) are not compared."""
    import yaml

    if not saved.is_file():
        return
    from ..methods.registry import methods

    old = yaml.safe_load(saved.read_text()) or {}
    new = dataclasses.asdict(cfg)
    # output_dir: the same folder, however it is spelled; other methods' sections do not train here
    skip = RESUME_MAY_CHANGE | {"output_dir"} | {m.section for n, m in methods().items()
                                                       if n != cfg.task and cfg.task not in m.extra_tasks}

    def diff(a: dict, b: dict, prefix: str = "") -> list[str]:
        out = []
        for k, v in a.items():
            if k not in b or (not prefix and k in skip):
                continue
            if isinstance(v, dict) and isinstance(b[k], dict):
                out += diff(v, b[k], f"{prefix}{k}.")
            elif (list(v) if isinstance(v, (list, tuple)) else v) != (list(b[k]) if isinstance(b[k], (list, tuple))
                                                                      else b[k]):
                out.append(f"{prefix}{k} {v!r} -> {b[k]!r}")
        return out

    changed = diff(old, new)
    if changed:
        raise CinetuneError(f"--resume continues {saved.parent} as it was configured; changed: {', '.join(changed[:4])}"
                            " (start another output_dir to train with them)")


def _resume(ckpt_root: Path, task, optims: dict, ema, verbose: bool) -> tuple[Path, dict]:
    """Load the newest checkpoint that verifies and loads; a damaged newer one is reported and passed over."""
    found = list_checkpoints(ckpt_root)  # not empty: train() checks that before any work
    problems = []
    for path in reversed(found):
        why = verify_checkpoint(path)
        if why is None:
            try:
                return path, load_checkpoint(path, task.model, {n: (o.optimizer, o.scheduler) for n, o in optims.items()},
                                             ema.shadow if ema else None, task)
            except CinetuneError as e:
                why = str(e)
        problems.append(f"{path.name}: {why}")
        if verbose:
            print(f"skipping damaged checkpoint {path.name} ({why})")
    raise CinetuneError(f"--resume: no checkpoint under {ckpt_root} verifies ({'; '.join(problems)})")


def _run_update(o: _Optim, task, model, accelerator, cfg: TrainConfig, batches, step: int
                ) -> tuple[float, float, dict]:
    """One optimizer step of one update over cfg.grad_accum micro-batches: (mean loss, grad norm, extra)."""
    total, extra = 0.0, {}
    for micro, batch in enumerate(batches):
        sync = micro == cfg.grad_accum - 1
        ctx = accelerator.no_sync(model) if not sync else nullcontext()
        with ctx, accelerator.autocast():
            loss, extra = task.update_loss(o.update.name, model, batch)
            accelerator.backward(loss / cfg.grad_accum)
        total += loss.detach().float() / cfg.grad_accum
    total = accelerator.reduce(total, reduction="mean").item()
    if not math.isfinite(total):
        what = "loss" if o.update.name == "model" else f"{o.update.name} loss"
        found = list_checkpoints(Path(cfg.output_dir) / "checkpoints")
        kept = (f"the last good checkpoint is {found[-1]}" if found else
                f"no checkpoint was written yet (the first comes at step {cfg.checkpoint_every})")
        raise CinetuneError(f"{what} became {total} at step {step + 1}; {kept} (lower optim.lr or use "
                            f"mixed_precision=no)")
    g = cfg.optim.grad_clip
    grad_norm = accelerator.clip_grad_norm_(o.params, g) if g > 0 else torch.tensor(0.0)
    o.optimizer.step()
    o.scheduler.step()
    return total, float(grad_norm), extra


def _train_step(step: int, task, model, optims: dict[str, _Optim], ema, accelerator, cfg: TrainConfig) -> tuple:
    """Every update due at `step` (each on the same micro-batches); -> (logged loss, lr, grad norm, extra)."""
    rank, world = accelerator.process_index, accelerator.num_processes
    due = [o for o in optims.values() if o.update.due(step)]
    batches = lambda: (task.batch(step, m, rank, world) for m in range(cfg.grad_accum))  # noqa: E731
    shared = list(batches()) if len(due) > 1 else None  # drawn once when several updates train on them
    logged, extra = None, {}
    for o in due:
        task.model.zero_grad(set_to_none=True)  # another update's backward may have reached these parameters
        loss, norm, ex = _run_update(o, task, model, accelerator, cfg, shared if shared is not None else batches(), step)
        extra.update(ex if len(optims) == 1 else {f"{o.update.name}_{k}": v for k, v in ex.items()})
        if len(optims) > 1:
            extra[f"loss_{o.update.name}"] = loss
        logged = logged or (loss, o.scheduler.get_last_lr()[0], norm)
        if ema is not None and o.update.ema:
            ema.update()
    task.model.zero_grad(set_to_none=True)
    return (*logged, extra) if logged else (float("nan"), 0.0, 0.0, extra)


def train(cfg: TrainConfig, resume: bool = False, stop_after: int | None = None, progress: bool = True,
          make_task_fn=make_task) -> Path:
    """Run (or resume) training. `stop_after` ends the process after that many total steps, as a kill would
    after a checkpoint (used by the resume tests). Returns the output directory."""
    cfg.validate()
    out = Path(cfg.output_dir)
    accelerator = _accelerator(cfg)
    main = accelerator.is_main_process
    if resume:
        if not list_checkpoints(out / "checkpoints"):  # before any data is cached or model built
            raise CinetuneError(f"--resume: no checkpoint under {out / 'checkpoints'}")
        _check_resumable(cfg, out / "config.yaml")
    task, optims, ema, start = _setup(cfg, resume, accelerator, make_task_fn)
    if accelerator.distributed_type.value == "DEEPSPEED" and len(optims) > 1:
        raise CinetuneError(f"DeepSpeed wraps one optimizer per engine; the {cfg.task} task updates {len(optims)} "
                            f"({', '.join(optims)}): launch it with the DDP or FSDP configuration (docs/distributed.md)")
    if main:
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "config.yaml", to_yaml(cfg))
    model, *opts = accelerator.prepare(task.model, *(o.optimizer for o in optims.values()))
    for o, wrapped in zip(optims.values(), opts):
        o.optimizer = wrapped
    log = _Log(out, start, main)
    bar = tqdm(total=cfg.steps, initial=start, desc=f"train {cfg.task}", disable=not (main and progress),
               dynamic_ncols=True)
    t_start, loss = time.perf_counter(), float("nan")
    try:
        for step in range(start, cfg.steps):
            t0 = time.perf_counter()
            loss, lr, grad_norm, extra = _train_step(step, task, model, optims, ema, accelerator, cfg)
            done, dt = step + 1, time.perf_counter() - t0
            if done % cfg.log_every == 0 or done == cfg.steps or done == 1:  # (a resumed run logs as a straight one)
                log.write(done, loss, lr, grad_norm, dt, extra)
            bar.set_postfix(loss=f"{loss:.4f}")
            bar.update(1)
            if cfg.validate_every and done % cfg.validate_every == 0 and done != cfg.steps:
                if main and (log_extra := _with_ema(task, ema, lambda: _validate(task, out, done, cfg, accelerator))):
                    log.write(done, loss, lr, grad_norm, dt, log_extra)
                if _stop_requested(task, accelerator):
                    break
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                _checkpoint(done, task, model, optims, ema, accelerator, cfg, log)
            if stop_after is not None and done >= stop_after:
                return out
        bar.close()
        accelerator.wait_for_everyone()
        if main:
            _finish(task, ema, cfg, loss, time.perf_counter() - t_start, accelerator, log)
    finally:
        log.close()
        bar.close()
    return out


def _stop_requested(task, accelerator) -> bool:
    """A task's early stop (distill's guards), decided on the main process where validation runs, for every process."""
    flag = torch.tensor([float(getattr(task, "stop_requested", False))], device=accelerator.device)
    if accelerator.num_processes > 1:
        from accelerate.utils import broadcast

        flag = broadcast(flag, from_process=0)
    if flag.item() and accelerator.is_main_process:
        print("early stop: the task asked to stop (no better validation for a while)")
    return bool(flag.item())


def _checkpoint(done: int, task, model, optims: dict[str, _Optim], ema, accelerator, cfg: TrainConfig, log) -> None:
    out = Path(cfg.output_dir)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_checkpoint(out / "checkpoints", done, accelerator.unwrap_model(model).state_dict(),
                        {n: (o.optimizer, o.scheduler) for n, o in optims.items()}, ema.shadow if ema else None,
                        task.state_dict(), {"config": to_yaml(cfg)}, cfg.keep_checkpoints)
        plot_loss(log.path, out / "loss.png", cfg.preset or f"{cfg.backbone} {cfg.task}")


def _validate(task, out: Path, step: int, cfg: TrainConfig, accelerator) -> dict:
    """task.validate; beside a half-precision backbone under the training's autocast (fp32 trained weights meet
    bf16 activations there)."""
    with accelerator.autocast() if cfg.backbone_dtype != "fp32" else nullcontext():
        return task.validate(out, step)


def _finish(task, ema, cfg: TrainConfig, loss: float, wall: float, accelerator, log) -> None:
    """Final validation, the exported weights (final/, with EMA when on), summary.json and the loss plot."""
    out, world = Path(cfg.output_dir), accelerator.num_processes
    final = _with_ema(task, ema, lambda: _validate(task, out, cfg.steps, cfg, accelerator)) or {}
    with atomic_dir(out / "final") as tmp:
        _with_ema(task, ema, lambda: task.export(tmp))
    summary = {"steps": cfg.steps, "wall_seconds_this_run": round(wall, 1), "processes": world,
               "device": device_description(), "precision": resolve_precision(cfg.mixed_precision),
               "final_loss": loss, **final}
    write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    plot_loss(log.path, out / "loss.png", cfg.preset or f"{cfg.backbone} {cfg.task}")


def _with_ema(task, ema: EMA | None, fn):
    """Run fn with EMA weights swapped in (if EMA is on), restoring the live weights afterwards."""
    if ema is None:
        return fn()
    params = ema.params
    live = [p.detach().clone() for p in params]
    ema.copy_to(params)
    try:
        return fn()
    finally:
        with torch.no_grad():
            for p, v in zip(params, live):
                p.copy_(v)
