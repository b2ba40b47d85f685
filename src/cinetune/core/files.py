"""Saved adapters on disk: a directory with a JSON manifest naming its method, safetensors weights only.

A saved adapter is found by its directory, by the directory one level above it (an exported asset or a run's
`final/`), or by a shipped asset's name; each method names its manifest file (e.g. cinetune_control.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable

import torch

from ..errors import CinetuneError
from ..io import atomic_dir, atomic_path


def find_manifest(path: str | Path, manifests: Iterable[str]) -> tuple[Path, str] | None:
    """(directory, manifest file name) of the first saved adapter at `path`, `path/*/`, `path/final/*/` (a training
    run), `<assets>/<path>` or `<assets>/<path>/*/`; None when there is none."""
    from ..backbones.presets import assets_root

    manifests = list(manifests)
    p = Path(path)
    roots = [p, p / "final"] + ([assets_root() / str(path)] if str(path) and "/" not in str(path) else [])
    for root in roots:
        if not root.is_dir():
            continue
        for d in [root, *sorted(c for c in root.iterdir() if c.is_dir())]:
            for m in manifests:
                if (d / m).is_file():
                    return d, m
    return None


def read_manifest(path: str | Path, manifest: str, what: str) -> tuple[Path, dict]:
    """(directory, parsed manifest) of a saved adapter (see find_manifest); a missing manifest or invalid JSON is
    a one-line CinetuneError."""
    found = find_manifest(path, [manifest])
    if found is None:
        raise CinetuneError(f"{path} is not a cinetune {what} (no {manifest})")
    man = found[0] / manifest
    try:
        meta = json.loads(man.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CinetuneError(f"{man}: invalid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise CinetuneError(f"{man}: the manifest must be a JSON object")
    return found[0], meta


def write_adapter_dir(path: str | Path, manifest: str, meta: dict, write: Callable[[Path], None]) -> Path:
    """Write a saved adapter atomically: `write(tmp_dir)` puts the weights, then the manifest goes beside them."""
    path = Path(path)
    with atomic_dir(path) as tmp:
        write(tmp)
        (tmp / manifest).write_text(json.dumps(meta, indent=2) + "\n")
    return path


def load_pretrained(klass, path: Path, **kwargs):
    """klass.from_pretrained(path) (a diffusers ModelMixin, safetensors only) with a one-line error, and without
    diffusers' own log line about a failed load before it."""
    from diffusers.utils import logging as dlog

    level = dlog.get_verbosity()
    dlog.set_verbosity(dlog.CRITICAL)
    try:
        return klass.from_pretrained(path, use_safetensors=True, **kwargs)
    except (OSError, ValueError, RuntimeError) as e:
        raise CinetuneError(f"cannot load {path}: {str(e).splitlines()[0]}") from None
    finally:
        dlog.set_verbosity(level)


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """safetensors file with a JSON config in its metadata, written atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata={"cinetune": json.dumps(meta)})
    return path


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CinetuneError(f"adapter weights not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("cinetune", "{}"))
            return {k: f.get_tensor(k) for k in f.keys()}, meta
    except Exception as e:  # corrupt or not a safetensors file
        raise CinetuneError(f"cannot read adapter weights {path}: {type(e).__name__}: {e}") from None
