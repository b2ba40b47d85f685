"""Condition adherence: re-extract the condition from a generated video and compare it with the requested one
(ControlNet++-style evaluation): edge F1, depth error, pose PCK, segmentation mIoU."""

from __future__ import annotations

import cv2
import numpy as np


def edge_f1(pred: np.ndarray, target: np.ndarray, tolerance: int = 1) -> float:
    """F1 of binary edge maps (F,H,W) (nonzero = edge), matching within `tolerance` pixels (BSDS-style slack).

    precision: predicted edge pixels within tolerance of a target edge; recall: the converse. 1.0 when both are
    empty."""
    p, t = np.asarray(pred) > 0, np.asarray(target) > 0
    if not p.any() and not t.any():
        return 1.0
    k = np.ones((2 * tolerance + 1, 2 * tolerance + 1), np.uint8)
    near_t = np.stack([cv2.dilate(f.astype(np.uint8), k) for f in t]) > 0
    near_p = np.stack([cv2.dilate(f.astype(np.uint8), k) for f in p]) > 0
    precision = (p & near_t).sum() / max(p.sum(), 1)
    recall = (t & near_p).sum() / max(t.sum(), 1)
    return float(2 * precision * recall / max(precision + recall, 1e-12))


def depth_error(pred: np.ndarray, target: np.ndarray, align: bool = True) -> float:
    """Mean absolute depth error of (F,H,W) maps in [0,1] (uint8 maps are scaled by 1/255).

    align: fit a per-frame scale and shift of pred to target by least squares first, as relative (MiDaS-style)
    depth estimators are only defined up to those."""
    p = np.asarray(pred, np.float64)
    t = np.asarray(target, np.float64)
    if np.asarray(pred).dtype == np.uint8:
        p = p / 255.0
    if np.asarray(target).dtype == np.uint8:
        t = t / 255.0
    if align:
        P, T = p.reshape(len(p), -1), t.reshape(len(t), -1)
        pm, tm = P.mean(1, keepdims=True), T.mean(1, keepdims=True)
        var = ((P - pm) ** 2).sum(1, keepdims=True)
        scale = np.where(var > 1e-12, ((P - pm) * (T - tm)).sum(1, keepdims=True) / np.maximum(var, 1e-12), 0.0)
        p = (scale * (P - pm) + tm).reshape(p.shape)
    return float(np.abs(p - t).mean())


def miou(pred: np.ndarray, target: np.ndarray, num_classes: int) -> float:
    """Mean intersection-over-union of integer label maps, over the classes present in either map."""
    p, t = np.asarray(pred).ravel().astype(np.int64), np.asarray(target).ravel().astype(np.int64)
    conf = np.bincount(t * num_classes + p, minlength=num_classes ** 2).reshape(num_classes, num_classes)
    inter = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - inter
    present = union > 0
    return float((inter[present] / union[present]).mean()) if present.any() else 1.0


def normal_error(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean angle in degrees between unit normal maps pred and target (..., 3) (lower is better)."""
    return float(np.degrees(np.arccos(np.clip((pred * target).sum(-1), -1, 1))).mean())


def pose_pck(pred: list[np.ndarray], target: list[np.ndarray], threshold: float) -> float:
    """PCK over frames: pred[f] (P,K,3) and target[f] (A,K,3) keypoints (x, y, confidence/visibility > 0).
    nan when no target keypoint is visible."""
    import torch

    from ..toynets.annotator import pck

    hit = tot = 0
    for p, t in zip(pred, target):
        h, n = pck(torch.as_tensor(p), torch.as_tensor(t), threshold)
        hit, tot = hit + h, tot + n
    return hit / tot if tot else float("nan")
