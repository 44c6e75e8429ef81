"""Post mode's perceptual guard (jndguard.core.attacks.perceptual_guard)."""

import torch

from jndguard.core.attacks.perceptual_guard import PerceptualGuard, gaussian_blur


def _jnd(h=96, w=96, level=6.0):
    j = torch.full((1, 3, h, w), level / 255)
    return j * torch.tensor([1.3, 1.0, 1.55]).view(1, 3, 1, 1)


def test_blur_keeps_constants_and_removes_checkerboards():
    x = torch.full((1, 3, 40, 50), 0.3)
    assert torch.allclose(gaussian_blur(x, 3.0), x, atol=1e-6)
    yy, xx = torch.meshgrid(torch.arange(40), torch.arange(50), indexing="ij")
    checker = ((yy + xx) % 2 * 2 - 1).float().expand(1, 3, 40, 50)
    assert gaussian_blur(checker, 3.0)[..., 10:-10, 10:-10].abs().max() < 1e-3


def test_coherent_shift_is_removed_and_noise_kept():
    """A blue-eyes-to-brown kind of change (a coherent colour shift over a patch) is cut to the
    guard's bounds, while independent ±J noise keeps most of its energy."""
    j = _jnd()
    state = PerceptualGuard().prepare(j, face_side=96)
    shift = torch.zeros(1, 3, 96, 96)
    shift[:, 0, 30:60, 30:60] = 6 / 255   # redder
    shift[:, 2, 30:60, 30:60] = -8 / 255  # less blue
    before = state.measure(shift)
    p = shift
    for _ in range(10):  # the optimiser projects after every step
        p = state.project(p)
    after = state.measure(p)
    assert before["low_chroma"] > 3.0 and after["low_chroma"] < 1.0
    assert after["low_luma"] < 1.6
    g = torch.Generator().manual_seed(0)
    noise = (torch.randint(0, 2, (1, 3, 96, 96), generator=g).float() * 2 - 1) * j
    kept = state.project(noise)
    assert kept.pow(2).mean() > 0.25 * noise.pow(2).mean()


def test_jnd_clip_holds_in_whole_levels():
    j = _jnd(level=4.3)
    state = PerceptualGuard().prepare(j, face_side=96)
    p = state.project(torch.randn(1, 3, 96, 96) * 0.1)
    q = (p * 255).round()
    assert (q.abs() <= torch.floor(j * 255 + 1e-4)).all()


def test_off_is_only_the_clip():
    j = _jnd()
    p = torch.randn(1, 3, 96, 96) * 0.01
    clip = torch.floor(j * 255 + 1e-4) / 255
    assert torch.equal(PerceptualGuard.off().prepare(j, 96).project(p),
                       torch.maximum(torch.minimum(p, clip), -clip))


def _reference_blur(x: torch.Tensor, sigma: float, separable: bool = True) -> torch.Tensor:
    """The Gaussian the plain way, reflected borders: a tall then a wide conv2d, or (``separable``
    False; small σ only, its memory grows with the kernel's area) one conv2d with the 2-D
    outer-product kernel."""
    import math

    import torch.nn.functional as F

    r = math.ceil(3 * sigma)
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    if not separable:
        return F.conv2d(F.pad(x, (r, r, r, r), mode="reflect"), torch.outer(k, k).expand(c, 1, -1, -1),
                        groups=c)
    y = F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return F.conv2d(F.pad(y, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)


def test_blur_is_the_two_dimensional_gaussian():
    x = torch.rand(1, 3, 61, 47, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for sigma in (1.0, 4.5):
        torch.testing.assert_close(gaussian_blur(x, sigma), _reference_blur(x, sigma, separable=False))
    torch.testing.assert_close(gaussian_blur(x, 12.0), _reference_blur(x, 12.0))


def test_large_blurs_on_a_decimated_copy_stay_close():
    """From PYRAMID_SIGMA on the blur runs on a decimated copy: within 2 % of the result on a
    smooth field and 20 % of the result's spread on white noise (measured ≈ 1 % and 10 %)."""
    from jndguard.core.attacks.perceptual_guard import PYRAMID_SIGMA

    gen = torch.Generator().manual_seed(1)
    sigma = 2 * PYRAMID_SIGMA
    noise = torch.randn(1, 3, 300, 260, generator=gen, dtype=torch.float64)
    smooth = noise.cumsum(-1).cumsum(-2)
    smooth = smooth / smooth.abs().max()
    for x, tol in ((smooth, 0.02), (noise, 0.2)):
        exact, fast = _reference_blur(x, sigma), gaussian_blur(x, sigma)
        scale = exact.abs().max() if x is smooth else exact.std()
        assert float((fast - exact).abs().max() if x is smooth else (fast - exact).std()) < tol * float(scale)
