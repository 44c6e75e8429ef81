"""The colour step: from a luma threshold to a per-channel budget.

Two ways to budget colour (docs/jnd.md, "Colour"):

- ``"scaled"`` (default) and ``"gray"``: a per-channel RGB budget ``J(n) = s · k_n · J_Y``
  with ``k = (R 1.3, G 1.0, B 1.55)`` (``"gray"`` uses ``k = 1``) and a global strength
  ``s``. The ratio is what Yang's YCbCr model implies in RGB and follows the HVS order
  (green most sensitive, blue least). The perturbation ``δ`` obeys ``|δ_n| ≤ J(n)``.
- ``"ycbcr"`` (strict): the map holds thresholds for Y, Cb and Cr, and the perturbation is
  constrained in that space: ``Δ = M₆₀₁ · δ`` with ``|Δ_c| ≤ J(c)`` for each channel.
  :func:`constrain_delta` enforces either kind of budget.

All maps are in the units of the image (``[0, 1]``, i.e. 8-bit levels / 255).
"""

from __future__ import annotations

import torch
from torch import Tensor

from jndguard.core.jnd._errors import JNDConfigError
from jndguard.errors import ShapeError, check_image_batch

COLOR_MODES = ("scaled", "gray", "ycbcr")

#: Per-channel factors k = (R, G, B) of the default colour step (docs/jnd.md, "Colour").
RGB_SCALE = (1.3, 1.0, 1.55)

#: ITU-R BT.601 full-range RGB → YCbCr matrix (as in JPEG/JFIF); rows Y, Cb, Cr.
M601 = (
    (0.299, 0.587, 0.114),
    (-0.168736, -0.331264, 0.5),
    (0.5, -0.418688, -0.081312),
)

#: Channel names of a map in each colour mode.
CHANNEL_NAMES = {"scaled": ("R", "G", "B"), "gray": ("R", "G", "B"), "ycbcr": ("Y", "Cb", "Cr")}


def check_color(color: str) -> str:
    """Return ``color`` if it is a known colour mode, else raise :class:`JNDConfigError`."""
    if color not in COLOR_MODES:
        raise JNDConfigError(f"unknown colour mode {color!r}; choose one of {COLOR_MODES}")
    return color


def _matrix(like: Tensor, inverse: bool = False) -> Tensor:
    m = torch.tensor(M601, dtype=torch.float64)
    if inverse:
        m = torch.linalg.inv(m)
    return m.to(device=like.device, dtype=like.dtype)


def _apply_matrix(m: Tensor, x: Tensor) -> Tensor:
    return torch.einsum("ij,bjhw->bihw", m, x)


def rgb_to_luma(images: Tensor) -> Tensor:
    """BT.601 luma ``Y = 0.299 R + 0.587 G + 0.114 B``.

    Args:
        images: RGB images.

    Returns:
        Luma in the units of the input.

    Shape:
        - images: (B, 3, H, W)
        - output: (B, 1, H, W)
    """
    check_image_batch(images)
    w = torch.tensor(M601[0], dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * w).sum(dim=1, keepdim=True)


def rgb_to_ycbcr(images: Tensor, *, offset: bool = True) -> Tensor:
    """Full-range BT.601 YCbCr (JPEG convention).

    Args:
        images: RGB images in [0, 1].
        offset: add the chroma offset 128/255 (set ``False`` to transform a difference δ).

    Returns:
        Y, Cb, Cr in [0, 1] units.

    Shape:
        - images: (B, 3, H, W)
        - output: (B, 3, H, W)
    """
    check_image_batch(images)
    out = _apply_matrix(_matrix(images), images)
    if offset:
        off = torch.tensor((0.0, 128.0 / 255.0, 128.0 / 255.0), dtype=out.dtype,
                           device=out.device).view(1, 3, 1, 1)
        out = out + off
    return out


def ycbcr_to_rgb(ycbcr: Tensor, *, offset: bool = True) -> Tensor:
    """Inverse of :func:`rgb_to_ycbcr` (no clipping).

    Shape:
        - ycbcr: (B, 3, H, W)
        - output: (B, 3, H, W)
    """
    check_image_batch(ycbcr, "ycbcr")
    if offset:
        off = torch.tensor((0.0, 128.0 / 255.0, 128.0 / 255.0), dtype=ycbcr.dtype,
                           device=ycbcr.device).view(1, 3, 1, 1)
        ycbcr = ycbcr - off
    return _apply_matrix(_matrix(ycbcr, inverse=True), ycbcr)


def scale_channels(
    luma_jnd: Tensor, color: str = "scaled", strength: float = 1.0
) -> Tensor:
    """Turn a luma threshold into an RGB budget ``J(n) = strength · k_n · J_Y``.

    Args:
        luma_jnd: the luma threshold ``J_Y``.
        color: ``"scaled"`` for ``k = (1.3, 1.0, 1.55)``, ``"gray"`` for ``k = 1``.
        strength: global factor.

    Returns:
        The per-channel budget, in the units of ``luma_jnd``.

    Shape:
        - luma_jnd: (B, 1, H, W)
        - output: (B, 3, H, W)

    References:
        docs/jnd.md, "Colour"; Yang et al. (2005), the YCbCr NAMM it summarises.
    """
    if luma_jnd.ndim != 4 or luma_jnd.shape[1] != 1:
        raise ShapeError(f"luma_jnd must have shape (B, 1, H, W), got {tuple(luma_jnd.shape)}")
    if color == "scaled":
        k = RGB_SCALE
    elif color == "gray":
        k = (1.0, 1.0, 1.0)
    else:
        raise JNDConfigError(f"scale_channels takes 'scaled' or 'gray', got {color!r}")
    kt = torch.tensor(k, dtype=luma_jnd.dtype, device=luma_jnd.device).view(1, 3, 1, 1)
    return luma_jnd * (kt * strength)


def constrain_delta(delta: Tensor, jnd: Tensor, color: str = "scaled") -> Tensor:
    """Bring a perturbation within its JND budget.

    For RGB budgets (``"scaled"``, ``"gray"``) this clamps ``δ`` to ``[-J, J]`` per channel.
    For ``"ycbcr"`` it clamps ``Δ = M₆₀₁ · δ`` to ``[-J, J]`` per Y/Cb/Cr channel and maps
    back (a feasible point, not the Euclidean projection). Differentiable almost everywhere.

    Args:
        delta: the RGB perturbation, [0, 1] units.
        jnd: the map from :func:`jnd_map` computed with the same ``color``.
        color: the colour mode the map was computed with.

    Returns:
        The constrained RGB perturbation.

    Shape:
        - delta: (B, 3, H, W)
        - jnd: (B, 3, H, W) or broadcastable to it
        - output: (B, 3, H, W)
    """
    check_image_batch(delta, "delta")
    check_color(color)
    if color != "ycbcr":
        return torch.maximum(torch.minimum(delta, jnd), -jnd)
    d = rgb_to_ycbcr(delta, offset=False)
    d = torch.maximum(torch.minimum(d, jnd), -jnd)
    return ycbcr_to_rgb(d, offset=False)


def budget_to_rgb(signed: Tensor, color: str = "scaled") -> Tensor:
    """The RGB perturbation that a signed budget (e.g. ``±J``) stands for.

    For RGB budgets this is the identity; for ``"ycbcr"`` it maps ``Δ`` back to ``δ``.

    Shape:
        - signed: (B, 3, H, W)
        - output: (B, 3, H, W)
    """
    check_color(color)
    if color != "ycbcr":
        return signed
    return ycbcr_to_rgb(signed, offset=False)
