"""The flow-matching schedulers: built from the model's own shift, refused for other models, and each one solving
the flow ODE (the multistep solvers more accurately than Euler at the same number of steps)."""

from __future__ import annotations

import pytest
import torch

from cinetune.backbones import load_backbone
from cinetune.errors import CinetuneError
from cinetune.pipelines import TextToVideoPipeline
from cinetune.pipelines.schedulers import SCHEDULERS, flow_shift, make_scheduler

S = 0.5  # the data's standard deviation: x0 ~ N(0, S^2) per element


def gaussian_velocity(x: torch.Tensor, t: torch.Tensor, _i: int) -> torch.Tensor:
    """The exact flow-matching velocity E[noise - x0 | x_t] for x0 ~ N(0, S^2), x_t = (1 - sigma) x0 + sigma noise.
    Its ODE takes noise z to S * z, along a curved path (so Euler is not exact)."""
    sigma = (t.reshape(-1, *[1] * (x.ndim - 1)) / 1000.0).to(x.dtype)
    return (sigma - (1 - sigma) * S ** 2) / ((1 - sigma) ** 2 * S ** 2 + sigma ** 2) * x


@pytest.fixture(scope="module")
def pipe():
    return TextToVideoPipeline(load_backbone("toy-small", random_init=True))


def solve(pipe, name: str, steps: int) -> float:
    shape = (2, 4, 3, 4, 4)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    out = pipe._schedule(gaussian_velocity, shape, steps, 0, noise.clone(), False,
                         make_scheduler(name, pipe.backbone.scheduler))
    return ((out - S * noise).abs().max() / S).item()


def test_every_scheduler_solves_the_flow_ode_and_the_multistep_ones_beat_euler(pipe):
    err = {(n, k): solve(pipe, n, k) for n in SCHEDULERS for k in (6, 12, 24)}
    for n in SCHEDULERS:
        assert err[n, 24] < err[n, 12] < err[n, 6], (n, err)
    for n in ("unipc", "dpm++"):  # higher order: about a quarter of Euler's error at 12 steps, a tenth at 24
        assert err[n, 12] < 0.5 * err["euler", 12] and err[n, 24] < 0.05 < err["euler", 24], err


def test_built_with_the_models_shift_and_refused_for_other_models():
    from diffusers import DDIMScheduler, FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

    toy = FlowMatchEulerDiscreteScheduler(shift=3.0)
    wan = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0)
    assert flow_shift(toy) == 3.0 and flow_shift(wan) == 5.0
    assert make_scheduler("unipc", toy).config.flow_shift == 3.0
    assert make_scheduler("euler", wan).config.shift == 5.0
    own = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0,
                                  solver_order=3)
    assert make_scheduler("unipc", own).config.solver_order == 3  # a release's own settings are kept
    with pytest.raises(CinetuneError, match="not flow matching"):
        make_scheduler("unipc", DDIMScheduler())
    with pytest.raises(CinetuneError, match="unknown scheduler"):
        make_scheduler("heun", toy)


def test_the_pipeline_takes_a_scheduler_and_refuses_one_beside_a_student(pipe):
    kw = dict(frames=5, height=32, width=32, steps=3, guidance=1.0, seed=0, progress=False, decode=False)
    euler = pipe("a red circle", **kw).latents
    assert torch.equal(pipe("a red circle", scheduler="euler", **kw).latents, euler)  # the toy models' own
    assert not torch.allclose(pipe("a red circle", scheduler="unipc", **kw).latents, euler)
    with pytest.raises(CinetuneError, match="own few-step sampler"):
        pipe("a red circle", scheduler="unipc", sampler=object(), **kw)
