"""Face detection with facenet-pytorch's MTCNN (weights ship inside its wheel).

Decisions (docs/design.md §3): ``selection_method='probability'``, ``post_process=False``, every face
is kept; boxes and landmarks are returned in full-resolution pixel coordinates. Large photos
are detected on a downscaled copy (long side ``max_side``) and mapped back. Faces smaller than
``min_face_size`` full-resolution pixels (the shorter box side, default 20) are dropped: on the
Kodak set this drops the 13–15 px detections of kodim05/kodim10 and keeps the 23–26 px faces
of kodim12 and every 5-celebrity face (smallest 23 px); kodim14's crowd (15–22 px) keeps 2 of
6 faces at the default, all 6 at ``min_face_size=12``.
Detection is never differentiated.

Large photos: MTCNN's pyramid starts at its 12 px window in the copy, so on a photo whose long
side L exceeds ``max_side`` the smallest face found is 12·L/``max_side`` native pixels (32 px
on a 12 MP photo), above ``min_face_size``. That floor decides the cost. Measured on a 12 MP
upscale of kodim04 (one thread, busy machine): the 1600 px copy with the 12 px floor 3.2 s,
20 px 1.3 s, 40 px 0.56 s, 80 px 0.33 s (the face's box barely moves); keeping the floor at
20 native pixels (a copy at 12/20 of the photo) 7.5 s, MTCNN on the 12 MP pixels 9 s. A
protection detects once per photo (the pipeline takes the faces a caller already has, and its
re-check looks only near each face).

References: Zhang et al., "Joint Face Detection and Alignment using Multi-task Cascaded
Convolutional Networks", IEEE SPL 2016.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from jndguard.core.defaults import DEFAULT_MIN_FACE_SIZE
from jndguard.core.settings import PROTECT_MIN_PROBABILITY as _PROTECT_MIN_PROBABILITY

logger = logging.getLogger(__name__)

DEFAULT_MAX_SIDE = 1600
# P-Net's window (Zhang et al. 2016): no face fits in fewer pixels, and facenet-pytorch's
# MTCNN fails (torch.cat of an empty image pyramid) on a side shorter than this.
PNET_WINDOW = 12
# Detections kept at all (MTCNN's own last-stage threshold): re-detection on the protected
# photo and verification use this floor, so a face only "disappears" when MTCNN itself loses it.
DEFAULT_MIN_PROBABILITY = 0.7
# Faces at or above this probability are protected by default; the ones between the two
# floors are "possible faces", listed but left alone unless the user includes them.
# Measured on the 25 validation photos (as they are, and upscaled to 800 and 1600 px) and
# the 24 Kodak photos, every detection ≥ 20 px labelled by eye: the least probable true face
# is 0.917 (a validation portrait upscaled to 1600 px), the most probable false detections
# below it are a hand (0.851), hair (0.846), kodim19 (0.838), kodim11 (0.777) and kodim08
# (0.725); the floor is the middle of that gap. Two false detections in upscaled photos
# (0.964, 0.981) lie above every floor that keeps all true faces and stay protected.
PROTECT_MIN_PROBABILITY = _PROTECT_MIN_PROBABILITY  # 0.88, kept with the settings (no torch there)


@dataclass(frozen=True)
class Face:
    """One detected face in full-resolution pixel coordinates (x right, y down)."""

    box: tuple[float, float, float, float]  # x1, y1, x2, y2
    probability: float
    landmarks: tuple[tuple[float, float], ...]  # eyes, nose, mouth corners

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def size(self) -> float:
        """The shorter side of the box, in pixels."""
        return min(self.width, self.height)

    @property
    def center(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)

    def clipped_box(self, width: int, height: int) -> tuple[float, float, float, float]:
        """The box clipped to the image (MTCNN boxes may cross the border)."""
        x1, y1, x2, y2 = self.box
        return (max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2))

    def shifted(self, dx: float, dy: float) -> Face:
        """The same face in a window of the photo whose top-left pixel is ``(dx, dy)``."""
        b = self.box
        return Face((b[0] - dx, b[1] - dy, b[2] - dx, b[3] - dy), self.probability,
                    tuple((x - dx, y - dy) for x, y in self.landmarks))

    def to_dict(self) -> dict:
        return {
            "box": [round(v, 2) for v in self.box],
            "probability": round(self.probability, 5),
            "landmarks": [[round(x, 2), round(y, 2)] for x, y in self.landmarks],
            "size": round(self.size, 1),
        }


class FaceDetector:
    """MTCNN face detector returning every face above a size and probability floor.

    Args:
        device: torch device for MTCNN.
        min_face_size: drop faces whose shorter box side is below this (full-res pixels).
        max_side: detect on a copy whose long side is at most this many pixels.
        min_probability: drop detections below this MTCNN probability.
    """

    def __init__(
        self,
        device: torch.device | str = "cpu",
        min_face_size: int = DEFAULT_MIN_FACE_SIZE,
        max_side: int = DEFAULT_MAX_SIDE,
        min_probability: float = DEFAULT_MIN_PROBABILITY,
    ) -> None:
        from facenet_pytorch import MTCNN

        self.device = torch.device(device)
        self.min_face_size = int(min_face_size)
        self.max_side = int(max_side)
        self.min_probability = float(min_probability)
        self._mtcnn = MTCNN(
            keep_all=True,
            selection_method="probability",
            post_process=False,
            # The finest pyramid (12 px, P-Net's window): measured on Kodak, coarser pyramids
            # (16, 20) mis-size tiny faces (kodim05's 15 px face reported as 21 px) and so
            # defeat the size floor applied below.
            min_face_size=12,
            device=self.device,
        ).eval()
        self._lock = threading.Lock()

    def detect(self, pixels: np.ndarray) -> list[Face]:
        """Detect faces in an (H, W, 3) uint8 RGB array; most probable first."""
        if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
            raise ValueError("detect() takes an (H, W, 3) uint8 RGB array")
        h, w = pixels.shape[:2]
        if min(h, w) < PNET_WINDOW:
            logger.info("%d×%d image: shorter than MTCNN's %d px window, no face can be found",
                        w, h, PNET_WINDOW)
            return []
        scale = self._scale(w, h)
        img = Image.fromarray(pixels)
        if scale < 1.0:
            img = img.resize(self.copy_size(w, h)[1], Image.BOX)
        return self._run(img, scale, (0, 0))

    def copy_size(self, w: int, h: int) -> tuple[float, tuple[int, int]]:
        """The scale and ``(width, height)`` of the copy :meth:`detect` runs MTCNN on for a
        ``w`` × ``h`` photo (the photo's own size when it is not downscaled)."""
        scale = self._scale(w, h)
        if scale >= 1.0:
            return 1.0, (w, h)
        return scale, (max(PNET_WINDOW, round(w * scale)), max(PNET_WINDOW, round(h * scale)))

    def detect_copy(self, copy: np.ndarray, scale: float, origin: tuple[int, int] = (0, 0)) -> list[Face]:
        """:meth:`detect` of a photo given the copy it would run MTCNN on (``copy_size``), faces
        in the photo's coordinates less ``origin``."""
        if min(copy.shape[:2]) < PNET_WINDOW:
            return []
        return self._run(Image.fromarray(np.ascontiguousarray(copy)), scale, origin)

    def _scale(self, w: int, h: int) -> float:
        # downscale the long side to max_side, but never the short side below P-Net's window
        # (a 6000×30 strip would otherwise become 1600×8)
        return max(min(1.0, self.max_side / max(h, w)), min(1.0, PNET_WINDOW / min(h, w)))

    def _run(self, img: Image.Image, scale: float, photo_origin: tuple[int, int]) -> list[Face]:
        """MTCNN on ``img``, the photo's copy at ``scale``; faces in the coordinates of the photo
        less ``photo_origin``."""
        with self._lock, torch.no_grad():
            boxes, probs, points = self._mtcnn.detect(img, landmarks=True)
        if boxes is None:
            return []
        org = np.array(photo_origin, dtype=np.float64)
        boxes = (np.asarray(boxes, dtype=np.float64).reshape(-1, 2, 2) / scale - org).reshape(-1, 4)
        probs = np.asarray(probs, dtype=np.float64).reshape(-1)
        points = np.asarray(points, dtype=np.float64).reshape(-1, 5, 2) / scale - org
        faces = [
            Face(tuple(map(float, b)), float(p), tuple((float(x), float(y)) for x, y in lm))
            for b, p, lm in zip(boxes, probs, points)
        ]
        kept = [
            f for f in faces if f.size >= self.min_face_size and f.probability >= self.min_probability
        ]
        if len(kept) < len(faces):
            logger.info("dropped %d small or improbable detections", len(faces) - len(kept))
        return sorted(kept, key=lambda f: f.probability, reverse=True)


def split_possible(faces: list[Face], floor: float = PROTECT_MIN_PROBABILITY
                   ) -> tuple[list[Face], list[Face]]:
    """``(faces, possible_faces)``: detections at or above ``floor``, and the ones below."""
    return ([f for f in faces if f.probability >= floor], [f for f in faces if f.probability < floor])


_DETECTORS: dict[tuple, FaceDetector] = {}


def get_detector(device: torch.device | str = "cpu", **kwargs) -> FaceDetector:
    """A cached detector per (device, settings): MTCNN is cheap to run, not to build."""
    key = (str(device), tuple(sorted(kwargs.items())))
    if key not in _DETECTORS:
        _DETECTORS[key] = FaceDetector(device, **kwargs)
    return _DETECTORS[key]


def detect_faces(pixels: np.ndarray, device: torch.device | str = "cpu", **kwargs) -> list[Face]:
    """Detect every face in an (H, W, 3) uint8 RGB photo (see :class:`FaceDetector`)."""
    return get_detector(device, **kwargs).detect(pixels)

