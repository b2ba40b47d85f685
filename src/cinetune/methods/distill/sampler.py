"""Few-step sampling of a distilled student (DMD2's sampler): at each student timestep predict the clean latents,
re-noise them with fresh noise to the next timestep; optionally with latent frame interpolation (paper Sec. 3.4): the
first steps at half the latent frame rate, then the interpolator doubles it (F -> 2F - 1) before the next re-noise."""

from __future__ import annotations

from typing import Callable

import torch

from ...training.objectives import shift_sigmas

# denoise(latents (B,C,F,H,W), timestep (B,), step index) -> velocity prediction like latents
Denoise = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


def student_sigmas(timesteps: list[float], shift: float) -> list[float]:
    """Student timesteps in [0, 1000] (before the shift) -> the noise levels it is trained and sampled at."""
    return [float(shift_sigmas(torch.tensor(t / 1000.0), shift)) for t in timesteps]


def noise_like(shape: tuple[int, ...], gens: list[torch.Generator] | torch.Generator, device) -> torch.Tensor:
    """(B, ...) standard normal noise; one generator per sample keeps each sample's noise independent of the batch."""
    if isinstance(gens, torch.Generator):
        return torch.randn(shape, generator=gens).to(device)
    return torch.stack([torch.randn(shape[1:], generator=g) for g in gens]).to(device)


def half_rate_frames(frames: int) -> int:
    """Latent frames to denoise at half rate so that interpolation (2F - 1) covers `frames`: odd counts exactly,
    even counts one frame over (trimmed after interpolating)."""
    return frames // 2 + 1


def to_x0(x: torch.Tensor, v: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    s = sigma.view(-1, *([1] * (x.ndim - 1))) if torch.is_tensor(sigma) else sigma
    return x - s * v


def few_step_sample(denoise: Denoise, shape: tuple[int, ...], sigmas: list[float],
                    gens: list[torch.Generator] | torch.Generator, device="cpu", stop: int | None = None,
                    interpolate: Callable[[torch.Tensor], torch.Tensor] | None = None, half_steps: int = 0
                    ) -> torch.Tensor:
    """Clean latents (B,C,F,H,W) of `shape` after len(sigmas) student steps; with `stop`, the noisy input of step
    `stop` instead (backward simulation: the student's own rollout makes its training inputs).

    `interpolate` with half_steps = h: steps 0..h-1 run on half_rate_frames(F) latent frames, then the clean
    estimate is interpolated to F frames before re-noising to step h."""
    B, C, F, H, W = shape
    h = half_steps if interpolate is not None and F > 1 else 0
    x = noise_like((B, C, half_rate_frames(F) if h else F, H, W), gens, device)
    end = len(sigmas) if stop is None else stop
    for i in range(end):
        x0 = to_x0(x, denoise(x, torch.full((B,), sigmas[i] * 1000.0, device=device), i), sigmas[i])
        if i + 1 == len(sigmas):
            return x0
        if h and i + 1 == h:
            x0 = interpolate(x0)[:, :, :F]
        x = (1 - sigmas[i + 1]) * x0 + sigmas[i + 1] * noise_like(tuple(x0.shape), gens, device)
    return x
