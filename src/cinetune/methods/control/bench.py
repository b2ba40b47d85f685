"""`cinetune bench control`: the control methods on the frozen shipped toy-large with equal training budgets
(issue: control adapters, item 7; ControlNeXt's Fig. 3 / Table 7 at toy scale).

For each method (ControlNeXt, DiT-ControlNet, channel concat) trained jointly on canny + depth + pose for the same
number of steps: trainable parameters, training step time, inference latency per denoising step vs the bare base
(median of repeated runs in one process), and after the budget: condition adherence per kind, toy-FVD, SSIM/PSNR
to the reference clip and toy alignment on held-out clips. Convergence: adherence vs step for DiT-ControlNet and for
ControlNeXt with the paper's cross-norm, the code's cross-norm, a zero-initialised projection and plain addition,
and the step at which ControlNeXt first matches DiT-ControlNet's final adherence (the issue's 1/3 target)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...bench.harness import KINDS, adherence, eval_set, generate, sec_per_step, step_latency, train_or_reuse
from ...core.figures import figure
from ...io import write_text
VARIANTS = {"paper cross-norm": "paper", "code cross-norm": "code", "zero-init projection": "zero",
            "plain addition": "none"}


def _train(method: str, root: Path, steps: int, checkpoint_every: int, quick: bool, **control) -> Path:
    from ...training import preset_config

    cfg = preset_config("toy-control", {
        "output_dir": str(root / f"{method}-{control.get('norm', '')}".rstrip("-").replace("-paper", "")),
        "steps": steps,
        "batch_size": 4 if quick else 8, "checkpoint_every": checkpoint_every, "keep_checkpoints": 1000,
        "validate_every": 0, "num_validation": 1, "validation_steps": 4 if quick else 10,
        "control": {"method": method, "conditions": ",".join(KINDS), "clip_cache": 64 if quick else 1000, **control}})
    return train_or_reuse(cfg)


def _curve(run_dir: Path, pipe, clips, conds, sample_steps: int, base_state: dict) -> list[tuple[int, dict]]:
    """Adherence at every training checkpoint of one run."""
    from .model import ControlModel

    final = ControlModel.load(run_dir / "final" / "control")
    pts = []
    for ck in sorted((run_dir / "checkpoints").glob("step-*")):
        model = _checkpoint_model(final, ck, base_state)
        pts.append((int(ck.name.split("-")[1]), adherence(generate(pipe, model, clips, conds, sample_steps), clips)))
    return pts


BETTER = {"canny_f1": 1, "depth_error": -1, "pose_pck": 1}


def steps_to_reach(curve: list[tuple[int, dict]], target: dict) -> dict:
    """Per adherence metric: the first checkpoint step whose value is at least as good as `target`'s (None: never)."""
    out = {}
    for key, sign in BETTER.items():
        hit = [s for s, a in curve if sign * (a[key] - target[key]) >= 0]
        out[key] = hit[0] if hit else None
    return out


@dataclass(frozen=True)
class Plan:
    """Sizes of one bench run (quick: a smoke run in minutes)."""

    quick: bool
    steps: int
    every: int  # checkpoint interval (the convergence curve's points)
    n_eval: int
    n_curve: int
    sample_steps: int
    batch: int

    @classmethod
    def of(cls, quick: bool) -> "Plan":
        return cls(True, 20, 10, 3, 2, 6, 4) if quick else cls(False, 300, 50, 8, 4, 20, 8)

    @property
    def root(self) -> Path:  # training runs (not results)
        return Path("runs") / ("bench-control-quick" if self.quick else "bench-control")


def chains(quick: bool = False) -> list:
    """Every run of the bench, each independent (`cinetune bench control --jobs 2`)."""
    from functools import partial

    plan = Plan.of(quick)
    runs = [("controlnext", {"norm": n}) for n in VARIANTS.values()] + [("dit-controlnet", {}), ("concat", {})]
    return [partial(_train, method, plan.root, plan.steps, plan.every, quick, **kw) for method, kw in runs]


def _variant(norm: str) -> str:
    return next(label for label, n in VARIANTS.items() if n == norm)


def _method_row(label: str, run_dir: Path, pipe, clips, conds, plan: Plan, feats, base_params: int) -> dict:
    from ...metrics import frechet_distance, psnr, ssim
    from .model import ControlModel

    refs = [c.video for c, _ in clips]
    model = ControlModel.load(run_dir / "final" / "control")
    videos = generate(pipe, model, clips, conds, plan.sample_steps)
    base_s, adapted_s = step_latency(pipe, model, dict(conds[0]), 3 if plan.quick else 10)
    trainable = model.num_parameters()
    return {"method": label, "trainable": trainable, "pct": 100 * trainable / base_params,
            "train_step_s": sec_per_step(run_dir), "base_step_s": base_s, "step_s": adapted_s,
            **adherence(videos, clips),
            "fvd": frechet_distance(feats.video_features(videos), feats.video_features(refs)),
            "ssim": float(np.mean([ssim(v, r) for v, r in zip(videos, refs)])),
            "psnr": float(np.mean([psnr(v, r) for v, r in zip(videos, refs)])),
            "alignment": float(np.nanmean([feats.alignment(v, t) for v, (_, t) in zip(videos, clips)]))}


def run(out: Path, quick: bool = False) -> Path:
    from ...metrics.features import ToyFeatures
    from ...pipelines import TextToVideoPipeline

    t_start, out, plan = time.perf_counter(), Path(out), Plan.of(quick)
    pipe = TextToVideoPipeline.from_pretrained("toy-large", device="cpu")
    base_params = sum(p.numel() for p in pipe.backbone.transformer.parameters())
    base_state = {k: v.detach().clone() for k, v in pipe.backbone.transformer.state_dict().items()}
    clips, conds = eval_set(plan.n_eval)
    feats = ToyFeatures()
    curve_set = (clips[:plan.n_curve], conds[:plan.n_curve])
    rows, curves, runs = [], {}, {}
    # ControlNeXt in its default form (zero-init projection) and the paper's; the other variants join the curves
    for label, method, norm in (("controlnext (zero-init projection, the default)", "controlnext", "zero"),
                                ("controlnext (paper cross-norm)", "controlnext", "paper"),
                                ("dit-controlnet", "dit-controlnet", None), ("concat", "concat", None)):
        run_dir = runs[label] = _train(method, plan.root, plan.steps, plan.every, quick,
                                       **({"norm": norm} if norm else {}))
        rows.append(_method_row(label, run_dir, pipe, clips, conds, plan, feats, base_params))
        if method != "concat":  # (concat's widened patch embedding is not in the checkpoint's adapter keys)
            curve_label = "DiT-ControlNet" if method == "dit-controlnet" else f"ControlNeXt, {_variant(norm)}"
            curves[curve_label] = _curve(run_dir, pipe, *curve_set, plan.sample_steps, base_state)
    bare_videos = [pipe(t, steps=plan.sample_steps, guidance=5.0, seed=i, progress=False).videos[0]
                   for i, (_, t) in enumerate(clips)]
    bare_row = adherence(bare_videos, clips)
    bare_curve = adherence(bare_videos[:plan.n_curve], curve_set[0])  # the convergence clips without control
    for label, norm in VARIANTS.items():  # the paper's Fig. 3 / Table 7 ablation (zero and paper trained above)
        if norm not in ("paper", "zero"):
            run_dir = _train("controlnext", plan.root, plan.steps, plan.every, quick, norm=norm)
            curves[f"ControlNeXt, {label}"] = _curve(run_dir, pipe, *curve_set, plan.sample_steps, base_state)
    subsets = _subsets(runs[rows[0]["method"]], pipe, clips, conds, plan)
    path = out / "control.md"
    write_text(path, "\n".join(_report(plan, rows, bare_row, curves, bare_curve) + _subset_lines(subsets, bare_row)
                                + [f"Wall time {time.perf_counter() - t_start:.0f} s.", ""]))
    _plot(curves, out / "control.png")
    return path


def _subsets(run_dir: Path, pipe, clips, conds, plan: Plan) -> dict[tuple[str, ...], dict]:
    """ControlNeXt's adherence given every non-empty subset of its conditions (trained with per-condition dropout)."""
    from itertools import combinations

    from .model import ControlModel

    model = ControlModel.load(run_dir / "final" / "control")
    return {sub: adherence(generate(pipe, model, clips, [{k: c[k] for k in sub} for c in conds], plan.sample_steps),
                           clips)
            for n in range(1, len(KINDS) + 1) for sub in combinations(KINDS, n)}


def _subset_lines(subsets: dict, bare: dict) -> list[str]:
    lines = ["## Any subset of the trained conditions (ControlNeXt, zero-init projection: the default)", "",
             "Each condition left out at random in training (`control.dropout`, each kind independently); here the "
             "same held-out clips given only some conditions. Adherence is measured on all three.", "",
             "| conditions given | canny F1 ↑ | depth err ↓ | pose PCK ↑ |", "|---|---:|---:|---:|"]
    for sub, a in subsets.items():
        lines.append(f"| {' + '.join(sub)} | {a['canny_f1']:.3f} | {a['depth_error']:.4f} | {a['pose_pck']:.3f} |")
    lines.append(f"| none (bare toy-large) | {bare['canny_f1']:.3f} | {bare['depth_error']:.4f} | {bare['pose_pck']:.3f} |")
    return lines + [""]


def _report(plan: Plan, rows: list[dict], bare_row: dict, curves: dict, bare_curve: dict) -> list[str]:
    """The markdown lines of control.md (without the wall-time line)."""
    quick, steps, n_eval, sample_steps, batch = plan.quick, plan.steps, plan.n_eval, plan.sample_steps, plan.batch
    n_curve = plan.n_curve
    cnx, cn = rows[0], next(r for r in rows if r["method"] == "dit-controlnet")
    target = curves["DiT-ControlNet"][-1][1]
    reach = {form: steps_to_reach(curves[f"ControlNeXt, {form}"], target)
             for form in ("zero-init projection", "paper cross-norm")}
    lines = ["# Control adapters on frozen toy-large", "",
             f"`cinetune bench control{' --quick' if quick else ''}`: each method trained jointly on canny + depth + "
             f"pose (each left out at random, `control.dropout`) for **{steps} steps** (batch {batch}, lr 1e-4) from "
             f"the shipped toy-large, then evaluated on {n_eval} held-out clips ({sample_steps} sampling steps, guidance 5). Adherence re-extracts each "
             "condition from the generated video (canny: OpenCV; depth and pose: the toy annotator) and compares it "
             "with the clip's (edge F1 ↑, aligned depth error ↓, PCK@3.2px ↑). FVD and alignment use the toy video "
             "encoder. Latency: one denoiser call (CFG batch 2, 17x64x64), median of repeated runs in one process, "
             f"torch threads {torch.get_num_threads()}.", "",
             "| method | trainable params (% of base) | train step (s) | denoiser step: base → adapted (ratio) | "
             "canny F1 ↑ | depth err ↓ | pose PCK ↑ | toy-FVD ↓ | SSIM ↑ | PSNR ↑ | alignment ↑ |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['trainable'] / 1e6:.2f} M ({r['pct']:.1f}%) | {r['train_step_s']:.2f} | "
                     f"{1000 * r['base_step_s']:.1f} → {1000 * r['step_s']:.1f} ms ({r['step_s'] / r['base_step_s']:.2f}x) | "
                     f"{r['canny_f1']:.3f} | {r['depth_error']:.4f} | {r['pose_pck']:.3f} | {r['fvd']:.2f} | "
                     f"{r['ssim']:.3f} | {r['psnr']:.2f} | {r['alignment']:.3f} |")
    lines.append(f"| bare toy-large (no control) | - | - | - | {bare_row['canny_f1']:.3f} | {bare_row['depth_error']:.4f} | "
                 f"{bare_row['pose_pck']:.3f} | - | - | - | - |")
    fmt = lambda v: "never" if v is None else f"step {v} ({100 * v / steps:.0f}%)"  # noqa: E731
    lines += ["", "## Targets", "",
              "| target | measured | met |", "|---|---|---|",
              f"| ControlNeXt (the default form) trainable params ≤ 10% of base | {cnx['pct']:.1f}% | {'yes' if cnx['pct'] <= 10 else 'no'} |",
              f"| ControlNeXt latency overhead ≤ 10% | +{100 * (cnx['step_s'] / cnx['base_step_s'] - 1):.1f}% "
              f"(DiT-ControlNet +{100 * (cn['step_s'] / cn['base_step_s'] - 1):.1f}%) | "
              f"{'yes' if cnx['step_s'] <= 1.1 * cnx['base_step_s'] else 'no'} |"]
    for form, by_key in reach.items():
        for key, v in by_key.items():
            final = target[key]
            informative = BETTER[key] * (final - bare_curve[key]) > 0
            lines.append(f"| ControlNeXt ({form}) reaches DiT-ControlNet's final {key} ({final:.3f}; bare "
                         f"{bare_curve[key]:.3f}) in ≤ 1/3 of {steps} steps | {fmt(v)} | "
                         + (("yes" if v is not None and v <= steps / 3 else "no") if informative
                            else "n/a: DiT-ControlNet no better than the bare model") + " |")
    lines += ["", f"## Convergence (adherence on {n_curve} held-out clips at each checkpoint; plot: control.png)", ""]
    for key in BETTER:
        pts = next(iter(curves.values()))
        lines += [f"{key}:", "", "| run | " + " | ".join(f"step {s}" for s, _ in pts) + " |",
                  "|---|" + "---:|" * len(pts)]
        for label, c in curves.items():
            lines.append(f"| {label} | " + " | ".join(f"{a[key]:.3f}" for _, a in c) + " |")
        lines.append("")
    return lines




def _checkpoint_model(final, ckpt: Path, base_state: dict):
    """The ControlModel as it was at a training checkpoint: the checkpoint holds the whole denoiser's state dict
    (transformer.* with the fine-tuned base weights, control.* with the adapter)."""
    import copy

    from safetensors.torch import load_file

    sd = load_file(str(ckpt / "model.safetensors"))
    model = copy.deepcopy(final)
    if model.module is not None:
        model.module.load_state_dict({k[len("control."):]: v for k, v in sd.items() if k.startswith("control.")})
    model.finetuned = {n: sd[f"transformer.{n}"] - base_state[n] for n in final.finetuned}
    return model


def _plot(curves: dict, path: Path) -> None:
    with figure(path, 1, 3, figsize=(11, 3.2)) as (fig, axes):
        for ax, key in zip(axes, ("depth_error", "canny_f1", "pose_pck")):
            for label, pts in curves.items():
                ax.plot([s for s, _ in pts], [a[key] for _, a in pts], marker="o", label=label)
            ax.set_title(key, fontsize=9)
            ax.set_xlabel("training step", fontsize=8)
        axes[0].legend(fontsize=7)
