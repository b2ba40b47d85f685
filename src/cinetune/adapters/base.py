"""Adapter infrastructure (DESIGN.md, "Extension mechanism"): per-model state, read-only block hooks, removable
handles, PEFT LoRA and regex-selected fine-tuning of base weights, saving only what was trained.

Per-call tensors (control residuals, identity features) never travel through the host model's `forward`: an
adapter computes them before the backbone runs and puts them in the model's `AdapterState`; hooks on
`transformer.blocks[i]` only *read* that state, so gradient checkpointing (which re-runs blocks, and their hooks,
during backward) sees the same tensors twice, and several models (student / teacher / critic) never share state.
"""

from __future__ import annotations

import json
import re
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..errors import CinetuneError


@dataclass
class AdapterState:
    """Tensors for the next forward of one model instance, per owner (an attached adapter's name).

    residuals[owner][block_index]: (B, N, D) added to that block's output hidden states; scales[owner]: a float or
    a per-block dict multiplying them (control scale; 0 switches an adapter off for a step without detaching it)."""

    residuals: dict[str, dict[int, torch.Tensor]] = field(default_factory=dict)
    scales: dict[str, float | dict[int, float]] = field(default_factory=dict)
    extras: dict[str, dict] = field(default_factory=dict)

    def set_residuals(self, owner: str, residuals: dict[int, torch.Tensor]) -> None:
        self.residuals[owner] = dict(residuals)

    def clear(self, owner: str | None = None) -> None:
        for d in (self.residuals, self.extras):
            if owner is None:
                d.clear()
            else:
                d.pop(owner, None)

    def scale(self, owner: str, block: int) -> float:
        s = self.scales.get(owner, 1.0)
        return float(s.get(block, 1.0) if isinstance(s, dict) else s)


_STATES: "weakref.WeakKeyDictionary[nn.Module, AdapterState]" = weakref.WeakKeyDictionary()


def state_of(model: nn.Module) -> AdapterState:
    """The adapter state of one model instance (created on first use, dropped with the model)."""
    st = _STATES.get(model)
    if st is None:
        st = _STATES[model] = AdapterState()
    return st


class Handle:
    """What `attach` returns: `remove()` undoes the attachment exactly (hooks, state, added modules). Also a
    context manager."""

    def __init__(self, removers: list[Callable[[], None]] | None = None, name: str = ""):
        self._removers, self.name, self.removed = list(removers or []), name, False

    def add(self, remover: Callable[[], None]) -> None:
        self._removers.append(remover)

    def remove(self) -> None:
        if self.removed:
            return
        for r in reversed(self._removers):
            r()
        self.removed = True

    def __enter__(self) -> "Handle":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def _hidden(output):
    return output[0] if isinstance(output, tuple) else output


def _add(h: torch.Tensor, r: torch.Tensor, scale: float, block: int) -> torch.Tensor:
    return h + scale * r.to(h.dtype)


def add_residual_hooks(model: nn.Module, blocks: nn.ModuleList, owner: str, indices: list[int],
                       combine: Callable[[torch.Tensor, torch.Tensor, float, int], torch.Tensor] = _add) -> Handle:
    """Forward hooks that merge state_of(model).residuals[owner][i] into block i's output hidden states:
    `combine(hidden_states, residual, scale, i)`, by default hidden_states + scale * residual (an adapter may pass
    e.g. a cross-normalisation that reads the hidden states' statistics). Pure reads: absent residuals (or scale 0)
    leave the block's output untouched. Works for blocks that return a tensor (Wan) or a tuple whose first item is
    the hidden states (CogVideoX)."""
    state = state_of(model)

    def make(i: int):
        def hook(module, args, output):
            r = state.residuals.get(owner, {}).get(i)
            s = state.scale(owner, i)
            if r is None or s == 0.0:
                return output
            h = _hidden(output)
            if r.shape != h.shape:
                raise CinetuneError(f"adapter {owner!r}: residual for block {i} has shape {tuple(r.shape)}, the block "
                                    f"output {tuple(h.shape)}")
            h = combine(h, r, s, i)
            return (h, *output[1:]) if isinstance(output, tuple) else h
        return hook

    n = len(blocks)
    bad = [i for i in indices if not 0 <= i < n]
    if bad:
        raise CinetuneError(f"block indices {bad} out of range for a model with {n} blocks")
    hooks = [blocks[i].register_forward_hook(make(i)) for i in indices]
    return Handle([lambda: [h.remove() for h in hooks], lambda: state.clear(owner)], name=owner)


# -- files ---------------------------------------------------------------------------------------------------------
def read_manifest(path: str | Path, manifest: str, shipped_subdir: str, what: str) -> tuple[Path, dict]:
    """(directory, parsed JSON manifest) of a saved adapter given as a directory or as a shipped asset's name
    (<assets>/<name>/<shipped_subdir>); a missing manifest or invalid JSON is a one-line CinetuneError."""
    from ..backbones.presets import find_saved

    found = find_saved(path, shipped_subdir, manifest)
    if found is None:
        raise CinetuneError(f"{path} is not a cinetune {what} (no {manifest})")
    path, man = found, found / manifest
    try:
        return path, json.loads(man.read_text())
    except json.JSONDecodeError as e:
        raise CinetuneError(f"{man}: invalid JSON ({e})") from None


# -- selective fine-tuning of base weights ----------------------------------------------------------------------------
def select_parameters(model: nn.Module, pattern: str) -> list[str]:
    """Names of `model`'s parameters matching the regex `pattern` (re.search), e.g. r"attn1\\.to_out"."""
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise CinetuneError(f"bad parameter regex {pattern!r}: {e}") from None
    names = [n for n, _ in model.named_parameters() if rx.search(n)]
    if not names:
        raise CinetuneError(f"no parameter of {type(model).__name__} matches {pattern!r}")
    return names


def enable_finetune(model: nn.Module, pattern: str) -> list[str]:
    """Freeze `model` except the parameters matching `pattern`; returns their names."""
    names = set(select_parameters(model, pattern))
    for n, p in model.named_parameters():
        p.requires_grad_(n in names)
    return sorted(names)


def trained_state(model: nn.Module, names: list[str], base: dict[str, torch.Tensor] | None = None) -> dict:
    """The selected parameters only; as deltas from `base` when given (smaller to compress, exact to re-apply)."""
    params = dict(model.named_parameters())
    return {n: (params[n].detach() - base[n] if base is not None else params[n].detach()).contiguous().clone()
            for n in names}


def apply_trained_state(model: nn.Module, tensors: dict[str, torch.Tensor], delta: bool) -> Callable[[], None]:
    """Write fine-tuned base weights into `model` (adding deltas, or replacing); returns an undo function that
    restores the original weights exactly."""
    params = dict(model.named_parameters())
    missing = [n for n in tensors if n not in params]
    if missing:
        raise CinetuneError(f"fine-tuned weights for parameters this model lacks: {missing[:3]}")
    saved = {n: params[n].detach().clone() for n in tensors}
    with torch.no_grad():
        for n, t in tensors.items():
            if t.shape != params[n].shape:
                raise CinetuneError(f"{n}: saved shape {tuple(t.shape)} vs model {tuple(params[n].shape)}")
            params[n].copy_(params[n] + t.to(params[n].dtype) if delta else t.to(params[n].dtype))

    def undo() -> None:
        with torch.no_grad():
            for n, t in saved.items():
                params[n].copy_(t)
    return undo


# -- LoRA through PEFT ----------------------------------------------------------------------------------------------
DEFAULT_LORA_TARGETS = r".*blocks\.\d+\.(attn1|attn2)\.(to_q|to_k|to_v|to_out\.0)"


def add_lora(transformer: nn.Module, rank: int = 16, alpha: float | None = None,
             target: str = DEFAULT_LORA_TARGETS, name: str = "cinetune") -> Handle:
    """Inject PEFT LoRA layers (B initialised to zero: an exact identity at init) into modules whose full name
    matches the regex `target`. Only the LoRA weights train. remove() deletes the adapter."""
    from peft import LoraConfig

    cfg = LoraConfig(r=rank, lora_alpha=alpha or rank, target_modules=target, init_lora_weights=True)
    try:
        transformer.add_adapter(cfg, adapter_name=name)
    except ValueError as e:
        raise CinetuneError(f"LoRA: {str(e).splitlines()[0]}") from None
    return Handle([lambda: transformer.delete_adapters(name)], name=name)


def lora_state(transformer: nn.Module, name: str = "cinetune") -> dict[str, torch.Tensor]:
    from peft.utils import get_peft_model_state_dict

    return {k: v.detach().contiguous().clone() for k, v in
            get_peft_model_state_dict(transformer, adapter_name=name).items()}


def load_lora_state(transformer: nn.Module, tensors: dict[str, torch.Tensor], name: str = "cinetune") -> None:
    from peft.utils import set_peft_model_state_dict

    res = set_peft_model_state_dict(transformer, tensors, adapter_name=name)
    unexpected = getattr(res, "unexpected_keys", None)
    if unexpected:
        raise CinetuneError(f"LoRA weights do not fit this model: {unexpected[:3]}")


# -- files --------------------------------------------------------------------------------------------------------
def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """safetensors file with a JSON config in its metadata, written atomically."""
    from safetensors.torch import save_file

    from ..io import atomic_path

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
