"""HVS-JND perceptual loss and adversarial losses pinned to hand-computed values."""

from __future__ import annotations

import pytest
import torch

from jndguard.core.losses import (
    cosine_margin_loss,
    gradient_loss,
    hvs_perceptual_loss,
    jnd_l1,
    jnd_l2,
    paper_adversarial_loss,
    sobel,
)


def _pair():
    x = torch.zeros(1, 3, 1, 2)
    z = x.clone()
    # channel R: |P| = 0.3, 0.1 ; G: 0.05, 0.5 ; B: 0.2, 0.0 ; J = 0.1 everywhere
    z[0, 0, 0] = torch.tensor([0.3, -0.1])
    z[0, 1, 0] = torch.tensor([0.05, 0.5])
    z[0, 2, 0] = torch.tensor([-0.2, 0.0])
    j = torch.full_like(x, 0.1)
    return z, x, j


def test_jnd_l1_l2_by_hand():
    z, x, j = _pair()
    # excess e: R 0.2, 0 ; G 0, 0.4 ; B 0.1, 0 ; M = (3, 5, 1); mean over 6 entries
    assert float(jnd_l1(z, x, j, (3, 5, 1))) == pytest.approx((3 * 0.2 + 5 * 0.4 + 1 * 0.1) / 6)
    assert float(jnd_l2(z, x, j, (3, 5, 1))) == pytest.approx((3 * 0.04 + 5 * 0.16 + 0.01) / 6)
    assert float(jnd_l1(z, x, j)) == pytest.approx(0.7 / 6)


def test_below_jnd_costs_nothing():
    x = torch.rand(1, 3, 8, 8)
    j = torch.full_like(x, 0.05)
    z = x + 0.04 * torch.sign(torch.randn_like(x))
    assert float(jnd_l1(z, x, j)) == 0.0
    assert float(gradient_loss(x, x, j)) == 0.0


def test_sobel_by_hand():
    x = torch.zeros(1, 1, 3, 3)
    x[0, 0, :, 2] = 1.0  # a vertical step at the right column
    g = sobel(x)
    # centre pixel: horizontal kernel [1 0 -1; 2 0 -2; 1 0 -1] → (0 - 1)·(1 + 2 + 1) = -4
    assert float(g[0, 0, 0, 1, 1]) == pytest.approx(-4.0)
    assert float(g[0, 0, 1, 1, 1]) == pytest.approx(0.0)


def test_gradient_loss_counts_only_beyond_gradient_of_j():
    x = torch.zeros(1, 3, 3, 3)
    z = x.clone()
    z[:, :, 1, 1] = 0.1
    j = torch.zeros_like(x)
    gz = sobel(z).abs()
    assert float(gradient_loss(z, x, j)) == pytest.approx(float(gz.mean()))
    big_j = torch.full_like(x, 1.0)  # constant J has zero gradient: same as J = 0
    assert float(gradient_loss(z, x, big_j)) == pytest.approx(float(gz.mean()))


def test_ablations_select_terms():
    z, x, j = _pair()
    full, terms = hvs_perceptual_loss(z, x, j, (1, 2, 3), (1, 1, 1), "L1+L2+G")
    assert set(terms) == {"L1", "L2", "G"}
    assert float(full) == pytest.approx(terms["L1"] + 2 * terms["L2"] + 3 * terms["G"])
    l1o, _ = hvs_perceptual_loss(z, x, j, (2, 0, 0), variant="L1_ori")
    assert float(l1o) == pytest.approx(2 * float((z - x).abs().mean()))
    l2o, _t = hvs_perceptual_loss(z, x, j, (0, 3, 0), variant="L2_ori")
    assert float(l2o) == pytest.approx(3 * float((z - x).pow(2).mean()))
    with pytest.raises(ValueError):
        hvs_perceptual_loss(z, x, j, variant="L3")


def test_losses_gradcheck():
    x = torch.rand(1, 3, 5, 5, dtype=torch.float64)
    j = torch.full_like(x, 0.02)
    z = (x + 0.1 * torch.randn_like(x)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: hvs_perceptual_loss(t, x, j, (1, 1, 1))[0], (z,))


def test_paper_adversarial_loss():
    logits = torch.tensor([[2.0, 0.0, 0.0]])
    p = torch.softmax(logits, 1)[0]
    assert float(paper_adversarial_loss(logits, 0)) == pytest.approx(float(p[0]))
    assert float(paper_adversarial_loss(logits, 0, 2, power=0.5)) == pytest.approx(-float(p[2]) ** 0.5)


def test_cosine_margin_loss():
    s = torch.tensor([0.5, 0.1])
    assert float(cosine_margin_loss(s, 0.25, 0.05)) == pytest.approx((0.3 + 0.0) / 2)
    t = torch.tensor([0.2, 0.4])
    others = torch.tensor([[0.3, 0.1], [0.1, 0.0]])
    # target: relu(0.3-0.2)=0.1, relu(0.3-0.4)=0 ; others: relu(0.3-0.2+0.05)=0.15, relu(0.1-0.4+0.05)=0
    assert float(cosine_margin_loss(s, 0.25, 0.05, t, others)) == pytest.approx((0.25 + 0.0) / 2)


def test_sobel_is_the_correlation_with_the_sobel_kernels():
    import torch.nn.functional as F

    from jndguard.core.losses.hvs_jnd import _SOBEL_X, sobel

    x = torch.rand(2, 3, 17, 23, generator=torch.Generator().manual_seed(0), dtype=torch.float64,
                   requires_grad=True)
    kx = torch.tensor(_SOBEL_X, dtype=x.dtype)
    k = torch.stack([kx, kx.T])[:, None]
    ref = F.conv2d(F.pad(x.reshape(6, 1, 17, 23), (1, 1, 1, 1), mode="reflect"), k).reshape(2, 3, 2, 17, 23)
    got = sobel(x)
    torch.testing.assert_close(got, ref)
    w = torch.rand_like(ref)
    torch.testing.assert_close(torch.autograd.grad((got * w).sum(), x)[0],
                               torch.autograd.grad((ref * w).sum(), x)[0])
    assert sobel(torch.rand(1, 1, 1, 5)).shape == (1, 1, 2, 1, 5)  # one row: replicated borders
