"""Carry a full-resolution JND map into recogniser-crop coordinates (min-pool).

The recogniser sees ``resize(crop(X + δ), 160)``. The budget of a crop pixel must hold for
every full-resolution pixel that feeds it, so the map is carried over with a *min* over each
crop pixel's footprint, never recomputed on the small crop (docs/jnd.md, "Implementation notes").
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from jndguard.core.jnd._errors import JNDConfigError
from jndguard.errors import check_image_batch

_TOL = 1e-9


def _footprints(lo: float, hi: float, out: int, n: int, device: torch.device) -> Tensor:
    """(out, L) indices of the pixels each output cell's footprint covers (last one repeated)."""
    step = (hi - lo) / out
    a = lo + step * torch.arange(out, dtype=torch.float64)
    b = a + step
    first = torch.floor(a + _TOL * max(1.0, abs(step)))
    last = torch.ceil(b - _TOL * max(1.0, abs(step))) - 1
    last = torch.maximum(last, first)
    first = first.clamp(0, n - 1).long()
    last = last.clamp(0, n - 1).long()
    length = int((last - first).max()) + 1
    idx = first[:, None] + torch.arange(length)[None, :]
    return torch.minimum(idx, last[:, None]).to(device)


def jnd_to_crop(
    jnd: Tensor,
    box: Sequence[float] | Tensor,
    size: int | tuple[int, int] = 160,
) -> Tensor:
    """Min-pool a full-resolution map onto a ``size × size`` crop grid.

    Pixel ``k`` of the full image covers the interval ``[k, k+1)``, so a box ``(0, 0, W, H)``
    is the whole image. Output pixel ``(i, j)`` has the footprint
    ``[x1 + j·sx, x1 + (j+1)·sx) × [y1 + i·sy, y1 + (i+1)·sy)`` with
    ``sx = (x2 − x1)/size_w``, ``sy = (y2 − y1)/size_h``; its value is the minimum of J over
    every full-resolution pixel that footprint overlaps (at least one). Parts of the box
    outside the image use the nearest image pixels.

    Args:
        jnd: full-resolution map from :func:`~jndguard.core.jnd.jnd_map`.
        box: ``(x1, y1, x2, y2)`` in full-resolution pixel coordinates, floats allowed.
        size: output side (or ``(height, width)``).

    Returns:
        The crop-coordinate map, dtype and device of ``jnd`` (differentiable w.r.t. ``jnd``).

    Shape:
        - jnd: (B, 3, H, W)
        - output: (B, 3, size, size)

    Raises:
        ShapeError: ``jnd`` is not (B, 3, H, W).
        JNDConfigError: a malformed or empty box, a box entirely outside the image, or a
            non-positive size.

    References:
        docs/jnd.md, "Implementation notes" (faces at recogniser resolution).
    """
    check_image_batch(jnd, "jnd")
    out_h, out_w = (size, size) if isinstance(size, int) else tuple(size)
    if int(out_h) != out_h or int(out_w) != out_w or out_h < 1 or out_w < 1:
        raise JNDConfigError(f"size must be a positive int or (h, w), got {size!r}")
    if isinstance(box, Tensor):
        box = box.detach().flatten().tolist()
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
    except (TypeError, ValueError) as exc:
        raise JNDConfigError(f"box must be four numbers (x1, y1, x2, y2), got {box!r}") from exc
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or x2 <= x1 or y2 <= y1:
        raise JNDConfigError(f"box must be finite with x2 > x1 and y2 > y1, got {box!r}")
    h, w = jnd.shape[-2:]
    if x2 <= 0 or y2 <= 0 or x1 >= w or y1 >= h:
        raise JNDConfigError(f"box {box!r} lies entirely outside the {w}×{h} image")
    rows = _footprints(y1, y2, int(out_h), h, jnd.device)
    cols = _footprints(x1, x2, int(out_w), w, jnd.device)
    r0, r1 = int(rows.min()), int(rows.max()) + 1
    sub = jnd[:, :, r0:r1]
    b, c = sub.shape[:2]
    t = sub.index_select(-1, cols.flatten()).view(b, c, r1 - r0, int(out_w), cols.shape[1])
    t = t.amin(dim=-1)
    t = t.index_select(-2, (rows - r0).flatten()).view(b, c, int(out_h), rows.shape[1], int(out_w))
    return t.amin(dim=-2)
