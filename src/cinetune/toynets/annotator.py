"""Toy annotator: per-frame depth, class segmentation and pose heatmaps predicted from pixels.

The toy renderer gives exact annotations for clips it rendered; a *generated* clip has none, so condition adherence
(re-extract the condition from the generated video) needs an estimator that reads pixels, as MiDaS / OpenPose /
a segmenter do at real scale. This small U-Net is that estimator for the toy world."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1), nn.GroupNorm(8, cout), nn.SiLU(),
                         nn.Conv2d(cout, cout, 3, 1, 1), nn.GroupNorm(8, cout), nn.SiLU())


class ToyAnnotator(ModelMixin, ConfigMixin):
    """frames (N,3,H,W) in [-1,1], H and W multiples of 8 -> dict of depth (N,H,W) in [0,1] (0 = near, the
    renderer's convention), class logits (N,num_classes,H,W), keypoint heatmaps (N,num_keypoints,H,W) in [0,1]."""

    @register_to_config
    def __init__(self, widths: tuple[int, ...] = (32, 64, 96, 128), num_classes: int = 10, num_keypoints: int = 18):
        super().__init__()
        self.down = nn.ModuleList()
        cin = 3
        for w in widths:
            self.down.append(_block(cin, w))
            cin = w
        self.up = nn.ModuleList(_block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(len(widths) - 1)))
        self.head = nn.Conv2d(widths[0], 1 + num_classes + num_keypoints, 1)

    def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        skips, x = [], frames
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.avg_pool2d(x, 2))
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = block(torch.cat([F.interpolate(x, size=skip.shape[-2:], mode="nearest"), skip], 1))
        out = self.head(x)
        c = self.config.num_classes
        return {"depth": out[:, 0].sigmoid(), "classes": out[:, 1:1 + c], "heatmaps": out[:, 1 + c:].sigmoid()}


def keypoint_heatmaps(keypoints: torch.Tensor, height: int, width: int, sigma: float = 1.2) -> torch.Tensor:
    """Training targets: keypoints (N,A,18,3) (x, y, visible) in pixels -> (N,18,H,W), max over actors of Gaussians."""
    ys = torch.arange(height, dtype=torch.float32) + 0.5
    xs = torch.arange(width, dtype=torch.float32) + 0.5
    x, y, v = keypoints[..., 0, None, None], keypoints[..., 1, None, None], keypoints[..., 2, None, None]
    g = torch.exp(-((xs - x) ** 2 + (ys[:, None] - y) ** 2) / (2 * sigma ** 2)) * v  # (N,A,18,H,W)
    return g.amax(1) if g.shape[1] else torch.zeros(keypoints.shape[0], keypoints.shape[2], height, width)


def heatmap_peaks(heatmaps: torch.Tensor, threshold: float = 0.3, max_peaks: int = 4) -> torch.Tensor:
    """Keypoint detections from heatmaps (K,H,W) -> (K,max_peaks,3) of (x, y, score) in pixels, score 0 = none.

    Local maxima above `threshold` (3x3 non-maximum suppression), refined to sub-pixel by a log-parabola fit."""
    K, H, W = heatmaps.shape
    h = heatmaps.float()[None]
    is_peak = (h == F.max_pool2d(h, 3, 1, 1)) & (h > threshold)
    # a keypoint between pixel centres makes a plateau of equal maxima: keep one of adjacent plateau pixels
    index = torch.where(is_peak, torch.arange(H * W, dtype=torch.float32).view(1, 1, H, W), torch.tensor(-1.0))
    is_peak &= index == F.max_pool2d(index, 3, 1, 1)
    scores = torch.where(is_peak, h, torch.zeros_like(h))[0].flatten(1)  # (K,H*W)
    top, idx = scores.topk(min(max_peaks, H * W), dim=1)
    ys, xs = idx // W, idx % W
    # sub-pixel: a parabola through the log values of each peak and its two neighbours per axis (exact for Gaussians)
    logh = h[0].clamp_min(1e-6).log()
    k = torch.arange(K)[:, None].expand_as(idx)

    def offset(lo, mid, hi):
        den = lo - 2 * mid + hi
        return torch.where(den < -1e-9, 0.5 * (lo - hi) / den.clamp(max=-1e-9), torch.zeros_like(den)).clamp(-0.5, 0.5)

    c = logh[k, ys, xs]
    dx = offset(logh[k, ys, (xs - 1).clamp(min=0)], c, logh[k, ys, (xs + 1).clamp(max=W - 1)])
    dy = offset(logh[k, (ys - 1).clamp(min=0), xs], c, logh[k, (ys + 1).clamp(max=H - 1), xs])
    xs, ys = xs.float() + dx + 0.5, ys.float() + dy + 0.5
    out = torch.stack([xs, ys, top], -1)
    out[top <= 0] = 0.0
    return out


def pck(pred: torch.Tensor, target: torch.Tensor, threshold: float) -> tuple[int, int]:
    """Percentage of Correct Keypoints, as counts: pred (P,K,3) and target (A,K,3) keypoints (x, y, confidence or
    visibility > 0 when present). A target keypoint is correct when a predicted keypoint of the same type (from any
    person: grouping is not judged) lies within `threshold` pixels. Returns (correct, visible) so callers can pool
    over frames."""
    vis = target[..., 2] > 0  # (A,K)
    if not vis.any():
        return 0, 0
    if not pred.shape[0]:
        return 0, int(vis.sum())
    d = torch.cdist(target[..., :2].transpose(0, 1).float(), pred[..., :2].transpose(0, 1).float())  # (K,A,P)
    d = torch.where((pred[..., 2] > 0).T[:, None, :], d, torch.full_like(d, float("inf")))
    ok = (d.min(-1).values <= threshold).T & vis  # (A,K)
    return int(ok.sum()), int(vis.sum())
