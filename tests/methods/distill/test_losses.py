"""The distillation losses on hand-computed cases: the DMD gradient and its normalisation, the adaptive weight and
its running means per student step (both EMA orders), the regression targets, the temporal term and its truncation."""

from __future__ import annotations

import math

import torch

from cinetune.methods.distill.losses import AdaptiveRegression, dmd_loss, regression_error, temporal_loss


def test_dmd_gradient_matches_a_hand_computed_case():
    # one sample of 4 values: x = [1, 2, 3, 4], real = [0, 2, 3, 3] -> mean|x - real| = (1 + 0 + 0 + 1) / 4 = 0.5
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 4, 1, 1).requires_grad_(True)
    real = torch.tensor([0.0, 2.0, 3.0, 3.0]).view(1, 1, 4, 1, 1)
    fake = torch.tensor([1.0, 1.0, 3.0, 5.0]).view(1, 1, 4, 1, 1)
    loss, grad = dmd_loss(x, real, fake)
    want = torch.tensor([1.0, -1.0, 0.0, 2.0]) / 0.5  # (fake - real) / 0.5
    assert torch.allclose(grad.flatten(), want)
    assert math.isclose(loss.detach().item(), 0.5 * float((want ** 2).mean()), rel_tol=1e-6)
    loss.backward()
    assert torch.allclose(x.grad.flatten(), want / 4)  # d/dx 0.5 mean((x - sg(x - g))^2) = g / N: x moves to real


def test_dmd_gradient_is_normalised_per_sample_and_guarded():
    x = torch.zeros(2, 1, 2, 1, 1)
    real = torch.tensor([[1.0, 1.0], [0.0, 0.0]]).view(2, 1, 2, 1, 1)  # sample 2: x == real, the norm would be 0
    fake = torch.tensor([[3.0, 1.0], [float("nan"), 1.0]]).view(2, 1, 2, 1, 1)
    _, grad = dmd_loss(x, real, fake)
    assert torch.allclose(grad[0].flatten(), torch.tensor([2.0, 0.0]))  # norm 1
    assert torch.isfinite(grad).all() and grad[1].flatten()[0] == 0  # NaN zeroed, no inf from the zero norm


def test_adaptive_weight_and_running_means_per_step():
    ada = AdaptiveRegression(num_steps=3, ema=0.5, k=2.0, weight=2.0, order="previous")
    losses, steps = torch.tensor([1.0, 3.0, 2.0]), torch.tensor([0, 0, 2])
    loss, w = ada(losses, steps)
    # previous order: the means start at 0 (Algorithm 1), so w = 1 - sigmoid(2 L)
    assert torch.allclose(w, 1 - torch.sigmoid(2 * losses))
    assert math.isclose(float(loss), 2.0 * float((w * losses).mean()), rel_tol=1e-6)
    # step 0 saw the batch mean 2.0, step 2 saw 2.0, step 1 nothing: mean = 0.5 * 0 + 0.5 * value
    assert torch.allclose(ada.mean, torch.tensor([1.0, 0.0, 1.0]))
    _, w2 = ada(torch.tensor([1.0]), torch.tensor([0]))
    assert torch.allclose(w2, 1 - torch.sigmoid(torch.tensor([2.0 * (1.0 - 1.0)])))  # 0.5 at the running mean
    assert torch.allclose(ada.mean, torch.tensor([1.0, 0.0, 1.0]))  # 0.5 * 1 + 0.5 * 1


def test_current_order_updates_before_weighting_and_plain_is_half():
    cur = AdaptiveRegression(num_steps=2, ema=0.5, k=1.0, order="current")
    _, w = cur(torch.tensor([4.0]), torch.tensor([1]))
    assert torch.allclose(cur.mean, torch.tensor([0.0, 2.0]))
    assert torch.allclose(w, 1 - torch.sigmoid(torch.tensor([4.0 - 2.0])))
    plain = AdaptiveRegression(num_steps=2, mode="plain")
    loss, w = plain(torch.tensor([1.0, 3.0]), torch.tensor([0, 1]))
    assert torch.equal(w, torch.full((2,), 0.5)) and math.isclose(float(loss), 2.0 * 0.5 * 2.0)


def test_regression_targets_differ_by_one_minus_sigma_squared():
    g = torch.Generator().manual_seed(0)
    x0, noise, pred = (torch.randn(2, 4, 3, 2, 2, generator=g) for _ in range(3))
    sigma = torch.tensor([0.9, 0.3])
    xt = (1 - sigma.view(-1, 1, 1, 1, 1)) * x0 + sigma.view(-1, 1, 1, 1, 1) * noise
    flow = regression_error(pred, xt, x0, noise, sigma, "flow")
    eps = regression_error(pred, xt, x0, noise, sigma, "epsilon")
    assert torch.allclose(flow, (pred - (noise - x0)).square().mean(dim=(1, 2, 3, 4)))
    assert torch.allclose(eps, (1 - sigma) ** 2 * flow, rtol=1e-5)
    # a perfect velocity gives zero error for both
    perfect = noise - x0
    assert float(regression_error(perfect, xt, x0, noise, sigma, "epsilon").max()) < 1e-10


def test_temporal_term_value_and_truncation():
    x = torch.zeros(1, 1, 2, 1, 2)
    x[0, 0, 1] = 2.0  # per position: frames (0, 2) -> population variance 1
    loss, value = temporal_loss(x.requires_grad_(True), threshold=-1.0, eps=0.0)
    assert math.isclose(float(value), 0.0, abs_tol=1e-7) and loss.requires_grad  # -log(1)
    small = 0.1 * x.detach()  # variance 0.01 -> -log(0.01) = 4.605
    loss, value = temporal_loss(small, threshold=0.6, eps=1e-6)
    assert math.isclose(float(value), -math.log(0.01 + 1e-6), rel_tol=1e-5) and float(loss) == float(value)
    loss, value = temporal_loss(10 * x.detach(), threshold=0.6)  # variance 100: value -4.6 < 0.6 -> dropped
    assert float(loss) == 0.0 and float(value) < 0.6
    loss, value = temporal_loss(torch.ones(1, 1, 1, 2, 2), threshold=0.6)  # one frame: no temporal term
    assert float(loss) == 0.0 and float(value) == 0.0
