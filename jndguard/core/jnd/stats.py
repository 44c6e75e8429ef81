"""Statistics of a JND map: mean per channel, and the PSNR of random ±J noise."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from jndguard.core.jnd.color import budget_to_rgb, check_color
from jndguard.errors import ShapeError, check_image_batch

_BAND_PIXELS = 1 << 20


def mean_levels(jnd: Tensor) -> Tensor:
    """Mean threshold per channel in 8-bit grey levels (float64, on the CPU).

    Shape:
        - jnd: (B, 3, H, W)
        - output: (3,)
    """
    check_image_batch(jnd, "jnd")
    return jnd.double().mean(dim=(0, 2, 3)).cpu() * 255.0


def noise_psnr(
    images: Tensor, jnd: Tensor, *, color: str | None = "scaled", seed: int = 0
) -> Tensor:
    """PSNR of each image with random-sign ±J noise added (clipped to [0, 1], not quantised).

    Signs are independent per pixel and channel, drawn from a CPU ``torch.Generator`` seeded
    with ``seed`` (image by image, in bands of rows of about a megapixel), so results do not
    depend on the device and memory stays bounded on large photos. For a ``"ycbcr"`` map the
    signed budget is mapped back to RGB first.

    Args:
        images: RGB images in [0, 1].
        jnd: their map, [0, 1] units.
        color: the colour mode of the map (``None``: an RGB map).
        seed: random seed.

    Returns:
        PSNR in dB per image (float64, CPU); ``inf`` where nothing changed.

    Shape:
        - images: (B, 3, H, W)
        - jnd: (B, 3, H, W)
        - output: (B,)

    References:
        docs/jnd.md, "Checks", item 2.
    """
    check_image_batch(images)
    check_image_batch(jnd, "jnd")
    if images.shape != jnd.shape:
        raise ShapeError(f"images {tuple(images.shape)} and jnd {tuple(jnd.shape)} differ")
    color = check_color(color) if color is not None else "scaled"
    gen = torch.Generator().manual_seed(seed)
    b, _, h, w = images.shape
    rows = max(1, _BAND_PIXELS // w)
    out = torch.empty(b, dtype=torch.float64)
    with torch.no_grad():
        for i in range(b):
            sse = 0.0
            for r in range(0, h, rows):
                x = images[i : i + 1, :, r : r + rows]
                shape = (1, 3, x.shape[-2], w)
                signs = torch.randint(0, 2, shape, generator=gen, dtype=torch.int8)
                s = signs.to(device=x.device, dtype=x.dtype) * 2 - 1
                delta = budget_to_rgb(s * jnd[i : i + 1, :, r : r + rows], color)
                diff = (x + delta).clamp(0, 1) - x
                sse += float(diff.double().square().sum())
            mse = sse / (3 * h * w)
            out[i] = math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)
    return out
