"""The JND map of a photo on some of its rectangles, without the whole map in memory.

A protection needs J only where it changes pixels (its face regions) and, for the report, the
mean of J over the whole photo. :func:`jnd_regions` walks the photo's tiles once, straight from
its 8-bit pixels: each tile is converted to float with its halo (the photo's own pixels, or the
photo's reflection at its border, as :func:`~jndguard.core.jnd.tiling.gather_window` does), its
J is added to the mean and copied into the rectangles it meets, and the tile is dropped. The
values are those of :func:`~jndguard.core.jnd.jnd_map` on the whole photo (the same tile
computation on the same inputs). Canny's edge map (Yang's edge protection) is not local — its
thresholds follow the photo's largest gradient and its hysteresis follows edges anywhere — so it
is computed once on the whole photo, in integer planes (about 11 bytes per pixel for a moment,
1 byte per pixel kept). Learned models without a declared halo are run on the whole photo.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from jndguard.core.jnd.classic import ClassicJND, _canny_fixed_point, _fixed_point_luma
from jndguard.core.jnd.tiling import default_tile_pixels, reflect_indices, tile_grid

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)


def _to_tensor(pixels: np.ndarray, device) -> Tensor:
    t = torch.from_numpy(np.ascontiguousarray(pixels)).to(device)
    return t.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def photo_edges(pixels: np.ndarray, tile_pixels: int) -> np.ndarray:
    """Canny edges (uint8 0/1, ``(H, W)``) of a photo's luma, as
    :func:`~jndguard.core.jnd.classic.canny_edges` computes them, converted band by band."""
    h, w = pixels.shape[:2]
    y16 = np.empty((h, w), dtype=np.int16)
    rows = max(1, tile_pixels // max(w, 1))
    for r in range(0, h, rows):
        y16[r:r + rows] = _fixed_point_luma(_to_tensor(pixels[r:r + rows], "cpu"), tile_pixels)[0]
    edges = _canny_fixed_point(y16)
    del y16
    return edges


def _padded(a: np.ndarray, y0: int, y1: int, x0: int, x1: int, halo: int) -> np.ndarray:
    """Rows ``y0:y1`` and columns ``x0:x1`` of ``a`` with a halo reflected at its border."""
    h, w = a.shape[:2]
    ya, yb, xa, xb = y0 - halo, y1 + halo, x0 - halo, x1 + halo
    out = a[max(0, ya):min(h, yb)] if ya >= 0 and yb <= h else a[reflect_indices(ya, yb, h).numpy()]
    if xa >= 0 and xb <= w:
        return out[:, xa:xb]
    return out[:, reflect_indices(xa, xb, w).numpy()]


@torch.no_grad()
def jnd_regions(pixels: np.ndarray, rects: Sequence[Rect], model="yang", color: str | None = None,
                strength: float = 1.0, device: torch.device | str = "cpu",
                tile_pixels: int | None = None) -> tuple[list[Tensor], float]:
    """J on each rectangle of a photo and its mean over the whole photo (module docstring).

    Args:
        pixels: the ``(H, W, 3)`` uint8 photo.
        rects: ``(x0, y0, x1, y1)`` rectangles inside it.
        model, color, strength: as :func:`~jndguard.core.jnd.jnd_map`.
        device: where the maps are computed and returned.
        tile_pixels: tile budget (default: the device's).

    Returns:
        ``([(1, 3, y1 − y0, x1 − x0) float32 maps in [0, 1] units], mean of J in 8-bit levels)``.
    """
    from jndguard.core.jnd.engine import _check_strength, jnd_map, resolve_model

    device = torch.device(device)
    s = _check_strength(strength)
    estimator = resolve_model(model, color)
    h, w = pixels.shape[:2]
    if not isinstance(estimator, ClassicJND):  # a learned model: the whole photo
        full = jnd_map(_to_tensor(pixels, device), estimator, None, s, tile_pixels=tile_pixels)
        out = [full[:, :, y0:y1, x0:x1].clone() for x0, y0, x1, y1 in rects]
        mean = float(full.double().mean() * 255.0)
        return out, mean
    budget = tile_pixels or default_tile_pixels(device)
    edges = photo_edges(pixels, budget)[..., None] if estimator.needs_edges else None
    halo = estimator.halo
    out = [torch.empty((1, 3, y1 - y0, x1 - x0), dtype=torch.float32, device=device)
           for x0, y0, x1, y1 in rects]
    total = 0.0
    for ty0, ty1, tx0, tx1 in tile_grid(h, w, budget):
        tiles = [_to_tensor(_padded(pixels, ty0, ty1, tx0, tx1, halo), device)]
        if edges is not None:
            e = _padded(edges, ty0, ty1, tx0, tx1, halo)
            tiles.append(torch.from_numpy(np.ascontiguousarray(e)).permute(2, 0, 1)[None].to(device))
        j = estimator._tile(tiles).float()
        if s != 1.0:
            j.mul_(s)
        total += float(j.double().sum())
        for (x0, y0, x1, y1), o in zip(rects, out):
            ix0, iy0, ix1, iy1 = max(x0, tx0), max(y0, ty0), min(x1, tx1), min(y1, ty1)
            if ix0 < ix1 and iy0 < iy1:
                o[:, :, iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = (
                    j[:, :, iy0 - ty0:iy1 - ty0, ix0 - tx0:ix1 - tx0])
    return out, total / (3 * h * w) * 255.0


class RegionMaps:
    """A photo-sized ``(H, W, 3)`` map in 8-bit levels that is known on some rectangles (the
    face regions a protection computed J on) and NaN elsewhere, without holding the whole map:
    slicing (``maps[y0:y1, x0:x1]``) builds just that part; ``np.asarray(maps)`` the whole.

    Args:
        height, width: the photo's size.
        rects: ``(x0, y0, x1, y1)`` per map.
        maps: ``(1, 3, h, w)`` tensors in [0, 1] units (J), one per rectangle (kept as numpy).
    """

    dtype = np.dtype(np.float32)
    ndim = 3

    def __init__(self, height: int, width: int, rects: Sequence[Rect], maps: Sequence[Tensor]) -> None:
        self.shape = (int(height), int(width), 3)
        self.rects = [tuple(int(v) for v in r) for r in rects]
        # numpy, so the desktop app's helper process sends them out of band (pickle protocol 5)
        self.maps = [np.asarray(m.detach().float().cpu().numpy()[0]) for m in maps]

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if len(key) > 2 or not all(isinstance(k, slice) and k.step in (None, 1) for k in key):
            raise TypeError("RegionMaps takes [y0:y1, x0:x1] slices")
        ys = key[0].indices(self.shape[0])
        xs = key[1].indices(self.shape[1]) if len(key) > 1 else (0, self.shape[1], 1)
        y0, y1, x0, x1 = ys[0], max(ys[0], ys[1]), xs[0], max(xs[0], xs[1])
        out = np.full((y1 - y0, x1 - x0, 3), np.nan, dtype=np.float32)
        for (a0, b0, a1, b1), m in zip(self.rects, self.maps):
            ix0, iy0, ix1, iy1 = max(x0, a0), max(y0, b0), min(x1, a1), min(y1, b1)
            if ix0 < ix1 and iy0 < iy1:
                part = m[:, iy0 - b0:iy1 - b0, ix0 - a0:ix1 - a0].transpose(1, 2, 0) * 255.0
                out[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = part
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:, :]
        return out if dtype is None else out.astype(dtype)
