"""`cinetune bench world-pilot`: the toy world v2 DiT pilot. toy-small trained from scratch on world v2 at one fixed
budget (preset toy-small-v2-pilot), one lever at a time, each measured like the shape pilot (bench.shape_pilot.
measure: read-back of held-out one-object prompts and the loss rise when the shape / colour word is swapped).
It reads the VAE and the feature networks from the assets in use, so run it against a rebuild's staging folder:
`CINETUNE_ASSETS=~/cinetune-runs/rebuild/assets cinetune bench world-pilot`."""

from __future__ import annotations

import time
from pathlib import Path

from ..io import write_text

# lever -> (what it changes, config overrides)
LEVERS = {
    "video-uniform": ("17-frame clips only, noise levels uniform then shifted 2 (world v1's recipe)", {}),
    "images-logit-normal": ("a quarter of the steps on images (data.image_share 0.25), noise levels sigmoid(N(0, 1)) "
                            "unshifted", {"timestep_sampling": "logit-normal", "timestep_shift": 1.0,
                                          "data": {"image_share": 0.25}}),
}


def lever_config(name: str, quick: bool = False):
    from ..training import preset_config

    over = {"output_dir": f"runs/world-pilot{'-quick' if quick else ''}/{name}", **LEVERS[name][1]}
    if quick:
        over.update(steps=4, batch_size=2, data={**over.get("data", {}), "latent_cache": 16}, checkpoint_every=4)
    return preset_config("toy-small-v2-pilot", over)


def run(out: Path, quick: bool = False) -> Path:
    from ..backbones.presets import assets_root
    from .harness import sec_per_step, train_or_reuse
    from .prompt_following import held_out_prompts
    from .shape_pilot import SIGMAS, _pipe, measure

    t0 = time.perf_counter()
    n, steps = (4, 4) if quick else (24, 20)
    clips, prompts, stated = held_out_prompts(n)
    rows = []
    for name, (what, _) in LEVERS.items():
        cfg = lever_config(name, quick)
        run_dir = train_or_reuse(cfg)
        sec = sec_per_step(run_dir)
        rows.append((name, f"{what}; {sec:.2f} s/step, {sec * cfg.steps / 60:.1f} min",
                     measure(_pipe(run_dir), clips, prompts, stated, steps)))
    cfg = lever_config("video-uniform", quick)
    lines = ["# World v2 pilot: toy-small from scratch on world v2, one lever at a time", "",
             f"`cinetune bench world-pilot{' --quick' if quick else ''}` with the assets at `{assets_root()}`: every "
             f"lever trains toy-small from scratch at batch {cfg.batch_size} for {cfg.steps} steps on "
             f"{cfg.data.latent_cache} cached world-v2 clips (all scene kinds; preset toy-small-v2-pilot, lr "
             f"{cfg.optim.lr:g}), then generates {n} held-out one-object prompts ({steps} steps, guidance 5). "
             "Read-back: fraction of videos whose shape / colour / motion read back as stated (chance: shape 1/7, "
             "colour 1/10, motion 1/10). Word use: relative rise of the loss on the object's latent cells when the "
             "shape (colour) word is swapped, at noise level sigma (about 0 for a model that ignores the word).", "",
             "| lever | what changes | shape | colour | motion | area | " +
             " | ".join(f"shape rise σ={s}" for s in SIGMAS) + " | " + " | ".join(f"colour rise σ={s}" for s in SIGMAS)
             + " |", "|---|---|" + "---:|" * (4 + 2 * len(SIGMAS))]
    for name, what, r in rows:
        lines.append(f"| {name} | {what} | {r['shape']:.2f} | {r['colour']:.2f} | {r['motion']:.2f} | "
                     f"{r['area']:.3f} | " + " | ".join(f"{r[f'shape_rise_{s}']:+.4f}" for s in SIGMAS) + " | "
                     + " | ".join(f"{r[f'colour_rise_{s}']:+.4f}" for s in SIGMAS) + " |")
    lines += ["", f"Wall time {time.perf_counter() - t0:.0f} s (training reused where already done).", ""]
    path = Path(out) / ("world-pilot.md" if not quick else "world-pilot-quick.md")
    write_text(path, "\n".join(lines))
    return path
