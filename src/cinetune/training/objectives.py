"""Wan's rectified-flow objective (Wan 2.1 report, flow matching): x_t = (1-s) x0 + s eps, target eps - x0."""

from __future__ import annotations

import torch


def shift_sigmas(u: torch.Tensor, shift: float) -> torch.Tensor:
    """Timestep shift used by Wan / SD3 schedulers: more weight on high noise for larger token counts."""
    return shift * u / (1 + (shift - 1) * u)


def sample_sigmas(batch: int, shift: float, generator: torch.Generator) -> torch.Tensor:
    return shift_sigmas(torch.rand(batch, generator=generator), shift)


def flow_matching_inputs(x0: torch.Tensor, sigmas: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                                                                 torch.Tensor]:
    """-> (noisy latents, timesteps in [0, 1000], velocity target)."""
    s = sigmas.view(-1, *([1] * (x0.ndim - 1)))
    return (1 - s) * x0 + s * noise, sigmas * 1000.0, noise - x0
