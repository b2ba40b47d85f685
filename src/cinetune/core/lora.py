"""LoRA through PEFT: zero-initialised (an exact identity at init), removable, saved as PEFT state dicts."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import CinetuneError
from .state import Handle

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
    return Handle([lambda: remove_adapter(transformer, name)], name=name)


def remove_adapter(transformer: nn.Module, name: str) -> None:
    """Delete the adapter; once none is left, unwrap PEFT's layers too, so that the transformer is module for module
    the base again (same parameter names: what a distilled student's fingerprint checks)."""
    transformer.delete_adapters(name)
    if not getattr(transformer, "peft_config", None):
        transformer.unload_lora()


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
