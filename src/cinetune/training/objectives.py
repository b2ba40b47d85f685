"""Wan's rectified-flow objective (Wan 2.1 report, flow matching): x_t = (1-s) x0 + s eps, target eps - x0."""

from __future__ import annotations

import torch

from ..errors import CinetuneError


def shift_sigmas(u: torch.Tensor, shift: float) -> torch.Tensor:
    """Timestep shift used by Wan / SD3 schedulers: more weight on high noise for larger token counts."""
    return shift * u / (1 + (shift - 1) * u)


SAMPLINGS = ("uniform", "logit-normal")


def sample_sigmas(batch: int, shift: float, generator: torch.Generator, sampling: str = "uniform",
                  logit_mean: float = 0.0, logit_std: float = 1.0) -> torch.Tensor:
    """(batch,) noise levels in (0, 1), shifted by `shift`. uniform: u ~ U(0, 1); logit-normal (SD3): u =
    sigmoid(N(logit_mean, logit_std)), which puts more of the training on the middle noise levels, where the caption
    decides what the picture shows (at high noise the layout is not yet known; at low noise x_t already shows it)."""
    if sampling == "logit-normal":
        u = torch.sigmoid(logit_mean + logit_std * torch.randn(batch, generator=generator))
    else:
        u = torch.rand(batch, generator=generator)
    return shift_sigmas(u, shift)


def flow_matching_inputs(x0: torch.Tensor, sigmas: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                                                                 torch.Tensor]:
    """-> (noisy latents, timesteps in [0, 1000], velocity target)."""
    s = sigmas.view(-1, *([1] * (x0.ndim - 1)))
    return (1 - s) * x0 + s * noise, sigmas * 1000.0, noise - x0


def is_flow_scheduler(scheduler) -> bool:
    """Flow matching (Wan: FlowMatchEuler, or UniPC with flow sigmas) vs a DDPM-family schedule (CogVideoX's DDIM and
    DPM schedulers: v-prediction over alphas_cumprod)."""
    cfg = scheduler.config
    return type(scheduler).__name__ == "FlowMatchEulerDiscreteScheduler" or \
        getattr(cfg, "prediction_type", None) == "flow_prediction" or bool(getattr(cfg, "use_flow_sigmas", False))


PREDICTIONS = ("v_prediction", "epsilon", "sample")


def diffusion_inputs(x0: torch.Tensor, timesteps: torch.Tensor, noise: torch.Tensor, alphas_cumprod: torch.Tensor,
                     prediction: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A DDPM-family objective (CogVideoX trains with v-prediction): -> (x_t = sqrt(a) x0 + sqrt(1-a) noise, the
    integer timesteps as floats, the target the scheduler's prediction_type names: v = sqrt(a) noise - sqrt(1-a) x0,
    the noise, or x0), a = alphas_cumprod[t]."""
    if prediction not in PREDICTIONS:
        raise CinetuneError(f"prediction_type {prediction!r} is not trained here (one of {', '.join(PREDICTIONS)})")
    a = alphas_cumprod.to(x0.device, torch.float32)[timesteps.long()].view(-1, *([1] * (x0.ndim - 1)))
    xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
    target = {"v_prediction": a.sqrt() * noise - (1 - a).sqrt() * x0, "epsilon": noise, "sample": x0}[prediction]
    return xt, timesteps.float(), target


def foreground_map(instance: torch.Tensor, temporal: int = 4, spatial: int = 4) -> torch.Tensor:
    """Instance masks (B,F,H,W) (0 = background) -> (B,T',H',W') in [0,1] on the latent grid of Wan's causal VAE:
    latent frame 0 covers frame 0, latent frame j >= 1 frames temporal*(j-1)+1 .. temporal*j. A cell's value is the
    fraction of its pixels that are foreground in any of its frames, then spread one cell (3x3 max) so object borders,
    where shapes differ, count in full."""
    fg = (instance > 0).float()
    B, F, H, W = fg.shape
    first, rest = fg[:, :1], fg[:, 1:].reshape(B, (F - 1) // temporal, temporal, H, W).amax(2)
    cells = torch.nn.functional.avg_pool2d(torch.cat([first, rest], 1), spatial)
    return torch.nn.functional.max_pool2d(cells, 3, stride=1, padding=1)


def weighted_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean squared error; with `weight` (B,T',H',W') broadcast over channels, normalised by the mean weight so the
    loss keeps the unweighted scale."""
    return _weighted_mean((pred.float() - target.float()) ** 2, weight)


def _weighted_mean(err: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean of err (B,C,T,H,W) under weight (B,T,H,W) broadcast over channels, normalised by the weights' sum."""
    if weight is None:
        return err.mean()
    w = weight[:, None].to(err.dtype).expand_as(err)
    return (w * err).sum() / w.sum()


def motion_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean squared error of the differences between consecutive latent frames of (pred - target), (B,C,T',H',W').
    Any positive-definite quadratic loss has the same minimiser (the conditional mean), so adding this term changes
    only where a limited model spends its capacity: on what moves. `weight` (B,T',H',W') is averaged over each
    frame pair and normalised as in weighted_mse."""
    pair = None if weight is None else 0.5 * (weight[:, 1:] + weight[:, :-1])
    return _weighted_mean(torch.diff(pred.float() - target.float(), dim=2) ** 2, pair)
