"""Adaptive video distillation's losses: the DMD2 distribution-matching gradient (paper Eq. 4), the adaptive
regression loss with its per-step running mean (Eq. 5-7) and the temporal regularisation with truncation (Eq. 8)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

DIMS = (1, 2, 3, 4)  # every axis of (B, C, F, H, W) but the batch


def dmd_loss(x: torch.Tensor, real_x0: torch.Tensor, fake_x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The DMD gradient as a loss on the student's sample x (B,C,F,H,W) (with grad): real_x0 / fake_x0 are the
    teacher's (guided) and the critic's clean predictions at one noised copy of x (no grad).

    grad = (fake_x0 - real_x0) / mean|x - real_x0| per sample (DMD's normalisation, so the step does not depend on
    how far the sample is), non-finite entries zeroed; loss = 0.5 * mean((x - sg(x - grad))^2), whose gradient with
    respect to x is grad / x.numel(). Returns (loss, grad)."""
    with torch.no_grad():
        norm = (x.float() - real_x0.float()).abs().mean(dim=DIMS, keepdim=True).clamp_min(1e-6)
        grad = torch.nan_to_num((fake_x0.float() - real_x0.float()) / norm, nan=0.0, posinf=0.0, neginf=0.0)
    return 0.5 * F.mse_loss(x.float(), (x.float() - grad).detach()), grad


def regression_error(pred: torch.Tensor, xt: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor,
                     sigma: torch.Tensor, target: str) -> torch.Tensor:
    """Per-sample regression loss (B,) of the student's velocity prediction `pred` at xt = (1-s) x0 + s noise.

    "epsilon" (paper Eq. 5): the noise the prediction implies, eps_hat = xt + (1 - s) pred, against the noise;
    "flow" (public code): the velocity against noise - x0. eps_hat - eps = (1 - s)(pred - v), so the two differ by
    the factor (1 - s)^2 per sample: the epsilon loss weighs the high-noise steps far less."""
    if target == "epsilon":
        s = sigma.view(-1, *([1] * (xt.ndim - 1)))
        err = xt.float() + (1 - s) * pred.float() - noise.float()
    else:
        err = pred.float() - (noise.float() - x0.float())
    return err.square().mean(dim=DIMS)


class AdaptiveRegression:
    """The adaptive weight of Eq. 6-7 with one running mean of the regression loss per student step.

    w = 1 - sigmoid(k (L - ema_t)): a sample whose loss is far above its step's running mean (a real clip far from
    what the student makes) is weighed down instead of pulling the student to a blend of both. ema_order "previous"
    uses the mean before this step's update (Eq. 7, L-bar at s-1), "current" after it (public code). The means start
    at 0 (Algorithm 1). mode "plain" is the unweighted ablation ("+RegLoss"), w = 0.5, the adaptive weight at the
    mean, so both are on one scale; the loss is weight * mean(w * L)."""

    def __init__(self, num_steps: int, ema: float = 0.95, k: float = 3.0, weight: float = 2.0,
                 order: str = "previous", mode: str = "adaptive"):
        self.ema, self.k, self.weight, self.order, self.mode = ema, k, weight, order, mode
        self.mean = torch.zeros(num_steps)

    def update(self, losses: torch.Tensor, steps: torch.Tensor) -> None:
        """mean_t <- ema * mean_t + (1 - ema) * (this batch's mean loss at step t), for every step in the batch; with
        several processes the batch is the global one (the means stay identical on every process)."""
        sums = torch.zeros_like(self.mean).index_add_(0, steps.cpu(), losses.detach().float().cpu())
        counts = torch.zeros_like(self.mean).index_add_(0, steps.cpu(), torch.ones(len(steps)))
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            both = torch.stack([sums, counts]).to(losses.device)
            torch.distributed.all_reduce(both)
            sums, counts = both.cpu()
        seen = counts > 0
        self.mean[seen] = self.ema * self.mean[seen] + (1 - self.ema) * sums[seen] / counts[seen]

    def weights(self, losses: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        if self.mode == "plain":
            return torch.full_like(losses, 0.5)
        ref = self.mean.to(losses.device)[steps]
        return 1 - torch.sigmoid(self.k * (losses.detach() - ref))

    def __call__(self, losses: torch.Tensor, steps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(weighted loss, weights (B,)) for per-sample losses (B,) at student steps (B,), updating the means."""
        if self.order == "current":
            self.update(losses, steps)
        w = self.weights(losses, steps)
        if self.order == "previous":
            self.update(losses, steps)
        return self.weight * (w.detach() * losses).mean(), w


def temporal_loss(x: torch.Tensor, threshold: float, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 8 on generated latents x (B,C,F,H,W): value = -log(mean over samples, channels and positions of the
    variance over frames + eps), population variance. Truncated: the term is dropped (returned as 0) once the value
    is below `threshold`, so it stops pushing frames apart after the collapse is escaped (without it, frame jumps).
    A single frame has no temporal variance: the term is 0. Returns (loss, value)."""
    if x.shape[2] < 2:
        zero = x.sum() * 0
        return zero, zero.detach()
    value = -torch.log(x.float().var(dim=2, correction=0).mean() + eps)
    return value * (value.detach() >= threshold).float(), value.detach()
