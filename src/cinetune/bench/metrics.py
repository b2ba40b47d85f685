"""`cinetune bench metrics`: metric validation on real toy clips (issue: conditions and evaluation, item 5).

Distances between two disjoint sets of real clips vs between real clips and increasingly corrupted ones must grow
with the corruption; dynamic degree must separate frozen from moving clips; instance preservation must catch injected
split / vanish events; condition adherence must rank the correct condition above a shuffled one. Also: how close the
pixel-based extractors come to the renderer's exact annotations, and identity similarity with right vs wrong
references."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..core.figures import figure
from ..io import write_text
from .corruptions import CORRUPTIONS, inject_instance_event

LEVELS = (0.0, 0.25, 0.5, 1.0)
# FVD's 256-d Gaussian needs more clips than the other metrics: on world v2's scene mix two disjoint real sets of 48
# are 607 apart and light corruptions land inside that noise (measured: blur 607 -> 578 -> 574 -> 637); with 192 the
# floor is 139 and every sweep rises (blur 139 -> 143 -> 204 -> 380).
FVD_CLIPS = 192
# metric -> (direction it must move as corruption grows: +1 up / -1 down, corruptions it must respond to)
EXPECT = {
    "fvd": (+1, tuple(CORRUPTIONS)),
    "perceptual": (+1, tuple(CORRUPTIONS)),
    "psnr": (-1, tuple(CORRUPTIONS)),
    "ssim": (-1, tuple(CORRUPTIONS)),
    "alignment": (-1, ("blur", "noise", "colour shift", "freeze")),
    "temporal_consistency": (-1, ("noise", "shuffle")),
    "flow_score": (-1, ("freeze",)),
    "oversaturation": (+1, ("saturate",)),
}


def _render(n: int, seed: int):
    from ..toyworld import RenderConfig, caption, clip_seed, render, sample_scene

    specs = [sample_scene(clip_seed(seed, i)) for i in range(n)]
    cfg = RenderConfig()
    return specs, [render(s, cfg) for s in specs], [caption(s) for s in specs], cfg


def _monotone(vals: list[float], direction: int) -> str:
    """'✓' when every step moves in `direction`; '≈' when some step stays within the tolerance (1% of the level-0
    value, at least 0.002: the two disjoint real sets of level 0 already differ by about that much) while the
    whole sweep moves clearly (more than 5 tolerances); '✗' otherwise."""
    v = np.asarray(vals, np.float64) * direction
    tol = max(0.01 * abs(vals[0]), 0.002)
    d = np.diff(v)
    if (d > 0).all():
        return "✓"
    if (d > -tol).all() and v[-1] - v[0] > 5 * tol:
        return "≈"
    return "✗"


def run(out: Path, quick: bool = False) -> Path:
    from ..conditions import get_extractor

    t0 = time.perf_counter()
    n, n_fvd = (12, 24) if quick else (48, FVD_CLIPS)
    # one rendering per set: the first n clips are the sets every metric uses, all n_fvd the FVD sets
    specs_a, clips_a, _, cfg = _render(n_fvd, seed=1000)
    _, clips_b, prompts_b, _ = _render(n_fvd, seed=1001)
    big_a, big_b = [c.video for c in clips_a], [c.video for c in clips_b]
    specs_a, clips_a, prompts_b, A = specs_a[:n], clips_a[:n], prompts_b[:n], big_a[:n]
    seg = get_extractor("segmentation")
    table, lines, failures = _corruptions(big_a, big_b, prompts_b, n, quick)
    lines += _dynamic(A)
    for section in (_instances(specs_a, clips_a, cfg, seg), _adherence(A, n), _extractors(clips_a, seg),
                    _identity(clips_a)):
        lines += section[0]
        failures += section[1]
    lines += ["", f"**Checks failed: {', '.join(failures) if failures else 'none'}.** "
              f"Wall time {time.perf_counter() - t0:.0f} s.", ""]
    out = Path(out)
    path = out / "metrics.md"
    write_text(path, "\n".join(lines))
    _plot(table, out / "metrics.png")
    return path


def _corruptions(big_a, big_b, prompts_b, n: int, quick: bool):
    """Stage 1: every metric over each corruption's levels, on the first n clips of each set (A, B) and FVD on all
    of them; -> (table, report lines, failed checks)."""
    from ..metrics import EvalConfig, evaluate

    quiet = dict(progress=False)
    A = big_a[:n]
    table: dict[str, dict[str, list[float]]] = {}
    for name, fn in CORRUPTIONS.items():
        cols: dict[str, list[float]] = {}
        for level in LEVELS:
            ca = [fn(v, level, seed=i) for i, v in enumerate(A)]
            big_cb = [fn(v, level, seed=10_000 + i) for i, v in enumerate(big_b)]
            cb = big_cb[:n]
            paired = evaluate(ca, A, cfg=EvalConfig(metrics=("psnr", "ssim", "perceptual"), **quiet))["summary"]
            dist = evaluate(cb, A, prompts_b, cfg=EvalConfig(metrics=("alignment", "temporal", "dynamic",
                                                                      "saturation"), **quiet))["summary"]
            fvd = evaluate(big_cb, big_a, cfg=EvalConfig(metrics=("fvd",), **quiet))["summary"]
            for k, v in {**paired, **dist, **fvd}.items():
                cols.setdefault(k, []).append(v)
        table[name] = cols

    lines = ["# Metric validation", "",
             f"`cinetune bench metrics{' --quick' if quick else ''}`: {n} real toy clips (set A, seed 1000) and {n} "
             f"disjoint real clips (set B, seed 1001), 17x64x64; FVD on {len(big_a)} clips per set (the same "
             "first, then more), since a 256-d Gaussian fitted to 48 clips of world v2 leaves two real sets 600 apart, "
             "more than light corruptions add. Feature networks: the shipped toy video encoder, toy "
             "annotator and toy identity encoder (trained on the toy world; see their model cards).", "",
             "Paired metrics (PSNR, SSIM, perceptual) compare A_i with corrupted A_i (level 0 = identical). "
             "Distribution metrics compare corrupted B with A (level 0 = two disjoint real sets), alignment scores "
             "corrupted B against B's own captions. Levels 0, 0.25, 0.5, 1 of: blur (sigma 2.5 px at 1), "
             "noise (std 40 at 1), frame shuffle (fraction of frames permuted), colour shift (hue 60 deg at 1), "
             "freeze (fraction of the clip frozen), saturate (saturation x3 at 1).", "",
             "A cell is checked when the metric must respond to that corruption; ✓ = strictly monotone over the four "
             "levels in the expected direction; ≈ = monotone except for a step within the tolerance (1% of the "
             "level-0 value, at least 0.002) while the whole sweep moves by more than five tolerances (a corruption "
             "too light for the metric to see, not a wrong direction); ✗ = neither.", "",
             "| metric | corruption | level 0 | 0.25 | 0.5 | 1 | expected | monotone |",
             "|---|---|---:|---:|---:|---:|:---:|:---:|"]
    failures = []
    for metric, (direction, which) in EXPECT.items():
        for name in CORRUPTIONS:
            vals = table[name].get(metric)
            if vals is None:
                continue
            must = name in which
            ok = _monotone(vals, direction)
            if must and ok == "✗":
                failures.append(f"{metric}/{name}")
            mark = ("↑" if direction > 0 else "↓") if must else ""
            lines.append(f"| {metric} | {name} | " + " | ".join(f"{v:.4g}" for v in vals)
                         + f" | {mark} | {ok if must else ''} |")
    return table, lines, failures


def _dynamic(A):
    """Stage 2: dynamic degree of the real clips vs the same clips frozen on their first frame."""
    from ..metrics import EvalConfig, evaluate

    quiet = dict(progress=False)
    moving = evaluate(A, cfg=EvalConfig(metrics=("dynamic",), **quiet))["summary"]
    frozen = evaluate([np.repeat(v[:1], len(v), 0) for v in A], cfg=EvalConfig(metrics=("dynamic",), **quiet))["summary"]
    lines = ["", "## Dynamic degree (VBench definition, Farneback flow)", "",
             "| set | dynamic degree (fraction moving) | mean top-5% flow (px) |", "|---|---:|---:|",
             f"| real clips | {moving['dynamic_degree']:.3f} | {moving['flow_score']:.3f} |",
             f"| same clips, first frame repeated | {frozen['dynamic_degree']:.3f} | {frozen['flow_score']:.3f} |"]
    return lines


def _instances(specs_a, clips_a, cfg, seg):
    """Stage 3: instance preservation, and whether injected vanish / split events are caught."""
    from ..metrics.instances import instance_events, instance_preservation, toy_object_groups

    failures = []
    with_obj = [(s, c) for s, c in zip(specs_a, clips_a) if s.objects]
    pres = {src: {ev: [] for ev in ("real", "vanish", "split")} for src in ("annotator", "exact")}
    caught = {src: {"vanish": 0, "split": 0} for src in ("annotator", "exact")}
    injectable = 0
    for s, c in with_obj:
        base = {"annotator": toy_object_groups(seg.analyse(c.video)), "exact": toy_object_groups(c.classes)}
        for src in base:
            pres[src]["real"].append(instance_preservation(base[src]))
        if inject_instance_event(s, cfg, "vanish") is None:
            continue
        injectable += 1
        for ev in ("vanish", "split"):
            vid, exact = inject_instance_event(s, cfg, ev)
            lab = {"annotator": toy_object_groups(seg.analyse(vid)), "exact": toy_object_groups(exact)}
            for src in lab:
                pres[src][ev].append(instance_preservation(lab[src]))
                caught[src][ev] += instance_events(lab[src])[ev] > instance_events(base[src])[ev]
    k = max(injectable, 1)
    lines = ["", "## Instance preservation (injected vanish / split events)", "",
             f"{len(with_obj)} clips with objects, {injectable} of which have an object that, in two consecutive "
             "frames, touches neither the border nor another instance: the event is injected there (from mid-clip "
             "when possible) (an object overlapping another "
             "forms one region with it, so no segmentation-based measure can see it vanish). Labels grouped into object / person (a segmenter switching "
             "between two shape classes is not an event). Labels from the toy annotator (pixels) and, for reference, "
             "the renderer's exact class maps of the same videos. *Caught*: the injected event type (vanish or "
             "split) is counted more often than in the same clip without injection.", "",
             "| clips | preservation (annotator) | caught (annotator) | preservation (exact labels) | caught (exact) |",
             "|---|---:|---:|---:|---:|",
             f"| real | {np.mean(pres['annotator']['real']):.3f} | - | {np.mean(pres['exact']['real']):.3f} | - |"]
    for ev in ("vanish", "split"):
        ca, ce = caught["annotator"][ev], caught["exact"][ev]
        if ca / k < 0.75:
            failures.append(f"instances/{ev}")
        lines.append(f"| {ev} injected | {np.mean(pres['annotator'][ev]):.3f} | {ca}/{k} ({ca / k:.0%}) | "
                     f"{np.mean(pres['exact'][ev]):.3f} | {ce}/{k} ({ce / k:.0%}) |")
    return lines, failures


def _adherence(A, n: int):
    """Stage 4: adherence with the correct condition vs a shuffled one, per condition kind."""
    from ..conditions import get_extractor
    from ..metrics.evaluate import adherence, adherence_name

    failures = []
    kinds = ["canny", "depth", "segmentation", "pose"]
    try:
        get_extractor("hed")
        kinds.insert(1, "hed")
    except Exception as e:  # optional extra not installed
        hed_note = f"(hed skipped: {e})"
    else:
        hed_note = ""
    n_adh = min(n, 24)  # HED on 64x64 frames is the slow part of this benchmark
    perm = np.roll(np.arange(n_adh), 1)
    generated = [CORRUPTIONS["noise"](v, 0.25, seed=i) for i, v in enumerate(A[:n_adh])]  # a lightly degraded "generation"
    lines = ["", "## Condition adherence: correct vs shuffled condition", "",
             f"First {n_adh} clips of A. Each A_i with light noise (std 10) plays the generated video; its condition is re-extracted and compared "
             "with the condition of A_i (correct) or of A_(i-1) (shuffled). " + hed_note, "",
             "| condition | measure | correct | shuffled | correct better |", "|---|---|---:|---:|:---:|"]
    for kind in kinds:
        ex = get_extractor(kind)
        good = [adherence(kind, ex, g, A[i]) for i, g in enumerate(generated)]
        bad = [adherence(kind, ex, g, A[perm[i]]) for i, g in enumerate(generated)]
        name = adherence_name(kind)
        lower = kind == "depth"
        gm, bm = float(np.nanmean(good)), float(np.nanmean(bad))
        ok = gm < bm if lower else gm > bm
        if not ok:
            failures.append(f"adherence/{kind}")
        lines.append(f"| {kind} | {name} ({'↓' if lower else '↑'}) | {gm:.3f} | {bm:.3f} | {'✓' if ok else '✗'} |")
    return lines, failures


def _extractors(clips_a, seg):
    """Stage 4b: each toy extractor against the renderer's exact annotations."""
    from ..conditions import exact_structured, get_extractor
    from ..metrics.condition import depth_error, edge_f1, miou, pose_pck
    from ..toyworld.roster import CLASSES

    lines = ["", "## Extractors vs the renderer's exact annotations (set A, clean clips)", "",
             "| condition | measure | value |", "|---|---|---:|"]
    canny = get_extractor("canny")
    lines.append(f"| canny vs exact region edges | edge F1 (1 px) | "
                 f"{np.mean([edge_f1(canny.analyse(c.video), c.edges) for c in clips_a]):.3f} |")
    dep, pose = get_extractor("depth"), get_extractor("pose")
    lines.append(f"| toy depth | mean abs error (aligned, [0,1]) | "
                 f"{np.mean([depth_error(dep.analyse(c.video), exact_structured(vars(c), 'depth')) for c in clips_a]):.4f} |")
    lines.append(f"| toy segmentation | mIoU ({len(CLASSES)} classes) | "
                 f"{np.mean([miou(seg.analyse(c.video), c.classes, len(CLASSES)) for c in clips_a]):.3f} |")
    actors = [c for c in clips_a if c.keypoints.shape[1]]
    if actors:
        thr = 0.05 * 64
        lines.append(f"| toy pose ({len(actors)} clips with actors) | PCK@{thr:.1f}px | "
                     f"{np.nanmean([pose_pck(list(pose.analyse(c.video)), list(c.keypoints), thr) for c in actors]):.3f} |")
    return lines, []


def _identity(clips_a):
    """Stage 5: identity similarity against the clip's own identities vs other roster identities."""
    from ..metrics.identity import ToyFaces, identity_similarity
    from ..toyworld.roster import IDENTITIES

    failures, lines = [], []
    faces = ToyFaces()
    right, wrong = [], []
    for c in clips_a:
        if not c.identities:
            continue
        emb = faces.video_embeddings(c.video)
        right.append(identity_similarity(emb, faces.reference_embeddings(c.identities))["face_sim_min"])
        others = [(i + 7) % len(IDENTITIES) for i in c.identities]
        wrong.append(identity_similarity(emb, faces.reference_embeddings(others))["face_sim_min"])
    if right:
        ok = np.mean(right) > np.mean(wrong)
        if not ok:
            failures.append("identity")
        lines = ["", "## Identity similarity (Ingredients' min over greedy matches)", "",
                 "| references | face_sim_min |", "|---|---:|",
                 f"| the clip's own identities ({len(right)} clips) | {np.mean(right):.3f} |",
                 f"| other roster identities | {np.mean(wrong):.3f} |"]
    return lines, failures


def _plot(table: dict, path: Path) -> None:
    metrics = [m for m in EXPECT if any(m in cols for cols in table.values())]
    cols_n = (len(metrics) + 1) // 2
    with figure(path, 2, cols_n, figsize=(3.2 * cols_n, 6)) as (fig, axes):
        for ax, m in zip(axes.ravel(), metrics):
            for name, cols in table.items():
                if m in cols:
                    ax.plot(LEVELS, cols[m], marker="o", label=name)
            ax.set_title(m, fontsize=9)
            ax.set_xlabel("corruption level", fontsize=8)
        axes.ravel()[0].legend(fontsize=7)
