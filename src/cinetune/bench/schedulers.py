"""`cinetune bench schedulers`: how close each flow-matching scheduler gets, at a given number of steps, to the
converged sampling of the same noise and prompts (UniPC at 50 steps), on toy-large with CFG 5. The cost of a
setting is its denoiser calls (steps x 2 with guidance): the step time is the same for every scheduler."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..cli.demo import DEMO_PROMPTS
from ..io import write_text

PROMPTS = [
    *DEMO_PROMPTS,
    "A green triangle moves to the left on a white background.",
    "A small purple heart moves up on a grey background.",
    "A person walks past on a blue background.",
    "An orange ring moves down on a plain black backdrop.",
]
REFERENCE = ("unipc", 50)
BASELINE = ("euler", 25)  # the steps every other toy bench samples with
SETTINGS = [("euler", 12), BASELINE, ("euler", 50), ("unipc", 8), ("unipc", 12), ("unipc", 16), ("unipc", 20),
            ("dpm++", 12), ("dpm++", 16)]
QUICK = (("unipc", 8), ("euler", 4), ("unipc", 4))  # (reference, baseline, one more); 2 prompts
SHOWN = (BASELINE, ("unipc", 16), REFERENCE)  # the picture's rows


def rel_rmse(a: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """(B,) RMS distance of each sample's latents from the reference's, relative to the reference's std."""
    return ((a - ref) ** 2).flatten(1).mean(1).sqrt() / ref.std()


def sample_all(pipe, prompts: list[str], settings, guidance: float = 5.0, seed: int = 3) -> dict:
    """(scheduler, steps) -> final latents (B,C,F',H',W') of one batched call, same noise for every setting."""
    emb = pipe.encode_prompt(prompts)
    return {s: pipe(prompt_embeds=emb, steps=s[1], guidance=guidance, seed=seed, scheduler=s[0], decode=False,
                    progress=False).latents for s in settings}


def run(out: Path, quick: bool = False, model: str = "toy-large") -> Path:
    from ..pipelines import TextToVideoPipeline

    t0 = time.perf_counter()
    pipe = TextToVideoPipeline.from_pretrained(model, device="cpu")
    ref_s, base_s, settings = (QUICK[0], QUICK[1], list(QUICK[1:])) if quick else (REFERENCE, BASELINE, SETTINGS)
    prompts = PROMPTS[:2] if quick else PROMPTS
    lat = sample_all(pipe, prompts, [ref_s, *settings])
    ref, base = lat[ref_s], lat[base_s]
    lines = [f"# Schedulers: fidelity against steps ({model})", "",
             f"`cinetune bench schedulers{' --quick' if quick else ''}`: {len(prompts)} prompts (the demo's and "
             f"held-out ones), CFG 5, seed 3, 17x64x64, each setting from the same noise. Distance: RMS of the final "
             f"latents' difference over the reference's std, median (max) over the prompts. Reference: "
             f"{ref_s[0]} at {ref_s[1]} steps (converged: a higher-order solver at many steps); also against "
             f"{base_s[0]} at {base_s[1]} steps, what the other toy benches sample with.", "",
             f"| scheduler | steps | denoiser calls | from {ref_s[0]}-{ref_s[1]} | from {base_s[0]}-{base_s[1]} |",
             "|---|---:|---:|---:|---:|"]
    dist = {s: rel_rmse(lat[s], ref) for s in settings}
    for s in settings:
        d_ref, d_base = dist[s], rel_rmse(lat[s], base)
        lines.append(f"| {s[0]} | {s[1]} | {2 * s[1]} | {d_ref.median():.3f} ({d_ref.max():.3f}) | "
                     + ("-" if s == base_s else f"{d_base.median():.3f} ({d_base.max():.3f})") + " |")
    lines += ["", _verdict(dist, base_s)]
    if not quick:
        picture = Path(out) / "schedulers.png"
        _picture(pipe, lat, picture)
        lines += ["", f"Frame 8 of the first four prompts, rows {', '.join(f'{a}-{b}' for a, b in SHOWN)}: "
                      f"`{picture.name}`."]
    lines += ["", f"Wall time {time.perf_counter() - t0:.0f} s.", ""]
    path = Path(out) / ("schedulers-quick.md" if quick else "schedulers.md")
    write_text(path, "\n".join(lines))
    return path


def _verdict(dist: dict, base_s) -> str:
    """The fewest steps of each other scheduler that are at least as close to the reference as the baseline;
    `dist`: (scheduler, steps) -> (B,) distances from the reference."""
    bar = dist[base_s].median()
    parts = []
    for name in dict.fromkeys(s[0] for s in dist if s[0] != base_s[0]):
        ok = [s[1] for s in dist if s[0] == name and dist[s].median() <= bar]
        parts.append(f"{name} at {min(ok)} steps ({min(ok) / base_s[1]:.2f}x the calls)" if ok
                     else f"{name}: none of its settings here")
    return (f"As close to the reference as {base_s[0]} at {base_s[1]} steps ({bar:.3f}): " + "; ".join(parts) + ".")


def _picture(pipe, lat: dict, path: Path) -> None:
    from ..io import write_video
    from ..pipelines import to_uint8

    with torch.no_grad():
        rows = [np.concatenate(list(to_uint8(pipe.backbone.codec.decode(lat[s][:4]))[:, 8]), 1) for s in SHOWN]
    write_video(path, np.concatenate(rows, 0).repeat(2, 0).repeat(2, 1)[None])  # one frame: a .png image
