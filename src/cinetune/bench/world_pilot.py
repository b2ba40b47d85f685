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
    # which of the two changes above moves the shape word, and which costs the colour
    "images-uniform": ("a quarter of the steps on images, noise levels as world v1's recipe", {
        "data": {"image_share": 0.25}}),
}


def lever_config(name: str, quick: bool = False):
    from .shape_pilot import lever_config as config

    return config(name, quick, LEVERS, "toy-small-v2-pilot", "runs/world-pilot")


def run(out: Path, quick: bool = False) -> Path:
    from ..backbones.presets import assets_root
    from .prompt_following import held_out_prompts
    from .shape_pilot import lever_table, measure_levers

    t0 = time.perf_counter()
    n, steps = (4, 4) if quick else (24, 20)
    clips, prompts, stated = held_out_prompts(n)
    rows = measure_levers(LEVERS, lambda name: lever_config(name, quick), (clips, prompts, stated), steps)
    cfg = lever_config("video-uniform", quick)
    lines = ["# World v2 pilot: toy-small from scratch on world v2, one lever at a time", "",
             f"`cinetune bench world-pilot{' --quick' if quick else ''}` with the assets at `{assets_root()}`: every "
             f"lever trains toy-small from scratch at batch {cfg.batch_size} for {cfg.steps} steps on "
             f"{cfg.data.latent_cache} cached world-v2 clips (all scene kinds; preset toy-small-v2-pilot, lr "
             f"{cfg.optim.lr:g}), then generates {n} held-out one-object prompts ({steps} steps, guidance 5). "
             "Read-back: fraction of videos whose shape / colour / motion read back as stated (chance: shape 1/7, "
             "colour 1/10, motion 1/10). Word use: relative rise of the loss on the object's latent cells when the "
             "shape (colour) word is swapped, at noise level sigma (about 0 for a model that ignores the word).", "",
             ] + lever_table(rows)
    lines += ["", f"Wall time {time.perf_counter() - t0:.0f} s (training reused where already done).", ""]
    path = Path(out) / ("world-pilot.md" if not quick else "world-pilot-quick.md")
    write_text(path, "\n".join(lines))
    return path
