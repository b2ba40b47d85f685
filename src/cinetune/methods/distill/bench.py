"""`cinetune bench distill`: the paper's Table 2 at toy scale (issue: adaptive video distillation, item 7).

Students of the shipped toy-large, one per ablation (DMD, +TR, +TR+RegLoss, +TR+AdaLoss, and the paper-vs-code
variants of the regression weight and the truncation), trained for the same budget; the teacher at its full steps
with guidance and at 4 steps (the trivial baseline); the full student with frame interpolation. Each row on the same
held-out one-object prompts and seeds: instance preservation, dynamic degree, oversaturation, toy-FVD and alignment
against the prompts' real clips, prompt-following read-back and denoiser calls. Speed is its own table, timed interleaved (`speed`):
denoising seconds per video (text encoding and VAE decoding excluded, as the paper counts) and whole-pipeline
seconds. Then the shipped control adapters on the student at 4 steps vs on the teacher at its full steps."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...bench import interleaved_medians
from ...bench.harness import adherence, eval_set, train_or_reuse
from ...core.figures import figure
from ...io import write_text

# ablation -> distill overrides (the full method is the paper's defaults)
ABLATIONS = {
    "DMD": dict(regression="off", temporal_weight=0.0),
    "+TR": dict(regression="off"),
    "+TR+RegLoss": dict(regression="plain"),
    "+TR+AdaLoss": dict(),
    "+TR+AdaLoss, code weight 1": dict(regression_weight=1.0),
    "+TR+AdaLoss, code truncation 0.8": dict(temporal_threshold=0.8),
}
FULL = "+TR+AdaLoss"


@dataclass(frozen=True)
class Plan:
    quick: bool
    steps: int  # training steps per student
    n_eval: int
    teacher_steps: int
    interp_steps: int
    repeats: int

    @classmethod
    def of(cls, quick: bool) -> "Plan":
        return cls(True, 10, 4, 10, 50, 2) if quick else cls(False, 400, 16, 50, 2000, 5)

    @property
    def root(self) -> Path:
        return Path("runs") / ("bench-distill-quick" if self.quick else "bench-distill")


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-").replace("--", "-")


def _train_students(plan: Plan) -> dict[str, Path]:
    from ...training import preset_config

    runs = {}
    for name, over in ABLATIONS.items():
        cfg = preset_config("toy-large-4step", {
            "output_dir": str(plan.root / _slug(name)), "steps": plan.steps, "checkpoint_every": max(plan.steps // 2, 1),
            "validate_every": 0, "num_validation": 2,
            "distill": {**over, "teacher_steps": plan.teacher_steps, "interpolator": ""},  # (the bench trains its own)
            **({"data": {"latent_cache": 64, "cache_path": str(plan.root / "latents.safetensors")}} if plan.quick else {})})
        runs[name] = train_or_reuse(cfg)
    return runs


def _train_interpolator(plan: Plan) -> Path:
    from ...training import preset_config

    cfg = preset_config("toy-interpolator", {
        "output_dir": str(plan.root / "interpolator"), "steps": plan.interp_steps, "validate_every": 0,
        **({"data": {"latent_cache": 64, "cache_path": str(plan.root / "latents.safetensors")}} if plan.quick else {})})
    return train_or_reuse(cfg)


def _row(pipe, prompts: list[str], refs: list, stated: list, calls: int, **kw) -> dict:
    """Quality of one sampler setting on the held-out prompts (seed i for prompt i)."""
    from ...bench.prompt_following import accuracy, read_back
    from ...metrics import EvalConfig, evaluate

    videos = [pipe(p, seed=i, progress=False, **kw).videos[0] for i, p in enumerate(prompts)]
    cfg = EvalConfig(metrics=("fvd", "alignment", "dynamic", "instances", "saturation"), progress=False)
    s = evaluate(videos, refs, prompts, cfg=cfg)["summary"]
    acc = accuracy(read_back(videos), stated)
    return {"instances": s.get("instance_preservation", float("nan")), "dynamic": s["dynamic_degree"],
            "oversaturation": s["oversaturation"], "fvd": s["fvd"], "alignment": s["alignment"],
            "shape": acc["shape"], "colour": acc["colour"], "motion": acc["motion"], "calls": calls, "videos": videos}


SPEED_PROMPT = "a red circle moves left"


def speed(base, student, teacher_steps: int, repeats: int) -> dict[str, dict]:
    """Setting -> denoiser calls, denoise seconds (prompt embedding given, no VAE decoding) and whole-pipeline seconds
    (prompt to pixels), one 17-frame video: the teacher at `teacher_steps` x CFG and at 4 steps x CFG, the student,
    and the student with frame interpolation when it has an interpolator. Every setting is timed in every round
    (`interleaved_medians`), so their ratios hold on a shared machine."""
    emb = base.encode_prompt([SPEED_PROMPT])
    settings = {f"teacher ({teacher_steps} steps x CFG)": (None, 2 * teacher_steps, {"steps": teacher_steps}),
                "teacher at 4 steps x CFG": (None, 8, {"steps": 4}), "student": (student, len(student.timesteps), {})}
    if student.interpolator is not None:
        settings["student + frame interpolation"] = (student, len(student.timesteps), {"interpolate": True})

    @contextmanager
    def case(model, whole: bool, kw: dict):
        def call(**extra):
            if whole:
                return base(SPEED_PROMPT, seed=0, progress=False, **kw, **extra)
            return base(prompt_embeds=emb, seed=0, progress=False, decode=False, **kw, **extra)

        if model is None:
            yield call
        else:
            with model.attach(base.backbone) as att:
                yield lambda: call(sampler=att.sampler, guidance=1.0)

    cases = {(name, whole): (lambda m=m, w=whole, kw=kw: case(m, w, kw))
             for name, (m, _, kw) in settings.items() for whole in (False, True)}
    t = interleaved_medians(cases, repeats)
    return {name: {"calls": calls, "denoise_s": t[name, False], "whole_s": t[name, True]}
            for name, (_, calls, _) in settings.items()}


def speed_lines(times: dict[str, dict], repeats: int) -> list[str]:
    """The speed table, speed-ups against its first (teacher) row."""
    t = next(iter(times.values()))
    lines = [f"Interleaved timing: each of {repeats} rounds (after one warm-up) runs every setting once, denoise and "
             f"whole; medians over the rounds; one 17x64x64 video; torch threads {torch.get_num_threads()}.", "",
             "| setting | denoiser calls | denoise s (speed-up) | whole s (speed-up) |", "|---|---:|---:|---:|"]
    for name, r in times.items():
        lines.append(f"| {name} | {r['calls']} | {r['denoise_s']:.3f} ({t['denoise_s'] / r['denoise_s']:.1f}x) | "
                     f"{r['whole_s']:.3f} ({t['whole_s'] / r['whole_s']:.1f}x) |")
    return lines


def speed_targets(times: dict[str, dict], teacher_steps: int) -> list[str]:
    """Target rows (student ≥ 20x, with interpolation ≥ 30x the teacher's denoising speed)."""
    names = list(times)
    t = times[names[0]]["denoise_s"]
    out = [("student", 20, f"student denoising ≥ 20x faster than the teacher at {teacher_steps} steps x CFG"),
           ("student + frame interpolation", 30, "with frame interpolation ≥ 30x")]
    return [f"| {label} | {t / times[n]['denoise_s']:.1f}x | {'yes' if t / times[n]['denoise_s'] >= goal else 'no'} |"
            for n, goal, label in out if n in times]


def _student_row(base, student, prompts, refs, stated, plan: Plan, **kw) -> dict:
    """A student's row: attached once (its weights written in), its own sampler, no guidance."""
    with student.attach(base.backbone) as att:
        return _row(base, prompts, refs, stated, len(student.timesteps), sampler=att.sampler, guidance=1.0, **kw)


LORA_RANKS = (4, 16, 64)


def _lora_section(base, student, prompts, refs, stated, plan: Plan) -> dict:
    """The student as a rank-r LoRA on the teacher (what `cinetune distill export-lora` writes and diffusers loads):
    each rank's product B @ A merged in place of the linear deltas, the other deltas dropped as the LoRA drops them;
    the row, the share of the linear deltas' energy kept and the LoRA's size."""
    from .lora_export import lora_from_deltas
    from .model import StudentModel

    out = {}
    for rank in LORA_RANKS:
        lora, report = lora_from_deltas(student.deltas, base.backbone.transformer, rank)
        deltas = {k.removesuffix(".lora_A.weight") + ".weight": lora[k.replace("lora_A", "lora_B")] @ v
                  for k, v in lora.items() if k.endswith(".lora_A.weight")}
        as_lora = StudentModel(deltas, student.timesteps, student.shift, student.base, student.base_fingerprint,
                               teacher=student.teacher)
        out[rank] = {**_student_row(base, as_lora, prompts, refs, stated, plan), "kept": report["kept"],
                     "linear": report["linear"], "params": sum(t.numel() for t in lora.values())}
    return out


def _control_section(base, student, plan: Plan) -> list[dict]:
    """The shipped control adapters, unchanged, on the student at its steps vs on the teacher at its full steps with
    guidance: adherence on held-out clips and the share the student keeps (depth error: teacher / student)."""
    from ...backbones.presets import assets_root
    from ...methods.registry import load_adapter
    from ...pipelines import AdaptedPipeline

    clips, conds = eval_set(plan.n_eval // 2 if plan.quick else plan.n_eval)
    out = []
    for name in ("toy-large-controlnext", "toy-large-scale-adapter"):
        if not (assets_root() / name).is_dir():
            continue
        ctl = load_adapter(name)
        teacher = [AdaptedPipeline(base, ctl)(t, controls=conds[i], steps=plan.teacher_steps, guidance=5.0, seed=i,
                                              progress=False).videos[0] for i, (_, t) in enumerate(clips)]
        fast = [AdaptedPipeline(base, [student, ctl])(t, controls=conds[i], guidance=1.0, seed=i,
                                                     progress=False).videos[0] for i, (_, t) in enumerate(clips)]
        a, b = adherence(teacher, clips), adherence(fast, clips)
        keep = {k: (b[k] / a[k] if k != "depth_error" else a[k] / b[k]) if a[k] and b[k] else float("nan") for k in a}
        out.append({"adapter": name, "teacher": a, "student": b, "kept": keep})
    return out


def run(out: Path, quick: bool = False) -> Path:
    from ...pipelines import TextToVideoPipeline
    from ...bench.prompt_following import held_out_prompts
    from .interpolator import load_interpolator
    from .model import StudentModel

    t0, out, plan = time.perf_counter(), Path(out), Plan.of(quick)
    runs = _train_students(plan)
    interp_run = _train_interpolator(plan)
    base = TextToVideoPipeline.from_pretrained("toy-large", device="cpu")
    clips, prompts, stated = held_out_prompts(plan.n_eval)
    refs = [c.video for c in clips]
    rows = {f"teacher ({plan.teacher_steps} steps x CFG)": _row(base, prompts, refs, stated, 2 * plan.teacher_steps,
                                                                steps=plan.teacher_steps),
            "teacher at 4 steps x CFG": _row(base, prompts, refs, stated, 8, steps=4)}
    students = {name: StudentModel.load(run / "final") for name, run in runs.items()}
    for name, student in students.items():
        rows[name] = _student_row(base, student, prompts, refs, stated, plan)
    full = students[FULL]
    full.interpolator = load_interpolator(interp_run)
    rows["Full+VIF"] = _student_row(base, full, prompts, refs, stated, plan, interpolate=True)
    times = speed(base, full, plan.teacher_steps, plan.repeats)
    control = _control_section(base, full, plan)
    lora = _lora_section(base, full, prompts, refs, stated, plan)
    path = out / "distill.md"
    write_text(path, "\n".join(_report(plan, rows, times, control, runs) + _lora_report(lora, rows[FULL])
                               + [f"Wall time {time.perf_counter() - t0:.0f} s.", ""]))
    _plot(rows, out / "distill.png")
    return path


COLUMNS = [("instances", "instance preservation ↑", "{:.3f}"), ("dynamic", "dynamic degree", "{:.2f}"),
           ("oversaturation", "oversaturation ↓", "{:.4f}"), ("fvd", "toy-FVD ↓", "{:.2f}"),
           ("alignment", "alignment ↑", "{:.3f}"), ("shape", "shape", "{:.2f}"), ("colour", "colour", "{:.2f}"),
           ("motion", "motion", "{:.2f}")]


def _lora_report(lora: dict, full: dict) -> list[str]:
    lines = ["", f"## {FULL} as a LoRA on the teacher (rank vs quality)", "",
             "The student's linear deltas at rank r (truncated SVD, `cinetune distill export-lora --rank r`), merged "
             "onto the teacher; its other deltas (norms, biases, embeddings) are not in a LoRA. Same prompts, seeds "
             "and sampler as the table above.", "",
             "| rank | LoRA parameters | linear delta energy kept | " + " | ".join(c[1] for c in COLUMNS) + " |",
             "|---:|---:|---:|" + "---:|" * len(COLUMNS)]
    for rank, r in lora.items():
        lines.append(f"| {rank} | {r['params'] / 1e6:.2f} M | {r['kept']:.3f} | "
                     + " | ".join(fmt.format(r[k]) for k, _, fmt in COLUMNS) + " |")
    lines.append(f"| the student itself | | 1.000 | " + " | ".join(fmt.format(full[k]) for k, _, fmt in COLUMNS) + " |")
    share = next(iter(lora.values()))["linear"]
    return lines + ["", f"The linear layers hold {share:.1%} of the student's whole delta (squared norm).", ""]


def _report(plan: Plan, rows: dict, times: dict, control: list[dict], runs: dict) -> list[str]:
    t = rows[next(iter(rows))]
    lines = ["# Adaptive video distillation at toy scale", "",
             f"`cinetune bench distill{' --quick' if plan.quick else ''}`: students of the shipped toy-large, each "
             f"trained {plan.steps} steps (`toy-large-4step` recipe, one term changed per row), on {plan.n_eval} "
             "held-out one-object prompts (seed i for prompt i). Instance preservation from the toy annotator's "
             "segmentation; dynamic degree: share of videos with VBench-style motion; oversaturation, toy-FVD and "
             "alignment against the prompts' real clips; shape / colour / motion: read-back accuracy "
             "(`cinetune bench prompt-following`'s readers).", "",
             "| row | " + " | ".join(c[1] for c in COLUMNS) + " | denoiser calls |", "|---|" + "---:|" * (len(COLUMNS) + 1)]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(fmt.format(r[k]) for k, _, fmt in COLUMNS) + f" | {r['calls']} |")
    lines += ["", f"## Speed ({FULL}; every student above runs the same computation)", ""] + speed_lines(times, plan.repeats)
    full, dmd = rows[FULL], rows["DMD"]
    yes = lambda ok: "yes" if ok else "no"  # noqa: E731
    lines += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|",
              *speed_targets(times, plan.teacher_steps),
              f"| full vs DMD: instance preservation higher | {full['instances']:.3f} vs {dmd['instances']:.3f} | "
              f"{yes(full['instances'] > dmd['instances'])} |",
              f"| full vs DMD: dynamic degree not lower | {full['dynamic']:.2f} vs {dmd['dynamic']:.2f} | "
              f"{yes(full['dynamic'] >= dmd['dynamic'])} |",
              f"| full vs DMD: oversaturation lower | {full['oversaturation']:.4f} vs {dmd['oversaturation']:.4f} | "
              f"{yes(full['oversaturation'] < dmd['oversaturation'])} |",
              f"| full vs teacher: toy-FVD within 15% | {full['fvd']:.2f} vs {t['fvd']:.2f} | "
              f"{yes(full['fvd'] <= 1.15 * t['fvd'])} |",
              f"| full vs teacher: dynamic degree not lower | {full['dynamic']:.2f} vs {t['dynamic']:.2f} | "
              f"{yes(full['dynamic'] >= t['dynamic'])} |",
              f"| TR raises dynamic degree over DMD | {rows['+TR']['dynamic']:.2f} vs {dmd['dynamic']:.2f} | "
              f"{yes(rows['+TR']['dynamic'] > dmd['dynamic'])} |"]
    if control:
        lines += ["", f"## Control adapters on the student ({FULL}, 4 steps, no guidance) vs the teacher "
                  f"({plan.teacher_steps} steps, guidance 5), unchanged", "",
                  "| adapter | canny F1 teacher → student | depth err teacher → student | pose PCK teacher → student | "
                  "kept (canny / depth / pose) | ≥ 90% kept |", "|---|---:|---:|---:|---:|---|"]
        for c in control:
            a, b, k = c["teacher"], c["student"], c["kept"]
            ok = all(v >= 0.9 for v in k.values() if np.isfinite(v))
            lines.append(f"| {c['adapter']} | {a['canny_f1']:.3f} → {b['canny_f1']:.3f} | {a['depth_error']:.4f} → "
                         f"{b['depth_error']:.4f} | {a['pose_pck']:.3f} → {b['pose_pck']:.3f} | "
                         f"{k['canny_f1']:.2f} / {k['depth_error']:.2f} / {k['pose_pck']:.2f} | {yes(ok)} |")
    lines += ["", "Training runs: " + ", ".join(f"`{p}`" for p in runs.values()) + ". Guard curves of each run: its "
              "`guards.png`; samples grid: `distill.png`.", ""]
    return lines


def _plot(rows: dict, path: Path) -> None:
    """First frame of each row's first three videos, one row of the figure per table row."""
    names = list(rows)
    with figure(path, len(names), 3, figsize=(4.5, 1.5 * len(names))) as (fig, axes):
        for i, name in enumerate(names):
            for j in range(3):
                ax = axes[i][j]
                vids = rows[name]["videos"]
                if j < len(vids):
                    ax.imshow(vids[j][len(vids[j]) // 2])
                ax.set_xticks([]), ax.set_yticks([])
            axes[i][0].set_ylabel(name, fontsize=6, rotation=0, ha="right")
