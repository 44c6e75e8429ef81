"""Landmark alignment: a differentiable affine warp and dlib's face chips, reproduced exactly.

Coordinates: pixel ``(row i, column j)`` of an image has its centre at ``(x, y) = (j, i)``
(dlib's, OpenCV's and ``grid_sample(align_corners=True)``'s convention); transforms map chip
pixel coordinates ``(x, y)`` to photo pixel coordinates.

:func:`warp_affine` is the generic warp: bilinear sampling of the full-resolution photo, so
gradients reach the photo's pixels (it equals ``grid_sample(align_corners=True,
padding_mode="zeros")`` with the coordinates kept in float64).

:func:`dlib_face_chip` reproduces ``dlib.get_face_chip`` / ``extract_image_chips``
(``dlib/image_transforms/interpolation.h``) step by step:

1. :func:`dlib_chip_details`: ``get_face_chip_details(shape, 150, 0.25)``: the similarity
   transform (Umeyama, "Least-squares estimation of transformation parameters between two
   point patterns", TPAMI 1991) from dlib's 5-point mean face, padded, to the landmarks;
   kept as dlib keeps it, a rectangle ``centered_drect(T(size/2), size·s, size·s)`` and an
   angle;
2. when the chip is more than about 2× smaller than its rectangle, dlib first builds a
   ``pyramid_down<2>`` pyramid (5×5 ``[1 4 6 4 1]²/256`` filter, stride 2, integer results)
   of the face's neighbourhood and samples the level whose rectangle, halved once more,
   would be smaller than the chip; that is reproduced here as a strided convolution;
3. bilinear sampling of the chip's pixel grid spread over the (rotated) rectangle's corners;
   a sample whose 2×2 neighbourhood leaves the (sub-)image is black;
4. dlib stores every stage as 8-bit pixels, truncating; ``quantise=True`` does the same in
   the forward pass with a straight-through gradient (Bengio et al., "Estimating or
   Propagating Gradients Through Stochastic Neurons", 2013), so the port's descriptor equals
   dlib's on an 8-bit photo while the gradient still reaches every pixel.

Landmarks come from dlib's ``shape_predictor_5_face_landmarks.dat`` on the clean photo
(Kazemi and Sullivan, "One Millisecond Face Alignment with an Ensemble of Regression Trees",
CVPR 2014); they are not differentiated, like the MTCNN boxes.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from jndguard.errors import ShapeError, check_image_batch

# dlib's 5-point mean face (get_face_chip_details): outer/inner corner of the left eye in the
# image (the person's left), the same for the right eye, the bottom of the nose; unit square.
DLIB_MEAN_FACE_5 = np.array([
    (0.8595674595992, 0.2134981538014),
    (0.6460604764104, 0.2289674387677),
    (0.1205750620789, 0.2137274526848),
    (0.3340850613712, 0.2290642403242),
    (0.4901123135679, 0.6277975316475),
])
DLIB_CHIP_SIZE = 150
DLIB_CHIP_PADDING = 0.25
_QUANT_EPS = 1e-3  # < 1/256: absorbs float error in sums that are exact multiples of 1/256


# -- generic warp --------------------------------------------------------------------------


def _bilinear(x: torch.Tensor, px: torch.Tensor, py: torch.Tensor, strict: bool) -> torch.Tensor:
    """Sample ``x`` ``(N, C, H, W)`` at float64 pixel coordinates ``px, py`` ``(N, P)``."""
    n, c, h, w = x.shape
    left, top = torch.floor(px), torch.floor(py)
    fx, fy = (px - left).to(x.dtype), (py - top).to(x.dtype)
    left, top = left.long(), top.long()
    flat = x.reshape(n, c, h * w)
    out = torch.zeros(n, c, px.shape[1], dtype=x.dtype, device=x.device)
    inside_all = torch.ones_like(px, dtype=torch.bool)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            xx, yy = left + dx, top + dy
            inside = (xx >= 0) & (xx < w) & (yy >= 0) & (yy < h)
            inside_all &= inside
            idx = (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1))[:, None, :].expand(n, c, -1)
            weight = (wx * wy * inside.to(x.dtype))[:, None, :]
            out = out + torch.gather(flat, 2, idx) * weight
    if strict:
        out = out * inside_all[:, None, :].to(x.dtype)
    return out


def warp_affine(x: torch.Tensor, photo_from_chip: torch.Tensor | np.ndarray,
                size: int | tuple[int, int], strict_border: bool = False) -> torch.Tensor:
    """Differentiable affine warp of full-resolution photos into chips.

    Args:
        x: photos in [0, 1], ``(1, 3, H, W)`` (shared by every chip) or ``(N, 3, H, W)``.
        photo_from_chip: ``(N, 2, 3)`` (or ``(2, 3)``): chip pixel ``(x, y, 1)`` → photo
            pixel ``(x, y)``, pixel centres at integer coordinates.
        size: chip side, or ``(height, width)``.
        strict_border: dlib's rule (a sample is black when any of its four neighbours lies
            outside the photo) instead of treating outside pixels as zeros.

    Returns:
        ``(N, 3, height, width)`` chips, bilinear; gradients flow to ``x``.
    """
    check_image_batch(x, "x")
    t = torch.as_tensor(photo_from_chip, dtype=torch.float64, device=x.device)
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3 or t.shape[1:] != (2, 3):
        raise ShapeError(f"photo_from_chip must be (N, 2, 3), got {tuple(t.shape)}")
    n = t.shape[0]
    if x.shape[0] not in (1, n):
        raise ShapeError(f"{x.shape[0]} photos for {n} transforms")
    hh, ww = (size, size) if isinstance(size, int) else size
    ys, xs = torch.meshgrid(torch.arange(hh, dtype=torch.float64, device=x.device),
                            torch.arange(ww, dtype=torch.float64, device=x.device), indexing="ij")
    grid = torch.stack([xs.reshape(-1), ys.reshape(-1), torch.ones(hh * ww, dtype=torch.float64,
                                                                   device=x.device)])
    pts = t @ grid  # (N, 2, P)
    src = x.expand(n, -1, -1, -1) if x.shape[0] == 1 else x
    out = _bilinear(src, pts[:, 0], pts[:, 1], strict_border)
    return out.reshape(n, x.shape[1], hh, ww)


# -- dlib's chip geometry ------------------------------------------------------------------


def _similarity(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """dlib's ``find_similarity_transform``: ``dst ≈ M·src + t`` (Umeyama 1991, eqs. 34–43)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    sigma_s = ((src - mu_s) ** 2).sum(1).mean()
    cov = (dst - mu_d).T @ (src - mu_s) / len(src)
    u, d, vt = np.linalg.svd(cov)
    s = np.eye(2)
    det = np.linalg.det(cov)
    if det < 0 or (det == 0 and np.linalg.det(u) * np.linalg.det(vt) < 0):
        s[1, 1] = -1  # numpy's singular values are sorted: d[1] <= d[0]
    r = u @ s @ vt
    c = (d * np.diag(s)).sum() / sigma_s if sigma_s != 0 else 1.0
    m = c * r
    return m, mu_d - m @ mu_s


@dataclass(frozen=True)
class ChipDetails:
    """dlib's ``chip_details``: a rectangle ``(left, top, right, bottom)`` in photo pixels
    (dlib's inclusive ``drectangle``), a rotation about its centre, and the chip size."""

    rect: tuple[float, float, float, float]
    angle: float
    rows: int
    cols: int

    def corners(self, rect: tuple[float, float, float, float] | None = None) -> np.ndarray:
        """Top-left, top-right, bottom-left corners of ``rect`` rotated about its centre."""
        l, t, r, b = self.rect if rect is None else rect
        c = np.array([(l + r) / 2, (t + b) / 2])
        rot = np.array([[math.cos(self.angle), -math.sin(self.angle)],
                        [math.sin(self.angle), math.cos(self.angle)]])
        return np.array([rot @ (np.array(p) - c) + c for p in ((l, t), (r, t), (l, b))])

    def photo_from_chip(self, rect: tuple[float, float, float, float] | None = None) -> np.ndarray:
        """``(2, 3)`` map of chip pixels onto the rectangle: chip ``(0, 0)``, ``(cols−1, 0)``,
        ``(0, rows−1)`` land on its rotated top-left, top-right, bottom-left corners."""
        tl, tr, bl = self.corners(rect)
        return np.column_stack([(tr - tl) / (self.cols - 1), (bl - tl) / (self.rows - 1), tl])


def dlib_chip_details(points: Sequence[Sequence[float]] | np.ndarray, size: int = DLIB_CHIP_SIZE,
                      padding: float = DLIB_CHIP_PADDING) -> ChipDetails:
    """dlib's ``get_face_chip_details`` for a 5-point shape (``shape_predictor_5_face_landmarks``
    order)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if pts.shape != (5, 2):
        raise ShapeError(f"dlib_chip_details needs 5 landmarks, got {pts.shape[0]}")
    template = (padding + DLIB_MEAN_FACE_5) / (2 * padding + 1) * size
    m, t = _similarity(template, pts)
    p = m @ np.array([1.0, 0.0])
    angle = math.atan2(p[1], p[0])
    scale = math.hypot(p[0], p[1])
    cx, cy = m @ np.array([size / 2.0, size / 2.0]) + t
    half = (size * scale - 1) / 2  # centered_drect: width−1 between the inclusive edges
    return ChipDetails((cx - half, cy - half, cx + half, cy + half), angle, size, size)


def dlib_chip_transform(points: Sequence[Sequence[float]] | np.ndarray, size: int = DLIB_CHIP_SIZE,
                        padding: float = DLIB_CHIP_PADDING) -> np.ndarray:
    """The ``(2, 3)`` chip → photo map of dlib's face chip for 5 landmarks (see
    :func:`warp_affine`); the pyramid step of :func:`dlib_face_chip` is not in it."""
    return dlib_chip_details(points, size, padding).photo_from_chip()


# -- dlib's extract_image_chips, differentiable --------------------------------------------


def _floor_ste(v: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """``floor(clamp(v, 0, 255) + eps)`` forward (an 8-bit store), identity backward."""
    return v + (torch.floor(v.clamp(0.0, 255.0) + eps) - v).detach()


def _snap_ste(v: torch.Tensor, tol: float = _QUANT_EPS) -> torch.Tensor:
    """Values within ``tol`` of an integer become that integer (forward only)."""
    r = torch.round(v)
    return v + torch.where((r - v).abs() < tol, r - v, torch.zeros_like(v)).detach()


_PYR_TAPS = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])


def _pyramid_down(v: torch.Tensor, quantise: bool) -> torch.Tensor:
    """dlib's ``pyramid_down<2>`` on 0–255 images ``(N, C, H, W)``: output pixel ``(r, c)``
    is ``⌊Σ w_i w_j · in[2r+i][2c+j] / 256⌋`` with ``w = [1 4 6 4 1]``, size ``(H−3)//2``."""
    n, c, h, w = v.shape
    k = torch.outer(_PYR_TAPS, _PYR_TAPS).to(v) / 256.0
    out = F.conv2d(v.reshape(n * c, 1, h, w), k[None, None], stride=2)
    out = out.reshape(n, c, out.shape[2], out.shape[3])
    return _floor_ste(out, _QUANT_EPS) if quantise else out


def _rect_down(rect: tuple[float, ...]) -> tuple[float, ...]:
    """``pyramid_down<2>::rect_down``: each corner ``p/2 − (1.25, 0.75)``."""
    l, t, r, b = rect
    return (l / 2 - 1.25, t / 2 - 0.75, r / 2 - 1.25, b / 2 - 0.75)


def _area(rect: tuple[float, ...]) -> float:
    l, t, r, b = rect
    return 0.0 if (t > b or l > r) else (r - l + 1) * (b - t + 1)


def _round_half_up(v: float) -> int:
    return math.floor(v + 0.5)


def _dlib_plan(details: ChipDetails, width: float, height: float):
    """What ``extract_image_chips`` reads: the integer region ``(left, top, right, bottom)``
    (inclusive) its pyramid is built on, the pyramid level sampled (−1: none) and the chip
    rectangle in that level's coordinates; None when the region is empty."""
    size = details.rows * details.cols
    # pyramid depth: a 2-pixel border per level, doubled for every level above it
    rect, grow = _rect_down(details.rect), 2.0
    while _area(rect) > size:
        rect, grow = _rect_down(rect), grow * 2 + 2
    tl, tr, bl = details.corners()
    pts = np.array([tl, tr, bl, tr + bl - tl])
    bb = (max(pts[:, 0].min() - grow, 0.0), max(pts[:, 1].min() - grow, 0.0),
          min(pts[:, 0].max() + grow, width - 1.0), min(pts[:, 1].max() + grow, height - 1.0))
    left, top, right, bottom = (_round_half_up(v) for v in bb)
    if right < left or bottom < top:
        return None
    l, t, r, b = details.rect
    rect = (l - left, t - top, r - left, b - top)
    level = -1
    while _area(_rect_down(rect)) > size:
        level += 1
        rect = _rect_down(rect)
    return (left, top, right, bottom), level, rect


def dlib_chip_footprint(details: ChipDetails) -> tuple[int, int, int, int]:
    """The photo pixels ``(left, top, right, bottom)`` (inclusive) :func:`dlib_face_chip`
    reads, before clipping to the photo."""
    plan = _dlib_plan(details, math.inf, math.inf)
    assert plan is not None
    return plan[0]


def dlib_face_chip(x: torch.Tensor, details: ChipDetails, quantise: bool = True) -> torch.Tensor:
    """dlib's ``extract_image_chip(img, details, chip)`` as a differentiable function.

    Args:
        x: the photo ``(1, 3, H, W)`` in [0, 1] (full resolution).
        details: from :func:`dlib_chip_details` on the clean photo's landmarks.
        quantise: truncate every 8-bit stage like dlib (straight-through gradient).

    Returns:
        ``(1, 3, rows, cols)`` in [0, 1]; on an 8-bit photo equal to ``dlib.get_face_chip``.
    """
    check_image_batch(x, "x")
    if x.shape[0] != 1:
        raise ShapeError(f"dlib_face_chip takes one photo (1, 3, H, W), got {tuple(x.shape)}")
    plan = _dlib_plan(details, x.shape[3], x.shape[2])
    if plan is None:
        return torch.zeros(1, 3, details.rows, details.cols, dtype=x.dtype, device=x.device)
    (bl_, bt_, br_, bb_), level, rect = plan
    v = x[:, :, bt_:bb_ + 1, bl_:br_ + 1].to(torch.float64) * 255.0
    if quantise:
        v = _snap_ste(v)
    for _ in range(level + 1):
        if v.shape[2] <= 8 or v.shape[3] <= 8:
            return torch.zeros(1, 3, details.rows, details.cols, dtype=x.dtype, device=x.device)
        v = _pyramid_down(v, quantise)
    chip = warp_affine(v, details.photo_from_chip(rect), (details.rows, details.cols),
                       strict_border=True)
    if quantise:
        chip = _floor_ste(chip, 1e-6)
    return (chip / 255.0).to(x.dtype)


def dlib_face_chips(x: torch.Tensor, details: Sequence[ChipDetails], quantise: bool = True
                    ) -> torch.Tensor:
    """:func:`dlib_face_chip` for several faces of one photo, ``(N, 3, rows, cols)`` (each chip
    extracted on its own, as ``compute_face_descriptor`` does for one face)."""
    if not details:
        raise ShapeError("dlib_face_chips needs at least one face")
    return torch.cat([dlib_face_chip(x, d, quantise) for d in details])


# -- landmarks (dlib, on the clean photo) ---------------------------------------------------


_DLIB_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _shape_predictor():
    import dlib

    from jndguard.core.models.dlib_resnet import SHAPE_MODEL_FILE, dlib_model_file

    return dlib.shape_predictor(str(dlib_model_file(SHAPE_MODEL_FILE)))


@lru_cache(maxsize=1)
def _hog_detector():
    import dlib

    return dlib.get_frontal_face_detector()


def dlib_rectangle(box: Sequence[float]):
    """A face box ``(x1, y1, x2, y2)`` as the ``dlib.rectangle`` the landmarker is given
    (rounded, clipped at 0; the black-box check in verification uses the same)."""
    import dlib

    x1, y1, x2, y2 = (round(v) for v in box)
    return dlib.rectangle(max(0, x1), max(0, y1), x2, y2)


def dlib_landmarks(pixels: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """dlib's 5 landmarks ``(5, 2)`` (integer pixel coordinates, as dlib returns them) of the
    face in ``box`` (e.g. an MTCNN ``Face.box``) of an ``(H, W, 3)`` uint8 RGB photo."""
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ShapeError("dlib_landmarks takes an (H, W, 3) uint8 RGB array")
    with _DLIB_LOCK:
        shape = _shape_predictor()(np.ascontiguousarray(pixels), dlib_rectangle(box))
    return np.array([(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)],
                    dtype=np.float64)


def dlib_hog_boxes(pixels: np.ndarray, upsample: int = 1) -> list[tuple[float, float, float, float]]:
    """Face boxes ``(x1, y1, x2, y2)`` from dlib's HOG detector (``get_frontal_face_detector``),
    ``upsample`` times upsampled, in detection order."""
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ShapeError("dlib_hog_boxes takes an (H, W, 3) uint8 RGB array")
    with _DLIB_LOCK:
        rects = _hog_detector()(np.ascontiguousarray(pixels), upsample)
    return [(float(r.left()), float(r.top()), float(r.right()), float(r.bottom())) for r in rects]


def dlib_hog_landmarks(pixels: np.ndarray, upsample: int = 1) -> list[np.ndarray]:
    """The 5 landmarks of every face dlib's HOG detector finds (dlib's own pipeline)."""
    return [dlib_landmarks(pixels, b) for b in dlib_hog_boxes(pixels, upsample)]
