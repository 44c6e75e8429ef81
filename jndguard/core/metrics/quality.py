"""Full-reference image quality metrics with pinned definitions (docs/design.md §7).

PSNR and SSIM are implemented here so that their definitions never drift with a library
version; they are checked against scikit-image in the tests:

- PSNR: ``10·log10(1 / MSE)`` over all pixels and channels of one image, data range 1
  (same as ``skimage.metrics.peak_signal_noise_ratio(..., data_range=1)``). Identical images
  give ``inf``.
- SSIM: 11×11 Gaussian window with σ = 1.5, K1 = 0.01, K2 = 0.03, data range 1, population
  (not sample) covariance, no downsampling, only windows fully inside the image ("valid"),
  mean over the SSIM map of each channel and then over R, G, B. This equals
  ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1, channel_axis=-1)``.

MS-SSIM, FSIM, GMSD, HaarPSI and VIF come from ``piq`` (default parameters, data range 1;
``piq.vif_p`` is VIF). Every metric needs a minimum image side (:data:`MIN_SIDE`); a smaller
input raises :class:`~jndguard.errors.ShapeError` with the reason, which
:func:`~jndguard.core.metrics.report.quality_report` turns into ``None`` plus that reason.

PSNR is computed in float64 (float32 on MPS, which has no float64); SSIM in float32 on
mean-shifted inputs, which agrees with scikit-image's float64 result to about 1e-6.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from jndguard.errors import ShapeError, check_image_batch

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
#: pixels (window positions) per band of rows of :func:`ssim`, :func:`psnr` and the protection
#: figures on large images (memory: about 100 bytes each for SSIM)
SSIM_BAND_PIXELS = 2_000_000

#: Smallest image side (pixels, both height and width) each metric accepts.
MIN_SIDE: dict[str, int] = {
    "psnr": 1,
    "ssim": SSIM_WINDOW,
    # piq: (kernel_size - 1) * 2 ** (scales - 1) + 1 with 5 scales
    "ms_ssim": (SSIM_WINDOW - 1) * 2**4 + 1,
    # piq computes FSIM and GMSD on tiny inputs, but below 8 px they mean nothing
    "fsim": 8,
    "gmsd": 8,
    # piq: Haar kernel of 2 ** (scales + 1) with 3 scales
    "haarpsi": 16,
    # piq: fixed minimum of its 4-scale pyramid
    "vif": 41,
}


def _work_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float32 if x.device.type == "mps" else torch.float64


def check_pair(x: torch.Tensor, y: torch.Tensor, metric: str | None = None) -> None:
    """Validate a reference/distorted pair of image batches.

    Args:
        x: reference images.
        y: distorted images.
        metric: when given, also check the minimum side :data:`MIN_SIDE` of that metric.

    Raises:
        ShapeError: wrong rank, channel count, dtype, mismatched shapes or too small.
        ValueError: values outside [0, 1].

    Shape:
        - x, y: (B, 3, H, W), float in [0, 1].
    """
    check_image_batch(x, "original")
    check_image_batch(y, "protected")
    if x.shape != y.shape:
        raise ShapeError(f"images differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.device != y.device:
        raise ValueError(f"images are on different devices: {x.device} vs {y.device}")
    for t, name in ((x, "original"), (y, "protected")):
        lo, hi = float(t.min()), float(t.max())
        if lo < 0.0 or hi > 1.0 or math.isnan(lo) or math.isnan(hi):
            raise ValueError(f"{name} must be in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")
    if metric is not None:
        need = MIN_SIDE[metric]
        h, w = int(x.shape[-2]), int(x.shape[-1])
        if min(h, w) < need:
            raise ShapeError(f"{metric} needs at least {need} px per side, the image is {w}×{h} px")


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, data range 1.

    Args:
        x: reference images in [0, 1].
        y: distorted images in [0, 1].

    Returns:
        PSNR in dB per image (float32); ``inf`` where the images are identical.

    Shape:
        - x, y: (B, 3, H, W)
        - output: (B,)
    """
    check_pair(x, y, "psnr")
    with torch.inference_mode():
        dt = _work_dtype(x)
        sse = torch.zeros(x.shape[0], dtype=dt, device=x.device)
        for rows in row_bands(x.shape[-2], x.shape[-1]):  # large images: bounded memory
            sse += (x[..., rows, :].to(dt) - y[..., rows, :].to(dt)).square().flatten(1).sum(dim=1)
        mse = sse / x[0].numel()
        return (10.0 * torch.log10(1.0 / mse)).float()


def row_bands(height: int, width: int, pixels: int | None = None) -> list[slice]:
    """Slices of rows of an image covering at most ``pixels`` (default
    :data:`SSIM_BAND_PIXELS`) each: the figures that are sums over pixels are computed band by
    band on large images, so their float temporaries stay small."""
    rows = max(1, (pixels or SSIM_BAND_PIXELS) // max(1, width))
    return [slice(r, min(height, r + rows)) for r in range(0, max(1, height), rows)]


def _gaussian_1d(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2.0
    g = torch.exp(-(coords**2) / (2.0 * sigma**2))
    return g / g.sum()


def ssim_map(x: torch.Tensor, y: torch.Tensor, shift: torch.Tensor | None = None) -> torch.Tensor:
    """The SSIM map over all fully-contained 11×11 windows (pinned definition, see module).

    Args:
        x: reference images in [0, 1].
        y: distorted images in [0, 1].

    Returns:
        SSIM per window position and channel (float32).

    Shape:
        - x, y: (B, 3, H, W), H and W ≥ 11
        - output: (B, 3, H - 10, W - 10)

    References:
        Wang, Bovik, Sheikh, Simoncelli, "Image quality assessment: from error visibility
        to structural similarity", IEEE TIP 13(4), 2004, eq. 13.
    """
    check_pair(x, y, "ssim")
    with torch.inference_mode():
        x = x.float()
        y = y.float()
        c = x.shape[1]
        # Moments of the inputs shifted by the reference's channel means: covariances are
        # shift-invariant and the shift keeps float32 cancellation in E[x²] − μ² small
        # (agrees with scikit-image's float64 result to about 1e-6).
        shift = x.mean(dim=(2, 3), keepdim=True) if shift is None else shift.to(x)
        xs = x - shift
        ys = y - shift
        g = _gaussian_1d(SSIM_WINDOW, SSIM_SIGMA, x.dtype, x.device)
        stack = torch.cat([xs, ys, xs * xs, ys * ys, xs * ys], dim=1)  # (B, 5C, H, W)
        stack = _gaussian_valid(stack, g)
        mu_x, mu_y, e_xx, e_yy, e_xy = stack.split(c, dim=1)
        var_x = e_xx - mu_x * mu_x
        var_y = e_yy - mu_y * mu_y
        cov = e_xy - mu_x * mu_y
        mu_x = mu_x + shift
        mu_y = mu_y + shift
        c1 = SSIM_K1**2
        c2 = SSIM_K2**2
        num = (2.0 * mu_x * mu_y + c1) * (2.0 * cov + c2)
        den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
        return num / den


def _gaussian_valid(stack: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter of every plane, only where the window fits ("valid").

    On the CPU with OpenCV's separable filter (about 5× faster than torch's grouped
    convolution on a 12 MP photo's face region; same result to float32 rounding), else torch.
    """
    b, n, h, w = stack.shape
    r = g.numel() // 2
    if stack.device.type == "cpu" and stack.dtype == torch.float32 and h > 2 * r and w > 2 * r:
        import cv2

        k = g.cpu().numpy()
        planes = stack.reshape(b * n, h, w).numpy()
        out = np.empty((b * n, h - 2 * r, w - 2 * r), dtype=np.float32)
        for i in range(b * n):
            out[i] = cv2.sepFilter2D(planes[i], -1, k, k, borderType=cv2.BORDER_REFLECT_101)[r:-r, r:-r]
        return torch.from_numpy(out).reshape(b, n, h - 2 * r, w - 2 * r)
    stack = F.conv2d(stack, g.view(1, 1, 1, -1).expand(n, 1, 1, -1), groups=n)
    return F.conv2d(stack, g.view(1, 1, -1, 1).expand(n, 1, -1, 1), groups=n)


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Structural similarity per image (pinned definition, see module docstring).

    Args:
        x: reference images in [0, 1].
        y: distorted images in [0, 1].

    Returns:
        Mean SSIM over window positions and the three channels (float32).

    Shape:
        - x, y: (B, 3, H, W), H and W ≥ 11
        - output: (B,)

    References:
        Wang et al., IEEE TIP 13(4), 2004; scikit-image ``structural_similarity``.

    A large image is measured in bands of rows (overlapping by the window, so every window
    position is counted once): the same mean, without the map's five moment planes of the
    whole image in memory at once.
    """
    check_pair(x, y, "ssim")
    h, w = x.shape[-2:]
    win = SSIM_WINDOW - 1
    rows = max(1, SSIM_BAND_PIXELS // max(1, w))
    if h - win <= rows:
        return ssim_map(x, y).flatten(1).mean(dim=1)
    with torch.inference_mode():
        shift = x.float().mean(dim=(2, 3), keepdim=True)
        total = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
        for r0 in range(0, h - win, rows):
            r1 = min(h - win, r0 + rows)
            band = ssim_map(x[..., r0:r1 + win, :], y[..., r0:r1 + win, :], shift)
            total += band.double().flatten(1).sum(dim=1)
        return (total / (x.shape[1] * (h - win) * (w - win))).float()


def _piq(name: str, metric: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    import piq

    check_pair(x, y, metric)
    with torch.inference_mode():
        out = getattr(piq, name)(x.float(), y.float(), data_range=1.0, reduction="none")
    return out.reshape(x.shape[0]).float()


def ms_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Multi-scale SSIM (5 scales, 11×11 Gaussian σ = 1.5, paper weights) via ``piq``.

    Args:
        x: reference images in [0, 1].
        y: distorted images in [0, 1].

    Returns:
        MS-SSIM per image.

    Shape:
        - x, y: (B, 3, H, W), H and W ≥ 161
        - output: (B,)

    References:
        Wang, Simoncelli, Bovik, "Multi-scale structural similarity for image quality
        assessment", Asilomar 2003.
    """
    return _piq("multi_scale_ssim", "ms_ssim", x, y)


def fsim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """FSIMc (chromatic feature similarity) via ``piq.fsim``; 1 means identical.

    Shape:
        - x, y: (B, 3, H, W), H and W ≥ 8
        - output: (B,)

    References:
        Zhang, Zhang, Mou, Zhang, "FSIM: a feature similarity index", IEEE TIP 20(8), 2011.
    """
    return _piq("fsim", "fsim", x, y)


def gmsd(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradient magnitude similarity deviation via ``piq.gmsd``; 0 means identical.

    Shape:
        - x, y: (B, 3, H, W), H and W ≥ 8
        - output: (B,)

    References:
        Xue, Zhang, Mou, Bovik, "Gradient magnitude similarity deviation", IEEE TIP 23(2), 2014.
    """
    return _piq("gmsd", "gmsd", x, y)


def haarpsi(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Haar wavelet-based perceptual similarity index via ``piq.haarpsi``; 1 means identical.

    Shape:
        - x, y: (B, 3, H, W), H and W ≥ 16
        - output: (B,)

    References:
        Reisenhofer et al., "A Haar wavelet-based perceptual similarity index", 2018.
    """
    return _piq("haarpsi", "haarpsi", x, y)


def vif(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pixel-domain visual information fidelity via ``piq.vif_p``; 1 means identical.

    Shape:
        - x, y: (B, 3, H, W), H and W ≥ 41
        - output: (B,)

    References:
        Sheikh, Bovik, "Image information and visual quality", IEEE TIP 15(2), 2006.
    """
    return _piq("vif_p", "vif", x, y)
