"""One call that computes every quality and protection figure of a protected photo.

:func:`quality_report` computes every figure on the whole photo (and optionally a region).
:func:`photo_report` gives the same dict for a photo whose change is confined to a known
window (a protection changes only its face regions) at the cost of that window: PSNR, SSIM
and the protection figures of the whole photo follow exactly from the window, since
unchanged pixels add no error and every SSIM window that does not touch a change scores
exactly 1. The multi-scale and feature metrics (MS-SSIM, FSIM, GMSD, HaarPSI, VIF) cannot be
extrapolated: on the whole photo they are computed only on request (``full=True``, the CLI's
``--full-metrics``; the GUI computes them after showing the result); the face regions always
have them (:func:`region_report`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from jndguard.core.metrics import protection, quality
from jndguard.errors import ShapeError

log = logging.getLogger(__name__)

#: Bumped whenever a definition in this package changes, so old reports stay interpretable.
METRICS_VERSION = 1

#: Name → function of the full-reference quality metrics, in report order.
QUALITY_METRICS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "psnr": quality.psnr,
    "ssim": quality.ssim,
    "ms_ssim": quality.ms_ssim,
    "fsim": quality.fsim,
    "gmsd": quality.gmsd,
    "haarpsi": quality.haarpsi,
    "vif": quality.vif,
}

Box = tuple[int, int, int, int]

#: how far past a changed pixel an 11×11 SSIM window reaches
SSIM_REACH = 10


def region_box(region: Sequence[float] | Mapping[str, float], height: int, width: int) -> Box:
    """Normalise a region to integer pixel bounds inside the image.

    Args:
        region: ``(x0, y0, x1, y1)`` (e.g. an MTCNN box) or a mapping with those keys; x1/y1
            are exclusive. Fractional bounds are rounded outwards.
        height: image height in pixels.
        width: image width in pixels.

    Returns:
        ``(x0, y0, x1, y1)`` clipped to the image, with ``x0 < x1`` and ``y0 < y1``.

    Raises:
        ValueError: malformed region, or no overlap with the image.
    """
    if isinstance(region, Mapping):
        try:
            region = [region[k] for k in ("x0", "y0", "x1", "y1")]
        except KeyError as exc:
            raise ValueError(f"region mapping needs x0, y0, x1, y1 keys, got {region}") from exc
    vals = [float(v) for v in region]
    if len(vals) != 4 or not all(math.isfinite(v) for v in vals):
        raise ValueError(f"region must be four finite numbers (x0, y0, x1, y1), got {region}")
    x0 = max(0, math.floor(vals[0]))
    y0 = max(0, math.floor(vals[1]))
    x1 = min(width, math.ceil(vals[2]))
    y1 = min(height, math.ceil(vals[3]))
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"region {tuple(vals)} does not overlap the {width}×{height} image")
    return x0, y0, x1, y1


def _scalar(t: torch.Tensor) -> float | int:
    return t.reshape(-1)[0].item()


#: quality metrics whole-photo values follow exactly from a changed window (see module)
WINDOWED_METRICS = ("psnr", "ssim")
#: quality metrics computed on the whole photo only on request
FULL_ONLY_METRICS = tuple(k for k in QUALITY_METRICS if k not in WINDOWED_METRICS)
ON_REQUEST = ("computed on request on the whole photo (jndguard protect --full-metrics); "
              "the face regions have it")


def _figures(x: torch.Tensor, y: torch.Tensor, jnd: torch.Tensor | None,
             metrics: Sequence[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"width": int(x.shape[-1]), "height": int(x.shape[-2])}
    unavailable: dict[str, str] = {}
    for name, fn in QUALITY_METRICS.items():
        if metrics is not None and name not in metrics:
            out[name] = None
            unavailable[name] = ON_REQUEST
            continue
        try:
            value = float(_scalar(fn(x, y)))
        except ShapeError as exc:
            out[name] = None
            unavailable[name] = str(exc)
            continue
        if math.isnan(value) or (math.isinf(value) and name != "psnr"):
            out[name] = None
            unavailable[name] = f"{name} is undefined for this image (got {value})"
            log.debug("metric %s not finite: %s", name, value)
            continue
        out[name] = value

    change = protection.level_change(x, y)
    out["max_abs_change"] = int(_scalar(protection.max_abs_change(change)))
    energy, share = protection.channel_energy(change)
    out["energy"] = {c: float(energy[0, i]) for i, c in enumerate(protection.CHANNELS)}
    out["energy"]["mean"] = float(energy[0].mean())
    out["energy_share"] = {c: float(share[0, i]) for i, c in enumerate(protection.CHANNELS)}
    out["changed"] = protection.changed_region(change)[0]
    if jnd is None:
        out["jnd"] = None
    else:
        o = protection.over_jnd(change, jnd)
        out["jnd"] = {
            "over_fraction": float(o["fraction"][0]),
            "over_count": int(o["count"][0]),
            "over_fraction_per_channel": {
                c: float(o["fraction_per_channel"][0, i]) for i, c in enumerate(protection.CHANNELS)
            },
            "max_excess": float(o["max_excess"][0]),
            "mean_jnd": float(o["mean_jnd"][0]),
        }
    out["unavailable"] = unavailable
    return out


def quality_report(
    original: torch.Tensor,
    protected: torch.Tensor,
    jnd: torch.Tensor | None = None,
    region: Sequence[float] | Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Every quality and protection figure of one protected photo, as plain Python values.

    Metrics are computed on the full image; when ``region`` (a face box) is given the same
    figures are also computed on that crop, under ``"region"``. A metric the image is too
    small for (or that is undefined, e.g. HaarPSI of an all-black image) is ``None`` and its
    reason is listed under ``"unavailable"``; nothing raises for size reasons except a crop
    or image smaller than one pixel.

    Args:
        original: the original photo X in [0, 1].
        protected: the protected photo Z in [0, 1] (normally already 8-bit quantised).
        jnd: optional JND map J in [0, 1] units (channels 1 or 3).
        region: optional ``(x0, y0, x1, y1)`` box in pixels (exclusive end) or mapping.

    Returns:
        A JSON-ready dict: ``metrics_version``, ``width``, ``height``, ``psnr`` (dB, ``inf``
        for identical images), ``ssim``, ``ms_ssim``, ``fsim``, ``gmsd``, ``haarpsi``,
        ``vif``, ``max_abs_change`` (levels), ``energy`` (``r``/``g``/``b``/``mean``, mean
        squared change in levels²), ``energy_share`` (``r``/``g``/``b``), ``changed``
        (``bbox``, ``pixel_count``, ``pixel_fraction``, ``channel_fraction``), ``jnd``
        (``None`` without a map, else ``over_fraction``, ``over_count``,
        ``over_fraction_per_channel``, ``max_excess``, ``mean_jnd``), ``unavailable``
        (metric → reason) and ``region`` (``None``, or ``box`` plus the same figures on
        the crop; its ``changed.bbox`` is in full-image coordinates).

    Raises:
        ShapeError: not a single (1, 3, H, W) / (3, H, W) image pair, or a bad JND shape.
        ValueError: values outside [0, 1], or a region outside the image.

    Shape:
        - original, protected: (1, 3, H, W) or (3, H, W)
        - jnd: (1, 3, H, W), (1, 1, H, W) or without the batch dimension
    """
    original, protected, jnd = _unbatched_to_batch(original, protected, jnd)
    quality.check_pair(original, protected)
    if original.shape[0] != 1:
        raise ShapeError(f"quality_report takes one image, got a batch of {original.shape[0]}")
    with torch.inference_mode():
        report: dict[str, Any] = {"metrics_version": METRICS_VERSION}
        report.update(_figures(original, protected, jnd))
        report["region"] = None
        if region is not None:
            report["region"] = _region(original, protected, jnd, region)
    return report


def region_report(
    original: torch.Tensor,
    protected: torch.Tensor,
    jnd: torch.Tensor | None,
    region: Sequence[float] | Mapping[str, float],
    max_side: int | None = None,
) -> dict[str, Any]:
    """Every figure of one region (a face's): ``quality_report(...)["region"]`` without the
    cost of the whole photo. Same shapes and keys as there.

    ``max_side``: when the region's long side is larger, MS-SSIM, FSIM, GMSD, HaarPSI and VIF
    are computed on an area-downscaled copy of the region whose long side is ``max_side``
    (PSNR, SSIM and the protection figures stay at full resolution); the scale used is
    recorded as ``feature_metrics_scale`` (1.0 when not downscaled).
    """
    original, protected, jnd = _batch(original, protected, jnd)
    with torch.inference_mode():
        out = _region(original, protected, jnd, region,
                      metrics=None if max_side is None else WINDOWED_METRICS)
        if max_side is None:
            return out
        b = out["box"]
        crop = (..., slice(b["y0"], b["y1"]), slice(b["x0"], b["x1"]))
        xo, yo = original[crop], protected[crop]
        scale = min(1.0, max_side / max(xo.shape[-2:]))
        if scale < 1.0:
            size = (max(1, round(xo.shape[-2] * scale)), max(1, round(xo.shape[-1] * scale)))
            xo = torch.nn.functional.interpolate(xo.float(), size=size, mode="area").clamp(0, 1)
            yo = torch.nn.functional.interpolate(yo.float(), size=size, mode="area").clamp(0, 1)
        feats = _figures(xo, yo, None, metrics=FULL_ONLY_METRICS)
        for name in FULL_ONLY_METRICS:
            out[name] = feats[name]
            out["unavailable"].pop(name, None)
            if name in feats["unavailable"]:
                out["unavailable"][name] = feats["unavailable"][name]
        out["feature_metrics_scale"] = scale
        return out


def _unbatched_to_batch(original, protected, jnd):
    """Add the batch dimension to ``(3, H, W)`` images and ``(C, H, W)`` maps."""
    if original.ndim == 3:
        original = original.unsqueeze(0)
    if protected.ndim == 3:
        protected = protected.unsqueeze(0)
    if jnd is not None and jnd.ndim == 3:
        jnd = jnd.unsqueeze(0)
    return original, protected, jnd


def _batch(original, protected, jnd):
    original, protected, jnd = _unbatched_to_batch(original, protected, jnd)
    if original.shape != protected.shape:
        raise ShapeError(f"images differ in shape: {tuple(original.shape)} vs {tuple(protected.shape)}")
    if original.ndim != 4 or original.shape[0] != 1:
        raise ShapeError(f"one (1, 3, H, W) image expected, got {tuple(original.shape)}")
    return original, protected, jnd


def _region(original, protected, jnd, region, metrics=None) -> dict[str, Any]:
    h, w = int(original.shape[-2]), int(original.shape[-1])
    x0, y0, x1, y1 = region_box(region, h, w)
    crop = (..., slice(y0, y1), slice(x0, x1))
    sub = _figures(original[crop], protected[crop], None if jnd is None else jnd[crop], metrics)
    bbox = sub["changed"]["bbox"]
    if bbox is not None:  # crop → image coordinates
        sub["changed"]["bbox"] = {"x0": bbox["x0"] + x0, "y0": bbox["y0"] + y0,
                                  "x1": bbox["x1"] + x0, "y1": bbox["y1"] + y0}
    return {"box": {"x0": x0, "y0": y0, "x1": x1, "y1": y1}, **sub}


def photo_report(
    original: torch.Tensor,
    protected: torch.Tensor,
    jnd: torch.Tensor | None,
    changed: Sequence[float] | Mapping[str, float] | None,
    full: bool = False,
) -> dict[str, Any]:
    """:func:`quality_report` of a photo that differs from the original only inside ``changed``.

    PSNR, SSIM and every protection figure are exact (module docstring) and cost only the
    window (plus the 10 px every SSIM window reaches past it). MS-SSIM, FSIM, GMSD, HaarPSI
    and VIF are computed on the whole photo when ``full``; otherwise they are ``None`` with the
    reason under ``"unavailable"``. ``changed=None`` means nothing changed anywhere.

    Args:
        original: the original photo X in [0, 1].
        protected: the protected photo Z, equal to X outside ``changed`` (the caller checks).
        jnd: optional JND map in [0, 1] units.
        changed: ``(x0, y0, x1, y1)`` (exclusive end) containing every changed pixel.
        full: also the whole-photo multi-scale and feature metrics (slow on large photos).

    Returns:
        The dict of :func:`quality_report` (``region`` is ``None``).

    Shape:
        - original, protected: (1, 3, H, W) or (3, H, W)
    """
    original, protected, jnd = _batch(original, protected, jnd)
    h, w = int(original.shape[-2]), int(original.shape[-1])
    if changed is None:
        changed = (0, 0, min(w, 1), min(h, 1))  # any pixel: nothing changed, figures are exact
    quality.check_pair(original, protected)
    (wx0, wy0, wx1, wy1), = change_windows([region_box(changed, h, w)], h, w)
    crop = (..., slice(wy0, wy1), slice(wx0, wx1))
    mean_jnd = None if jnd is None else float(jnd.float().mean() * 255.0)  # (1 or 3 channels: same)
    whole = (original, protected) if full else None
    piece = (wx0, wy0, original[crop], protected[crop], None if jnd is None else jnd[crop])
    return photo_report_windows([piece], h, w, mean_jnd, whole)


def change_windows(regions: Sequence[Box], height: int, width: int) -> list[Box]:
    """Disjoint windows for :func:`photo_report_windows`: each region (``(x0, y0, x1, y1)``,
    holding changed pixels) grown by the 10 px an SSIM window reaches (at least the SSIM window
    itself, within the photo), overlapping windows merged into their bounding box."""
    r, side = SSIM_REACH, quality.MIN_SIDE["ssim"]
    boxes = []
    for x0, y0, x1, y1 in regions:
        b = [max(0, x0 - r), max(0, y0 - r), min(width, x1 + r), min(height, y1 + r)]
        for lo, hi, n in ((0, 2, width), (1, 3, height)):  # tiny photo or region: an SSIM window
            if b[hi] - b[lo] < side:
                b[lo] = max(0, min(b[lo], n - side))
                b[hi] = min(n, b[lo] + side)
        boxes.append(tuple(b))
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    boxes[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return sorted(boxes, key=lambda b: (b[1], b[0]))


def photo_report_windows(pieces: Sequence[tuple], height: int, width: int, mean_jnd: float | None,
                         whole: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, Any]:
    """:func:`photo_report` from the windows of the photo that hold its changes, without the
    rest of it: PSNR, SSIM and every protection figure of the whole photo are sums over the
    windows (module docstring).

    Args:
        pieces: ``(x0, y0, original, protected, jnd)`` per window, the images cropped to the
            window whose top-left pixel is ``(x0, y0)``; the windows of :func:`change_windows`
            (disjoint, every changed pixel at least 10 px inside one).
        height, width: the whole photo's size.
        mean_jnd: the mean of the whole photo's J in 8-bit levels (None without a map).
        whole: ``(original, protected)`` of the whole photo for the multi-scale and feature
            metrics (None: not computed, said so under ``"unavailable"``).
    """
    h, w = int(height), int(width)
    n_full = h * w
    out: dict[str, Any] = {"metrics_version": METRICS_VERSION, "width": w, "height": h}
    unavailable: dict[str, str] = {}
    win = quality.MIN_SIDE["ssim"] - 1
    sse, ssim_sum, ssim_n, psnr_none, ssim_none = 0.0, 0.0, 0, None, None
    max_abs, energy, channel, count, bbox = 0, {}, 0.0, 0, None
    over, over_ch, excess, has_jnd = 0, {}, 0.0, False
    with torch.inference_mode():
        for x0, y0, xo, yo, jo in pieces:
            xo, yo, jo = _batch(xo, yo, jo)
            sub = _figures(xo, yo, jo, metrics=WINDOWED_METRICS)
            n_crop = int(xo.shape[-2]) * int(xo.shape[-1])
            k = n_crop / n_full
            if sub["psnr"] is None:
                psnr_none = sub["unavailable"].get("psnr", "psnr unavailable")
            elif math.isfinite(sub["psnr"]):
                sse += 10.0 ** (-sub["psnr"] / 10.0) * n_crop
            if sub["ssim"] is None:
                ssim_none = sub["unavailable"].get("ssim", "image too small for SSIM")
            else:
                nw_crop = (int(xo.shape[-2]) - win) * (int(xo.shape[-1]) - win)
                ssim_sum += sub["ssim"] * nw_crop
                ssim_n += nw_crop
            max_abs = max(max_abs, sub["max_abs_change"])
            for c, v in sub["energy"].items():
                energy[c] = energy.get(c, 0.0) + v * k
            ch = sub["changed"]
            b = ch["bbox"]
            if b is not None:
                b = (b["x0"] + x0, b["y0"] + y0, b["x1"] + x0, b["y1"] + y0)
                bbox = b if bbox is None else (min(bbox[0], b[0]), min(bbox[1], b[1]),
                                               max(bbox[2], b[2]), max(bbox[3], b[3]))
            count += ch["pixel_count"]
            channel += ch["channel_fraction"] * k
            if sub["jnd"] is not None:
                has_jnd = True
                j = sub["jnd"]
                over += j["over_count"]
                for c, v in j["over_fraction_per_channel"].items():
                    over_ch[c] = over_ch.get(c, 0.0) + v * k
                excess = max(excess, j["max_excess"])
        if psnr_none is not None:
            out["psnr"] = None
            unavailable["psnr"] = psnr_none
        else:
            out["psnr"] = math.inf if sse == 0 else 10.0 * math.log10(n_full / sse)
        if ssim_none is not None or min(h, w) < quality.MIN_SIDE["ssim"]:
            out["ssim"] = None
            unavailable["ssim"] = ssim_none or "image too small for SSIM"
        else:
            nw_full = (h - win) * (w - win)
            out["ssim"] = (ssim_sum + (nw_full - ssim_n)) / nw_full
        full_vals = (_figures(*_batch(whole[0], whole[1], None)[:2], None, metrics=FULL_ONLY_METRICS)
                     if whole is not None else None)
        for name in FULL_ONLY_METRICS:
            out[name] = None if full_vals is None else full_vals[name]
            reason = ON_REQUEST if full_vals is None else full_vals["unavailable"].get(name)
            if reason:
                unavailable[name] = reason
        out["max_abs_change"] = max_abs
        out["energy"] = energy
        tot = sum(energy.get(c, 0.0) for c in protection.CHANNELS)
        out["energy_share"] = {c: (energy.get(c, 0.0) / tot if tot > 0 else 0.0) for c in protection.CHANNELS}
        out["changed"] = {"bbox": None if bbox is None else dict(zip(("x0", "y0", "x1", "y1"), bbox)),
                          "pixel_count": count, "pixel_fraction": count / n_full,
                          "channel_fraction": channel}
        if not has_jnd or mean_jnd is None:
            out["jnd"] = None
        else:
            out["jnd"] = {
                "over_fraction": over / (3 * n_full),
                "over_count": over,
                "over_fraction_per_channel": over_ch,
                "max_excess": excess,
                "mean_jnd": float(mean_jnd),
            }
        out["unavailable"] = unavailable
        out["region"] = None
    return out
