"""Quality metrics: pinned PSNR/SSIM against scikit-image, piq extras, small images."""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from jndguard.core.imageio import load_image, to_tensor
from jndguard.core.metrics import MIN_SIDE, photo_report, quality, quality_report, region_report
from jndguard.errors import ShapeError

skmetrics = pytest.importorskip("skimage.metrics")

KODAK = Path(
    os.environ.get("JNDGUARD_KODAK", Path(__file__).resolve().parents[1] / "data" / "kodak")  # conftest
)


def _kodak(n: int) -> np.ndarray:
    path = KODAK / f"kodim{n:02d}.png"
    if not path.is_file():
        pytest.fail(f"Kodak image not found: {path} (set JNDGUARD_KODAK)")
    return load_image(path).pixels


def _noisy(x: np.ndarray, levels: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(-levels, levels + 1, size=x.shape)
    return np.clip(x.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def _jpeg(x: np.ndarray, q: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, format="JPEG", quality=q)
    return np.array(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _sk_ssim(x: np.ndarray, y: np.ndarray) -> float:
    return float(
        skmetrics.structural_similarity(
            x / 255.0,
            y / 255.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1,
            channel_axis=-1,
        )
    )


@pytest.mark.parametrize("n", [4, 15, 23])
@pytest.mark.parametrize("kind", ["noise3", "jpeg75"])
def test_psnr_ssim_match_skimage_on_kodak(n: int, kind: str) -> None:
    x = _kodak(n)
    y = _noisy(x, 3, seed=n) if kind == "noise3" else _jpeg(x, 75)
    tx, ty = to_tensor(x), to_tensor(y)
    ref_psnr = skmetrics.peak_signal_noise_ratio(x, y, data_range=255)
    ref_ssim = _sk_ssim(x, y)
    assert float(quality.psnr(tx, ty)[0]) == pytest.approx(ref_psnr, abs=1e-4)
    assert float(quality.ssim(tx, ty)[0]) == pytest.approx(ref_ssim, abs=1e-4)


def test_ssim_matches_skimage_on_odd_sizes_and_batches() -> None:
    rng = np.random.default_rng(0)
    xs = rng.integers(0, 256, size=(2, 37, 53, 3), dtype=np.uint8)
    ys = _noisy(xs, 20, seed=1)
    got = quality.ssim(
        torch.from_numpy(xs).permute(0, 3, 1, 2).float() / 255,
        torch.from_numpy(ys).permute(0, 3, 1, 2).float() / 255,
    )
    assert got.shape == (2,)
    for i in range(2):
        assert float(got[i]) == pytest.approx(_sk_ssim(xs[i], ys[i]), abs=1e-4)


def test_identical_images() -> None:
    x = torch.rand(1, 3, 200, 180, generator=torch.Generator().manual_seed(0))
    assert math.isinf(float(quality.psnr(x, x)[0]))
    assert float(quality.ssim(x, x)[0]) == pytest.approx(1.0, abs=1e-6)
    assert float(quality.ms_ssim(x, x)[0]) == pytest.approx(1.0, abs=1e-5)
    assert float(quality.fsim(x, x)[0]) == pytest.approx(1.0, abs=1e-5)
    assert float(quality.gmsd(x, x)[0]) == pytest.approx(0.0, abs=1e-6)
    assert float(quality.vif(x, x)[0]) == pytest.approx(1.0, abs=1e-4)


def test_piq_metrics_are_called_with_pinned_arguments() -> None:
    import piq

    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 3, 170, 170, generator=g)
    y = (x + 0.02 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    assert float(quality.ms_ssim(x, y)[0]) == pytest.approx(
        float(piq.multi_scale_ssim(x, y, data_range=1.0)), abs=1e-6
    )
    assert float(quality.vif(x, y)[0]) == pytest.approx(float(piq.vif_p(x, y)), abs=1e-6)
    assert float(quality.haarpsi(x, y)[0]) == pytest.approx(float(piq.haarpsi(x, y)), abs=1e-6)


def test_input_validation() -> None:
    x = torch.rand(1, 3, 20, 20)
    with pytest.raises(ShapeError):
        quality.psnr(x, torch.rand(1, 3, 20, 21))
    with pytest.raises(ShapeError):
        quality.ssim(x[:, :1], x[:, :1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        quality.psnr(x, x * 2)
    with pytest.raises(ShapeError, match="161"):
        quality.ms_ssim(x, x)


@pytest.mark.parametrize(
    ("size", "missing"),
    [
        ((100, 120), {"ms_ssim"}),
        ((30, 40), {"ms_ssim", "vif"}),
        ((12, 300), {"ms_ssim", "vif", "haarpsi"}),
        ((9, 9), {"ms_ssim", "vif", "haarpsi", "ssim"}),
        ((1, 1), {"ms_ssim", "vif", "haarpsi", "ssim", "fsim", "gmsd"}),
    ],
)
def test_small_images_give_none_with_reason(size: tuple[int, int], missing: set[str]) -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1, 3, *size, generator=g)
    y = (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    r = quality_report(x, y)
    assert set(r["unavailable"]) == missing
    for name in missing:
        assert r[name] is None
        assert str(MIN_SIDE[name]) in r["unavailable"][name]
    for name in {"psnr", "ssim", "ms_ssim", "fsim", "gmsd", "haarpsi", "vif"} - missing:
        assert isinstance(r[name], float) and math.isfinite(r[name])


def test_undefined_metric_becomes_none() -> None:
    black = torch.zeros(1, 3, 64, 64)
    r = quality_report(black, black)
    assert r["haarpsi"] is None and "undefined" in r["unavailable"]["haarpsi"]
    assert math.isinf(r["psnr"])
    assert r["changed"] == {
        "bbox": None,
        "pixel_count": 0,
        "pixel_fraction": 0.0,
        "channel_fraction": 0.0,
    }
    assert r["energy_share"] == {"r": 0.0, "g": 0.0, "b": 0.0}


def _levels(x: torch.Tensor) -> torch.Tensor:
    return x.mul(255).round()


def test_protection_figures() -> None:
    x = torch.full((1, 3, 40, 50), 100 / 255)
    y = x.clone()
    y[0, 0, 10, 20] += 3 / 255  # R +3 at (x=20, y=10)
    y[0, 1, 12, 25] -= 2 / 255  # G −2 at (x=25, y=12)
    y[0, 2, 30, 5] += 1 / 255  # B +1 at (x=5, y=30)
    jnd = torch.full_like(x, 2 / 255)
    r = quality_report(x, y, jnd=jnd)
    n = 40 * 50
    assert r["max_abs_change"] == 3
    assert r["energy"]["r"] == pytest.approx(9 / n)
    assert r["energy"]["g"] == pytest.approx(4 / n)
    assert r["energy"]["b"] == pytest.approx(1 / n)
    assert r["energy"]["mean"] == pytest.approx(14 / (3 * n))
    assert r["energy_share"] == pytest.approx({"r": 9 / 14, "g": 4 / 14, "b": 1 / 14})
    assert r["changed"]["bbox"] == {"x0": 5, "y0": 10, "x1": 26, "y1": 31}
    assert r["changed"]["pixel_count"] == 3
    assert r["changed"]["pixel_fraction"] == pytest.approx(3 / n)
    assert r["changed"]["channel_fraction"] == pytest.approx(3 / (3 * n))
    # |Δ| = 2 equals J = 2 levels: allowed; |Δ| = 3 exceeds it.
    assert r["jnd"]["over_count"] == 1
    assert r["jnd"]["over_fraction"] == pytest.approx(1 / (3 * n))
    assert r["jnd"]["over_fraction_per_channel"] == pytest.approx({"r": 1 / n, "g": 0.0, "b": 0.0})
    assert r["jnd"]["max_excess"] == pytest.approx(1.0)
    assert r["jnd"]["mean_jnd"] == pytest.approx(2.0)


def test_over_jnd_uses_levels_without_tolerance() -> None:
    x = torch.full((1, 3, 4, 4), 100 / 255)
    y = x.clone()
    y[0, :, 0, 0] = x[0, :, 0, 0] + 3 / 255
    r_fraction_j = quality_report(x, y, jnd=torch.full((1, 1, 4, 4), 2.4 / 255))
    assert r_fraction_j["jnd"]["over_count"] == 3  # 3 > 2.4 in all channels
    r_equal = quality_report(x, y, jnd=torch.full((1, 3, 4, 4), 3 / 255))
    assert r_equal["jnd"]["over_count"] == 0
    # a tiny float error in Z (not on the 8-bit grid) does not count as an extra level
    r_float = quality_report(x, (y + 1e-4).clamp(0, 1), jnd=torch.full((1, 3, 4, 4), 3 / 255))
    assert r_float["jnd"]["over_count"] == 0
    with pytest.raises(ShapeError):
        quality_report(x, y, jnd=torch.zeros(1, 3, 5, 4))
    with pytest.raises(ValueError):
        quality_report(x, y, jnd=torch.full((1, 3, 4, 4), -1.0))


def test_region_report() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(1, 3, 240, 320, generator=g)
    y = x.clone()
    y[..., 50:70, 100:130] = (y[..., 50:70, 100:130] + 4 / 255).clamp(0, 1)
    r = quality_report(x, y, jnd=torch.full_like(x, 1 / 255), region=(90.4, 40.0, 150.2, 80))
    reg = r["region"]
    assert reg["box"] == {"x0": 90, "y0": 40, "x1": 151, "y1": 80}
    assert (reg["width"], reg["height"]) == (61, 40)
    assert reg["changed"]["bbox"] == r["changed"]["bbox"]  # image coordinates both
    assert reg["psnr"] < r["psnr"]
    assert reg["ms_ssim"] is None and "ms_ssim" in reg["unavailable"]
    assert reg["jnd"]["over_fraction"] > r["jnd"]["over_fraction"]
    with pytest.raises(ValueError):
        quality_report(x, y, region=(400, 0, 500, 10))
    assert quality_report(x, y, region={"x0": 0, "y0": 0, "x1": 8, "y1": 8})["region"]["box"] == {
        "x0": 0,
        "y0": 0,
        "x1": 8,
        "y1": 8,
    }


def test_report_is_plain_python_and_json_ready() -> None:
    g = torch.Generator().manual_seed(4)
    x = torch.rand(3, 180, 200, generator=g)  # (3, H, W) is accepted too
    y = (x + 0.01 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    r = quality_report(x, y, jnd=torch.full_like(x, 2 / 255), region=(0, 0, 100, 100))
    text = json.dumps(r, allow_nan=False)  # no tensors, no NaN
    assert json.loads(text)["metrics_version"] == 1
    with pytest.raises(ShapeError):
        quality_report(torch.rand(2, 3, 20, 20), torch.rand(2, 3, 20, 20))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_report_on_cuda_matches_cpu() -> None:
    g = torch.Generator().manual_seed(5)
    x = torch.rand(1, 3, 200, 240, generator=g)
    y = (x + 0.02 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    j = torch.full_like(x, 2 / 255)
    cpu = quality_report(x, y, jnd=j, region=(10, 10, 120, 150))
    gpu = quality_report(x.cuda(), y.cuda(), jnd=j.cuda(), region=(10, 10, 120, 150))
    for key in ("psnr", "ssim", "ms_ssim", "fsim", "gmsd", "haarpsi", "vif"):
        assert gpu[key] == pytest.approx(cpu[key], abs=1e-4), key
    for key in ("over_fraction", "over_count", "max_excess", "mean_jnd"):
        assert gpu["jnd"][key] == pytest.approx(cpu["jnd"][key]), key
    assert gpu["changed"] == cpu["changed"]
    assert gpu["region"]["ssim"] == pytest.approx(cpu["region"]["ssim"], abs=1e-5)


@pytest.mark.parametrize("full", [False, True])
def test_photo_report_from_the_changed_window_equals_the_whole_photo(full: bool) -> None:
    """A change confined to a window: PSNR, SSIM and every protection figure computed from the
    window equal the whole-photo ones; the multi-scale metrics only on request."""
    x = to_tensor(_kodak(4))
    g = torch.Generator().manual_seed(6)
    y = x.clone()
    win = (..., slice(200, 330), slice(150, 290))
    noise = torch.randint(-3, 4, y[win].shape, generator=g).float() / 255
    y[win] = (y[win] + noise).clamp(0, 1)
    jnd = torch.full_like(x, 2 / 255)
    whole = quality_report(x, y, jnd=jnd)
    fast = photo_report(x, y, jnd, (150, 200, 290, 330), full=full)
    assert set(fast) == set(whole)
    assert fast["psnr"] == pytest.approx(whole["psnr"], abs=1e-4)
    assert fast["ssim"] == pytest.approx(whole["ssim"], abs=1e-5)
    assert fast["max_abs_change"] == whole["max_abs_change"]
    assert fast["changed"]["bbox"] == whole["changed"]["bbox"]
    assert fast["changed"]["pixel_count"] == whole["changed"]["pixel_count"]
    for key in ("pixel_fraction", "channel_fraction"):
        assert fast["changed"][key] == pytest.approx(whole["changed"][key], rel=1e-6)
    for c in ("r", "g", "b", "mean"):
        assert fast["energy"][c] == pytest.approx(whole["energy"][c], rel=1e-5)
    assert fast["energy_share"] == pytest.approx(whole["energy_share"], rel=1e-5)
    for key in ("over_fraction", "over_count", "max_excess", "mean_jnd"):
        assert fast["jnd"][key] == pytest.approx(whole["jnd"][key], rel=1e-5), key
    assert fast["jnd"]["over_fraction_per_channel"] == pytest.approx(
        whole["jnd"]["over_fraction_per_channel"], rel=1e-5)
    for name in ("ms_ssim", "fsim", "gmsd", "haarpsi", "vif"):
        if full:
            assert fast[name] == pytest.approx(whole[name], abs=1e-6)
        else:
            assert fast[name] is None and "--full-metrics" in fast["unavailable"][name]


def test_region_report_is_the_region_of_quality_report() -> None:
    g = torch.Generator().manual_seed(7)
    x = torch.rand(1, 3, 200, 220, generator=g)
    y = (x + 0.02 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    jnd = torch.full_like(x, 2 / 255)
    assert region_report(x, y, jnd, (20, 30, 190, 200)) == quality_report(
        x, y, jnd=jnd, region=(20, 30, 190, 200))["region"]


def test_large_images_are_measured_in_bands_with_the_same_figures(monkeypatch):
    """SSIM, PSNR and the protection figures of a large image are computed band by band
    (bounded memory); the figures equal the whole-image computation."""
    import torch

    from jndguard.core.metrics import protection, quality

    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 97, 61, generator=g)
    y = (x + 0.03 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    jnd = torch.full((1, 3, 97, 61), 4 / 255)
    whole = (quality.ssim(x, y), quality.psnr(x, y), protection.over_jnd(protection.level_change(x, y), jnd),
             protection.channel_energy(protection.level_change(x, y))[0])
    monkeypatch.setattr(quality, "SSIM_BAND_PIXELS", 61 * 7)  # 7-row bands
    change = protection.level_change(x, y)
    banded = (quality.ssim(x, y), quality.psnr(x, y), protection.over_jnd(change, jnd),
              protection.channel_energy(change)[0])
    assert len(quality.row_bands(97, 61)) == 14
    assert torch.allclose(whole[0], banded[0], atol=1e-6) and torch.allclose(whole[1], banded[1], atol=1e-4)
    assert torch.allclose(quality.ssim_map(x, y).mean(), banded[0][0], atol=1e-6)
    for k in ("count", "fraction", "max_excess", "mean_jnd", "fraction_per_channel"):
        assert torch.allclose(whole[2][k].double(), banded[2][k].double(), atol=1e-6), k
    assert torch.allclose(whole[3], banded[3])
