"""Differentiable crop + resize from full-resolution photos to recogniser input.

The recogniser sees ``resize(crop(X + δ), 160)``; gradients flow back to the full-resolution
pixels (docs/design.md §2). ``torchvision.ops.roi_align`` averages ``sampling_ratio²`` bilinear samples
per output pixel, which anti-aliases the downscale like an area filter and is differentiable
with respect to the image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torchvision.ops import roi_align

from jndguard.errors import check_image_batch

RECOGNISER_SIZE = 160


def expand_box(
    box: Sequence[float], margin: float = 0.0, jitter: Sequence[float] = (0.0, 0.0, 0.0)
) -> tuple[float, float, float, float]:
    """Grow a box by ``margin`` × its size on each side, then shift/scale it.

    Args:
        box: ``(x1, y1, x2, y2)``.
        margin: fraction of width/height added on each side.
        jitter: ``(dx, dy, ds)``: shift by fractions of the size, scale by ``1 + ds``.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    cx, cy = (x1 + x2) / 2 + jitter[0] * w, (y1 + y2) / 2 + jitter[1] * h
    s = (1 + 2 * margin) * (1 + jitter[2])
    return (cx - w * s / 2, cy - h * s / 2, cx + w * s / 2, cy + h * s / 2)


def crop_resize(
    images: torch.Tensor,
    boxes: torch.Tensor | Sequence[Sequence[float]],
    batch_index: Sequence[int] | None = None,
    size: int = RECOGNISER_SIZE,
) -> torch.Tensor:
    """Crop boxes out of images and resize them to ``size × size`` (differentiable).

    Args:
        images: photos in [0, 1].
        boxes: ``(N, 4)`` boxes ``(x1, y1, x2, y2)`` in pixel coordinates of ``images``.
            Parts of a box outside the image read as zeros (as MTCNN's crops pad).
        batch_index: which image each box comes from (default: box ``i`` from image 0).
        size: output side length.

    Returns:
        ``(N, 3, size, size)`` crops.

    Shape:
        images ``(B, 3, H, W)``; boxes ``(N, 4)``.
    """
    check_image_batch(images)
    b = torch.as_tensor(boxes, dtype=images.dtype, device=images.device).reshape(-1, 4)
    n = b.shape[0]
    idx = torch.zeros(n, 1, dtype=images.dtype, device=images.device)
    if batch_index is not None:
        idx[:, 0] = torch.as_tensor(list(batch_index), dtype=images.dtype)
    rois = torch.cat([idx, b], dim=1)
    # samples per output pixel and axis: enough to cover the footprint (area-like downscale);
    # an exact 2× box gives 2×2 average pooling, a 1× box the identity
    box_side = float((b[:, 2:] - b[:, :2]).max()) if n else 0.0
    ratio = max(1, min(8, math.ceil(box_side / size - 1e-6)))
    return roi_align(images, rois, output_size=(size, size), spatial_scale=1.0,
                     sampling_ratio=ratio, aligned=True)
