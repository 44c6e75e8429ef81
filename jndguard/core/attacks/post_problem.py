"""Set up post mode for one face of a photo: context region, changing region, geometry, the
views of every white-box recogniser with their clean references, and the stopping check.

The changing region is the face box + 35 % per side (it covers the widest crop the threat
matrix takes, box + 30 %, plus detector jitter); the context region (box + 60 %) is what every
view reads, so views near the border of the changing region see the real surroundings
(docs/design.md §4–5).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from jndguard.core.attacks.base import Goal
from jndguard.core.attacks.post_eot import (
    FaceGeometry,
    PostEOT,
    RecogniserViews,
    clean_references,
    relative_margin,
    view_specs,
)
from jndguard.core.attacks.problem import PostProblem, PostVerdict
from jndguard.core.faces.crop import expand_box
from jndguard.core.imageio import to_uint8

CHANGE_MARGIN = 0.35
CONTEXT_MARGIN = 0.6


def region_of(box, margin: float, width: int, height: int) -> tuple[int, int, int, int]:
    """Box + margin, clipped, origin on the 16-pixel grid (JPEG blocks of the photo and of
    the region coincide)."""
    x1, y1, x2, y2 = expand_box(box, margin)
    x0 = max(0, math.floor(x1) // 16 * 16)
    y0 = max(0, math.floor(y1) // 16 * 16)
    return x0, y0, min(width, math.ceil(x2)), min(height, math.ceil(y2))


def dlib_points_for(pixels: np.ndarray, box) -> np.ndarray | None:
    """dlib's 5-point landmarks for a face box, or None when dlib's alignment is not available."""
    try:
        from jndguard.core.faces.align import dlib_landmarks
    except ImportError:
        return None
    return np.asarray(dlib_landmarks(pixels, box), dtype=float).reshape(5, 2)


def hog_box_for(pixels: np.ndarray, box, min_iou: float = 0.1):
    """dlib's HOG detector's box of the face at ``box`` (photo coordinates), found on the face's
    surroundings (box + 60 %) scaled so the face is about 160 px — what the detector finds on
    the whole photo at its own scale, without scanning it; None when dlib is not installed or
    finds no matching face."""
    try:
        from jndguard.core.faces.align import dlib_hog_boxes
    except ImportError:
        return None
    from PIL import Image

    from jndguard.core.threat.matrix import match_boxes

    h, w = pixels.shape[:2]
    x0, y0, x1, y1 = region_of(box, CONTEXT_MARGIN, w, h)
    side = max(box[2] - box[0], box[3] - box[1])
    f = min(1.0, 160.0 / max(1.0, side))
    crop = pixels[y0:y1, x0:x1]
    if f < 1.0:
        crop = np.asarray(Image.fromarray(crop).resize(
            (max(1, round(crop.shape[1] * f)), max(1, round(crop.shape[0] * f))), Image.BILINEAR))
    try:
        found = [(bx0 / f + x0, by0 / f + y0, bx1 / f + x0, by1 / f + y0)
                 for bx0, by0, bx1, by1 in dlib_hog_boxes(np.ascontiguousarray(crop), 1)]
    except Exception:  # dlib errors on degenerate crops: no HOG views for this face
        return None
    j = match_boxes([tuple(box)], found, min_iou)[0]
    return None if j is None else tuple(float(v) for v in found[j])


def geometry_of(face, pixels: np.ndarray, origin=(0, 0), with_dlib: bool = True) -> FaceGeometry:
    """The face's geometry in the coordinates of an image cropped at ``origin``."""
    h, w = pixels.shape[:2]
    pts = dlib_points_for(pixels, face.box) if with_dlib else None
    hog = hog_box_for(pixels, face.box) if with_dlib else None
    g = FaceGeometry(tuple(float(v) for v in face.box), np.asarray(face.landmarks, float), w, h, pts, hog)
    return g.shifted(*origin) if origin != (0, 0) else g


def make_views(recognisers: Sequence, clean_ctx: torch.Tensor, geom: FaceGeometry, eot: PostEOT,
               goal: Goal, targets: Sequence[torch.Tensor | None] | None = None,
               others: Sequence[torch.Tensor | None] | None = None,
               decoys: Sequence[torch.Tensor] | None = None) -> list[RecogniserViews]:
    """One :class:`RecogniserViews` per recogniser, with the clean references computed once.
    ``decoys`` (dodging): per recogniser, ``(K, D)`` identity centroids; the one least like the
    face's clean views becomes its decoy."""
    specs = view_specs(eot, geom.dlib_points is not None, geom.hog_box is not None)
    out = []
    for k, rec in enumerate(recognisers):
        refs = clean_references(rec, clean_ctx.to(rec.device), geom, specs)
        t = None if goal is Goal.DODGE or targets is None else targets[k]
        o = None if goal is Goal.DODGE or others is None else others[k]
        d = None
        if goal is Goal.DODGE and decoys is not None:
            cents = decoys[k].to(refs)
            d = cents[int((refs.mean(0) @ cents.T).argmin())]
        out.append(RecogniserViews(rec, specs, refs, t, o, d))
    return out


class MatrixQuickCheck:
    """The stopping check of post mode: the quick threat matrix (``jndguard.core.threat``) of the
    8-bit photo with the candidate region pasted in, judged for one face and the white-box
    recognisers; a cell passes when it clears the line by ``margin`` (relative, see
    :func:`~jndguard.core.attacks.post_eot.relative_margin`). With a
    :class:`~jndguard.core.threat.window.WindowMatrix` only the face's window of the photo is
    copied, re-encoded and re-detected (docs/design.md §11)."""

    def __init__(self, matrix, protected: Callable[[], np.ndarray], face_index: int,
                 change_abs: tuple[int, int, int, int], names: Sequence[str], goal: Goal,
                 margin: float, lift: Callable[[torch.Tensor], np.ndarray] | None = None) -> None:
        self.matrix = matrix
        self.lift = to_uint8 if lift is None else lift
        self.margin = margin
        self.protected = protected
        self.face_index = face_index
        self.change_abs = change_abs
        self.names = set(names)
        self.goal = goal
        self.window = getattr(matrix, "window", None)
        self.local = face_index if self.window is None else matrix.local_index(face_index)

    def photo_with(self, region: torch.Tensor) -> np.ndarray:
        """The photo (its window, with a window matrix) with the candidate region pasted in
        through ``lift``: :func:`~jndguard.core.imageio.to_uint8`, or for a face optimised at a
        working scale :meth:`~jndguard.core.attacks.post_scale.WorkScale.lift`."""
        wx0, wy0, wx1, wy1 = self.window or (0, 0, None, None)
        pixels = self.protected()[wy0:wy1, wx0:wx1].copy()
        x0, y0, x1, y1 = self.change_abs
        pixels[y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0] = self.lift(region)
        return pixels

    @torch.no_grad()
    def __call__(self, region: torch.Tensor) -> PostVerdict:
        report = self.matrix.evaluate(self.photo_with(region))
        mine = [e for e in report.entries if e.face == self.local and e.recogniser in self.names]
        worst, worst_sim, details, failed = -9.0, float("nan"), [], 0
        for e in mine:
            kappa = relative_margin(self.margin, e.threshold)
            if self.goal is Goal.DODGE:
                s = e.similarity
                gap = -9.0 if s is None else s - (e.threshold - kappa)
            else:
                s = e.target_similarity
                gap = 9.0 if s is None else max((e.threshold + kappa) - s,
                                                 (e.similarity or -1.0) - s)
            if gap > worst:
                worst, worst_sim = gap, float("nan") if s is None else float(s)
            if gap >= 0:
                failed += 1
                details.append(f"{e.recogniser} {e.detector}/{e.crop}/{e.resize} {e.encoding} "
                               f"vs {e.reference}: " + ("no face" if s is None else f"{s:.3f}"))
        ok = bool(mine) and failed == 0 and not report.errors
        return PostVerdict(ok, worst, worst_sim, len(mine), failed, details + list(report.errors))


class FaceMatrices:
    """The quick threat matrix of each face of a photo on a window around it
    (:class:`~jndguard.core.threat.window.WindowMatrix`), built when first asked for, the
    impersonation target's photos embedded once for all."""

    def __init__(self, clean_pixels: np.ndarray, faces, recognisers, target_photos=None) -> None:
        from jndguard.core.threat.matrix import as_references

        self.pixels = clean_pixels
        self.faces = list(faces)
        self.recognisers = list(recognisers)
        self.target = as_references(target_photos, "target") if target_photos is not None else None
        self._built: dict[int, object] = {}
        self._copies = None

    def __getitem__(self, i: int):
        if i not in self._built:
            from jndguard.core.threat.matrix import QUICK
            from jndguard.core.threat.window import PhotoCopies, WindowMatrix, face_window

            h, w = self.pixels.shape[:2]
            if self._copies is None:
                self._copies = PhotoCopies(self.pixels, QUICK.encodings)
            window = face_window(self.faces[i].box, w, h, QUICK.encodings)
            self._built[i] = WindowMatrix(self.pixels, window, self.faces, self.recognisers, QUICK,
                                          None, self.target, 0.0, copies=self._copies)
        return self._built[i]


def quick_matrix(clean_pixels: np.ndarray, faces, recognisers, target_photos=None) -> FaceMatrices:
    """The quick threat matrix of a photo for the white-box recognisers, per face on its window,
    the clean side computed once (the stopping margin is applied per recogniser by
    :class:`MatrixQuickCheck`)."""
    return FaceMatrices(clean_pixels, faces, recognisers, target_photos)


def make_post_problem(x: torch.Tensor, jnd: torch.Tensor, clean_pixels: np.ndarray, face,
                      recognisers: Sequence, goal: Goal, eot: PostEOT,
                      protected: Callable[[], np.ndarray], stop_margin: float, train_margin: float,
                      generator: torch.Generator, targets=None, others=None,
                      jnd_space: str = "rgb", matrix=None, face_index: int = 0, decoys=None,
                      origin: tuple[int, int] = (0, 0), scaled=None,
                      ) -> tuple[PostProblem, tuple[int, int, int, int]]:
    """The :class:`PostProblem` of one face and its changing region in photo coordinates;
    ``matrix`` (from :func:`quick_matrix`; built here for this face when None) judges success.
    ``x`` and ``jnd`` cover the photo from ``origin`` on (the whole photo, or a region of it
    holding the face's context region). With ``scaled``
    (:class:`~jndguard.core.attacks.post_scale.WorkScale`), ``x`` and ``jnd`` are the face's
    working copy of its context region and the problem lives at that scale; the stopping check
    judges the lifted full-resolution region."""
    h, w = clean_pixels.shape[:2]
    change = region_of(face.box, CHANGE_MARGIN, w, h)
    context = region_of(face.box, CONTEXT_MARGIN, w, h)
    cx0, cy0, cx1, cy1 = context
    geom = geometry_of(face, clean_pixels, (cx0, cy0))
    f = 1.0
    if scaled is None:
        ox, oy = origin
        ctx = x[:, :, cy0 - oy:cy1 - oy, cx0 - ox:cx1 - ox]
        x0, y0, x1, y1 = change
        local = (x0 - cx0, y0 - cy0, x1 - cx0, y1 - cy0)
        jnd_change = jnd[:, :, y0 - oy:y1 - oy, x0 - ox:x1 - ox]
    else:
        ctx, local = x, scaled.change_small
        jnd_change = jnd[:, :, local[1]:local[3], local[0]:local[2]]
        sx, sy = scaled.factors
        geom = geom.scaled(sx, sy, round(geom.width * sx), round(geom.height * sy))
        f = (sx + sy) / 2
    views = make_views(recognisers, ctx, geom, eot, goal, targets, others, decoys)
    if matrix is None:
        matrix, face_index = quick_matrix(clean_pixels, [face], recognisers), 0
    if isinstance(matrix, FaceMatrices):
        matrix = matrix[face_index]
    judge = MatrixQuickCheck(matrix, protected, face_index, change, [r.name for r in recognisers], goal,
                             stop_margin, None if scaled is None else scaled.lift)
    problem = PostProblem(
        context=ctx, change=local, jnd=jnd_change, geometry=geom, views=views, eot=eot, judge=judge,
        goal=goal,
        train_margin=train_margin, stop_margin=stop_margin, generator=generator, jnd_space=jnd_space,
        long_edge=float(max(h, w)) * f, face_side=float(max(face.width, face.height)) * f)
    return problem, change
