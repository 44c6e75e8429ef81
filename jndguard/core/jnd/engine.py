"""The one entry point, :func:`jnd_map`, and the :class:`JNDModel` protocol."""

from __future__ import annotations

import logging
import math
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from jndguard.core.jnd._errors import ExternalModelError, JNDConfigError
from jndguard.core.jnd.classic import MODELS, ClassicJND
from jndguard.core.jnd.tiling import default_tile_pixels, tiled_apply
from jndguard.errors import check_image_batch

logger = logging.getLogger(__name__)


@runtime_checkable
class JNDModel(Protocol):
    """Anything that turns RGB images into a JND map.

    Contract: called with a float (B, 3, H, W) RGB tensor in [0, 1] (sRGB-encoded, on the
    model's device), it returns a (B, 3, H, W) tensor of non-negative, finite thresholds in
    the same [0, 1] units (8-bit levels / 255), one per RGB channel.

    Attributes:
        name: a short label for reports.
        halo: optional (checked with ``getattr``): the receptive-field radius in pixels. When
            it is an int, :func:`jnd_map` may evaluate the model tile by tile with a reflected
            halo of that width; when absent or ``None`` the whole image is passed at once.
    """

    name: str

    def __call__(self, images: Tensor) -> Tensor: ...


def check_jnd_output(jnd: object, images: Tensor, source: str = "JND model") -> Tensor:
    """Validate a model's output against the :class:`JNDModel` contract.

    A (B, 1, H, W) output is broadcast to three channels; negative values are clamped to 0.

    Raises:
        ExternalModelError: not a tensor, wrong shape, or NaN/inf values.
    """
    if not isinstance(jnd, Tensor):
        raise ExternalModelError(f"{source} returned {type(jnd).__name__}, not a tensor")
    b, _, h, w = images.shape
    shape_ok = jnd.ndim == 4 and jnd.shape[0] == b and jnd.shape[1] in (1, 3)
    if not shape_ok or tuple(jnd.shape[-2:]) != (h, w):
        raise ExternalModelError(
            f"{source} returned shape {tuple(jnd.shape)}; the contract is (B, 3, H, W) = "
            f"{(b, 3, h, w)} for input {tuple(images.shape)}"
        )
    if not jnd.is_floating_point():
        jnd = jnd.float()
    if not bool(torch.isfinite(jnd).all()):
        raise ExternalModelError(f"{source} returned NaN or infinite values")
    if jnd.shape[1] == 1:
        jnd = jnd.expand(b, 3, h, w)
    if bool((jnd < 0).any()):
        logger.warning("%s returned negative thresholds; clamped to 0", source)
        jnd = jnd.clamp_min(0)
    return jnd


def _check_strength(strength: float) -> float:
    try:
        s = float(strength)
    except (TypeError, ValueError) as exc:
        raise JNDConfigError(f"strength must be a number, got {strength!r}") from exc
    if not math.isfinite(s) or s <= 0:
        raise JNDConfigError(f"strength must be a positive finite number, got {strength!r}")
    return s


def resolve_model(model: str | JNDModel = "yang", color: str | None = None) -> JNDModel:
    """Turn a model name (and colour mode) or a :class:`JNDModel` into an estimator.

    Raises:
        JNDConfigError: unknown name or colour mode, or a colour mode given for a model
            that produces RGB thresholds itself.
    """
    if isinstance(model, str):
        if model not in MODELS:
            raise JNDConfigError(f"unknown JND model {model!r}; choose one of {MODELS}")
        return ClassicJND(model, color or "scaled")
    if isinstance(model, ClassicJND):
        if color is not None and color != model.color:
            raise JNDConfigError(
                f"colour mode {color!r} conflicts with the model's own {model.color!r}"
            )
        return model
    if isinstance(model, JNDModel):
        if color not in (None, "native"):
            raise JNDConfigError(
                f"colour mode {color!r} applies to the classic models only; "
                f"{getattr(model, 'name', 'this model')} outputs RGB thresholds itself"
            )
        return model
    raise JNDConfigError(
        f"model must be one of {MODELS} or a JNDModel, got {type(model).__name__}"
    )


def jnd_map(
    images: Tensor,
    model: str | JNDModel = "yang",
    color: str | None = None,
    strength: float = 1.0,
    *,
    tile_pixels: int | None = None,
) -> Tensor:
    """Per-pixel, per-channel JND map of RGB images, computed without gradient.

    Args:
        images: RGB images in [0, 1], sRGB-encoded, on any device.
        model: ``"yang"`` (Yang et al. NAMM with Canny edge protection; default), ``"chou"``
            (Chou & Li), ``"wu"`` (Wu et al. pattern complexity), or any :class:`JNDModel`
            (e.g. from :func:`~jndguard.core.jnd.external.load_external_jnd`).
        color: for the classic models: ``"scaled"`` (default; k = R 1.3, G 1.0, B 1.55),
            ``"gray"`` (k = 1) or ``"ycbcr"`` (the channels are Y, Cb, Cr thresholds on
            ``Δ = M₆₀₁·δ``; see :func:`~jndguard.core.jnd.color.constrain_delta`). Must be
            ``None`` (or ``"native"``) for other models.
        strength: global factor on the whole map (> 0).
        tile_pixels: tile budget in pixels for large photos (``None``: a device default;
            the result does not depend on it).

    Returns:
        The map in [0, 1] units (8-bit levels / 255), dtype and device of ``images``.

    Shape:
        - images: (B, 3, H, W)
        - output: (B, 3, H, W)

    Raises:
        ShapeError: ``images`` is not a float (B, 3, H, W) tensor.
        JNDConfigError: unknown model or colour mode, bad strength.
        ExternalModelError: an external model broke its output contract.

    References:
        docs/jnd.md; Chou & Li (1995); Yang et al. (2005); Wu et al. (2017).
    """
    check_image_batch(images)
    s = _check_strength(strength)
    estimator = resolve_model(model, color)
    name = getattr(estimator, "name", type(estimator).__name__)
    with torch.no_grad():
        if isinstance(estimator, ClassicJND):
            jnd = estimator(images, tile_pixels=tile_pixels)
            if s != 1.0:
                jnd.mul_(s)  # a fresh tensor: scale in place, no second full-size map
        else:
            halo = getattr(estimator, "halo", None)
            budget = tile_pixels or default_tile_pixels(images.device)
            h, w = images.shape[-2:]
            if isinstance(halo, int) and halo >= 0 and h * w > budget:

                def run_tile(tiles: list[Tensor]) -> Tensor:
                    out = check_jnd_output(estimator(tiles[0]), tiles[0], name)
                    return out[..., halo : out.shape[-2] - halo, halo : out.shape[-1] - halo]

                jnd = tiled_apply(
                    run_tile, [images], halo=halo, out_channels=3, tile_pixels=budget,
                    out_dtype=images.dtype,
                )
            else:
                jnd = check_jnd_output(estimator(images), images, name)
            jnd = jnd.to(device=images.device, dtype=images.dtype)
            if s != 1.0:
                jnd = jnd * s
    logger.debug("JND map %s, strength %g, shape %s", name, s, tuple(jnd.shape))
    return jnd
