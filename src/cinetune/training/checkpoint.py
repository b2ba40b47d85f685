"""Atomic training checkpoints, safetensors only: weights, EMA, optimizer tensors, and JSON for the rest."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import CinetuneError
from ..io import atomic_dir

_STEP_DIR = re.compile(r"^step-(\d+)$")


def _optimizer_to_flat(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, meta = {}, {"param_groups": state["param_groups"], "scalars": {}}
    for idx, entry in state["state"].items():
        for k, v in entry.items():
            if torch.is_tensor(v):
                tensors[f"{idx}.{k}"] = v.detach().contiguous().cpu()
            else:
                meta["scalars"][f"{idx}.{k}"] = v
    return tensors, meta


def _optimizer_from_flat(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, v in list(tensors.items()) + list(meta["scalars"].items()):
        idx, k = key.split(".", 1)
        state.setdefault(int(idx), {})[k] = v
    return {"state": state, "param_groups": meta["param_groups"]}


def _optimizer_files(name: str) -> tuple[str, str]:
    """A task's single optimizer ("model") keeps the plain file names; named ones get their name in them."""
    stem = "optimizer" if name == "model" else f"optimizer-{name}"
    return f"{stem}.safetensors", f"{stem}.json"


def save_checkpoint(root: Path, step: int, model_state: dict, optimizers: dict, ema_state: list[torch.Tensor] | None,
                    task_state: dict[str, torch.Tensor], extra: dict, keep: int) -> Path:
    """Write <root>/step-<7-digit step> atomically, then prune to the newest `keep`. optimizers: {name: (optimizer,
    lr scheduler)}; task_state: tensors the task needs to resume (e.g. running means)."""
    path = root / f"step-{step:07d}"
    with atomic_dir(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in model_state.items()}, tmp / "model.safetensors")
        if ema_state is not None:
            save_file({str(i): t.contiguous().cpu() for i, t in enumerate(ema_state)}, tmp / "ema.safetensors")
        if task_state:
            save_file({k: v.detach().contiguous().cpu() for k, v in task_state.items()}, tmp / "task.safetensors")
        for name, (opt, _) in optimizers.items():
            tensors, meta = _optimizer_to_flat(opt.state_dict())
            weights, meta_file = _optimizer_files(name)
            save_file(tensors, tmp / weights)
            (tmp / meta_file).write_text(json.dumps(meta))
        files = {f.name: _fingerprint(f) for f in sorted(tmp.iterdir())}  # what verify_checkpoint checks on resume
        (tmp / "state.json").write_text(json.dumps(
            {"step": step, "lr_schedulers": {n: s.state_dict() for n, (_, s) in optimizers.items()}, "files": files,
             **extra}, default=str))
    for old in list_checkpoints(root)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return path


def list_checkpoints(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and (p / "state.json").is_file()]
    return [p for _, p in sorted(found)]


def _fingerprint(path: Path) -> dict:
    import hashlib

    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return {"size": path.stat().st_size, "sha256": h.hexdigest()}


def verify_checkpoint(path: Path) -> str | None:
    """None when every file the checkpoint recorded is there with its size and hash (checkpoints written before
    fingerprints were recorded pass); else what is wrong, in a few words."""
    try:
        files = json.loads((path / "state.json").read_text()).get("files")
    except (OSError, ValueError) as e:
        return f"state.json unreadable ({type(e).__name__})"
    for name, want in (files or {}).items():
        f = path / name
        if not f.is_file():
            return f"{name} missing"
        if f.stat().st_size != want["size"]:
            return f"{name} is {f.stat().st_size} bytes, {want['size']} were written"
        if _fingerprint(f)["sha256"] != want["sha256"]:
            return f"{name} changed since it was written"
    return None


def load_checkpoint(path: Path, model: torch.nn.Module, optimizers: dict, ema_state: list[torch.Tensor] | None,
                    task) -> dict:
    """Restore everything saved by save_checkpoint (optimizers: {name: (optimizer, lr scheduler)}; `task` gets its
    state back through load_state_dict); returns state.json's content."""
    try:
        state = json.loads((path / "state.json").read_text())
        missing, unexpected = model.load_state_dict(load_file(path / "model.safetensors"), strict=False)
        if unexpected:
            raise CinetuneError(f"checkpoint {path} does not match the model (unexpected {unexpected[:3]})")
        schedulers = state.get("lr_schedulers") or {"model": state["lr_scheduler"]}  # (one-optimizer checkpoints)
        for name, (opt, sched) in optimizers.items():
            weights, meta_file = _optimizer_files(name)
            opt.load_state_dict(_optimizer_from_flat(load_file(path / weights), json.loads((path / meta_file).read_text())))
            sched.load_state_dict(schedulers[name])
        if ema_state is not None:
            saved = load_file(path / "ema.safetensors")
            for i, t in enumerate(ema_state):
                t.copy_(saved[str(i)])
        task.load_state_dict(load_file(path / "task.safetensors") if (path / "task.safetensors").is_file() else {})
    except CinetuneError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError, SafetensorError) as e:  # (JSONDecodeError is a ValueError)
        raise CinetuneError(f"cannot resume from {path}: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    return state
