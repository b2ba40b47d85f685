"""Ingredients' routing loss (paper Eq. 5) and the identity labels it is trained against: per token, which identity's
face it covers (-1: none, ignored), from face masks or boxes down-sampled to the DiT's token grid."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def routing_loss(logits: dict[int, torch.Tensor], labels: torch.Tensor, kind: str = "ce") -> torch.Tensor:
    """Mean over injected blocks of the per-token loss of the router logits (B, N, K) against labels (B, N) (-1 =
    background, left out). ce: cross-entropy (the paper); mse: squared error of the softmax against the one-hot
    label (the paper's ablation). No face token in the batch: 0 (with a graph, so backward still runs)."""
    terms = []
    for lg in logits.values():
        lg = lg.masked_fill(~torch.isfinite(lg), -1e4)  # absent identity slots (-inf) take no probability
        on = labels >= 0
        if not on.any():
            terms.append(lg.sum() * 0.0)
        elif kind == "mse":
            target = F.one_hot(labels[on], lg.shape[-1]).to(lg.dtype)
            terms.append(F.mse_loss(lg[on].softmax(-1), target))
        else:
            terms.append(F.cross_entropy(lg.flatten(0, 1).float(), labels.flatten(), ignore_index=-1))
    return torch.stack(terms).mean()


def token_labels(masks: torch.Tensor, temporal: int, spatial: int, patch: tuple[int, int, int]) -> torch.Tensor:
    """Identity masks (B, F, H, W) long (k = identity k's face, -1 = none) -> token labels (B, N), N = F'' H'' W''
    in the DiT's row-major token order. The causal VAE's latent frame 0 covers frame 0 and latent frame j >= 1
    frames temporal*(j-1)+1..temporal*j; a token takes the identity covering most of its pixels, -1 when faces
    cover less than half of them (the paper down-samples the mask the same way, trilinearly)."""
    B, Fr, H, W = masks.shape
    K = int(masks.max().clamp(min=0)) + 1
    hot = F.one_hot(masks.clamp(min=-1) + 1, K + 1).permute(0, 4, 1, 2, 3).float()  # (B, K+1, F, H, W), 0 = none
    first, rest = hot[:, :, :1], hot[:, :, 1:]
    if rest.shape[2]:
        rest = rest.reshape(B, K + 1, (Fr - 1) // temporal, temporal, H, W).mean(3)
    lat = torch.cat([first, rest], 2)  # (B, K+1, F', H, W)
    pt, ph, pw = patch
    cells = F.avg_pool3d(lat, (pt, spatial * ph, spatial * pw))  # (B, K+1, F'', H'', W'')
    share, idx = cells.max(1)
    labels = idx - 1
    labels[(idx == 0) | (share < 0.5)] = -1
    return labels.flatten(1)


def box_masks(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Face boxes (B, F, K, 4) x0, y0, x1, y1 in pixels (negative = hidden) -> identity masks (B, F, H, W): the boxes
    filled (the paper's box-supervision ablation; a later identity wins where boxes overlap)."""
    B, Fr, K, _ = boxes.shape
    ys = torch.arange(height, dtype=boxes.dtype).view(1, 1, 1, height, 1)
    xs = torch.arange(width, dtype=boxes.dtype).view(1, 1, 1, 1, width)
    b = boxes[..., None, None]
    inside = (xs >= b[:, :, :, 0]) & (xs < b[:, :, :, 2]) & (ys >= b[:, :, :, 1]) & (ys < b[:, :, :, 3]) & \
        (b[:, :, :, 2] > 0)
    out = torch.full((B, Fr, height, width), -1, dtype=torch.long)
    for k in range(K):
        out[inside[:, :, k]] = k
    return out
