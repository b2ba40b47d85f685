"""`cinetune bench foundation`: toy-world render speed, VAE and DiT step latency, demo wall time."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import torch

from ..io import write_text
from . import median_time


def cpu_bf16_support() -> str:
    """Which bf16 matrix instructions this CPU advertises (Linux /proc/cpuinfo): bf16 autocast only pays off with them."""
    try:
        flags = set(next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split())
    except (OSError, StopIteration):
        return "unknown"
    found = [f for f in ("amx_bf16", "avx512_bf16") if f in flags]
    return ", ".join(found) if found else "none"


def _train_step_row(b, batch: int) -> tuple[str, str, str]:
    """One training step (forward + backward) of backbone b's transformer in fp32 and under bf16 autocast, as the
    trainer's `mixed_precision` runs it; the bench passes toy-large."""
    model = b.transformer.train()
    x, t = torch.randn(batch, 16, 5, 16, 16), torch.full((batch,), 500.0)
    emb = b.text_encoder(["a red circle"]).expand(batch, -1, -1)

    def step(bf16: bool) -> None:
        with torch.enable_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = b.view(x, t, emb, module=model).float().square().mean()
        loss.backward()
        model.zero_grad(set_to_none=True)

    fp32, bf16 = (median_time(lambda: step(flag), repeats=3) for flag in (False, True))
    model.eval()
    return (f"{b.preset.name} training step (batch {batch}, forward + backward): fp32 / bf16 autocast",
            f"{fp32:.3g} / {bf16:.3g} s (bf16 {fp32 / bf16:.2f}x the speed)",
            f"CPU bf16 instructions: {cpu_bf16_support()}; median of 3")


def run(out: Path, quick: bool = False) -> Path:
    from ..backbones import load_backbone
    from ..toyworld import RenderConfig, render_clip

    rows: list[tuple[str, str, str]] = []
    threads = torch.get_num_threads()

    # 1. Rendering: single core (numpy is single-threaded here), 17x64x64 clips with all annotations.
    n = 50 if quick else 200
    seeds = iter(range(10 ** 9))
    per_clip = median_time(lambda: [render_clip(next(seeds)) for _ in range(n)], repeats=3) / n
    rows.append(("toy-world render, 17x64x64 + all annotations", f"{1 / per_clip:.1f} clips/s", "one core, median of 3 x "
                 f"{n} clips"))
    big = RenderConfig(frames=33, height=128, width=128)
    per_big = median_time(lambda: [render_clip(next(seeds), big) for _ in range(10)], repeats=3) / 10
    rows.append(("toy-world render, 33x128x128", f"{1 / per_big:.1f} clips/s", "one core, median of 3 x 10 clips"))

    # 2. Models (shipped weights when present, else the same architectures at random init).
    with torch.no_grad():
        for name in ("toy-small", "toy-large"):
            b = load_backbone(name, random_init=True)
            x = torch.randn(2, 16, 5, 16, 16)
            emb = b.text_encoder(["a red circle", ""])
            t = torch.tensor([500.0, 500.0])
            view = b.view
            sec = median_time(lambda: view(x, t, emb), repeats=5 if quick else 10)
            params = sum(p.numel() for p in b.transformer.parameters()) / 1e6
            rows.append((f"{name} denoising step (CFG batch 2, 320 tokens each)", f"{sec * 1000:.1f} ms",
                         f"{params:.2f} M params, fp32, {threads} threads, median"))
        rows.append(_train_step_row(b, 2 if quick else 8))
        video = torch.rand(1, 3, 17, 64, 64) * 2 - 1
        enc = median_time(lambda: b.codec.encode(video), repeats=5)
        lat = b.codec.encode(video)
        dec = median_time(lambda: b.codec.decode(lat), repeats=5)
        rows.append(("toy VAE encode / decode, 17x64x64", f"{enc * 1000:.0f} / {dec * 1000:.0f} ms", f"{threads} threads, median of 5"))

    # 3. The demo, end to end in a fresh process (model loading included), as a user runs it.
    if not quick:
        import tempfile

        from ..cli.demo import DEMO_PROMPTS, DEMO_SCHEDULER, DEMO_STEPS

        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "cinetune.cli", "demo", "--out", tmp], capture_output=True, text=True)
            wall = time.perf_counter() - t0
        rows.append(("`cinetune demo` wall time (fresh process)", f"{wall:.1f} s" if r.returncode == 0 else "failed",
                     f"shipped defaults: {len(DEMO_PROMPTS)} prompts, {DEMO_STEPS} {DEMO_SCHEDULER} steps, CFG 5, "
                     "17x64x64, then the control, distillation and Ingredients grids"))

    lines = ["# Foundation benchmark", "", f"Command: `cinetune bench foundation{' --quick' if quick else ''}`. "
             f"Machine: {torch.get_num_threads()} torch threads, torch {torch.__version__}.", "",
             "| what | measured | how |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    path = out / "foundation.md"
    write_text(path, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return path
