"""The JND engine against the checks of docs/jnd.md ("Checks") and its own contracts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from jndguard.core.jnd import (
    MODELS,
    RGB_SCALE,
    ClassicJND,
    JNDConfigError,
    JNDModel,
    constrain_delta,
    jnd_map,
    mean_levels,
    noise_psnr,
    rgb_to_luma,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
)
from jndguard.core.jnd import classic as C
from jndguard.core.jnd.color import scale_channels
from jndguard.core.jnd.tiling import gather_window, reflect_indices, tile_grid
from jndguard.errors import JNDGuardError, ShapeError

KODAK = Path(os.environ["JNDGUARD_KODAK"])  # resolved by tests/conftest.py
COLORS = ("scaled", "gray", "ycbcr")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _flat(level: float, h: int = 24, w: int = 32, dtype=torch.float32) -> torch.Tensor:
    return torch.full((1, 3, h, w), level / 255.0, dtype=dtype)


def _textured(level: float = 128.0, amp: float = 30.0, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand((1, 1, 48, 64), generator=g) * 2 - 1
    return ((level + amp * noise) / 255.0).clamp(0, 1).expand(1, 3, 48, 64).contiguous()


# --- Check 1: constant images -------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(("level", "expected"), [(0, 20.0), (127, 3.0), (255, 6.0)])
def test_constant_images_give_luminance_adaptation(model, level, expected):
    j = jnd_map(_flat(level), model, "gray") * 255.0
    assert torch.isfinite(j).all()
    # every pixel, borders included
    torch.testing.assert_close(j, torch.full_like(j, expected), atol=1e-4, rtol=0)


@pytest.mark.parametrize("model", MODELS)
def test_constant_images_scaled_by_k(model):
    j = jnd_map(_flat(127), model, "scaled", strength=2.0) * 255.0
    k = torch.tensor(RGB_SCALE).view(1, 3, 1, 1)
    torch.testing.assert_close(j, (6.0 * k).expand_as(j), atol=1e-4, rtol=0)


# --- Check 2: PSNR of ±J noise on Kodak -----------------------------------------------------


@pytest.fixture(scope="module")
def kodak():
    from jndguard.core.imageio import load_image

    paths = sorted(KODAK.glob("*.png"))
    if len(paths) != 24:
        pytest.fail(f"Kodak images not found in {KODAK} (set JNDGUARD_KODAK)")
    return [load_image(p).tensor() for p in paths]


# Literature range for ±JND noise is 26.65–33.1 dB (docs/jnd.md); colour scaling costs ~2.3 dB.
# Wu et al.'s model injects more noise than Yang's by design; with the colour scaling it
# falls below 26 dB (reported in docs/jnd.md), with k = 1 it lies in the range.
PSNR_RANGES = {
    ("yang", "gray"): (26.0, 34.0),
    ("yang", "scaled"): (26.0, 34.0),
    ("chou", "gray"): (26.0, 34.0),
    ("chou", "scaled"): (26.0, 34.0),
    ("wu", "gray"): (26.0, 34.0),
    ("wu", "scaled"): (24.0, 26.0),
}


@pytest.mark.parametrize("model", MODELS)
def test_kodak_noise_psnr(kodak, model, record_property):
    means = {}
    k = torch.tensor(RGB_SCALE).view(1, 3, 1, 1)
    maps = [jnd_map(x, model, "gray") for x in kodak]
    torch.testing.assert_close(jnd_map(kodak[0], model, "scaled"), maps[0] * k)
    for color in ("gray", "scaled"):
        psnrs = [
            float(noise_psnr(x, j if color == "gray" else j * k, color=color))
            for x, j in zip(kodak, maps)
        ]
        means[color] = sum(psnrs) / len(psnrs)
        record_property(f"psnr_{model}_{color}", round(means[color], 2))
        lo, hi = PSNR_RANGES[(model, color)]
        assert lo <= means[color] <= hi, (model, color, means[color])
    if model == "yang":  # docs/jnd.md: about 30.8 dB for k = 1, 28.5 dB with the colour scaling
        assert means["gray"] == pytest.approx(30.8, abs=0.5)
        assert means["scaled"] == pytest.approx(28.5, abs=0.5)


# --- Check 3: luminance U-shape, texture > flat ---------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_luminance_u_shape(model):
    dark, mid, bright = (float(jnd_map(_flat(v), model).mean()) for v in (0, 127, 255))
    assert mid < bright < dark


@pytest.mark.parametrize("model", MODELS)
def test_textured_above_flat(model):
    flat = float(jnd_map(_flat(128), model).mean())
    for amp, gain in ((30.0, 1.0), (60.0, 1.3)):  # Chou & Li masks only above mg ≈ 30
        tex = float(jnd_map(_textured(128, amp), model).mean())
        assert tex > flat * gain


# --- Check 4: edge protection ----------------------------------------------------------------


def _edge_and_texture(amp: float = 40.0) -> torch.Tensor:
    """Left: a vertical step of height ``amp``; right: period-4 stripes of the same height.

    Both give ``mg = amp``; the stripes are too fine to survive Canny's σ = √2 blur, so only
    the step is an edge.
    """
    h, w = 64, 128
    y = torch.full((1, 1, h, w), 128.0)
    y[..., :32] -= amp / 2
    y[..., 32:64] += amp / 2
    xs = torch.arange(64, w)
    y[..., 64:] = 128.0 + amp / 2 * torch.where((xs // 2) % 2 == 0, 1.0, -1.0)
    return (y / 255.0).expand(1, 3, h, w).contiguous()


@pytest.mark.parametrize("amp", [20.0, 40.0, 80.0])
def test_edge_protection(amp):
    x = _edge_and_texture(amp)
    y = rgb_to_luma(x) * 255.0
    mg = C.max_gradient(y)
    edge_cols, tex = (slice(8, -8), slice(31, 33)), (slice(8, -8), slice(72, -8))
    torch.testing.assert_close(mg[0, 0][edge_cols], mg[0, 0][tex][:, :2])  # equal gradient
    edges = C.canny_edges(x)
    assert edges[0, 0, :, 30:34].sum() >= 60  # the step is found
    assert edges[0, 0, :, 68:].sum() == 0  # the texture is not an edge
    j = jnd_map(x, "yang", "gray")[0, 0]
    assert j[edge_cols].max() < j[tex].min()
    assert j[edge_cols].mean() < (0.95 if amp < 40 else 0.85) * j[tex].mean()


def test_edge_weight_range():
    w = C.smooth_edge_weight(C.canny_edges(_edge_and_texture()))
    assert float(w.min()) >= C.EDGE_WEIGHT_ON_EDGE - 1e-6
    assert float(w.max()) <= 1.0 + 1e-6
    assert float(w[0, 0, :, 72:].min()) == pytest.approx(1.0)


# --- Check 5: channel order ------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_channel_order(model, kodak):
    for x in (kodak[0], _textured(), _flat(0), _flat(255)):
        j = jnd_map(x, model, "scaled")
        assert (j[:, 1] < j[:, 0]).all() and (j[:, 0] < j[:, 2]).all()


# --- no NaN / inf ----------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("color", COLORS)
def test_finite_everywhere(model, color):
    g = torch.Generator().manual_seed(1)
    cases = [
        torch.rand((2, 3, 31, 45), generator=g),
        torch.zeros(1, 3, 8, 8),
        torch.ones(1, 3, 8, 8),
        (torch.rand((1, 3, 16, 16), generator=g) > 0.5).float(),  # extreme contrast
        torch.rand((1, 3, 1, 1), generator=g),
        torch.rand((1, 3, 1, 7), generator=g),
        torch.rand((1, 3, 2, 3), generator=g),
        torch.rand((1, 3, 5, 4), generator=g, dtype=torch.float64),
    ]
    for x in cases:
        j = jnd_map(x, model, color)
        assert j.shape == x.shape and j.dtype == x.dtype
        assert torch.isfinite(j).all() and (j > 0).all()


# --- gradients -------------------------------------------------------------------------------


def _rand64(*shape, lo=0.0, hi=255.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = lo + (hi - lo) * torch.rand(shape, generator=g, dtype=torch.float64)
    return x.requires_grad_()


def test_gradcheck_luminance_adaptation():
    bg = torch.cat([_rand64(20, lo=1.0, hi=120.0), _rand64(20, lo=135.0, hi=255.0, seed=1)])
    assert torch.autograd.gradcheck(C.luminance_adaptation, (bg.detach().requires_grad_(),))


def test_gradcheck_filters():
    y = _rand64(2, 1, 7, 9)
    assert torch.autograd.gradcheck(C.background_luminance, (y,))
    assert torch.autograd.gradcheck(C.max_gradient, (y,))


def test_gradcheck_yang_given_edge_weight():
    y = _rand64(1, 1, 8, 10, seed=2)
    w = C.smooth_edge_weight((torch.rand(1, 1, 8, 10) > 0.7).to(torch.uint8), torch.float64)
    assert torch.autograd.gradcheck(lambda t: C.yang_luma_jnd(t, w), (y,))


def test_gradcheck_chou_and_namm():
    y = _rand64(1, 1, 8, 8, seed=3)
    assert torch.autograd.gradcheck(C.chou_li_luma_jnd, (y,))
    la, t = _rand64(30, lo=3, hi=20, seed=4), _rand64(30, lo=0, hi=20, seed=5)
    assert torch.autograd.gradcheck(C.namm, (la, t))


def test_gradcheck_wu_parts():
    c_l = _rand64(40, lo=0.5, hi=60.0, seed=6)
    c_p = torch.randint(0, 10, (40,)).double()
    la = _rand64(40, lo=3.0, hi=20.0, seed=7)
    assert torch.autograd.gradcheck(C.contrast_masking, (c_l,))
    assert torch.autograd.gradcheck(lambda c: C.pattern_masking(c, c_p), (c_l,))
    assert torch.autograd.gradcheck(lambda a, c: C.wu_combine(a, c, c_p), (la, c_l))
    gh, gv = _rand64(20, lo=-30, hi=30, seed=8), _rand64(20, lo=-30, hi=30, seed=9)
    assert torch.autograd.gradcheck(C.luminance_contrast, (gh, gv))


def test_gradcheck_colour_step():
    x = _rand64(1, 3, 4, 5, lo=0.0, hi=1.0, seed=10)
    assert torch.autograd.gradcheck(lambda t: rgb_to_ycbcr(t), (x,))
    assert torch.autograd.gradcheck(lambda t: ycbcr_to_rgb(t), (x,))
    jy = _rand64(1, 1, 4, 5, lo=1.0, hi=20.0, seed=11)
    assert torch.autograd.gradcheck(lambda t: scale_channels(t, "scaled", 1.5), (jy,))


def test_wu_gradient_flows_through_luma():
    y = _rand64(1, 1, 12, 12, seed=12)
    C.wu_luma_jnd(y).sum().backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


# --- colour ----------------------------------------------------------------------------------


def test_ycbcr_roundtrip_and_grey():
    x = torch.rand(2, 3, 5, 7)
    torch.testing.assert_close(ycbcr_to_rgb(rgb_to_ycbcr(x)), x, atol=1e-5, rtol=0)
    grey = rgb_to_ycbcr(_flat(100))
    chroma = grey[:, 1:]
    torch.testing.assert_close(chroma, torch.full_like(chroma, 128 / 255), atol=1e-6, rtol=0)


def test_ycbcr_mode_budget():
    x = _textured()
    j = jnd_map(x, "yang", "ycbcr")
    torch.testing.assert_close(j[:, :1], jnd_map(x, "yang", "gray")[:, :1])  # Y = luma model
    delta = (torch.rand_like(x) - 0.5) * 0.2
    d = constrain_delta(delta, j, "ycbcr")
    assert (rgb_to_ycbcr(d, offset=False).abs() <= j + 1e-6).all()
    d_rgb = constrain_delta(delta, j, "scaled")
    assert (d_rgb.abs() <= j).all()


def test_strength_scales_map():
    x = _textured()
    torch.testing.assert_close(jnd_map(x, strength=0.5), 0.5 * jnd_map(x))


# --- tiling ----------------------------------------------------------------------------------


def test_reflect_indices_match_torch_pad():
    x = torch.arange(7.0).view(1, 1, 1, 7)
    ref = F.pad(x, (3, 3, 0, 0), mode="reflect")
    torch.testing.assert_close(x[..., reflect_indices(-3, 10, 7)], ref)
    assert reflect_indices(-2, 3, 1).tolist() == [0] * 5
    assert reflect_indices(-3, 5, 2).tolist() == [1, 0, 1, 0, 1, 0, 1, 0]


def test_tile_grid_covers_image_once():
    cover = torch.zeros(100, 333, dtype=torch.int32)
    for y0, y1, x0, x1 in tile_grid(100, 333, 1000):
        assert (y1 - y0) * (x1 - x0) <= 1000
        cover[y0:y1, x0:x1] += 1
    assert (cover == 1).all()
    window = gather_window(torch.arange(20.0).view(4, 5), 0, 4, 0, 5, 2)
    assert window.shape == (8, 9)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("color", COLORS)
def test_tiled_equals_untiled(model, color):
    x = torch.rand(2, 3, 53, 71)
    whole = jnd_map(x, model, color, tile_pixels=1 << 30)
    tiled = jnd_map(x, model, color, tile_pixels=150)
    torch.testing.assert_close(tiled, whole, atol=1e-6, rtol=1e-6)


def test_channels_last_input():
    x = torch.rand(1, 3, 40, 50)
    cl = x.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(jnd_map(cl), jnd_map(x))


# --- API -------------------------------------------------------------------------------------


def test_protocol_and_errors():
    assert isinstance(ClassicJND(), JNDModel)
    x = _flat(50)
    with pytest.raises(JNDConfigError):
        jnd_map(x, "nope")
    with pytest.raises(JNDConfigError):
        jnd_map(x, "yang", "lab")
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(JNDConfigError):
            jnd_map(x, strength=bad)
    with pytest.raises(ShapeError):
        jnd_map(torch.rand(1, 1, 8, 8))
    with pytest.raises(ShapeError):
        jnd_map(torch.randint(0, 255, (1, 3, 8, 8)))
    assert issubclass(JNDConfigError, JNDGuardError)


def test_map_is_computed_without_gradient():
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    assert not jnd_map(x).requires_grad


def test_mean_levels_and_psnr_deterministic():
    x = _textured()
    j = jnd_map(x)
    levels = mean_levels(j)
    assert levels.shape == (3,) and levels[1] < levels[0] < levels[2]
    p1, p2 = noise_psnr(x, j), noise_psnr(x, j)
    assert torch.equal(p1, p2)
    assert float(noise_psnr(x, torch.zeros_like(x))[0]) == float("inf")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("model", MODELS)
def test_cuda_matches_cpu(model):
    x = torch.rand(2, 3, 64, 80)
    cpu = jnd_map(x, model, "ycbcr")
    gpu = jnd_map(x.cuda(), model, "ycbcr")
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-5, rtol=1e-5)
