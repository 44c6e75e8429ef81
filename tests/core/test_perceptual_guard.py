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
