"""A user's LoRA file on the backbone (`--lora PATH[:SCALE]`): diffusers' Wan / CogVideoX LoRA format, or the
non-diffusers formats diffusers' loaders convert (original Wan `diffusion_model.*`, musubi `lora_unet_*`), loaded
through diffusers' own conversion and PEFT injection, stackable with every adapter and removed exactly."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch

from ..errors import CinetuneError
from .lora import remove_adapter
from .state import Handle

LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"  # what diffusers' save_lora_weights writes


def parse_lora_spec(spec: str) -> tuple[str, float]:
    """'path' or 'path:scale' -> (path, scale); a path that itself holds ':' keeps it unless a number follows."""
    path, sep, tail = spec.rpartition(":")
    if sep and path:
        try:
            return path, float(tail)
        except ValueError:
            pass
    return spec, 1.0


def save_lora(path: str | Path, lora: dict[str, torch.Tensor], family: str = "wan") -> Path:
    """Write `lora` (PEFT keys of the transformer: blocks.0.attn1.to_q.lora_A.weight, ...) with diffusers' own LoRA
    writer (pytorch_lora_weights.safetensors, what `load_lora_weights` and `--lora` read), into a directory that
    appears whole."""
    from diffusers import CogVideoXPipeline, WanPipeline

    from ..io import atomic_dir

    path = Path(path)
    with atomic_dir(path) as tmp:
        (WanPipeline if family == "wan" else CogVideoXPipeline).save_lora_weights(
            tmp, transformer_lora_layers=lora, safe_serialization=True)
    return path


def _weights_file(path: Path) -> Path:
    if path.is_dir():
        named = path / LORA_WEIGHT_NAME
        found = [named] if named.is_file() else sorted(path.glob("*.safetensors"))
        if len(found) != 1:
            raise CinetuneError(f"--lora {path}: expected {LORA_WEIGHT_NAME} or one .safetensors file there, found "
                                f"{len(found)}")
        return found[0]
    if not path.is_file():
        raise CinetuneError(f"--lora {path}: no such file")
    if path.suffix != ".safetensors":
        raise CinetuneError(f"--lora {path}: only .safetensors LoRA files are loaded")
    return path


class LoraFile:
    """A LoRA read from disk once; `attach(backbone)` injects it (scaled by `scale`) until the attachment is removed."""

    method = "lora"
    kinds: list[str] = []

    def __init__(self, path: str | Path, scale: float = 1.0):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        if not math.isfinite(float(scale)):
            raise CinetuneError(f"--lora {path}: scale must be a finite number, got {scale}")
        self.path, self.scale = Path(path).expanduser(), float(scale)
        file = _weights_file(self.path)
        try:
            self.tensors = load_file(str(file))
        except (SafetensorError, OSError) as e:
            raise CinetuneError(f"--lora {file}: unreadable ({type(e).__name__}: {str(e).splitlines()[0]})") from None
        bad = [k for k, v in self.tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise CinetuneError(f"--lora {file}: non-finite values in {bad[0]}")
        self.info = {"path": str(file), "scale": self.scale}

    def attach(self, backbone, trainable: bool = False) -> "LoraFileAttachment":
        if trainable:
            raise CinetuneError("a LoRA file is applied as it is; it is not trained here")
        return LoraFileAttachment(self, backbone)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {}

    def num_parameters(self) -> int:
        return sum(v.numel() for v in self.tensors.values())

    def save(self, path: str | Path) -> Path:
        raise CinetuneError("a LoRA file is saved where it came from; nothing to save")

    @classmethod
    def load(cls, path: str | Path) -> "LoraFile":
        return cls(*parse_lora_spec(str(path)))


def _diffusers_state_dict(tensors: dict, family: str) -> dict[str, torch.Tensor]:
    """The LoRA in diffusers' key layout ('transformer.' prefix), converted by the backbone family's loader."""
    from diffusers.loaders import CogVideoXLoraLoaderMixin, WanLoraLoaderMixin

    loader = WanLoraLoaderMixin if family == "wan" else CogVideoXLoraLoaderMixin
    try:
        sd = loader.lora_state_dict(dict(tensors))
    except (KeyError, ValueError, IndexError, RuntimeError) as e:
        raise CinetuneError(f"--lora: not a {family} LoRA diffusers can read ({type(e).__name__}: {e})") from None
    if not any(k.startswith("transformer.") for k in sd):  # a bare transformer state dict
        sd = {f"transformer.{k}": v for k, v in sd.items()}
    return sd


class LoraFileAttachment(Handle):
    def __init__(self, lora: LoraFile, backbone):
        self.transformer = backbone.transformer
        existing = set(getattr(self.transformer, "peft_config", None) or {})
        name = next(f"lora-file-{i}" for i in range(len(existing) + 1) if f"lora-file-{i}" not in existing)
        sd = _diffusers_state_dict(lora.tensors, backbone.preset.family)
        try:
            with warnings.catch_warnings():  # PEFT warns whenever a second adapter joins: stacking is the point here
                warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                self.transformer.load_lora_adapter(sd, prefix="transformer", adapter_name=name)
        except (ValueError, KeyError, RuntimeError) as e:
            if name in (getattr(self.transformer, "peft_config", None) or {}):
                remove_adapter(self.transformer, name)
            raise CinetuneError(f"--lora {lora.path}: does not fit this model ({str(e).splitlines()[0]})") from None
        if name not in (getattr(self.transformer, "peft_config", None) or {}):
            raise CinetuneError(f"--lora {lora.path}: none of its weights name a layer of this model")
        names = list(self.transformer.peft_config)  # every adapter on the model stays active, each at its own weight
        self.transformer.set_adapters(names, [lora.scale if n == name else 1.0 for n in names])
        for n, p in self.transformer.named_parameters():
            if f".{name}." in n:
                p.requires_grad_(False)
        super().__init__([lambda: remove_adapter(self.transformer, name)], name=name)

    def prepare(self, conditions, keep=None) -> None:
        pass

    def before_step(self, latents, timestep, encoder_hidden_states, scale: float = 1.0) -> None:
        pass  # a weight change: on at every step, whatever the control window

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return []
