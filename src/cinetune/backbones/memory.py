"""Memory options for real checkpoints, all through diffusers' and accelerate's own machinery: the load dtype (with
diffusers' fp32 modules kept in fp32), model CPU offload, group offloading by block or leaf, fp8 layerwise casting,
VAE tiling and slicing, and releasing the text encoder once the prompts are encoded."""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from ..errors import CinetuneError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
OFFLOAD = ("none", "model", "block", "leaf")
FP8_LAYERS = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)


@dataclass(frozen=True)
class MemoryOptions:
    dtype: str = "fp32"  # the transformer's and the text encoder's (the VAE stays fp32: Wan's decodes badly in bf16)
    offload: str = "none"  # model: each component on the device only while it runs; block / leaf: group offloading
    fp8: bool = False  # transformer weights stored in float8_e4m3fn, each layer computed in `dtype`
    vae_tiling: bool = False
    vae_slicing: bool = False
    release_text_encoder: bool = False  # drop it after encoding (the prompts' embeddings stay cached)

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise CinetuneError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.offload not in OFFLOAD:
            raise CinetuneError(f"offload must be one of {', '.join(OFFLOAD)}, got {self.offload!r}")
        if self.fp8 and self.dtype == "fp32":
            raise CinetuneError("fp8 layerwise casting computes in bf16 or fp16: give --dtype bf16 or fp16 with it")

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]


def apply_memory(backbone, device: torch.device, opts: MemoryOptions) -> None:
    """Place the backbone's components on `device` as `opts` says (the transformer already loaded in opts.dtype)."""
    vae = backbone.codec.vae
    if opts.vae_tiling:
        _enable(vae, "enable_tiling", "VAE tiling")
    if opts.vae_slicing:
        _enable(vae, "enable_slicing", "VAE slicing")
    if opts.fp8:
        enable_fp8(backbone.transformer, opts.torch_dtype)
    backbone.execution_device = device
    if opts.offload == "none":
        backbone.to(device)
    elif opts.offload == "model":
        _model_offload(backbone, device)
    else:
        from diffusers.hooks import apply_group_offloading

        cpu = torch.device("cpu")
        stream = device.type == "cuda"  # overlaps the next group's transfer with this one's compute
        backbone.codec.to(device)
        backbone.text_encoder.to(device)
        apply_group_offloading(backbone.transformer, onload_device=device, offload_device=cpu,
                               offload_type=f"{opts.offload}_level", use_stream=stream,
                               **({"num_blocks_per_group": 1} if opts.offload == "block" else {}))


def enable_fp8(transformer: torch.nn.Module, compute: torch.dtype, frozen_only: bool = False) -> int:
    """diffusers' layerwise casting: weights stored in float8_e4m3fn, each layer upcast to `compute` as it runs;
    `compute_dtype` reads the compute dtype back. `frozen_only` (training beside a frozen backbone): only the layers
    none of whose own weights train (a LoRA's A/B, a fine-tuned subset and adapter layers keep their dtype), with the
    exceptions diffusers makes (its defaults and the model's own: norms, patch, position and condition embeddings, the
    output projection, the modules kept in fp32). Returns the number of layers stored in fp8."""
    from diffusers.hooks.layerwise_casting import DEFAULT_SKIP_MODULES_PATTERN, apply_layerwise_casting_hook

    if not frozen_only:
        transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=compute)
        n = sum(isinstance(m, FP8_LAYERS) for m in transformer.modules())
    else:
        n, skip = 0, (*DEFAULT_SKIP_MODULES_PATTERN, *(getattr(transformer, "_keep_in_fp32_modules", None) or ()),
                      *(getattr(transformer, "_skip_layerwise_casting_patterns", None) or ()))
        for name, m in transformer.named_modules():
            if not isinstance(m, FP8_LAYERS) or any(re.search(p, name) for p in skip):
                continue
            if any(p.requires_grad for p in m.parameters()):
                continue
            apply_layerwise_casting_hook(m, torch.float8_e4m3fn, compute, non_blocking=False)
            n += 1
    transformer._cinetune_compute_dtype = compute
    return n


def upcast_trainable(params: list[torch.nn.Parameter]) -> int:
    """Half-precision parameters that train (a fine-tuned subset of a bf16 backbone, a copy of it such as a distilled
    student) become fp32, so AdamW updates a full-precision master weight; autocast computes with them. Returns how
    many were cast."""
    n = 0
    for p in params:
        if p.dtype in (torch.bfloat16, torch.float16):
            p.data = p.data.float()
            n += 1
    return n


def _enable(vae, method: str, what: str) -> None:
    if not hasattr(vae, method):
        raise CinetuneError(f"{what}: this VAE ({type(vae).__name__}) has no {method}()")
    getattr(vae, method)()


def _model_offload(backbone, device: torch.device) -> None:
    """accelerate's hooks, chained as diffusers' enable_model_cpu_offload chains them: a component moves to the device
    when it is called and back to the CPU when the next one is."""
    from accelerate import cpu_offload_with_hook

    hook = None
    for module in (backbone.text_encoder.model, backbone.transformer, backbone.codec.vae):
        module.to("cpu")
        _, hook = cpu_offload_with_hook(module, device, prev_module_hook=hook)
    backbone.codec.to(device)  # its latent statistics (buffers); the VAE itself follows its hook


def compute_dtype(transformer: torch.nn.Module) -> torch.dtype:
    """The dtype a transformer computes in: that of most of its weights (its first parameter may be one diffusers keeps
    in fp32, like Wan's scale_shift_table), or the layerwise-casting compute dtype when they are stored in fp8."""
    count: dict[torch.dtype, int] = {}
    for p in transformer.parameters():
        if p.is_floating_point():
            count[p.dtype] = count.get(p.dtype, 0) + p.numel()
    if not count:
        return torch.float32
    top = max(count, key=count.get)
    if top in (torch.float8_e4m3fn, torch.float8_e5m2):
        return getattr(transformer, "_cinetune_compute_dtype", torch.bfloat16)
    return top
