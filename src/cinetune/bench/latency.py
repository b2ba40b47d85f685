"""`cinetune bench latency`: per-denoising-step latency of the bare base vs each control adapter at the real
Wan2.1-1.3B and 14B widths, random weights.

A whole 14B model does not fit this machine, so the step is measured per part and summed: one transformer block
(x the block count), the patch embedding / condition embedder / head once, and each adapter's own extra work per
step (ControlNeXt: its encoder's timestep-dependent part + cross-norm, the stem runs once per video; DiT-ControlNet:
its encoder, patch embedding and copied blocks; concat: the wider patch embedding; Scale-Adapter on 14B: the whole
1.3B small model's step + its adapters at the small width). On CPU the token count is reduced (9 frames at 128x128: 192 tokens); on a GPU the
real 81x480x832 (32,760 tokens) is used. Ratios, not absolute times, transfer between the two."""

from __future__ import annotations

from pathlib import Path

import torch

from ..io import write_text
from .foundation import cpu_bf16_support
from . import median_time

SIZES = {  # Wan2.1 configs (docs/methods.md)
    "wan2.1-1.3b": dict(dim=1536, heads=12, ffn=8960, layers=30, cn_blocks=8, cn_stride=3),
    "wan2.1-14b": dict(dim=5120, heads=40, ffn=13824, layers=40, cn_blocks=6, cn_stride=4),
}


@torch.no_grad()
def measure(size: str, frames: int, height: int, width: int, device: str, dtype: torch.dtype, repeats: int) -> dict:
    from diffusers import WanTransformer3DModel
    from diffusers.models.transformers.transformer_wan import WanTransformerBlock
    from diffusers.utils import logging as dlogging

    dlogging.set_verbosity_error()  # the fp32-module cast warning: every module here runs in one dtype on purpose

    from ..methods.control.controlnext import ControlNeXtDiT
    from ..methods.control.dit_controlnet import PixelControlEncoder

    c = SIZES[size]
    D = c["dim"]
    sync = torch.cuda.synchronize if device == "cuda" else None
    _med = lambda fn, r: median_time(fn, r, sync=sync)  # noqa: E731
    lf, lh, lw = (frames - 1) // 4 + 1, height // 8, width // 8
    N = lf * (lh // 2) * (lw // 2)
    torch.manual_seed(0)
    # a 1-block Wan model gives the per-step embedders/head; one more block is timed alone
    shell = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=c["heads"], attention_head_dim=D // c["heads"],
                                  in_channels=16, out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=c["ffn"],
                                  num_layers=1, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
                                  eps=1e-6).to(device, dtype).eval()
    block = WanTransformerBlock(D, c["ffn"], c["heads"], "rms_norm_across_heads", True, 1e-6).to(device, dtype).eval()
    lat = torch.randn(1, 16, lf, lh, lw, device=device, dtype=dtype)
    t = torch.tensor([500.0], device=device)
    text = torch.randn(1, 512, 4096, device=device, dtype=dtype)
    cond = torch.rand(1, 3, frames, height, width, device=device, dtype=dtype) * 2 - 1
    rotary = shell.rope(lat)
    _, tproj, ehs, _ = shell.condition_embedder(t, text, None)
    tproj = tproj.unflatten(1, (6, -1))
    x = torch.randn(1, N, D, device=device, dtype=dtype)

    t_block = _med(lambda: block(x, ehs, tproj, rotary), repeats)
    t_shell = _med(lambda: shell(lat, t, text, return_dict=False), repeats) - t_block  # embedders + head
    base = t_shell + c["layers"] * t_block

    cnx = ControlNeXtDiT(hidden_size=D, spatial_stride=16, temporal_compression=4).to(device, dtype).eval()
    feats = cnx.features(cond)  # the encoder's timestep-free stem runs once per video, not per step
    t_cnx = _med(lambda: cnx.combine(x, cnx.encode(None, t, feats), 1.0, lf), repeats)
    enc = PixelControlEncoder(3, (192, 96, 48), 8, 4).to(device, dtype).eval()
    pe = torch.nn.Conv3d(16 + 48, D, (1, 2, 2), (1, 2, 2)).to(device, dtype)
    t_cn_in = _med(lambda: pe(torch.cat([lat, enc(cond)], 1)), repeats)
    proj = torch.nn.Linear(D, D).to(device, dtype)
    t_proj = _med(lambda: proj(x), repeats)
    t_cn = t_cn_in + c["cn_blocks"] * (t_block + t_proj)
    pe_wide = torch.nn.Conv3d(16 + 48, D, (1, 2, 2), (1, 2, 2)).to(device, dtype)
    pe_base = shell.patch_embedding
    t_concat = _med(lambda: pe_wide(torch.cat([lat] * 4, 1)), repeats) - _med(lambda: pe_base(lat), repeats)
    n_cnx = sum(p.numel() for p in cnx.parameters())
    n_ft = c["layers"] * sum(p.numel() for p in block.attn1.to_out.parameters())  # the selectively fine-tuned subset
    return {"size": size, "tokens": N, "block_s": t_block, "base_s": base,
            "controlnext_s": base + t_cnx, "dit_controlnet_s": base + t_cn, "concat_s": base + max(t_concat, 0.0),
            "controlnext_params": n_cnx, "controlnext_finetuned": n_ft,
            "base_params": c["layers"] * sum(p.numel() for p in block.parameters())}


@torch.no_grad()
def scale_adapter_step(small: str, large: str, tokens: int, device: str, dtype: torch.dtype, repeats: int,
                       kinds: int = 3) -> dict:
    """One Scale-Adapter block (small width -> large width, MCE on, `kinds` conditions): seconds per step, params."""
    from ..methods.scale_adapter.module import ScaleAdapterBlock

    s, lg = SIZES[small], SIZES[large]
    d = s["dim"]
    torch.manual_seed(0)
    block = ScaleAdapterBlock(d, lg["dim"], s["heads"], d).to(device, dtype).eval()
    x = torch.randn(1, tokens, d, device=device, dtype=dtype)
    text, temb = torch.randn(1, 512, d, device=device, dtype=dtype), torch.randn(1, d, device=device, dtype=dtype)
    cond = [torch.randn(1, tokens, d, device=device, dtype=dtype) for _ in range(kinds)]
    sync = torch.cuda.synchronize if device == "cuda" else None
    return {"block_s": median_time(lambda: block(x, text, temb, cond), repeats, sync=sync),
            "params": sum(p.numel() for p in block.parameters())}


def run(out: Path, quick: bool = False) -> Path:
    gpu = torch.cuda.is_available()
    device = "cuda" if gpu else "cpu"
    dtype = torch.bfloat16
    if gpu:
        frames, height, width, repeats = 81, 480, 832, 5
    else:
        frames, height, width, repeats = (5, 128, 128, 3) if quick else (9, 128, 128, 5)
    rows = [measure(size, frames, height, width, device, dtype, repeats) for size in SIZES]
    small, large = rows
    sa = scale_adapter_step("wan2.1-1.3b", "wan2.1-14b", small["tokens"], device, dtype, repeats)
    dev = torch.cuda.get_device_name() if gpu else f"CPU (torch threads: {torch.get_num_threads()})"
    lines = ["# Control adapter latency at Wan2.1 sizes (random weights, bf16)", "",
             f"`cinetune bench latency{' --quick' if quick else ''}` on {dev}: {frames} frames x {height}x{width} "
             f"-> {rows[0]['tokens']} tokens; medians of {repeats} runs in one process. Per-part timing "
             "(one block x block count + embedders/head + the adapter's own per-step work); see the module "
             "docstring. ControlNeXt injects after block 0; DiT-ControlNet: 8 copied blocks (stride 3) for 1.3B, "
             "6 (stride 4) for 14B; concat: the wider patch embedding (its VAE encode of the condition runs once per "
             "video, not per step).", "",
             "| model | base step (s) | ControlNeXt | DiT-ControlNet | concat | ControlNeXt encoder (% of base blocks) | "
             "ControlNeXt trainable: encoder + attn1.to_out |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        b = r["base_s"]
        lines.append(f"| {r['size']} | {b:.3f} | {r['controlnext_s']:.3f} (+{100 * (r['controlnext_s'] / b - 1):.1f}%) | "
                     f"{r['dit_controlnet_s']:.3f} (+{100 * (r['dit_controlnet_s'] / b - 1):.1f}%) | "
                     f"{r['concat_s']:.3f} (+{100 * (r['concat_s'] / b - 1):.1f}%) | "
                     f"{r['controlnext_params'] / 1e6:.1f} M ({100 * r['controlnext_params'] / r['base_params']:.2f}%) | "
                     f"{(r['controlnext_params'] + r['controlnext_finetuned']) / 1e6:.1f} M "
                     f"({100 * (r['controlnext_params'] + r['controlnext_finetuned']) / r['base_params']:.1f}%) |")
    lines += ["", "Scale-Adapter (Wan2.1-1.3B with concat control steers a frozen 14B): per 14B step the whole 1.3B step "
              "runs too (its concat patch embedding adds ~nothing, see the concat column) plus the adapters at the "
              "1.3B width (attention + Mixture of Condition Experts, 3 conditions).", "",
              "| adapters | 14B step (s) | + 1.3B small model | + adapters | total | trainable |", "|---:|---:|---:|---:|---:|---:|"]
    for n in (3, 7, 12):  # the shipped toy default; the paper's 7 and 12 (Fig. 6)
        b, add = large["base_s"], small["base_s"] + n * sa["block_s"]
        lines.append(f"| {n} | {b:.3f} | +{100 * small['base_s'] / b:.1f}% | +{100 * n * sa['block_s'] / b:.1f}% | "
                     f"{b + add:.3f} (+{100 * add / b:.1f}%) | {n * sa['params'] / 1e6:.0f} M |")
    if not gpu:
        lines += ["", "CPU note: at reduced token counts the convolutional encoders weigh relatively more than at "
                  "32,760 tokens (attention grows quadratically with tokens, the encoders linearly with pixels), so "
                  "these overheads are upper bounds for the real resolution. bf16 on a CPU is slow unless it has bf16 "
                  f"instructions (this one: {cpu_bf16_support()}); the ratios are what transfer."]
    path = Path(out) / ("latency.md" if not gpu else "latency-gpu.md")
    write_text(path, "\n".join(lines) + "\n")
    return path
