"""Display helpers: numpy arrays → viewable RGB pictures → QImage.

Colour-mapping a JND map, amplifying a signed perturbation and shrinking thumbnails are done
here (in workers for anything photo-sized), so widgets only ever receive ready 8-bit RGB
arrays, or the QImages workers made of them (:func:`to_qimage`, the only function that
touches Qt, imported lazily: the rest works without Qt).
"""

from __future__ import annotations

import math
import sys

import cv2
import numpy as np

JND_CHANNELS = {"luma": "Luminance", "r": "Red", "g": "Green", "b": "Blue"}
PERTURBATION_CHANNELS = {"rgb": "Combined (R, G, B)", "r": "Red", "g": "Green", "b": "Blue"}
AMPLIFICATIONS = (1, 2, 5, 10, 20, 50, 100)
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # BT.601, as the JND engine
_CHANNEL_INDEX = {"r": 0, "g": 1, "b": 2}


def _viridis() -> np.ndarray:
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_VIRIDIS)
    return np.ascontiguousarray(lut[:, 0, ::-1])


def _diverging() -> np.ndarray:
    """Blue (negative) – near-white (0) – red (positive), like ColorBrewer RdBu reversed."""
    anchors = np.array(
        [
            [5, 48, 97],
            [33, 102, 172],
            [67, 147, 195],
            [146, 197, 222],
            [209, 229, 240],
            [247, 247, 247],
            [253, 219, 199],
            [244, 165, 130],
            [214, 96, 77],
            [178, 24, 43],
            [103, 0, 31],
        ],
        dtype=np.float32,
    )
    pos = np.linspace(0, 255, len(anchors))
    x = np.arange(256, dtype=np.float32)
    return np.stack([np.interp(x, pos, anchors[:, c]) for c in range(3)], 1).round().astype(np.uint8)


#: Colour look-up tables, (256, 3) uint8 RGB.
VIRIDIS = _viridis()
DIVERGING = _diverging()
GREY = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)  # the combined (R, G, B) view


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10ⁿ at or above ``value`` (colour-bar end points)."""
    if not math.isfinite(value) or value <= 0:
        return 1.0
    exp = math.floor(math.log10(value))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * 10**exp >= value - 1e-9:
            return m * 10**exp
    return 10.0 ** (exp + 1)


def jnd_channel(jnd_levels: np.ndarray, channel: str) -> np.ndarray:
    """One channel of a (H, W, 3) map in levels, or its BT.601 luminance."""
    if channel == "luma":
        return jnd_levels @ LUMA_WEIGHTS
    return jnd_levels[..., _CHANNEL_INDEX[channel]]


def jnd_scale(jnd_levels: np.ndarray) -> float:
    """The colour-bar top shared by every channel view of a map: a round number of levels at
    or above the 99.5th percentile (a few edge pixels with huge thresholds would otherwise
    squash the rest of the map into the dark end; they saturate instead)."""
    if not jnd_levels.size:
        return 1.0
    sample = jnd_levels[:: max(1, jnd_levels.shape[0] // 512), :: max(1, jnd_levels.shape[1] // 512)]
    return nice_ceiling(float(np.percentile(sample, 99.5)))


def colour_jnd(
    jnd_levels: np.ndarray, channel: str = "luma", vmax: float | None = None
) -> tuple[np.ndarray, tuple[float, float]]:
    """Colour-map one channel of a JND map (viridis, 0 … ``vmax`` levels).

    Args:
        jnd_levels: (H, W, 3) float map in 8-bit levels.
        channel: ``"luma"``, ``"r"``, ``"g"`` or ``"b"``.
        vmax: top of the scale (default :func:`jnd_scale`, shared by all channels).

    Returns:
        ``(rgb, (0, vmax))``: an (H, W, 3) uint8 picture and its scale in levels.
    """
    vmax = float(vmax if vmax is not None else jnd_scale(jnd_levels))
    plane = jnd_channel(np.asarray(jnd_levels, dtype=np.float32), channel)
    idx = np.clip(plane * (255.0 / vmax), 0, 255).astype(np.uint8)
    return apply_lut(idx, VIRIDIS), (0.0, vmax)


def apply_lut(idx: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """``lut[idx]`` for an (H, W) uint8 index and a (256, 3) uint8 table, with OpenCV's
    table look-up (several times faster than numpy's fancy indexing on photo-sized maps)."""
    idx = np.ascontiguousarray(idx, dtype=np.uint8)
    if idx.ndim != 2 or idx.shape[0] * idx.shape[1] == 0 or max(idx.shape) >= 2**31:
        return lut[idx]
    return cv2.LUT(cv2.merge((idx, idx, idx)), np.ascontiguousarray(lut, dtype=np.uint8)[:, None, :])


def render_perturbation(
    delta_levels: np.ndarray, channel: str = "rgb", amplification: float = 10.0
) -> tuple[np.ndarray, tuple[float, float]]:
    """A signed perturbation (Z − X in levels), amplified for the eye.

    ``"rgb"``: mid-grey plus ``amplification`` × the change in each channel (grey = no
    change). One channel: the diverging map blue (−) / white (0) / red (+).

    Returns:
        ``(rgb, (lo, hi))``: the picture and the change in levels at the ends of its scale.
    """
    d = np.asarray(delta_levels, dtype=np.float32)
    amp = float(amplification)
    lim = 127.5 / amp
    if channel == "rgb":
        rgb = np.clip(127.5 + d * amp, 0, 255).round().astype(np.uint8)
        return rgb, (-lim, lim)
    plane = d[..., _CHANNEL_INDEX[channel]]
    idx = np.clip(127.5 + plane * amp, 0, 255).round().astype(np.uint8)
    return apply_lut(idx, DIVERGING), (-lim, lim)


def suggested_amplification(delta_levels: np.ndarray) -> int:
    """The largest listed factor that keeps 99.5 % of the change inside the scale."""
    if delta_levels.size == 0:
        return 10
    q = float(np.percentile(np.abs(delta_levels), 99.5))
    if q <= 0:
        return AMPLIFICATIONS[-1]
    fitting = [a for a in AMPLIFICATIONS if a * q <= 127.5]
    return fitting[-1] if fitting else AMPLIFICATIONS[0]


def thumbnail(pixels: np.ndarray, size: int = 96) -> np.ndarray:
    """A copy whose longer side is ``size`` pixels (area averaging)."""
    h, w = pixels.shape[:2]
    s = size / max(h, w)
    if s >= 1:
        return np.ascontiguousarray(pixels)
    return cv2.resize(pixels, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def colour_bar(lut: np.ndarray, length: int = 256, vertical: bool = True) -> np.ndarray:
    """A gradient strip of a LUT (top = high end when vertical)."""
    idx = np.linspace(255, 0, length) if vertical else np.linspace(0, 255, length)
    strip = lut[idx.round().astype(np.intp)]
    return np.ascontiguousarray(strip[:, None, :] if vertical else strip[None, :, :])


def to_qimage(pixels: np.ndarray):
    """(H, W, 3) uint8 RGB → QImage in the display's native 32-bit format (``Format_RGB32``).

    A deep copy: the array may be freed afterwards. Creating QImages is thread-safe: workers
    build the pictures of photo-sized arrays (a 12 MP conversion takes tens of milliseconds),
    and the GUI thread's ``QPixmap.fromImage`` of this format only shares the data.
    """
    from PySide6.QtGui import QImage

    arr = np.asarray(pixels, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) uint8 pixels, got {arr.shape}")
    h, w = arr.shape[:2]
    if sys.byteorder != "little":  # RGB32's byte order below is the little-endian one
        rgb = np.ascontiguousarray(arr)
        return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).convertToFormat(
            QImage.Format.Format_RGB32)
    # RGB32 is 0xffRRGGBB per pixel: bytes B, G, R, 255 in memory (little-endian)
    bgra = cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_RGB2BGRA)
    # (QImage over the array's memory, then a deep copy Qt owns: the array may go)
    return QImage(bgra.data, w, h, 4 * w, QImage.Format.Format_RGB32).copy()
