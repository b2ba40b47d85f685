"""Batched evaluation of a generated set against a reference set: every metric of this package, one report."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..errors import CinetuneError
from .colour import oversaturation, saturation_stats
from .condition import depth_error, edge_f1, miou, normal_error, pose_pck
from .fidelity import psnr, ssim
from .frechet import frechet_distance
from .identity import identity_similarity
from .instances import instance_preservation, toy_object_groups
from .temporal import chunk_flicker, dynamic_degree, first_frame_jump, temporal_consistency

PAIRED = ("psnr", "ssim", "perceptual", "adherence")
METRICS = ("psnr", "ssim", "perceptual", "fvd", "alignment", "temporal", "dynamic", "first-frame", "chunk-flicker",
           "instances", "saturation", "adherence", "identity")
# Which direction is better, for reports.
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "perceptual": False, "fvd": False, "alignment": True,
                    "temporal_consistency": True, "dynamic_degree": None, "first_frame_jump": False, "chunk_flicker": False,
                    "instance_preservation": True, "oversaturation": False, "face_sim_min": True}
EDGE_KINDS = ("canny", "hed", "scribble", "lineart", "mlsd")


@dataclass
class EvalConfig:
    metrics: tuple[str, ...] = METRICS
    conditions: tuple[str, ...] = ("canny", "depth", "pose", "segmentation")  # adherence kinds
    features: str = "toy"  # metrics.features.load_features spec
    backend: str = "auto"  # condition extractors' backend for depth / normal / segmentation / pose
    pck_threshold: float = 0.05  # PCK radius as a fraction of max(H, W)
    faces: str = "toy"  # identity: "toy" (annotator + toy identity encoder) or "dlib" (real faces, optional extra)
    progress: bool = True
    strict: bool = False  # the metrics were asked for by name: one the inputs cannot give is an error, not skipped
    extra: dict = field(default_factory=dict)

    def validate(self) -> "EvalConfig":
        bad = [m for m in self.metrics if m not in METRICS]
        if bad:
            raise CinetuneError(f"unknown metric(s) {', '.join(bad)}; known: {', '.join(METRICS)}")
        from ..conditions import KINDS

        bad = [c for c in self.conditions if c not in KINDS]
        if bad:
            raise CinetuneError(f"unknown condition(s) {', '.join(bad)}; known: {', '.join(KINDS)}")
        return self


def adherence(kind: str, extractor, generated: np.ndarray, reference: np.ndarray, pck_threshold: float = 0.05) -> float:
    """Condition adherence of one generated video: its re-extracted condition vs the reference video's.
    Edge kinds: F1 (higher better); depth: aligned mean absolute error (lower better); normal: mean angle in
    degrees (lower better); segmentation: mIoU; pose: PCK."""
    g, r = extractor.analyse(generated), extractor.analyse(reference)
    if kind in EDGE_KINDS:
        return edge_f1(g > 127, r > 127)
    if kind == "depth":
        return depth_error(g, r)
    if kind == "normal":
        return normal_error(g, r)
    if kind == "segmentation":
        return miou(g, r, int(max(g.max(), r.max())) + 1)
    if kind == "pose":
        thr = pck_threshold * max(generated.shape[1:3])
        return pose_pck(list(g), list(r), thr)
    raise CinetuneError(f"no adherence measure for {kind!r}")


ADHERENCE_NAME = {"depth": "depth_error", "normal": "normal_error_deg", "segmentation": "seg_miou", "pose": "pose_pck"}


def adherence_name(kind: str) -> str:
    return ADHERENCE_NAME.get(kind, f"{kind}_f1")


def _check_pairs(generated, reference, names):
    if len(generated) != len(reference):
        raise CinetuneError(f"paired metrics need as many generated as reference videos: {len(generated)} vs "
                            f"{len(reference)}")
    for i, (g, r) in enumerate(zip(generated, reference)):
        if g.shape != r.shape:
            raise CinetuneError(f"{names[i] if names else i}: generated {g.shape} and reference {r.shape} differ in "
                                "shape")


def evaluate(generated: list[np.ndarray], reference: list[np.ndarray] | None = None, prompts: list[str] | None = None,
             identities: list[list[int]] | None = None, cfg: EvalConfig | None = None,
             names: list[str] | None = None, face_images: list[np.ndarray] | None = None) -> dict:
    """Evaluate videos (each (F,H,W,3) uint8). reference: the reference set (paired metrics need equal counts and
    shapes); prompts: one per generated video (alignment); identities: toy roster indices expected in each video
    (toy faces); face_images: reference photos (H,W,3) uint8 shared by every video (dlib faces).
    Returns {"summary": {metric: value}, "per_video": [{...}], "config": {...}}."""
    cfg = (cfg or EvalConfig()).validate()
    want = _wanted(cfg, generated, reference, prompts, identities, face_images, names)
    tools = _tools(want, cfg, face_images)
    per = [{"name": names[i] if names else str(i)} for i in range(len(generated))]
    for i, g in enumerate(tqdm(generated, desc="evaluate", disable=not cfg.progress, leave=False)):
        r = reference[i] if reference is not None and i < len(reference) else None
        per[i].update(_video_metrics(g, r, prompts[i] if prompts else None, identities[i] if identities else None,
                                     want, tools, cfg))
    summary = _summary(per, want, tools, generated, reference)
    return {"summary": summary, "per_video": per,
            "config": {"metrics": sorted(want), "conditions": list(cfg.conditions), "features": cfg.features,
                       "backend": cfg.backend, "n_generated": len(generated),
                       "n_reference": len(reference) if reference is not None else 0}}


def _wanted(cfg: EvalConfig, generated, reference, prompts, identities, face_images, names) -> set[str]:
    """The requested metrics that the inputs allow; inconsistent inputs are a CinetuneError."""
    want = set(cfg.metrics)
    if not generated:
        raise CinetuneError("no generated videos to evaluate")
    missing: dict[str, str] = {}
    if reference is None:
        missing.update({m: "--reference" for m in want & (set(PAIRED) | {"fvd"})})
    elif want & set(PAIRED):
        _check_pairs(generated, reference, names)
    if prompts is None:
        missing.update({m: "prompts (--prompts, or a render-toy --reference)" for m in want & {"alignment"}})
    elif len(prompts) != len(generated):
        raise CinetuneError(f"{len(prompts)} prompts for {len(generated)} videos")
    if (identities is None and cfg.faces == "toy") or (face_images is None and cfg.faces == "dlib"):
        missing.update({m: "identities (a render-toy --reference or --face-references)" for m in want & {"identity"}})
    if cfg.faces not in ("toy", "dlib"):
        raise CinetuneError(f"faces must be toy or dlib, got {cfg.faces!r}")
    if cfg.strict and missing:
        raise CinetuneError("; ".join(f"metric {m} needs {need}" for m, need in sorted(missing.items())))
    want -= set(missing)
    return want


def _tools(want: set[str], cfg: EvalConfig, face_images) -> dict:
    """The feature networks, extractors and face models the wanted metrics need, each loaded once."""
    from ..conditions import get_extractor

    tools: dict = {}
    if want & {"perceptual", "fvd", "alignment", "temporal"}:
        from .features import load_features

        tools["feats"] = load_features(cfg.features)
    if "adherence" in want:
        tools["extractors"] = {k: get_extractor(k, backend=cfg.backend) for k in cfg.conditions}
    if "identity" in want:
        if cfg.faces == "dlib":
            from .identity import DlibFaces

            faces = tools["faces"] = DlibFaces()
            tools["face_refs"], tools["sim_fn"] = faces.reference_embeddings_from_images(face_images), \
                faces.similarity_matrix
        else:
            from .identity import ToyFaces

            tools["faces"] = ToyFaces()
    if "instances" in want:
        tools["seg"] = get_extractor("segmentation", backend=cfg.backend)
    return tools


def _video_metrics(g: np.ndarray, r: np.ndarray | None, prompt: str | None, ids: list[int] | None, want: set[str],
                   tools: dict, cfg: EvalConfig) -> dict:
    """One generated video's per-video metrics (r: its reference; prompt and ids: its caption and toy identities)."""
    row, feats = {}, tools.get("feats")
    if "psnr" in want:
        row["psnr"] = psnr(g, r)
    if "ssim" in want:
        row["ssim"] = ssim(g, r)
    if "perceptual" in want:
        row["perceptual"] = feats.perceptual(g, r)
    if "alignment" in want:
        row["alignment"] = feats.alignment(g, prompt)
    if "temporal" in want:
        row["temporal_consistency"] = temporal_consistency(feats.frame_embeddings(g))
    if "dynamic" in want:
        moving, score = dynamic_degree(g)
        row["dynamic_degree"], row["flow_score"] = float(moving), score
    # Too-short videos get NaN (left out of the mean) rather than an error.
    if "first-frame" in want:
        row["first_frame_jump"] = first_frame_jump(g) if len(g) >= 3 else np.nan
    if "chunk-flicker" in want:
        row["chunk_flicker"] = chunk_flicker(g) if len(g) > 5 else np.nan
    if "instances" in want:
        lab = tools["seg"].analyse(g)
        toy = cfg.backend in ("auto", "toy")
        row["instance_preservation"] = instance_preservation(toy_object_groups(lab) if toy else lab)
    if "adherence" in want:
        for k, ex in tools["extractors"].items():
            row[adherence_name(k)] = adherence(k, ex, g, r, cfg.pck_threshold)
    if "identity" in want:
        faces, refs = tools["faces"], tools.get("face_refs")
        if refs is None and ids:
            refs = faces.reference_embeddings(ids)
        if refs is not None:
            row.update(identity_similarity(faces.video_embeddings(g), refs, tools.get("sim_fn")))
    return row


def _summary(per: list[dict], want: set[str], tools: dict, generated, reference) -> dict[str, float]:
    """Means of the per-video metrics (NaNs left out) plus the set-level ones (FVD, saturation)."""
    summary: dict[str, float] = {}
    for k in [k for k in per[0] if k != "name"]:
        vals = np.array([row.get(k, np.nan) for row in per], np.float64)
        if np.isfinite(vals).any():
            summary[k] = float(np.nanmean(vals))
    if "fvd" in want:
        feats = tools["feats"]
        summary["fvd"] = frechet_distance(feats.video_features(generated), feats.video_features(reference))
    if "saturation" in want:
        summary.update(saturation_stats(generated))
        if reference is not None:
            summary["oversaturation"] = oversaturation(generated, reference)
    return summary


def markdown_table(report: dict) -> str:
    """The report's summary as a markdown table (arrows give the better direction)."""
    lines = ["| metric | value | better |", "|---|---:|:---:|"]
    for k, v in report["summary"].items():
        better = HIGHER_IS_BETTER.get(k)
        if k.endswith("_f1") or k in ("seg_miou", "pose_pck", "face_sim_mean", "face_found"):
            better = True
        if k in ("depth_error", "normal_error_deg"):
            better = False
        arrow = "" if better is None else ("↑" if better else "↓")
        lines.append(f"| {k} | {v:.4g} | {arrow} |")
    return "\n".join(lines) + "\n"


VIDEO_SUFFIXES = (".mp4", ".gif", ".webm", ".mkv", ".mov", ".avi")


def list_videos(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise CinetuneError(f"not a directory: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not files:
        raise CinetuneError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) in {folder}")
    return files


def folder_metadata(folder: str | Path) -> dict[str, dict]:
    """render-toy's metadata.jsonl next to (or above) a folder of clips, keyed by clip name; {} if absent."""
    folder = Path(folder)
    for cand in (folder / "metadata.jsonl", folder.parent / "metadata.jsonl"):
        if cand.is_file():
            try:
                rows = [json.loads(line) for line in cand.read_text().splitlines() if line.strip()]
            except json.JSONDecodeError as e:
                raise CinetuneError(f"{cand}: not valid JSON lines ({e})") from None
            return {r["name"]: r for r in rows if "name" in r}
    return {}
