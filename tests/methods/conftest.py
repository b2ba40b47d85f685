"""Shared fixtures for adapter tests: a random-init toy-small backbone and one batch of denoiser inputs."""

from __future__ import annotations

import pytest
import torch

from cinetune.backbones import load_backbone


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    b = load_backbone("toy-small", random_init=True)
    b.transformer.eval().requires_grad_(False)
    return b


def control_inputs(B=2, frames=9):
    """(latents (B,16,F',16,16), timesteps (B,), text (B,6,384), condition video (B,3,F,64,64) in [-1,1])."""
    g = torch.Generator().manual_seed(3)
    lat = torch.randn(B, 16, (frames - 1) // 4 + 1, 16, 16, generator=g)
    cond = torch.rand(B, 3, frames, 64, 64, generator=g) * 2 - 1
    return lat, torch.tensor([300.0, 800.0][:B]), torch.randn(B, 6, 384, generator=g), cond
