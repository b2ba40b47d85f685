"""Ship a trained run as a package asset: weights (safetensors) + model card with measured numbers."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import yaml

from ..errors import CinetuneError
from ..io import atomic_dir

def _training_wall_seconds(run: Path) -> float:
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    if not rows:
        return 0.0
    # rows are logged every log_every steps; sec_per_step is that step's time: scale by the logging interval
    steps = [int(r["step"]) for r in rows]
    secs = [float(r["sec_per_step"]) for r in rows]
    total, prev = 0.0, 0
    for s, t in zip(steps, secs):
        total += t * (s - prev)
        prev = s
    return total


def export_asset(run: str | Path, name: str, root: Path | None = None, stage: str | None = None) -> Path:
    """Copy <run>/final/* into <root>/<name>/ and write <root>/<name>/README.md (the model card); `stage`: the
    `cinetune assets` stage that trained it, named on the card."""
    run = Path(run)
    final = run / "final"
    if not final.is_dir():
        raise CinetuneError(f"{run} has no final/ directory: finish training first")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    summary = json.loads((run / "summary.json").read_text())
    from ..backbones.presets import assets_root

    dest = Path(root or assets_root()) / name
    with atomic_dir(dest) as tmp:
        for sub in final.iterdir():
            shutil.copytree(sub, tmp / sub.name)
        if cfg["task"] in ("dit", "distill"):  # (a student's deltas are small: fp16 keeps them to 5e-4 relative)
            _store_half(tmp / ("transformer" if cfg["task"] == "dit" else "student"))
        if (run / "loss.png").is_file():
            shutil.copy(run / "loss.png", tmp / "loss.png")
        if cfg["task"] == "dit":
            _dit_samples(cfg, tmp)
        else:
            last = run / "samples" / f"step-{cfg['steps']:07d}.gif"
            if last.is_file():
                shutil.copy(last, tmp / "samples.gif")
        card = _card(name, cfg, summary, _training_wall_seconds(run), tmp)
        if stage:
            card = card.replace("\n\n- Recipe", f"\n\n- Rebuilt by `cinetune assets` (`make assets`), stage `{stage}`; "
                                "run alone:\n- Recipe", 1)
        (tmp / "README.md").write_text(card)
    return dest


def _store_half(folder: Path) -> None:
    """Ship DiT weights as fp16 (half the size; loaders upcast with torch_dtype=float32). Measured on toy-large's demo:
    pixels differ from the fp32 weights by at most 1/255."""
    from safetensors.torch import load_file, save_file

    for w in folder.glob("*.safetensors"):
        save_file({k: v.half() if v.is_floating_point() else v for k, v in load_file(w).items()}, str(w),
                  metadata={"format": "pt"})


def _dit_samples(cfg: dict, dest: Path, n: int = 8) -> None:
    """Sample grid of the exported transformer with the VAE that ships now, on held-out captions."""
    import torch

    from ..backbones import load_backbone
    from ..io import video_grid, write_video
    from ..pipelines import TextToVideoPipeline
    from ..toyworld import ToyWorldDataset

    backbone = load_backbone(cfg["backbone"], random_init=True)
    backbone.transformer = type(backbone.transformer).from_pretrained(dest / "transformer", use_safetensors=True,
                                                                      torch_dtype=torch.float32)  # (Wan or CogVideoX)
    prompts = [ToyWorldDataset(n, seed=cfg["data"]["seed"] + 1)[i]["caption"] for i in range(n)]  # held out
    d = cfg["data"]
    out = TextToVideoPipeline(backbone)(prompts, frames=d["frames"], height=d["height"], width=d["width"],
                                        steps=CARD_STEPS, guidance=5.0, seed=0, progress=False)
    write_video(dest / "samples.gif", video_grid(list(out.videos), cols=4))
    (dest / "samples.txt").write_text("\n".join(prompts) + "\n")


CARD_STEPS = 25
METRIC_NOTES = {
    "video-encoder": "acc_X: fraction of clips whose whole label set for X is right; f1_X: micro-F1 over X's labels; "
                     "acc_background: top-1 of the background colour",
    "identity-encoder": "acc_identity: fraction of face crops whose nearest reference portrait (one rendered per "
                        "roster identity) is their own; cos_same / cos_best_other: mean cosine to their own / to the "
                        "most similar other reference; clips with at least one actor",
    "annotator": "depth_mae: mean absolute depth error (depth in [0,1]); miou: 10-class segmentation mIoU; "
                 "pck@2px: fraction of visible OpenPose-18 keypoints detected within 2 px",
}


def _recipe(cfg: dict, name: str) -> str:
    from ..methods.registry import extra_tasks, methods

    if cfg["task"] in methods():
        return methods()[cfg["task"]].card_text(cfg)[0]
    if cfg["task"] in extra_tasks():
        return f"cinetune train {cfg['task']} --preset {cfg.get('preset') or name}"
    return f"cinetune train {'base' if cfg['task'] in ('dit', 'vae') else 'features'} --preset {cfg.get('preset') or name}"


def _samples_note(cfg: dict) -> str:
    from ..methods.registry import methods

    if cfg["task"] in methods():
        return " " + methods()[cfg["task"]].card_text(cfg)[1]
    return {"dit": " Samples: `samples.gif`, generated at export with the shipped VAE from held-out captions "
                   f"(`samples.txt`), {CARD_STEPS} steps, guidance 5, seed 0.",
            "vae": " Reconstructions (left: input, right: decoded): `samples.gif`.",
            "annotator": " Predictions on held-out clips (input | depth | segmentation | pose): `samples.gif`."
            }.get(cfg["task"], "")


def _init_line(cfg: dict) -> list[str]:
    if not cfg.get("init"):
        return []
    note = ""
    if cfg.get("decoder_only"):
        fresh = (f"; decoder replaced by a fresh one of base width {cfg['decoder_base_dim']}"
                 if cfg.get("decoder_base_dim") else "")
        note = f" (decoder-only stage: encoder and latents unchanged{fresh})"
    return [f"- Initialised from `{cfg['init']}`{note}"]


def _card(name: str, cfg: dict, summary: dict, wall: float, dest: Path) -> str:
    from safetensors.torch import load_file

    d = cfg["data"]
    lines = [f"# {name}", "", "Trained by cinetune's own recipe on the procedural toy world (no external data).", "",
             f"- Recipe: `{_recipe(cfg, name)}` (config below; `--resume` continues a stopped run)",
             f"- Data: toy-world clips, dataset seed {d['seed']}, {d['frames']} frames x {d['height']}x{d['width']}"
             + (f", latent cache of {d['latent_cache']} clips" if d.get("latent_cache") else "")
             + (f", {d['clip_cache']} clips rendered once" if d.get("clip_cache") else "")
             + (f", random {d['crop']}x{d['crop']} crops" if d.get("crop") else ""),
             *_init_line(cfg),
             f"- Steps: {cfg['steps']} x batch {cfg['batch_size']} (x{summary.get('processes', 1)} processes)",
             f"- Training wall time: {wall / 60:.1f} min (sum of measured step times) on "
             f"{summary.get('device', 'this project' + chr(39) + 's 2-core CPU')}"
             + (f", {summary['precision']} autocast" if summary.get("precision", "no") != "no" else ", fp32"),
             f"- Final training loss: {summary.get('final_loss', float('nan')):.4f}"]
    if "val_psnr" in summary:
        lines.append(f"- Held-out reconstruction PSNR (8 clips, 17x64x64, seed {d['seed'] + 1}): "
                     f"**{summary['val_psnr']:.2f} dB**")
    if "val_chunk_flicker" in summary:
        lines.append(f"- Held-out chunk-boundary flicker (`metrics.chunk_flicker`, the same clips; about 1 for the "
                     f"rendered clips): **{summary['val_chunk_flicker']:.2f}**")
    held_out = {k: v for k, v in summary.items() if k not in ("steps", "wall_seconds_this_run", "processes", "device",
                                                               "precision", "final_loss", "val_psnr",
                                                               "val_chunk_flicker")}
    if held_out:
        lines.append(f"- Held-out evaluation ({cfg.get('num_validation')} clips of dataset seed {d['seed'] + 1}, never "
                     "trained on): " + ", ".join(f"**{k} = {v:.3f}**" for k, v in held_out.items()))
        if cfg["task"] in METRIC_NOTES:
            lines.append(f"  ({METRIC_NOTES[cfg['task']]})")
    n = sum(t.numel() for w in dest.rglob("*.safetensors") for t in load_file(w).values())
    lines.append(f"- Parameters: {n / 1e6:.2f} M")
    lines += ["", "Loss curve: `loss.png`." + _samples_note(cfg),
              "", "## Config", "", "```yaml", yaml.safe_dump(cfg, sort_keys=False).strip(), "```", ""]
    return "\n".join(lines)
