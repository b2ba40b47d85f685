"""The few-step sampler: student noise levels, x0-then-renoise steps, backward simulation's stop, frame
interpolation's frame arithmetic (F -> 2F - 1, even counts trimmed) and the interpolator's shapes."""

from __future__ import annotations

import pytest
import torch

from cinetune.errors import CinetuneError
from cinetune.methods.distill.interpolator import LatentInterpolator, interpolation_pairs
from cinetune.methods.distill.model import FewStepSampler
from cinetune.methods.distill.sampler import few_step_sample, half_rate_frames, student_sigmas


def test_student_sigmas_are_the_shifted_timesteps():
    s = student_sigmas([1000, 900, 757, 522], 5.0)
    assert s[0] == 1.0 and all(a > b for a, b in zip(s, s[1:]))
    assert abs(s[1] - 5 * 0.9 / (1 + 4 * 0.9)) < 1e-6


def test_steps_predict_x0_and_renoise_and_stop_returns_the_rollout_input():
    calls = []

    def denoise(x, t, i):
        calls.append((i, float(t[0]), tuple(x.shape)))
        return torch.zeros_like(x)  # v = 0: x0 = x_t

    sig = [1.0, 0.5]
    out = few_step_sample(denoise, (2, 3, 4, 2, 2), sig, torch.Generator().manual_seed(0))
    assert [c[:2] for c in calls] == [(0, 1000.0), (1, 500.0)] and out.shape == (2, 3, 4, 2, 2)
    calls.clear()
    noisy = few_step_sample(denoise, (2, 3, 4, 2, 2), sig, torch.Generator().manual_seed(0), stop=1)
    assert len(calls) == 1
    # x0 of step 0 was the noise itself; re-noised to 0.5: 0.5 * noise + 0.5 * fresh noise
    g = torch.Generator().manual_seed(0)
    n0, n1 = torch.randn(2, 3, 4, 2, 2, generator=g), torch.randn(2, 3, 4, 2, 2, generator=g)
    assert torch.allclose(noisy, 0.5 * n0 + 0.5 * n1)
    assert torch.equal(few_step_sample(denoise, (2, 3, 4, 2, 2), sig, torch.Generator().manual_seed(0), stop=0), n0)


@pytest.mark.parametrize("frames,half", [(5, 3), (6, 4), (1, 1), (2, 2), (21, 11)])
def test_half_rate_frames_cover_the_frame_count(frames, half):
    assert half_rate_frames(frames) == half and 2 * half - 1 >= frames


@pytest.mark.parametrize("frames", [5, 6, 2])
def test_interpolated_sampling_runs_half_rate_then_full_rate(frames):
    seen = []

    def denoise(x, t, i):
        seen.append(x.shape[2])
        return torch.zeros_like(x)

    interp = LatentInterpolator(4, (8, 16))
    out = few_step_sample(denoise, (1, 4, frames, 6, 6), [1.0, 0.9, 0.7, 0.5], torch.Generator().manual_seed(0),
                          interpolate=interp.interpolate, half_steps=2)
    assert seen == [half_rate_frames(frames)] * 2 + [frames] * 2 and out.shape[2] == frames


def test_interpolator_keeps_inputs_and_untrained_blends():
    m = LatentInterpolator(16, (8, 16, 32)).eval()
    x = torch.randn(2, 16, 4, 15, 9)  # sizes that are not multiples of 4
    y = m.interpolate(x)
    assert y.shape == (2, 16, 7, 15, 9) and torch.equal(y[:, :, 0::2], x)
    assert torch.allclose(y[:, :, 1::2], 0.5 * (x[:, :, :-1] + x[:, :, 1:]), atol=1e-6)  # zero-initialised head
    kept, mids = interpolation_pairs(torch.arange(6.0).view(1, 1, 6, 1, 1))
    assert kept.flatten().tolist() == [0, 2, 4] and mids.flatten().tolist() == [1, 3]


def test_few_step_sampler_subsets_and_refuses_other_step_counts():
    s = FewStepSampler([1000, 900, 757, 522], 1.0)
    assert s.sigmas() == pytest.approx([1.0, 0.9, 0.757, 0.522])
    assert s.sigmas(2) == pytest.approx([1.0, 0.522]) and s.sigmas(1) == [1.0]
    with pytest.raises(CinetuneError, match="1 to 4 steps"):
        s.sigmas(5)
    with pytest.raises(CinetuneError, match="no frame interpolator"):
        s.sample(lambda x, t, i: x, (1, 4, 3, 2, 2), torch.Generator(), "cpu", interpolate=True)
