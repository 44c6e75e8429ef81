"""What a photo site does to a posted photo before anyone searches it (docs/design.md §4).

Re-encodings of the threat matrix, each applied to the exported file's pixels with Pillow:

- ``file``: the exported file as it is;
- ``jpeg95``, ``jpeg85``, ``jpeg75``, ``jpeg60``: JPEG at that quality, 4:2:0 chroma
  subsampling (what sites serve);
- ``webp80``: lossy WebP at quality 80;
- ``1080+jpeg85``, ``720+jpeg85``: the long edge reduced to 1080 / 720 px (Lanczos; photos
  already smaller are not enlarged), then JPEG q85 — the usual upload pipeline.

:func:`reencode` returns the decoded pixels and the scale of the variant relative to the
input per axis (1.0 unless downscaled), which maps boxes between them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

ENCODINGS: tuple[str, ...] = ("file", "jpeg95", "jpeg85", "jpeg75", "jpeg60", "webp80",
                              "1080+jpeg85", "720+jpeg85")


@dataclass
class Variant:
    """A re-encoded photo: its name, decoded pixels and scale per axis (variant px / input px).

    A variant of a window of a photo (:class:`~jndguard.core.threat.window.WindowMatrix`) also
    says where its pixel (0, 0) lies in the variant of the whole photo (``origin``) and that
    variant's size (``photo_size``, ``(W, H)``)."""

    name: str
    pixels: np.ndarray
    scale: tuple[float, float] = (1.0, 1.0)
    origin: tuple[int, int] = (0, 0)
    photo_size: tuple[int, int] | None = None


def codec_roundtrip(img: Image.Image, fmt: str, quality: int) -> np.ndarray:
    """``img`` saved by Pillow as ``fmt`` (``"JPEG"``: 4:2:0 chroma; ``"WEBP"``: lossy, method
    4) at ``quality`` and decoded again, as RGB uint8 — the threat matrix's re-encodings, shared
    with post mode's WebP views so the optimiser and the judge use the same codec settings."""
    buf = io.BytesIO()
    if fmt == "JPEG":
        img.save(buf, "JPEG", quality=quality, subsampling=2)  # 2 = 4:2:0
    else:
        img.save(buf, "WEBP", quality=quality, method=4)
    buf.seek(0)
    with Image.open(buf) as out:
        return np.asarray(out.convert("RGB"))


def site_scale(width: int, height: int, encoding: str) -> tuple[float, float] | None:
    """The realised per-axis scales of an ``E+jpeg85`` encoding of a ``width`` × ``height``
    photo, or None when it is not resized (no downscale in the encoding, or already small)."""
    if not encoding.endswith("+jpeg85"):
        return None
    s = min(1.0, int(encoding.split("+")[0]) / max(height, width))
    if s >= 1.0:
        return None
    return max(1, round(width * s)) / width, max(1, round(height * s)) / height


def reencode(pixels: np.ndarray, encoding: str) -> Variant:
    """One re-encoding of an ``(H, W, 3)`` uint8 RGB photo (see module docstring)."""
    if encoding == "file":
        return Variant(encoding, pixels)
    img = Image.fromarray(pixels)
    if encoding.startswith("jpeg"):
        return Variant(encoding, codec_roundtrip(img, "JPEG", int(encoding[4:])))
    if encoding == "webp80":
        return Variant(encoding, codec_roundtrip(img, "WEBP", 80))
    if encoding.endswith("+jpeg85"):
        edge = int(encoding.split("+")[0])
        h, w = pixels.shape[:2]
        s = min(1.0, edge / max(h, w))
        scale = (1.0, 1.0)
        if s < 1.0:
            nw, nh = max(1, round(w * s)), max(1, round(h * s))
            img = img.resize((nw, nh), Image.LANCZOS)
            scale = (nw / w, nh / h)  # the realised scales
        return Variant(encoding, codec_roundtrip(img, "JPEG", 85), scale)
    raise ValueError(f"unknown encoding {encoding!r}; choose from {', '.join(ENCODINGS)}")
