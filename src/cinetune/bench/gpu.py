"""`cinetune bench gpu`: the whole Wan2.1-1.3B transformer (random weights, bf16, SDPA attention) at the real
81 x 480 x 832 (32,760 tokens): seconds per denoiser call (batch 1, and batch 2 as classifier-free guidance runs it),
model FLOPs utilisation against the card's dense bf16 peak, and peak device memory; then each control adapter's
per-step overhead on top of it (`bench latency`'s per-part measurement at the same size; the adapters' own memory is
not measured yet). Writes
benchmarks/results/gpu.md. Without a GPU it runs a tiny configuration (`tests/bench/test_gpu.py`), for the code path
only: CPU figures are not GPU figures."""

from __future__ import annotations

from pathlib import Path

import torch

from ..io import write_text
from . import median_time
from .memory import SHAPES, _build

# dense bf16 tensor-core peaks (FLOP/s) by the name torch reports; unknown cards get no MFU column
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12, "L4": 121e12}


def peak_flops(name: str) -> float | None:
    if "H100" in name and "PCIe" in name:
        return 756e12
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def forward_flops(c: dict, tokens: int, text_len: int = 512) -> float:
    """FLOPs of one batch-1 forward of the Wan transformer: per block the self-attention projections and the
    attention itself (QK^T and AV over all tokens), the cross-attention (queries and output on the video tokens, keys
    and values on the text), the FFN; 2 FLOPs per multiply-add. Embedders and head are < 0.1% and left out."""
    D, F, N, L = c["dim"], c["ffn"], tokens, text_len
    macs = 4 * N * D * D + 2 * N * N * D + 2 * N * D * D + 2 * L * D * D + 2 * N * L * D + 2 * N * D * F
    return 2.0 * c["layers"] * macs


@torch.no_grad()
def measure_base(size: str, frames: int, height: int, width: int, device: str, repeats: int) -> dict:
    dev = torch.device(device)
    model = _build(size, torch.bfloat16).to(dev)
    lf, lh, lw = (frames - 1) // 4 + 1, height // 8, width // 8
    tokens = lf * (lh // 2) * (lw // 2)
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else None
    out = {"size": size, "tokens": tokens, "params": sum(p.numel() for p in model.parameters())}
    for batch in (1, 2):
        x = torch.randn(batch, 16, lf, lh, lw, device=dev, dtype=torch.bfloat16)
        text = torch.randn(batch, 512, 4096, device=dev, dtype=torch.bfloat16)
        t = torch.full((batch,), 500.0, device=dev)
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        out[f"step_s_b{batch}"] = median_time(
            lambda: model(hidden_states=x, timestep=t, encoder_hidden_states=text, return_dict=False), repeats,
            sync=sync)
        out[f"peak_gib_b{batch}"] = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    out["flops_b1"] = forward_flops(SHAPES[size], tokens)
    del model
    return out


def run(out: Path, quick: bool = False) -> Path:
    from .latency import measure

    gpu = torch.cuda.is_available()
    device, size = ("cuda", "wan2.1-1.3b") if gpu else ("cpu", "tiny")
    frames, height, width = (81, 480, 832) if gpu else (5, 64, 64)
    repeats = 3 if quick or not gpu else 10
    base = measure_base(size, frames, height, width, device, repeats)
    name = torch.cuda.get_device_name() if gpu else "CPU (tiny configuration: the code path, not a GPU figure)"
    peak = peak_flops(name) if gpu else None
    lines = ["# Wan2.1-1.3B on a GPU", "",
             f"`cinetune bench gpu{' --quick' if quick else ''}` on {name}: the {size} transformer, random weights, bf16 "
             f"(diffusers' fp32 modules kept), SDPA attention, {frames} x {height} x {width} -> {base['tokens']} tokens, "
             f"text 512 x 4096; median of {repeats} calls in one process. MFU: model FLOPs (`forward_flops`) per "
             "second over the card's dense bf16 peak.", "",
             "| batch | s per denoiser call | TFLOP/s | MFU | peak device memory GiB |", "|---:|---:|---:|---:|---:|"]
    for b in (1, 2):
        s = base[f"step_s_b{b}"]
        tflops = b * base["flops_b1"] / s / 1e12
        mfu = f"{100 * tflops * 1e12 / peak:.1f}%" if peak else "-"
        lines.append(f"| {b} | {s:.3f} | {tflops:.1f} | {mfu} | {base[f'peak_gib_b{b}']:.2f} |")
    if gpu:  # the adapters' per-step overhead at the same size (bench latency's per-part measurement)
        r = measure("wan2.1-1.3b", frames, height, width, device, torch.bfloat16, repeats)
        b = r["base_s"]
        lines += ["", "Control adapters on top (per-part timing: one block x 30 + embedders/head + the adapter's own "
                  "per-step work):", "", "| adapter | s per call | overhead |", "|---|---:|---:|"]
        for key, label in (("controlnext_s", "ControlNeXt"), ("dit_controlnet_s", "DiT-ControlNet"),
                           ("concat_s", "concat")):
            lines.append(f"| {label} | {r[key]:.3f} | +{100 * (r[key] / b - 1):.1f}% |")
    path = Path(out) / "gpu.md"
    write_text(path, "\n".join(lines + [""]))
    return path
