"""`cinetune bench shape-pilot`: which training lever makes a toy DiT use the shape word (toy world v2 issue,
pilot). Every lever starts from the same point (the shipped toy-small), trains on the same one-object clips
(preset toy-small-shape-pilot) and changes one thing (levers that change the step count say so); each run is then measured by shape read-back
on held-out one-object prompts (bench.prompt_following: the toy annotator's majority shape) and by how much the
loss on the object's latent cells rises when the shape word is swapped (the word's use; bench.prompt_following.
word_sensitivity), at three noise levels."""

from __future__ import annotations

import time
from pathlib import Path

from ..io import write_text

# lever -> (what it changes, config overrides); "baseline" is the common recipe alone
LEVERS = {
    "baseline": ("continued training on one-object clips (uniform u, shift 2)", {}),
    "logit-normal": ("noise levels sigmoid(N(0, 1)) without shift: centred on the middle", {
        "timestep_sampling": "logit-normal", "timestep_shift": 1.0}),
    "logit-normal-narrow": ("noise levels sigmoid(N(0, 0.5)) without shift: mostly the middle", {
        "timestep_sampling": "logit-normal", "timestep_shift": 1.0, "logit_std": 0.5}),
    "higher-lr": ("peak LR 5e-4 instead of 2e-4 (is the budget, not the lever, the limit?)", {"optim": {"lr": 5e-4}}),
    # more samples per CPU-hour, at about the baseline's training wall time
    "bf16": ("bf16 autocast, 800 steps", {"mixed_precision": "bf16", "steps": 800}),
    "images": ("one-frame clips (images), 2400 steps", {
        "steps": 2400, "data": {"frames": 1, "cache_path": "runs/latents-one-object-1x64x64.safetensors"}}),
    "images-logit-normal-narrow": ("one-frame clips, 2400 steps, noise levels sigmoid(N(0, 0.5))", {
        "steps": 2400, "timestep_sampling": "logit-normal", "timestep_shift": 1.0, "logit_std": 0.5,
        "data": {"frames": 1, "cache_path": "runs/latents-one-object-1x64x64.safetensors"}}),
    # images and clips alternating (half the steps each): the word meets more pictures, the model still sees motion
    "mixed-logit-normal-narrow": ("half the steps on the clips' first frames (data.image_share 0.5), 1600 steps, "
                                  "noise levels sigmoid(N(0, 0.5))", {
        "steps": 1600, "timestep_sampling": "logit-normal", "timestep_shift": 1.0, "logit_std": 0.5,
        "data": {"image_share": 0.5}}),
    # the same samples as the one-frame levers, as 17-frame clips: do the images help, or only their number?
    "logit-normal-narrow-2400": ("noise levels sigmoid(N(0, 0.5)), 2400 steps (4x the budget)", {
        "steps": 2400, "timestep_sampling": "logit-normal", "timestep_shift": 1.0, "logit_std": 0.5}),
}
SIGMAS = (0.5, 0.7, 0.9)


def lever_config(name: str, quick: bool = False, levers: dict = LEVERS, preset: str = "toy-small-shape-pilot",
                 root: str = "runs/shape-pilot"):
    """The config of lever `name`: `preset` with the lever's overrides, trained into <root>/<name>."""
    from ..training import preset_config

    over = {"output_dir": f"{root}{'-quick' if quick else ''}/{name}", **levers[name][1]}
    if quick:
        over.update(steps=4, batch_size=2, data={**over.get("data", {}), "latent_cache": 16}, checkpoint_every=4)
    return preset_config(preset, over)


def _pipe(run_dir: Path | None):
    """toy-small with the run's final transformer (None: the shipped one)."""
    import torch
    from diffusers import WanTransformer3DModel

    from ..pipelines import TextToVideoPipeline

    pipe = TextToVideoPipeline.from_pretrained("toy-small", device="cpu")
    if run_dir is not None:
        pipe.backbone.transformer = WanTransformer3DModel.from_pretrained(
            run_dir / "final" / "transformer", use_safetensors=True, torch_dtype=torch.float32)
    return pipe


def measure(pipe, clips, prompts, stated, steps: int) -> dict:
    """Shape / colour / motion read-back and the shape and colour words' loss sensitivity of one model."""
    from .prompt_following import follow, word_sensitivity

    sens = word_sensitivity(pipe.backbone, clips, prompts, sigmas=SIGMAS)
    return {**follow(pipe, prompts, stated, steps),
            **{f"{w}_rise_{s}": r[w] / r["true"] - 1 for s, r in sens.items() for w in ("shape", "colour")}}


def measure_levers(levers: dict, config, held_out: tuple, steps: int) -> list[tuple[str, str, dict]]:
    """Train (or reuse) every lever's run (`config(name)` -> its TrainConfig) and measure it on the held-out
    (clips, prompts, stated) -> rows for lever_table."""
    from .harness import sec_per_step, train_or_reuse

    rows = []
    for name, (what, _) in levers.items():
        cfg = config(name)
        run_dir = train_or_reuse(cfg)
        sec = sec_per_step(run_dir)
        rows.append((name, f"{what}; {sec:.2f} s/step, {sec * cfg.steps / 60:.1f} min",
                     measure(_pipe(run_dir), *held_out, steps)))
    return rows


def lever_table(rows: list[tuple[str, str, dict]]) -> list[str]:
    """Markdown rows of (lever, what changes, measure()) results."""
    lines = ["| lever | what changes | shape | colour | motion | area | " +
             " | ".join(f"shape rise σ={s}" for s in SIGMAS) + " | " + " | ".join(f"colour rise σ={s}" for s in SIGMAS)
             + " |", "|---|---|" + "---:|" * (4 + 2 * len(SIGMAS))]
    for name, what, r in rows:
        lines.append(f"| {name} | {what} | {r['shape']:.2f} | {r['colour']:.2f} | {r['motion']:.2f} | "
                     f"{r['area']:.3f} | " + " | ".join(f"{r[f'shape_rise_{s}']:+.4f}" for s in SIGMAS) + " | "
                     + " | ".join(f"{r[f'colour_rise_{s}']:+.4f}" for s in SIGMAS) + " |")
    return lines


def run(out: Path, quick: bool = False) -> Path:
    from .prompt_following import held_out_prompts

    t0 = time.perf_counter()
    n, steps = (4, 4) if quick else (24, 20)
    clips, prompts, stated = held_out_prompts(n)
    rows = [("shipped toy-small (the common start)", "-", measure(_pipe(None), clips, prompts, stated, steps))]
    rows += measure_levers(LEVERS, lambda name: lever_config(name, quick), (clips, prompts, stated), steps)
    cfg = lever_config("baseline", quick)
    lines = ["# Shape pilot: which lever makes toy-small use the shape word", "",
             f"`cinetune bench shape-pilot{' --quick' if quick else ''}`: every lever fine-tunes the shipped toy-small "
             f"at batch {cfg.batch_size} on {cfg.data.latent_cache} cached one-object clips (preset "
             f"toy-small-shape-pilot: {cfg.steps} steps, lr {cfg.optim.lr:g}, unless the lever changes them; its "
             f"training wall time is in the second column), then generates {n} "
             f"held-out one-object prompts ({steps} steps, guidance 5). Read-back: fraction of videos whose shape / "
             "colour / motion read back as stated (chance: shape 1/7, colour 1/10). Word use: relative rise of the "
             "loss on the object's latent cells when the shape (colour) word is swapped, at noise level sigma; "
             "a model that ignores the word has a rise of about 0.", "",
             ] + lever_table(rows)
    lines += ["", f"Wall time {time.perf_counter() - t0:.0f} s (training reused where already done).", ""]
    path = Path(out) / ("shape-pilot.md" if not quick else "shape-pilot-quick.md")
    write_text(path, "\n".join(lines))
    return path
