"""`cinetune bench memory`: peak resident memory of the Wan2.1-1.3B transformer (random weights) held in fp32, bf16
(diffusers' fp32 modules kept) and fp8 storage, each in a fresh process through one denoiser call; on a GPU, peak
device memory of the same and of group offloading. Then one ControlNeXt training step beside the frozen transformer
held in fp32, bf16 and bf16 with its frozen layers in fp8 (the trainer's backbone_dtype / backbone_fp8). Offloading only saves memory where compute and storage are
different devices, so on a CPU it is not measured here (docs/memory.md gives the arithmetic for a GPU)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from ..io import write_text
from .latency import SIZES

SHAPES = {**SIZES, "tiny": dict(dim=64, heads=2, ffn=128, layers=2)}  # (tiny: the tests')
SETTINGS = {"fp32": ("fp32", False, "none"), "bf16": ("bf16", False, "none"), "fp8 storage, bf16 compute":
            ("bf16", True, "none"), "bf16, block offload (GPU only)": ("bf16", False, "block"),
            "bf16, leaf offload (GPU only)": ("bf16", False, "leaf")}


def _build(size: str, dtype: torch.dtype):
    """The transformer as from_pretrained(torch_dtype=dtype) would hold it, random weights, never all in fp32:
    built on the meta device, then each tensor allocated in its load dtype (fp32 for the kept modules)."""
    from accelerate import init_empty_weights
    from diffusers import WanTransformer3DModel

    c = SHAPES[size]
    with init_empty_weights():
        model = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=c["heads"],
                                      attention_head_dim=c["dim"] // c["heads"], in_channels=16, out_channels=16,
                                      text_dim=4096, freq_dim=256, ffn_dim=c["ffn"], num_layers=c["layers"],
                                      cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6)
    keep = tuple(getattr(model, "_keep_in_fp32_modules", None) or ())
    g = torch.Generator().manual_seed(0)
    for name, module in model.named_modules():
        for pname, p in list(module.named_parameters(recurse=False)):
            fp32 = any(k in f"{name}.{pname}".split(".") for k in keep)  # diffusers' rule for its fp32 modules
            t = torch.empty(p.shape, dtype=torch.float32 if fp32 else dtype).normal_(0, 0.02, generator=g)
            setattr(module, pname, torch.nn.Parameter(t, requires_grad=False))
    return model.eval()  # (buffers, such as the rotary tables, are built for real by init_empty_weights)


def child(setting: str, size: str, device: str) -> dict:
    """One setting in this process: build, place, one denoiser call (9 frames at 128x128); peak memory."""
    import gc
    import resource

    from ..backbones.memory import DTYPES, compute_dtype, enable_fp8

    dtype_name, fp8, offload = SETTINGS[setting]
    dtype = DTYPES[dtype_name]
    model = _build(size, dtype)
    if fp8:
        enable_fp8(model, dtype)
    dev = torch.device(device)
    if offload != "none":
        from diffusers.hooks import apply_group_offloading

        apply_group_offloading(model, onload_device=dev, offload_device=torch.device("cpu"),
                               offload_type=f"{offload}_level",
                               **({"num_blocks_per_group": 1} if offload == "block" else {}))
    else:
        model.to(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    cd = compute_dtype(model)
    with torch.no_grad():
        model(hidden_states=torch.randn(1, 16, 3, 16, 16, device=dev, dtype=cd),
              timestep=torch.tensor([500.0], device=dev),
              encoder_hidden_states=torch.randn(1, 512, 4096, device=dev, dtype=cd), return_dict=False)
    gc.collect()
    params = sum(p.numel() for p in model.parameters())
    out = {"params": params, "rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
           "held_gib": _current_rss_gib(),
           "weights_gib": sum(p.numel() * p.element_size() for p in model.parameters()) / 2**30}
    if dev.type == "cuda":
        out["device_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


TRAIN_SETTINGS = {"fp32 backbone": ("fp32", False), "bf16 backbone": ("bf16", False),
                  "bf16 backbone, frozen layers in fp8": ("bf16", True)}


def train_child(setting: str, size: str, device: str) -> dict:
    """One ControlNeXt training step (its encoder + the self-attention output projections it fine-tunes, AdamW) beside
    the frozen transformer held as `setting` says, under bf16 autocast when the backbone is bf16; peak memory."""
    import gc
    import resource

    from ..backbones.memory import DTYPES, enable_fp8, upcast_trainable
    from ..backbones.view import VideoDiTView
    from ..core import enable_finetune
    from ..methods.control.controlnext import ControlNeXtDiT, attach_controlnext
    from ..methods.control.encoder import scaled_widths

    dtype_name, fp8 = TRAIN_SETTINGS[setting]
    dtype, dev = DTYPES[dtype_name], torch.device(device)
    model = _build(size, dtype).to(dev)
    view = VideoDiTView(model, "wan")
    adapter = ControlNeXtDiT(hidden_size=view.hidden_size, spatial_stride=16, **scaled_widths(view.hidden_size)).to(dev)
    handle = attach_controlnext(adapter, view)
    enable_finetune(model, r"attn1\.to_out")
    params = [p for p in model.parameters() if p.requires_grad] + list(adapter.parameters())
    upcast_trainable(params)
    if fp8:
        enable_fp8(model, dtype, frozen_only=True)
    opt = torch.optim.AdamW(params, lr=1e-5)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    cond, t = torch.rand(1, 3, 9, 128, 128, device=dev) * 2 - 1, torch.tensor([500.0], device=dev)
    with torch.autocast(dev.type, torch.bfloat16, enabled=dtype != torch.float32):
        handle.set_condition(cond, t)
        pred = view(torch.randn(1, 16, 3, 16, 16, device=dev), t, torch.randn(1, 512, 4096, device=dev))
    pred.square().mean().backward()
    opt.step()
    gc.collect()
    out = {"trained": sum(p.numel() for p in params), "rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
           "weights_gib": sum(p.numel() * p.element_size() for p in [*model.parameters(), *adapter.parameters()]) / 2**30}
    if dev.type == "cuda":
        out["device_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def _current_rss_gib() -> float:
    """Resident memory now (Linux /proc), as opposed to the peak: fp8 storage peaks while its bf16 weights are cast."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def run(out: Path, quick: bool = False) -> Path:
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    size = "wan2.1-1.3b"
    rows = {}
    for setting, (_, _, offload) in SETTINGS.items():
        if offload != "none" and device == "cpu":
            continue
        rows[setting] = _child_run([setting, size, device])
        if quick:
            break
    base = next(iter(rows.values()))
    lines = ["# Memory of the Wan2.1-1.3B transformer", "",
             f"`cinetune bench memory{' --quick' if quick else ''}` on {device}: the transformer with random weights, "
             "held as `from_pretrained(torch_dtype=...)` holds it (diffusers' fp32 modules kept in fp32), one denoiser "
             "call at 9 frames x 128 x 128 (text 512 x 4096); each setting in a fresh process. Peak RSS: the process's "
             "maximum resident set (weights, activations and the Python/torch runtime). The text encoder and VAE are "
             "not included (docs/memory.md).", "",
             "| setting | parameters | weights GiB (vs first) | peak RSS GiB (vs first) | resident after the call GiB |"
             + (" peak device GiB |" if cuda else ""), "|---|---:|---:|---:|---:|" + ("---:|" if cuda else "")]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['params'] / 1e9:.2f} B | {_vs_first(r, base)} | {r['held_gib']:.2f} |"
                     + (f" {r['device_gib']:.2f} |" if cuda else ""))
    lines += ["", "Weights: the bytes of the model's parameter tensors as held. The process's resident memory does not "
              "fall as far for fp8 storage: its weights are cast from their bf16 load (as `from_pretrained` then "
              "`enable_layerwise_casting` does), and the allocator keeps the freed bf16 pages; on a GPU the cast "
              "happens before the weights move, so the device holds the fp8 bytes."]
    lines += _training_table(size, device, cuda, quick)
    path = Path(out) / "memory.md"
    write_text(path, "\n".join(lines + [""]))
    return path


def _child_run(args: list[str]) -> dict:
    r = subprocess.run([sys.executable, "-m", "cinetune.bench.memory", *args], capture_output=True, text=True,
                       timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(f"bench memory: {args[-3]} failed: {r.stderr.strip().splitlines()[-1:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _training_table(size: str, device: str, cuda: bool, quick: bool) -> list[str]:
    rows = {}
    for setting in TRAIN_SETTINGS:
        rows[setting] = _child_run(["train", setting, size, device])
        if quick:
            break
    base = next(iter(rows.values()))
    lines = ["", "## Training an adapter beside the frozen transformer", "",
             "One ControlNeXt step (encoder + the fine-tuned self-attention output projections, kept in fp32; AdamW) "
             "on the same shapes, bf16 autocast for the bf16 backbones; each in a fresh process. "
             "Training config: `backbone_dtype=bf16 backbone_fp8=true mixed_precision=bf16`.", "",
             "| frozen backbone | trained parameters | weights GiB (vs first) | peak RSS GiB (vs first) |"
             + (" peak device GiB |" if cuda else ""), "|---|---:|---:|---:|" + ("---:|" if cuda else "")]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['trained'] / 1e6:.0f} M | {_vs_first(r, base)} |"
                     + (f" {r['device_gib']:.2f} |" if cuda else ""))
    return lines + ["", "Trained parameters stay fp32 in every row (the optimizer's states with them). Peak RSS on a "
                    "CPU keeps more than the weights' bytes: the fp8 layers are cast from their bf16 load (the freed "
                    "bf16 pages stay with the allocator) and autocast holds bf16 copies of the fp32 trained weights "
                    "during the step; the weights column is what a GPU holds between steps."]


def _vs_first(r: dict, base: dict) -> str:
    """The weights and peak RSS cells of one row, each with its ratio to the first row's."""
    w, rss = r["weights_gib"], r["rss_gib"]
    return f"{w:.2f} ({w / base['weights_gib']:.2f}x) | {rss:.2f} ({rss / base['rss_gib']:.2f}x)"


if __name__ == "__main__":
    if sys.argv[1] == "train":
        print(json.dumps(train_child(*sys.argv[2:5])))
    else:
        print(json.dumps(child(*sys.argv[1:4])))
