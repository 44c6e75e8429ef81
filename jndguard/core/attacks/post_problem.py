"""Set up post mode for one face of a photo: context region, changing region, geometry, the
views of every white-box recogniser with their clean references, and the stopping check.

The changing region is the face box + 35 % per side (it covers the widest crop the threat
matrix takes, box + 30 %, plus detector jitter); the context region (box + 60 %) is what every
view reads, so views near the border of the changing region see the real surroundings
(docs/design.md §4–5).
"""

from __future__ import annotations

import io
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
    view_transform,
    warp_views,
)
from jndguard.core.attacks.problem import PostProblem, PostVerdict
from jndguard.core.faces.crop import expand_box

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


def geometry_of(face, pixels: np.ndarray, origin=(0, 0), with_dlib: bool = True) -> FaceGeometry:
    """The face's geometry in the coordinates of an image cropped at ``origin``."""
    h, w = pixels.shape[:2]
    pts = dlib_points_for(pixels, face.box) if with_dlib else None
    g = FaceGeometry(tuple(float(v) for v in face.box), np.asarray(face.landmarks, float), w, h, pts)
    return g.shifted(*origin) if origin != (0, 0) else g


def pillow_encode(pixels: np.ndarray, quality: int | None, long_edge: int | None = None) -> np.ndarray:
    """What a photo site does: optional resize to ``long_edge`` (antialiased), JPEG (4:2:0)."""
    from PIL import Image

    img = Image.fromarray(pixels)
    if long_edge is not None and max(img.size) > long_edge:
        s = long_edge / max(img.size)
        img = img.resize((max(1, round(img.width * s)), max(1, round(img.height * s))), Image.LANCZOS)
    if quality is None:
        return np.asarray(img)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def make_views(recognisers: Sequence, clean_ctx: torch.Tensor, geom: FaceGeometry, eot: PostEOT,
               goal: Goal, targets: Sequence[torch.Tensor | None] | None = None,
               others: Sequence[torch.Tensor | None] | None = None) -> list[RecogniserViews]:
    """One :class:`RecogniserViews` per recogniser, with the clean references computed once."""
    specs = view_specs(eot, geom.dlib_points is not None)
    out = []
    for k, rec in enumerate(recognisers):
        refs = clean_references(rec, clean_ctx.to(rec.device), geom, specs)
        t = None if goal is Goal.DODGE or targets is None else targets[k]
        o = None if goal is Goal.DODGE or others is None else others[k]
        out.append(RecogniserViews(rec, specs, refs, t, o))
    return out


class InterimQuickCheck:
    """Stopping check used while ``jndguard.core.threat`` is not installed: the quick matrix's
    cells (box + 20 % and + 30 %, ArcFace and dlib-chip alignment, antialiased; the file, JPEG
    q75 and JPEG q85) on real Pillow encodes of the whole 8-bit photo, faces re-detected by
    MTCNN on each (the clean geometry when the face is not found), compared with the clean
    references. Success when every cell clears the line by ``margin``."""

    def __init__(self, clean_pixels: np.ndarray, protected: Callable[[], np.ndarray], face,
                 change_abs: tuple[int, int, int, int], context_abs: tuple[int, int, int, int],
                 views: list[RecogniserViews], goal: Goal, margin: float,
                 encodings: Sequence[int | None] = (None, 75, 85)) -> None:
        self.clean_pixels = clean_pixels
        self.protected = protected
        self.face = face
        self.change_abs, self.context_abs = change_abs, context_abs
        self.views, self.goal, self.margin = views, goal, margin
        self.encodings = tuple(encodings)

    def photo_with(self, region: torch.Tensor) -> np.ndarray:
        pixels = self.protected().copy()
        x0, y0, x1, y1 = self.change_abs
        pixels[y0:y1, x0:x1] = region[0].permute(1, 2, 0).mul(255).round().clamp(0, 255).byte().cpu().numpy()
        return pixels

    @torch.no_grad()
    def __call__(self, region: torch.Tensor) -> PostVerdict:
        from jndguard.core.faces import detect_faces
        from jndguard.core.pipeline import match_faces

        pixels = self.photo_with(region)
        cx0, cy0, cx1, cy1 = self.context_abs
        worst, worst_sim, cells, failed, details = -9.0, float("nan"), 0, 0, []
        for q in self.encodings:
            enc = pillow_encode(pixels, q)
            found = match_faces([self.face], detect_faces(enc, "cpu", min_face_size=12))[0]
            face = found or self.face
            geom = geometry_of(face, enc, (cx0, cy0), any(
                s.convention == "dlib-chip" for v in self.views for s in v.specs))
            ctx = torch.from_numpy(enc[cy0:cy1, cx0:cx1].copy()).permute(2, 0, 1)[None].float().div(255)
            for rv in self.views:
                crops = []
                for aa in (True,):
                    idx = [i for i, s in enumerate(rv.specs) if s.antialias == aa and (
                        s.convention in ("arcface", "dlib-chip")
                        or (s.convention == "box" and s.margin >= 0.2))]
                    m = torch.as_tensor(np.stack([view_transform(rv.specs[i], geom, rv.size) for i in idx]),
                                        dtype=torch.float32)
                    crops.append((idx, warp_views(ctx, m, rv.size, aa)))
                idx = [i for ids, _ in crops for i in ids]
                emb = rv.recogniser(torch.cat([c for _, c in crops]).to(rv.recogniser.device))
                kappa = rv.margin(self.margin)
                if rv.target is None:
                    s = (emb * rv.references[idx]).sum(1)
                    gap = s - (rv.threshold - kappa)
                else:
                    s = emb @ rv.target
                    gap = (rv.threshold + kappa) - s
                for k, i in enumerate(idx):
                    cells += 1
                    g = float(gap[k])
                    if g >= 0:
                        failed += 1
                        details.append(f"{rv.name} {rv.specs[i].label} {'file' if q is None else f'jpeg{q}'}"
                                       f" cos {float(s[k]):.3f}")
                    if g > worst:
                        worst, worst_sim = g, float(s[k])
        return PostVerdict(failed == 0, worst, worst_sim, cells, failed, details)


class MatrixQuickCheck:
    """The stopping check of post mode: the quick threat matrix (``jndguard.core.threat``) of the
    whole 8-bit photo with the candidate region pasted in, judged for one face and the white-box
    recognisers; a cell passes when it clears the line by ``margin`` (relative, see
    :func:`~jndguard.core.attacks.post_eot.relative_margin`)."""

    def __init__(self, matrix, protected: Callable[[], np.ndarray], face_index: int,
                 change_abs: tuple[int, int, int, int], names: Sequence[str], goal: Goal,
                 margin: float) -> None:
        self.matrix = matrix
        self.margin = margin
        self.protected = protected
        self.face_index = face_index
        self.change_abs = change_abs
        self.names = set(names)
        self.goal = goal

    def photo_with(self, region: torch.Tensor) -> np.ndarray:
        pixels = self.protected().copy()
        x0, y0, x1, y1 = self.change_abs
        pixels[y0:y1, x0:x1] = region[0].permute(1, 2, 0).mul(255).round().clamp(0, 255).byte().cpu().numpy()
        return pixels

    @torch.no_grad()
    def __call__(self, region: torch.Tensor) -> PostVerdict:
        report = self.matrix.evaluate(self.photo_with(region))
        mine = [e for e in report.entries if e.face == self.face_index and e.recogniser in self.names]
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


def quick_matrix(clean_pixels: np.ndarray, faces, recognisers, margin: float, target_photos=None):
    """The quick threat matrix of a photo for the white-box recognisers (clean side computed
    once), or None while ``jndguard.core.threat`` is not available."""
    try:
        from jndguard.core.threat.matrix import ThreatMatrix
    except ImportError:
        return None
    return ThreatMatrix(clean_pixels, faces, list(recognisers), "quick", None, target_photos, 0.0)


def make_post_problem(x: torch.Tensor, jnd: torch.Tensor, clean_pixels: np.ndarray, face,
                      recognisers: Sequence, goal: Goal, eot: PostEOT,
                      protected: Callable[[], np.ndarray], stop_margin: float, train_margin: float,
                      generator: torch.Generator, targets=None, others=None,
                      jnd_space: str = "rgb", matrix=None,
                      face_index: int = 0) -> tuple[PostProblem, tuple[int, int, int, int]]:
    """The :class:`PostProblem` of one face and its changing region in photo coordinates;
    ``matrix`` (from :func:`quick_matrix`) judges success, else the interim check."""
    h, w = clean_pixels.shape[:2]
    change = region_of(face.box, CHANGE_MARGIN, w, h)
    context = region_of(face.box, CONTEXT_MARGIN, w, h)
    cx0, cy0, cx1, cy1 = context
    ctx = x[:, :, cy0:cy1, cx0:cx1]
    geom = geometry_of(face, clean_pixels, (cx0, cy0))
    views = make_views(recognisers, ctx, geom, eot, goal, targets, others)
    if matrix is not None:
        judge = MatrixQuickCheck(matrix, protected, face_index, change, [r.name for r in recognisers], goal,
                                 stop_margin)
    else:
        judge = InterimQuickCheck(clean_pixels, protected, face, change, context, views, goal, stop_margin)
    x0, y0, x1, y1 = change
    problem = PostProblem(
        context=ctx, change=(x0 - cx0, y0 - cy0, x1 - cx0, y1 - cy0),
        jnd=jnd[:, :, y0:y1, x0:x1], geometry=geom, views=views, eot=eot, judge=judge, goal=goal,
        train_margin=train_margin, stop_margin=stop_margin, generator=generator, jnd_space=jnd_space,
        long_edge=float(max(h, w)), face_side=float(max(face.width, face.height)))
    return problem, change
