"""Classic pixel-domain JND models: Chou & Li (1995), Yang et al. NAMM (2005), Wu et al. (2017).

All thresholds are computed on BT.601 luma in 8-bit grey levels of the gamma-encoded sRGB
image, as the papers do; :class:`ClassicJND` converts the result into a (B, 3, H, W) budget
in [0, 1] units with the colour step of :mod:`jndguard.core.jnd.color`.

Everything except the Canny edge detector is fixed convolutions and pointwise maths in torch,
batched, on the input's device and dtype, and differentiable (the functions below are
gradient-checked in float64). The Canny step runs in OpenCV on the CPU and yields a fixed
edge weight. Borders use reflect padding (zero padding would inflate J at the borders), and
``bg`` is clamped away from 0 inside the square root.

Implementation choices the papers leave open (written down here, tested in
``tests/core/test_jnd.py``):

- Canny (Yang's edge protection): luma is blurred with a Gaussian of σ = √2 (11×11), its
  gradient taken with 3×3 Sobel filters, the high threshold set at 0.5 of the image's
  largest gradient magnitude and the low one at 0.4 × high, as docs/jnd.md specifies. Luma is
  handed to OpenCV in fixed point (1/16 grey level) so no float copy of a large photo is made.
- Wu et al. (written from the paper's equations, not from its research-only code): the
  Prewitt filters are normalised by 1/6, so ``G_h``, ``G_v`` and ``C_l`` are luminance
  gradients in grey levels per pixel (central difference averaged over three rows).
  Orientations ``θ = arctan(G_v/G_h)`` are quantised into 15 bins of 12° over (-90°, 90°];
  a pixel whose contrast ``C_l`` is at most :data:`WU_MIN_CONTRAST` (1 grey level per pixel,
  where 8-bit quantisation rather than content decides the orientation) has no defined
  orientation and does not count towards ``C_p``, the number of distinct orientations in its
  3×3 field. On the 24 Kodak images this model gives ±J noise of about 27.4 dB PSNR with
  k = 1 and 25.1 dB with the default colour scaling, i.e. more noise than Yang's model
  (30.8 / 28.5 dB), in line with the paper's aim of larger thresholds in irregular texture.
- Chou & Li and Wu have no edge protection in their papers; only Yang's model uses ``W``.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from jndguard.core.jnd._errors import JNDConfigError
from jndguard.core.jnd.color import M601, check_color, scale_channels
from jndguard.core.jnd.tiling import default_tile_pixels, gather_window, tiled_apply
from jndguard.errors import ShapeError, check_image_batch

logger = logging.getLogger(__name__)

MODELS = ("yang", "chou", "wu")

#: Weighted-mean kernel of the background luminance (Chou & Li 1995), sum 32.
KERNEL_BG = (
    (1, 1, 1, 1, 1),
    (1, 2, 2, 2, 1),
    (1, 2, 0, 2, 1),
    (1, 2, 2, 2, 1),
    (1, 1, 1, 1, 1),
)
#: Directional high-pass kernels G1…G4 of the maximal gradient (Chou & Li 1995).
KERNELS_G = (
    ((0, 0, 0, 0, 0), (1, 3, 8, 3, 1), (0, 0, 0, 0, 0), (-1, -3, -8, -3, -1), (0, 0, 0, 0, 0)),
    ((0, 0, 1, 0, 0), (0, 8, 3, 0, 0), (1, 3, 0, -3, -1), (0, 0, -3, -8, 0), (0, 0, -1, 0, 0)),
    ((0, 0, 1, 0, 0), (0, 0, 3, 8, 0), (-1, -3, 0, 3, 1), (0, -8, -3, 0, 0), (0, 0, -1, 0, 0)),
    ((0, 1, 0, -1, 0), (0, 3, 0, -3, 0), (0, 8, 0, -8, 0), (0, 3, 0, -3, 0), (0, 1, 0, -1, 0)),
)

#: Luminance-adaptation constants (Chou & Li 1995): T0 = 17, γ = 3/128.
LA_T0 = 17.0
LA_GAMMA = 3.0 / 128.0
#: ``bg`` is clamped to at least this (grey levels) inside the square root.
BG_EPS = 1e-12

#: Yang et al. (2005) NAMM: texture-masking slope β and overlap gain C per Y, Cb, Cr.
YANG_BETA = (0.117, 0.65, 0.45)
YANG_OVERLAP = (0.3, 0.25, 0.2)
#: Edge weight: 0.1 on Canny edges, 1 elsewhere, smoothed by a 7×7 Gaussian of σ = 0.8.
EDGE_WEIGHT_ON_EDGE = 0.1
EDGE_SMOOTH_SIZE = 7
EDGE_SMOOTH_SIGMA = 0.8
#: Canny: Gaussian σ = √2, high threshold = 0.5 × max gradient, low = 0.4 × high.
CANNY_SIGMA = math.sqrt(2.0)
CANNY_HIGH_FRACTION = 0.5
CANNY_LOW_RATIO = 0.4
_CANNY_KSIZE = 2 * math.ceil(3 * CANNY_SIGMA) + 1
_LUMA_FIXED_POINT = 16  # luma handed to OpenCV as int16 in 1/16 grey levels

#: Wu et al. (2017): orientation bin width (degrees), number of bins, and the contrast (grey
#: levels) at or below which a pixel has no defined orientation.
WU_BIN_DEGREES = 12.0
WU_BINS = 15
WU_MIN_CONTRAST = 1.0

#: Receptive-field radius (pixels) of every classic model: 5×5 filters on luma (2) and the
#: 7×7 smoothing of the edge map (3).
HALO = 3


# ---------------------------------------------------------------------------------------------
# Building blocks (differentiable; inputs in grey levels)


def _check_planes(x: Tensor, name: str) -> None:
    if x.ndim != 4:
        raise ShapeError(f"{name} must have shape (B, C, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ShapeError(f"{name} must be a floating-point tensor, got {x.dtype}")


def _kernel(values, like: Tensor) -> Tensor:
    k = torch.tensor(values, dtype=like.dtype, device=like.device)
    return k.view(-1, 1, k.shape[-2], k.shape[-1])


def _per_plane(x_pad: Tensor, kernel: Tensor) -> Tensor:
    """Valid convolution of every channel with every kernel: (B,C,h,w) → (B,C,K,h',w')."""
    b, c = x_pad.shape[:2]
    y = F.conv2d(x_pad.reshape(b * c, 1, *x_pad.shape[-2:]), kernel)
    return y.view(b, c, kernel.shape[0], *y.shape[-2:])


def _pad(x: Tensor, p: int) -> Tensor:
    return gather_window(x, 0, x.shape[-2], 0, x.shape[-1], p)


def _crop(x: Tensor, m: int) -> Tensor:
    return x if m == 0 else x[..., m:-m, m:-m]


def _bg_valid(y_pad: Tensor) -> Tensor:
    return _per_plane(y_pad, _kernel(KERNEL_BG, y_pad))[:, :, 0] / 32.0


def _mg_valid(y_pad: Tensor) -> Tensor:
    g = _per_plane(y_pad, _kernel(KERNELS_G, y_pad))
    return g.abs().amax(dim=2) / 16.0


def background_luminance(y: Tensor) -> Tensor:
    """Average background luminance ``bg = (I ∗ B) / 32`` (reflect padding).

    Args:
        y: luma (or any planes) in grey levels.

    Returns:
        ``bg`` in grey levels.

    Shape:
        - y: (B, C, H, W)
        - output: (B, C, H, W)

    References:
        Chou & Li (1995), "A perceptually tuned subband image coder based on the measure
        of just-noticeable-distortion profile", IEEE TCSVT 5(6): background luminance
        (docs/jnd.md, "Building blocks", ``bg``).
    """
    _check_planes(y, "y")
    return _bg_valid(_pad(y, 2))


def max_gradient(y: Tensor) -> Tensor:
    """Maximal weighted average of luminance differences ``mg = max_k |I ∗ G_k| / 16``.

    Args:
        y: luma (or any planes) in grey levels.

    Returns:
        ``mg`` in grey levels.

    Shape:
        - y: (B, C, H, W)
        - output: (B, C, H, W)

    References:
        Chou & Li (1995): maximal weighted average of luminance differences (docs/jnd.md,
        "Building blocks", ``mg``).
    """
    _check_planes(y, "y")
    return _mg_valid(_pad(y, 2))


def luminance_adaptation(bg: Tensor) -> Tensor:
    """Visibility threshold due to background luminance.

    ``LA = 17·(1 − sqrt(bg/127)) + 3`` for ``bg ≤ 127``, ``(3/128)·(bg − 127) + 3`` above;
    LA(0) = 20, LA(127) = 3, LA(255) = 6.

    Args:
        bg: background luminance in grey levels.

    Returns:
        The threshold in grey levels, same shape as ``bg``.

    References:
        Chou & Li (1995): visibility threshold due to background luminance (docs/jnd.md,
        "Building blocks", ``LA``).
    """
    dark = LA_T0 * (1.0 - torch.sqrt(bg.clamp_min(BG_EPS) / 127.0)) + 3.0
    bright = LA_GAMMA * (bg - 127.0) + 3.0
    return torch.where(bg <= 127.0, dark, bright)


def namm(la: Tensor, t: Tensor, overlap: float = 0.3) -> Tensor:
    """Nonlinear additivity model for masking: ``J = LA + T − C·min(LA, T)``.

    Args:
        la: luminance-adaptation threshold (grey levels).
        t: texture/contrast-masking threshold (grey levels).
        overlap: the gain reduction ``C`` (0.3 for Y).

    Returns:
        The combined threshold, broadcast shape of ``la`` and ``t``.

    References:
        Yang et al. (2005), "Motion-compensated residue preprocessing in video coding based
        on just-noticeable-distortion profile", IEEE TCSVT 15(6): NAMM (docs/jnd.md, "Yang NAMM").
    """
    return la + t - overlap * torch.minimum(la, t)


def chou_li_threshold(bg: Tensor, mg: Tensor) -> Tensor:
    """Chou & Li's JND: ``max(mg·(0.0001·bg + 0.115) + 0.5 − 0.01·bg, LA(bg))``.

    Args:
        bg: background luminance (grey levels).
        mg: maximal gradient (grey levels).

    Returns:
        J in grey levels.

    References:
        Chou & Li (1995): spatial-masking and luminance-adaptation thresholds and their
        maximum (docs/jnd.md, "Chou & Li").
    """
    spatial = mg * (0.0001 * bg + 0.115) + 0.5 - 0.01 * bg
    return torch.maximum(spatial, luminance_adaptation(bg))


def chou_li_luma_jnd(y: Tensor) -> Tensor:
    """Chou & Li (1995) JND of luma planes.

    Args:
        y: luma in grey levels.

    Returns:
        J_Y in grey levels.

    Shape:
        - y: (B, 1, H, W)
        - output: (B, 1, H, W)

    References:
        Chou & Li (1995) (docs/jnd.md, "Chou & Li").
    """
    _check_planes(y, "y")
    y_pad = _pad(y, 2)
    return chou_li_threshold(_bg_valid(y_pad), _mg_valid(y_pad))


def _edge_weight_valid(edges_pad: Tensor, dtype: torch.dtype) -> Tensor:
    """Smoothed edge weight from a reflect-padded (margin 3) binary edge map."""
    w = 1.0 - (1.0 - EDGE_WEIGHT_ON_EDGE) * edges_pad.to(dtype)
    r = EDGE_SMOOTH_SIZE // 2
    x = torch.arange(-r, r + 1, dtype=torch.float64)
    g = torch.exp(-(x**2) / (2 * EDGE_SMOOTH_SIGMA**2))
    g = (g / g.sum()).to(device=w.device, dtype=dtype)
    b, c = w.shape[:2]
    w = w.reshape(b * c, 1, *w.shape[-2:])
    w = F.conv2d(F.conv2d(w, g.view(1, 1, 1, -1)), g.view(1, 1, -1, 1))
    return w.view(b, c, *w.shape[-2:])


def smooth_edge_weight(edges: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """Yang's edge weight: 0.1 on edges, 1 elsewhere, smoothed by a 7×7 Gaussian (σ = 0.8).

    Args:
        edges: binary edge map (any dtype, nonzero = edge).
        dtype: floating dtype of the result.

    Returns:
        ``W`` in [0.1, 1].

    Shape:
        - edges: (B, 1, H, W)
        - output: (B, 1, H, W)

    References:
        Yang et al. (2005): edge-protection weight of the texture masking (docs/jnd.md, "Yang
        NAMM", ``W``).
    """
    if edges.ndim != 4:
        raise ShapeError(f"edges must have shape (B, 1, H, W), got {tuple(edges.shape)}")
    return _edge_weight_valid(_pad(edges, EDGE_SMOOTH_SIZE // 2), dtype)


def _canny_fixed_point(y16: np.ndarray) -> np.ndarray:
    """Canny edges (uint8 0/1) of one (H, W) int16 luma plane in 1/16 grey levels."""
    border = cv2.BORDER_REFLECT_101
    blurred = cv2.GaussianBlur(
        y16, (_CANNY_KSIZE, _CANNY_KSIZE), CANNY_SIGMA, sigmaY=CANNY_SIGMA, borderType=border
    )
    dx = cv2.Sobel(blurred, cv2.CV_16S, 1, 0, ksize=3, borderType=border)
    dy = cv2.Sobel(blurred, cv2.CV_16S, 0, 1, ksize=3, borderType=border)
    max_sq = 0
    band = 512
    for r in range(0, y16.shape[0], band):
        gx = dx[r : r + band].astype(np.int32)
        gy = dy[r : r + band].astype(np.int32)
        max_sq = max(max_sq, int((gx * gx + gy * gy).max()))
    if max_sq == 0:
        return np.zeros(y16.shape, dtype=np.uint8)
    high = CANNY_HIGH_FRACTION * math.sqrt(max_sq)
    low = CANNY_LOW_RATIO * high
    edges = cv2.Canny(dx, dy, low, high, L2gradient=True)
    return (edges > 0).astype(np.uint8)


def _fixed_point_luma(images: Tensor, tile_pixels: int) -> np.ndarray:
    """BT.601 luma of RGB [0,1] images as (B, H, W) int16 in 1/16 grey levels, band by band."""
    b, _, h, w = images.shape
    out = np.empty((b, h, w), dtype=np.int16)
    wts = torch.tensor(M601[0], dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    rows = max(1, tile_pixels // max(w, 1))
    scale = 255.0 * _LUMA_FIXED_POINT
    for r in range(0, h, rows):
        band = images[:, :, r : r + rows].float()
        y = (band * wts).sum(dim=1).mul_(scale).round_().clamp_(0, 255 * _LUMA_FIXED_POINT)
        out[:, r : r + rows] = y.to(torch.int16).cpu().numpy()
    return out


def canny_edges(images: Tensor, tile_pixels: int | None = None) -> Tensor:
    """Canny edge map of the luma of RGB images (σ = √2, high = 0.5 max gradient, low = 0.4 high).

    Not differentiable (OpenCV on the CPU); the result is moved to the images' device.

    Args:
        images: RGB images in [0, 1].
        tile_pixels: rows are converted to luma in bands of about this many pixels.

    Returns:
        A uint8 map, 1 on edges and 0 elsewhere.

    Shape:
        - images: (B, 3, H, W)
        - output: (B, 1, H, W)

    References:
        Canny (1986), IEEE TPAMI 8(6); parameters per docs/jnd.md ("Yang NAMM").
    """
    check_image_batch(images)
    if tile_pixels is None:
        tile_pixels = default_tile_pixels(images.device)
    y16 = _fixed_point_luma(images, tile_pixels)
    edges = np.stack([_canny_fixed_point(y16[i]) for i in range(y16.shape[0])])
    return torch.from_numpy(edges).unsqueeze(1).to(images.device)


def yang_luma_jnd(y: Tensor, edge_weight: Tensor) -> Tensor:
    """Yang et al. NAMM JND of luma given a fixed edge weight.

    ``J_Y = LA + T − 0.3·min(LA, T)`` with ``T = 0.117·mg·W``.

    Args:
        y: luma in grey levels.
        edge_weight: ``W`` from :func:`smooth_edge_weight` (treated as a constant).

    Returns:
        J_Y in grey levels.

    Shape:
        - y: (B, 1, H, W)
        - edge_weight: (B, 1, H, W)
        - output: (B, 1, H, W)

    References:
        Yang et al. (2005): NAMM with edge-weighted texture masking (docs/jnd.md, "Yang NAMM").
    """
    _check_planes(y, "y")
    y_pad = _pad(y, 2)
    la = luminance_adaptation(_bg_valid(y_pad))
    t = YANG_BETA[0] * _mg_valid(y_pad) * edge_weight
    return namm(la, t, YANG_OVERLAP[0])


def _prewitt_valid(y_pad: Tensor) -> tuple[Tensor, Tensor]:
    k = torch.tensor(
        (((-1.0, 0.0, 1.0),) * 3, ((-1.0, -1.0, -1.0), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))),
        dtype=y_pad.dtype,
        device=y_pad.device,
    ).div_(6.0)
    g = _per_plane(y_pad, k.view(2, 1, 3, 3))
    return g[:, :, 0], g[:, :, 1]


def luminance_contrast(gh: Tensor, gv: Tensor) -> Tensor:
    """``C_l = sqrt(G_v² + G_h²)`` (clamped away from 0 inside the square root).

    References:
        Wu et al. (2017), "Enhanced just noticeable difference model for images with
        pattern complexity", IEEE TIP 26(6): luminance contrast (docs/jnd.md, ``C_l``).
    """
    return torch.sqrt((gh * gh + gv * gv).clamp_min(BG_EPS))


@functools.lru_cache(maxsize=8)
def _popcount_table(device: torch.device) -> Tensor:
    counts = [bin(i).count("1") for i in range(1 << WU_BINS)]
    return torch.tensor(counts, dtype=torch.uint8, device=device)


def _orientation_bits(gh: Tensor, gv: Tensor, c_l: Tensor) -> Tensor:
    theta = torch.atan2(gv, gh)  # (-π, π] → fold to arctan(Gv/Gh) ∈ (-π/2, π/2]
    theta = torch.where(theta > math.pi / 2, theta - math.pi, theta)
    theta = torch.where(theta <= -math.pi / 2, theta + math.pi, theta)
    bins = torch.floor((torch.rad2deg(theta) + 90.0) / WU_BIN_DEGREES).to(torch.int32)
    bins = torch.remainder(bins, WU_BINS)
    bits = torch.bitwise_left_shift(torch.ones_like(bins), bins)
    return torch.where(c_l > WU_MIN_CONTRAST, bits, torch.zeros_like(bits))


def _complexity_valid(bits_pad: Tensor) -> Tensor:
    """Number of distinct orientations in each 3×3 field of a margin-1 bit map."""
    rows = bits_pad[..., :-2, :] | bits_pad[..., 1:-1, :] | bits_pad[..., 2:, :]
    field = rows[..., :-2] | rows[..., 1:-1] | rows[..., 2:]
    table = _popcount_table(field.device)
    return table[field.long()]


def orientation_complexity(y: Tensor) -> Tensor:
    """Pattern complexity ``C_p``: distinct 12° orientation bins in each pixel's 3×3 field.

    Not differentiable (a count); pixels with ``C_l ≤`` :data:`WU_MIN_CONTRAST` carry no
    orientation.

    Args:
        y: luma in grey levels.

    Returns:
        ``C_p`` in {0, …, 9} as a tensor of ``y``'s dtype.

    Shape:
        - y: (B, 1, H, W)
        - output: (B, 1, H, W)

    References:
        Wu et al. (2017): pattern complexity from orientation diversity (docs/jnd.md, ``C_p``).
    """
    _check_planes(y, "y")
    gh, gv = _prewitt_valid(_pad(y, 2))
    bits = _orientation_bits(gh, gv, luminance_contrast(gh, gv))
    return _complexity_valid(bits).to(y.dtype)


def pattern_masking(c_l: Tensor, c_p: Tensor) -> Tensor:
    """``M_P = log2(1 + C_l) · 0.8 · C_p^2.7 / (C_p² + 0.01)``.

    References:
        Wu et al. (2017): pattern masking (docs/jnd.md, ``M_P``).
    """
    return torch.log2(1.0 + c_l) * 0.8 * c_p.pow(2.7) / (c_p * c_p + 0.01)


def contrast_masking(c_l: Tensor) -> Tensor:
    """``M_C = 0.115 · 16 · C_l^2.4 / (C_l² + 26²)``.

    References:
        Wu et al. (2017): contrast masking (docs/jnd.md, ``M_C``).
    """
    return 0.115 * 16.0 * c_l.pow(2.4) / (c_l * c_l + 26.0**2)


def wu_combine(la: Tensor, c_l: Tensor, c_p: Tensor) -> Tensor:
    """``J = LA + V − 0.3·min(LA, V)`` with visual masking ``V = max(M_P, M_C)``.

    References:
        Wu et al. (2017): visual masking and its NAMM combination with LA (docs/jnd.md, ``J``).
    """
    vm = torch.maximum(pattern_masking(c_l, c_p), contrast_masking(c_l))
    return namm(la, vm, YANG_OVERLAP[0])


def _wu_valid(y_pad: Tensor) -> Tensor:
    """Wu et al. J_Y from margin-2 luma."""
    la = luminance_adaptation(_bg_valid(y_pad))
    gh, gv = _prewitt_valid(y_pad)  # margin 1
    c_l = luminance_contrast(gh, gv)
    c_p = _complexity_valid(_orientation_bits(gh, gv, c_l)).to(y_pad.dtype)
    return wu_combine(la, _crop(c_l, 1), c_p)


def wu_luma_jnd(y: Tensor) -> Tensor:
    """Wu et al. (2017) pattern-complexity JND of luma.

    Args:
        y: luma in grey levels.

    Returns:
        J_Y in grey levels (differentiable through ``LA`` and ``C_l``; ``C_p`` is a count).

    Shape:
        - y: (B, 1, H, W)
        - output: (B, 1, H, W)

    References:
        Wu et al. (2017) (docs/jnd.md, "Wu et al. 2017 pattern complexity").
    """
    _check_planes(y, "y")
    return _wu_valid(_pad(y, 2))


# ---------------------------------------------------------------------------------------------
# Full model


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


@dataclass(frozen=True)
class ClassicJND:
    """A classic JND model with its colour step; implements :class:`JNDModel`.

    Args:
        model: ``"yang"`` (default, NAMM with Canny edge protection), ``"chou"`` or ``"wu"``.
        color: ``"scaled"`` (R 1.3, G 1.0, B 1.55), ``"gray"`` (k = 1) or ``"ycbcr"`` (Y, Cb,
            Cr thresholds; chroma always from Yang's NAMM with β = 0.65 / 0.45, C = 0.25 /
            0.2, luminance adaptation of the luma background and the luma edge weight).

    Calling it on (B, 3, H, W) RGB images in [0, 1] returns the (B, 3, H, W) map in [0, 1]
    units (strength 1), evaluated in tiles with a reflected halo of :data:`HALO` pixels.
    """

    model: str = "yang"
    color: str = "scaled"
    halo: int = field(default=HALO, init=False)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise JNDConfigError(f"unknown JND model {self.model!r}; choose one of {MODELS}")
        check_color(self.color)

    @property
    def name(self) -> str:
        return f"{self.model}/{self.color}"

    @property
    def needs_edges(self) -> bool:
        return self.model == "yang" or self.color == "ycbcr"

    def __call__(self, images: Tensor, tile_pixels: int | None = None) -> Tensor:
        check_image_batch(images)
        if tile_pixels is None:
            tile_pixels = default_tile_pixels(images.device)
        inputs = [images]
        if self.needs_edges:
            inputs.append(canny_edges(images, tile_pixels))
        return tiled_apply(
            self._tile,
            inputs,
            halo=self.halo,
            out_channels=3,
            tile_pixels=tile_pixels,
            out_dtype=images.dtype,
        )

    def _tile(self, tiles: list[Tensor]) -> Tensor:
        # photos decoded from HWC pixels arrive channels-last; convolutions want NCHW
        rgb = tiles[0].to(_compute_dtype(tiles[0].dtype)).contiguous()
        m = self.halo - 2
        wts = torch.tensor(M601[0], dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
        y = _crop((rgb * wts).sum(1, keepdim=True), m)
        y = y * 255.0  # luma in grey levels, margin 2
        bg = _bg_valid(y)
        la = luminance_adaptation(bg)
        w = None
        if self.needs_edges:
            w = _edge_weight_valid(_crop(tiles[1], self.halo - EDGE_SMOOTH_SIZE // 2), rgb.dtype)
        if self.model == "yang":
            j_y = namm(la, YANG_BETA[0] * _mg_valid(y) * w, YANG_OVERLAP[0])
        elif self.model == "chou":
            j_y = chou_li_threshold(bg, _mg_valid(y))
        else:
            j_y = _wu_valid(y)
        if self.color != "ycbcr":
            return scale_channels(j_y, self.color) / 255.0
        m_c = torch.tensor(M601[1:], dtype=rgb.dtype, device=rgb.device)
        chroma = torch.einsum("ij,bjhw->bihw", m_c, _crop(rgb, m)) * 255.0  # offset-free
        t = _mg_valid(chroma) * w
        j_cb = namm(la, YANG_BETA[1] * t[:, :1], YANG_OVERLAP[1])
        j_cr = namm(la, YANG_BETA[2] * t[:, 1:], YANG_OVERLAP[2])
        return torch.cat((j_y, j_cb, j_cr), dim=1) / 255.0


__all__ = [
    "HALO",
    "MODELS",
    "ClassicJND",
    "background_luminance",
    "canny_edges",
    "chou_li_luma_jnd",
    "chou_li_threshold",
    "contrast_masking",
    "luminance_adaptation",
    "luminance_contrast",
    "max_gradient",
    "namm",
    "orientation_complexity",
    "pattern_masking",
    "smooth_edge_weight",
    "wu_combine",
    "wu_luma_jnd",
    "yang_luma_jnd",
]
