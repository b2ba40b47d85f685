import torch

from cinetune.training.objectives import foreground_map, motion_mse, weighted_mse


def test_foreground_map_follows_the_causal_latent_grid():
    inst = torch.zeros(1, 9, 16, 16, dtype=torch.uint8)
    inst[0, 6, 0:4, 0:2] = 1  # frame 6 -> latent frame 2 (frames 5..8); half of latent cell (0, 0)
    m = foreground_map(inst, temporal=4, spatial=4)
    assert m.shape == (1, 3, 4, 4)
    assert m[0, :2].sum() == 0  # latent frames 0 (frame 0) and 1 (frames 1..4) see nothing
    # the cell holds 0.5 of foreground and spreads to its 3x3 neighbourhood; the rest stays 0
    assert torch.equal(m[0, 2, :2, :2], torch.full((2, 2), 0.5)) and m[0, 2, 2:].sum() == 0 and m[0, 2, :, 2:].sum() == 0
    inst[0, 0, 12:, 12:] = 3  # frame 0 alone is latent frame 0
    assert foreground_map(inst)[0, 0, 3, 3] == 1.0


def test_weighted_mse_keeps_the_scale_and_moves_the_weight():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(2, 4, 3, 4, 4, generator=g), torch.randn(2, 4, 3, 4, 4, generator=g)
    plain = torch.nn.functional.mse_loss(pred, target)
    assert torch.allclose(weighted_mse(pred, target, None), plain)
    assert torch.allclose(weighted_mse(pred, target, torch.full((2, 3, 4, 4), 7.0)), plain)  # constant: unchanged
    w = torch.ones(2, 3, 4, 4)
    w[:, :, 0, 0] = 1000.0  # nearly all weight on one cell -> nearly that cell's error
    cell = ((pred - target) ** 2)[..., 0, 0].mean()
    assert torch.allclose(weighted_mse(pred, target, w), cell, rtol=0.05)


def test_motion_mse_sees_only_what_changes_between_frames():
    g = torch.Generator().manual_seed(0)
    target = torch.randn(2, 4, 5, 4, 4, generator=g)
    static = torch.randn(2, 4, 1, 4, 4, generator=g)
    # an error that is the same in every frame costs nothing; the frame-wise loss still sees it
    assert motion_mse(target + static, target, None) < 1e-12 and weighted_mse(target + static, target, None) > 0
    moving = target.clone()
    moving[:, :, 3] += 1.0  # one frame off by 1 -> two of the four differences off by 1
    assert torch.allclose(motion_mse(moving, target, None), torch.tensor(0.5))
    w = torch.ones(2, 5, 4, 4)
    assert torch.allclose(motion_mse(moving, target, 3 * w), motion_mse(moving, target, None))  # constant: unchanged
    w[:, 3:] = 0.0  # no weight on frames 3-4: the 2-3 pair keeps half weight, the 3-4 pair none
    assert torch.allclose(motion_mse(moving, target, w), torch.tensor(1.0 * 0.5 / 2.5))


def _best_constant(loss_fn, target: torch.Tensor) -> torch.Tensor:
    """The prediction, shared by every sample (a denoiser that cannot tell them apart), minimising loss_fn."""
    c = torch.zeros(target.shape[1:], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([c], max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = loss_fn(c.expand_as(target), target)
        loss.backward()
        return loss

    opt.step(closure)
    return c.detach()


def test_foreground_weight_moves_the_minimiser_and_the_motion_term_does_not():
    # one latent cell that the object covers in 2 of 10 equally likely clips (value 1; background 0), two frames
    target = torch.zeros(10, 1, 2, 1, 1, dtype=torch.float64)
    target[:2, 0, 0] = 1.0
    fg = (target[:, 0] > 0).to(target.dtype)  # (B,T,H,W), the exact mask as the trainer builds it
    plain = _best_constant(lambda p, t: weighted_mse(p, t, None), target)
    weighted = _best_constant(lambda p, t: weighted_mse(p, t, 1.0 + 4.0 * fg), target)
    with_motion = _best_constant(lambda p, t: weighted_mse(p, t, None) + motion_mse(p, t, None), target)
    # the conditional mean 0.2; the foreground weight leans to "object here": 5*2 / (5*2 + 8) = 0.556 (README, stage six)
    assert torch.allclose(plain[0, :, 0, 0], torch.tensor([0.2, 0.0], dtype=torch.float64), atol=1e-6)
    assert abs(weighted[0, 0, 0, 0].item() - 10 / 18) < 1e-6
    assert torch.allclose(with_motion, plain, atol=1e-6)


def test_logit_normal_sampling_centres_the_noise_levels_and_uniform_is_unchanged():
    import pytest

    from cinetune.errors import CinetuneError
    from cinetune.training import preset_config
    from cinetune.training.objectives import sample_sigmas, shift_sigmas

    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.equal(sample_sigmas(64, 2.0, g()), shift_sigmas(torch.rand(64, generator=g()), 2.0))
    ln = sample_sigmas(20000, 1.0, g(), "logit-normal")
    uni = sample_sigmas(20000, 1.0, g())
    middle = lambda s: float(((s > 0.3) & (s < 0.7)).float().mean())  # noqa: E731
    assert abs(float(ln.median()) - 0.5) < 0.02 and middle(ln) > 0.55 > 0.45 > middle(uni)
    narrow = sample_sigmas(20000, 1.0, g(), "logit-normal", logit_std=0.5)
    assert middle(narrow) > middle(ln)
    with pytest.raises(CinetuneError, match="timestep_sampling"):
        preset_config("tiny", {"timestep_sampling": "cosine"})


def test_diffusion_inputs_match_the_cogvideox_schedulers_own_noising_and_velocity():
    from diffusers import CogVideoXDDIMScheduler

    from cinetune.training.objectives import diffusion_inputs, is_flow_scheduler

    s = CogVideoXDDIMScheduler(prediction_type="v_prediction", snr_shift_scale=3.0)  # as the released configs
    assert not is_flow_scheduler(s)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(3, 4, 2, 4, 4, generator=g), torch.randn(3, 4, 2, 4, 4, generator=g)
    t = torch.tensor([0, 500, 999])
    xt, tt, v = diffusion_inputs(x0, t, noise, s.alphas_cumprod, "v_prediction")
    torch.testing.assert_close(xt, s.add_noise(x0, noise, t))
    torch.testing.assert_close(v, s.get_velocity(x0, noise, t))
    assert tt.tolist() == [0.0, 500.0, 999.0]
    assert diffusion_inputs(x0, t, noise, s.alphas_cumprod, "epsilon")[2] is noise
