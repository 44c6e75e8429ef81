"""The threat matrix of one face judged on a window of the photo around it (docs/design.md §11).

Post mode's stopping check judges a candidate protection of one face many times; on the whole
photo every check would copy, re-encode and re-detect every pixel of it (for a 24 MP photo,
several 70–100 MB copies per check). A protection changes only its face regions, so
:class:`WindowMatrix` reads a window around the face instead and reproduces what the whole
photo's :class:`~jndguard.core.threat.matrix.ThreatMatrix` finds there:

- JPEG codes 16×16 blocks (MCUs) independently; the window's origin is on the photo's
  16-pixel grid, so its blocks are the photo's blocks and decode alike (all but the window's
  edges: block padding, chroma upsampling). WebP does not: VP8 predicts each block from its
  neighbours and picks its segment quantisers from the whole image (a window's ``webp80``
  cell measured 0.02 off the whole photo's in cosine), which is one reason the quick matrix
  has no WebP cell; post mode's EOT has WebP views instead (post_eot).
- The detectors do not see the window alone. MTCNN runs on the photo downscaled to a 1600 px
  long side, and its boxes move by pixels when the image around a face changes (measured: 9
  photo pixels on a 180 px face when only a window of a 6000 × 4000 photo is detected). So the
  small copy MTCNN reads is kept whole: the clean photo's copy for each encoding is made once
  (:class:`PhotoCopies`, a few MB), and each check replaces the part of it that the window's
  interior covers, computed from the window on the copy's own resampling grid (Pillow's
  ``box`` argument: each pixel of the copy is the same average of the same photo pixels).
- A site resize (``720+jpeg85``) is a small image: the clean photo's resized copy is kept, the
  window's interior is resampled onto it the same way, and the whole small image is JPEG-coded
  and detected as the whole photo's would be.

What still differs from the whole photo: resampled pixels can differ by rounding (a level at
most, where Pillow's fixed-point weights round differently), changes outside the window are not
seen (another face's perturbation far away), and dlib's HOG detector runs on the window.

The window is the face box plus :data:`WINDOW_MARGIN` of its longer side on every side (the
widest crop convention reads box + 30 %, aligned crops a little more), and at least
:data:`EDGE_BLOCKS` JPEG blocks of the most downscaled variant.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from jndguard.core.threat.conventions import Detection, detect_hog
from jndguard.core.threat.encodings import Variant, codec_roundtrip, reencode, site_scale
from jndguard.core.threat.matrix import Registration, ThreatMatrix, matrix_size

#: context kept around a face, as a fraction of its box's longer side, on every side
WINDOW_MARGIN = 1.0
#: and at least this many 16-pixel JPEG blocks of the most downscaled re-encoding
EDGE_BLOCKS = 2
#: photo pixels next to a window's edge that a re-encoding of the window gets wrong: a JPEG
#: block, plus the chroma upsampling's reach
JPEG_EDGE = 17
#: reach of Pillow's Lanczos filter in output pixels (a = 3), plus one for rounding
LANCZOS_REACH = 4


def face_window(box, width: int, height: int, encodings=()) -> tuple[int, int, int, int]:
    """The window a face's matrix reads: box + :data:`WINDOW_MARGIN` (at least
    :data:`EDGE_BLOCKS` blocks of the smallest site resize among ``encodings``), clipped to the
    photo, its origin on the 16-pixel grid."""
    x1, y1, x2, y2 = (float(v) for v in box)
    m = WINDOW_MARGIN * max(x2 - x1, y2 - y1)
    scales = [s for s in (site_scale(width, height, e) for e in encodings) if s is not None]
    if scales:
        m = max(m, EDGE_BLOCKS * 16 / min(min(s) for s in scales))
    x0 = max(0, math.floor(x1 - m) // 16 * 16)
    y0 = max(0, math.floor(y1 - m) // 16 * 16)
    return x0, y0, min(width, math.ceil(x2 + m)), min(height, math.ceil(y2 + m))


def _detector(min_face_size: int = 20):
    from jndguard.core.faces.detect import get_detector

    return get_detector("cpu", min_face_size=min_face_size)


class PhotoCopies:
    """What every face window of one clean photo needs of the whole photo, made once: per
    re-encoding that keeps the photo's size, the (downscaled) copy MTCNN detects on; per site
    resize, the resized photo before its JPEG (module docstring)."""

    def __init__(self, photo: np.ndarray, encodings) -> None:
        h, w = photo.shape[:2]
        self.size = (w, h)
        self.scale, self.copy_size = _detector().copy_size(w, h)
        self.detect: dict[str, np.ndarray] = {}
        self.resized: dict[str, np.ndarray] = {}
        for enc in dict.fromkeys(("file", *encodings)):
            s = site_scale(w, h, enc)
            if s is not None:
                size = (max(1, round(w * s[0])), max(1, round(h * s[1])))
                self.resized[enc] = np.asarray(Image.fromarray(photo).resize(size, Image.LANCZOS))
                continue
            v = reencode(photo, enc).pixels
            if self.scale < 1.0:
                v = np.asarray(Image.fromarray(np.ascontiguousarray(v)).resize(self.copy_size, Image.BOX))
            self.detect[enc] = v


def _resampled_interior(window: np.ndarray, origin: tuple[int, int], photo_size: tuple[int, int],
                        out: np.ndarray, edge: float, resample) -> np.ndarray:
    """``out`` (a resize of the whole photo) with the pixels whose footprint lies in the
    window's interior (``edge`` photo pixels in from every edge the window does not share with
    the photo) resampled from the window on ``out``'s grid."""
    pw, ph = photo_size
    oh, ow = out.shape[:2]
    rx, ry = ow / pw, oh / ph
    x0, y0 = origin
    wh, ww = window.shape[:2]
    ex0 = x0 + (edge if x0 > 0 else 0)
    ey0 = y0 + (edge if y0 > 0 else 0)
    ex1 = x0 + ww - (edge if x0 + ww < pw else 0)
    ey1 = y0 + wh - (edge if y0 + wh < ph else 0)
    k0, l0 = max(0, math.ceil(ex0 * rx)), max(0, math.ceil(ey0 * ry))
    k1, l1 = min(ow, math.floor(ex1 * rx)), min(oh, math.floor(ey1 * ry))
    if k1 <= k0 or l1 <= l0:
        return out
    box = (max(0.0, k0 / rx - x0), max(0.0, l0 / ry - y0),
           min(float(ww), k1 / rx - x0), min(float(wh), l1 / ry - y0))
    patch = Image.fromarray(np.ascontiguousarray(window)).resize((k1 - k0, l1 - l0), resample, box=box)
    out = out.copy()
    out[l0:l1, k0:k1] = np.asarray(patch)
    return out


class WindowMatrix(ThreatMatrix):
    """The threat matrix of the faces of a photo that lie in ``window`` (module docstring).

    Args:
        photo: the clean ``(H, W, 3)`` uint8 photo.
        window: ``(x0, y0, x1, y1)``, ``x0`` and ``y0`` multiples of 16 (:func:`face_window`).
        faces: the photo's faces in photo coordinates; those overlapping the window are kept,
            in window coordinates, in the order given (:meth:`local_index` maps them).
        copies: the photo's :class:`PhotoCopies` for this matrix's encodings (made here when
            None; share one between the windows of a photo).
        The rest as :class:`ThreatMatrix`.

    :meth:`evaluate` takes the window of the protected photo (``(y1 − y0, x1 − x0, 3)``).
    """

    def __init__(self, photo: np.ndarray, window: tuple[int, int, int, int], faces, recognisers=None,
                 size="quick", gallery=None, target=None, margin: float = 0.0,
                 min_face_size: int = 20, copies: PhotoCopies | None = None) -> None:
        x0, y0, x1, y1 = (int(v) for v in window)
        if x0 % 16 or y0 % 16:
            raise ValueError("a window's origin must lie on the 16-pixel grid")
        size = matrix_size(size)
        self.window = (x0, y0, x1, y1)
        self.photo_size = (int(photo.shape[1]), int(photo.shape[0]))
        self.copies = copies if copies is not None else PhotoCopies(photo, size.encodings)
        inside = [i for i, f in enumerate(faces)
                  if f.box[2] > x0 and f.box[0] < x1 and f.box[3] > y0 and f.box[1] < y1]
        self.face_index = inside  # window face k is photo face inside[k]
        shifted = [faces[i].shifted(x0, y0) for i in inside]
        super().__init__(np.ascontiguousarray(photo[y0:y1, x0:x1]), shifted, recognisers, size, gallery,
                         target, margin, min_face_size)

    def local_index(self, photo_face: int) -> int:
        """The window's index of a photo face."""
        return self.face_index.index(photo_face)

    def _variant(self, protected: np.ndarray, encoding: str) -> Variant:
        if encoding in self.copies.resized:  # the whole small image, the window resampled in
            s = site_scale(*self.photo_size, encoding)
            resized = _resampled_interior(protected, self.window[:2], self.photo_size,
                                          self.copies.resized[encoding], LANCZOS_REACH / min(s),
                                          Image.LANCZOS)
            pixels = codec_roundtrip(Image.fromarray(resized), "JPEG", 85)
            return Variant(encoding, pixels, s, (0, 0), (resized.shape[1], resized.shape[0]))
        # JPEG/WebP of the window: its blocks are the photo's (origin on the 16-pixel grid)
        v = reencode(protected, encoding)
        return Variant(encoding, v.pixels, (1.0, 1.0), self.window[:2], self.photo_size)

    def _find(self, variant: Variant, detector: str, min_face_size: int) -> list[Detection]:
        if detector != "mtcnn":
            side = max(variant.photo_size or self.photo_size)
            return detect_hog(variant.pixels, side)
        det = _detector(min_face_size)
        if variant.name in self.copies.resized:  # a whole small image
            faces = det.detect(variant.pixels)
        else:  # the photo's copy with the window's interior
            c = self.copies
            edge = JPEG_EDGE + (1.0 / c.scale if c.scale < 1.0 else 0.0)
            copy = _resampled_interior(variant.pixels, self.window[:2], c.size, c.detect[variant.name],
                                       edge, Image.BOX)
            faces = det.detect_copy(copy, c.scale, self.window[:2])
        return [Detection("mtcnn", f.box, np.asarray(f.landmarks, dtype=np.float64)) for f in faces]

    def _to_original(self, reg: Registration, box, variant: Variant):
        (sx, sy), (ox, oy), (x0, y0) = variant.scale, variant.origin, self.window[:2]
        b = ((box[0] + ox) / sx - x0, (box[1] + oy) / sy - y0,
             (box[2] + ox) / sx - x0, (box[3] + oy) / sy - y0)
        return reg.to_original(b)
