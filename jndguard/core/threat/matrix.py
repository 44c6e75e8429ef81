"""The threat matrix: is a face recognised anywhere a real search pipeline would look?
(docs/design.md §4)

A cell is (recogniser, detector, crop convention, resize kernel, re-encoding, reference). In a
cell the protected photo is re-encoded (:mod:`.encodings`), its faces are detected and matched
to the original's faces, cropped (:mod:`.conventions`) and embedded; the reference — the clean
original, or each of the person's other photos (the gallery) — goes through the same detector,
crop and kernel (like for like, as a search engine embeds its gallery and its probe the same
way). Dodging: a face is *recognised* in a cell when its similarity to the reference reaches the
recogniser's threshold (to the best-matching gallery photo for the gallery reference); it is
protected only when it is recognised in no cell. Impersonation (``target``): a cell passes when
the target's best photo matches above the threshold and above the person's own reference.

Like-for-like reuse: one detection per re-encoded variant and detector, shared by every crop
convention; the reference embeddings are computed once per (recogniser, detector, crop, kernel)
and cached (the gallery across calls too); the original's detections are reused.

Faces are matched between photos in a scale- and crop-aware way: boxes of a re-encoded or
resized copy are mapped back to the original's coordinates (by the image sizes, or by a
feature-based registration when the aspect ratio differs), then matched one-to-one by IoU. A
face found in the protected file that matches no original face while an original face found no
match is an *error* (never "protected"); a face that a detector does not find in a cell is not
recognised there, reported with status ``no-face``.

API (stable; the post-protection mode calls it as its stopping rule)::

    report = evaluate_matrix(original_pixels, protected_pixels, faces=None, recognisers=None,
                             size="quick", gallery=None, target=None)
    report.protected          # bool: every face passes every cell, no matching error
    report.entries            # list[MatrixEntry]: one per cell and face
    report.summaries          # per face and recogniser: share of cells passed, worst cell
    report.to_dict()          # JSON: top-level "protected" and "matrix" (the entries)

or, to evaluate many candidate protections of one photo with the references computed once,
``ThreatMatrix(original_pixels, ...).evaluate(protected_pixels)``. Pixels are ``(H, W, 3)``
uint8 RGB; ``faces`` are the original's :class:`~jndguard.core.faces.Face` list (detected when
None); ``recognisers`` loaded models or matrix recognisers (:mod:`.recognisers`; default every
registered model plus dlib); ``gallery`` a :class:`ReferencePhotos`, a folder or a list of
photos; ``target`` a :class:`ReferencePhotos` of the identity to impersonate.

Sizes: ``full`` is every cell; ``quick`` (interactive use) keeps the cells measured to be the
hardest on protected validation faces (see :data:`QUICK` and docs/results/threat-matrix.md).
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from jndguard.core.threat.conventions import (
    CROPS,
    DETECTORS,
    KERNELS,
    Detection,
    detect_hog,
    detect_mtcnn,
    make_crop,
)
from jndguard.core.threat.encodings import ENCODINGS, Variant, reencode

logger = logging.getLogger(__name__)

MIN_IOU = 0.3


@dataclass(frozen=True)
class MatrixSize:
    """Which cells to evaluate: the product of these axes."""

    name: str
    detectors: tuple[str, ...]
    crops: tuple[str, ...]
    kernels: tuple[str, ...]
    encodings: tuple[str, ...]
    # per-recogniser crop subsets, ((name, crops), ...): e.g. dlib's black box only on its own
    # chips where its cost (about 0.1–0.7 s per crop on a CPU) forbids every cell
    recogniser_crops: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def n_cells(self) -> int:
        return len(self.detectors) * len(self.crops) * len(self.kernels) * len(self.encodings)

    def crops_for(self, recogniser) -> tuple[str, ...]:
        """The crop conventions evaluated for one recogniser: this size's crops, less those a
        recogniser restricts itself from (its ``crops`` attribute, e.g. dlib's black box)."""
        mine = dict(self.recogniser_crops).get(recogniser.name, self.crops)
        only = getattr(recogniser, "crops", None)
        return tuple(c for c in mine if only is None or c in only)


FULL = MatrixSize("full", DETECTORS, CROPS, KERNELS, ENCODINGS)
# The hardest cells, chosen by measurement (docs/results/threat-matrix.md): on protected
# validation faces the similarity margin over τ grows with the crop margin (tight < m10 < m20
# < m30) and is high for the ArcFace alignment; JPEG q60 is the hardest JPEG; both detectors
# and both kernels differ little (MTCNN and the antialiased kernel kept). The tight crop, the
# optimiser's own, is the easiest cell and is left out; dlib's chip keeps dlib's ResNet in.
# 720+jpeg85 stands for the downscale of large photos (a no-op on small ones).
QUICK = MatrixSize("quick", ("mtcnn",), ("m20", "m30", "arcface", "dlib150"), ("aa",),
                   ("file", "jpeg60", "720+jpeg85"))
SIZES = {"full": FULL, "quick": QUICK}


def matrix_size(size: str | MatrixSize) -> MatrixSize:
    if isinstance(size, MatrixSize):
        return size
    if size not in SIZES:
        raise ValueError(f"unknown matrix size {size!r}; choose from {', '.join(SIZES)}")
    return SIZES[size]


# --------------------------------------------------------------------------- matching


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_boxes(refs: Sequence[Sequence[float] | None], cands: Sequence[Sequence[float]],
                min_iou: float = MIN_IOU) -> list[int | None]:
    """One-to-one matching by IoU (greedy, best pairs first): for each reference box the index
    of its candidate, or None."""
    pairs = sorted(((iou(r, c), i, j) for i, r in enumerate(refs) if r is not None
                    for j, c in enumerate(cands)), reverse=True)
    out: list[int | None] = [None] * len(refs)
    used: set[int] = set()
    for v, i, j in pairs:
        if v < min_iou:
            break
        if out[i] is None and j not in used:
            out[i] = j
            used.add(j)
    return out


@dataclass(frozen=True)
class Registration:
    """Maps original coordinates to protected-photo coordinates: ``p' = a·p + t`` per axis."""

    ax: float = 1.0
    ay: float = 1.0
    tx: float = 0.0
    ty: float = 0.0
    method: str = "size"

    def to_original(self, box: Sequence[float], scale: tuple[float, float] = (1.0, 1.0)):
        """A box of a variant (scaled by ``scale`` from the protected photo) in original
        coordinates."""
        sx, sy = self.ax * scale[0], self.ay * scale[1]
        tx, ty = self.tx * scale[0], self.ty * scale[1]
        return ((box[0] - tx) / sx, (box[1] - ty) / sy, (box[2] - tx) / sx, (box[3] - ty) / sy)


def size_registration(original_shape, protected_shape) -> Registration:
    """Scale by the image sizes (a resized copy)."""
    (ho, wo), (hp, wp) = original_shape[:2], protected_shape[:2]
    return Registration(wp / wo, hp / ho, 0.0, 0.0, "size")


def feature_registration(original: np.ndarray, protected: np.ndarray) -> Registration | None:
    """Scale + translation from ORB features and RANSAC (a cropped or re-framed copy;
    Rublee et al., "ORB: an efficient alternative to SIFT or SURF", ICCV 2011)."""
    import cv2

    orb = cv2.ORB_create(2000)
    g1 = cv2.cvtColor(np.ascontiguousarray(original), cv2.COLOR_RGB2GRAY)
    g2 = cv2.cvtColor(np.ascontiguousarray(protected), cv2.COLOR_RGB2GRAY)
    k1, d1 = orb.detectAndCompute(g1, None)
    k2, d2 = orb.detectAndCompute(g2, None)
    if d1 is None or d2 is None or len(k1) < 8 or len(k2) < 8:
        return None
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(d1, d2)
    if len(matches) < 8:
        return None
    src = np.float32([k1[m.queryIdx].pt for m in matches])
    dst = np.float32([k2[m.trainIdx].pt for m in matches])
    m, inliers = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=3.0)
    if m is None or inliers is None or int(inliers.sum()) < 8:
        return None
    s = math.hypot(m[0, 0], m[1, 0])
    if abs(math.atan2(m[1, 0], m[0, 0])) > 0.05:  # rotated copies are out of scope
        return None
    return Registration(s, s, float(m[0, 2]), float(m[1, 2]), "features")


# --------------------------------------------------------------------------- references


def _detect(pixels: np.ndarray, detector: str, min_face_size: int = 20) -> list[Detection]:
    return detect_mtcnn(pixels, min_face_size) if detector == "mtcnn" else detect_hog(pixels)


def _area(box) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


class ReferencePhotos:
    """Photos of one person (the user's "other photos", or an impersonation target), with
    their embeddings cached per (recogniser, detector, crop, kernel).

    Args:
        photos: ``(H, W, 3)`` uint8 arrays or paths.
        name: shown in reports (``"gallery"`` or the target's name).
    """

    def __init__(self, photos: Sequence[np.ndarray | str | Path], name: str = "gallery") -> None:
        from jndguard.core.imageio import load_image

        self.name = name
        self.paths = [str(p) for p in photos if not isinstance(p, np.ndarray)]
        self.pixels = [p if isinstance(p, np.ndarray) else load_image(p).pixels for p in photos]
        self._dets: dict[str, list[Detection | None]] = {}
        self._emb: dict[tuple, np.ndarray] = {}

    @classmethod
    def from_dir(cls, folder: str | Path, name: str = "gallery",
                 exclude: Iterable[str | Path] = ()) -> ReferencePhotos:
        """Every supported photo in a folder (sorted), except ``exclude``."""
        from jndguard.core.imageio import is_supported
        from jndguard.errors import JNDGuardError

        folder = Path(folder)
        if not folder.is_dir():
            raise JNDGuardError(f"gallery folder not found: {folder}")
        skip = {Path(p).resolve() for p in exclude}
        photos = sorted(p for p in folder.iterdir()
                        if p.is_file() and is_supported(p) and p.resolve() not in skip)
        if not photos:
            raise JNDGuardError(f"no photos in the gallery folder {folder}")
        return cls(photos, name)

    def __len__(self) -> int:
        return len(self.pixels)

    def detections(self, detector: str) -> list[Detection | None]:
        """The main face of each photo under a detector: MTCNN's largest face; for another
        detector the detection overlapping it most (else that detector's largest)."""
        if detector not in self._dets:
            if detector == "mtcnn":
                self._dets["mtcnn"] = [
                    max(detect_mtcnn(px), key=lambda x: _area(x.box), default=None)
                    for px in self.pixels]
            else:
                mains = self.detections("mtcnn")
                out = []
                for px, main in zip(self.pixels, mains):
                    dets = _detect(px, detector)
                    j = None if main is None else match_boxes([main.box], [x.box for x in dets], 0.1)[0]
                    out.append(dets[j] if j is not None
                               else max(dets, key=lambda x: _area(x.box), default=None))
                self._dets[detector] = out
        return self._dets[detector]

    def embeddings(self, rec, detector: str, crops: Sequence[str], kernels: Sequence[str]) -> None:
        """Compute (once) the embeddings of every photo for these crops and kernels."""
        need = [(c, k) for c in crops for k in kernels
                if (rec.name, detector, c, k) not in self._emb]
        if not need:
            return
        dets = self.detections(detector)
        batch, keys = [], []
        for c, k in need:
            for i, (px, d) in enumerate(zip(self.pixels, dets)):
                crop = None if d is None else make_crop(px, d, c, rec.input_size, k)
                if crop is not None:
                    batch.append(crop)
                    keys.append((c, k, i))
        emb = rec.embed(np.stack(batch)) if batch else np.zeros((0, 1), np.float32)
        for c, k in need:
            rows = [n for n, key in enumerate(keys) if key[:2] == (c, k)]
            self._emb[(rec.name, detector, c, k)] = emb[rows] if rows else np.zeros((0, 1), np.float32)

    def get(self, rec, detector: str, crop: str, kernel: str) -> np.ndarray:
        """``(K, D)`` embeddings of the photos in which a face was found (K may be 0)."""
        self.embeddings(rec, detector, [crop], [kernel])
        return self._emb[(rec.name, detector, crop, kernel)]


def as_references(photos, name: str = "gallery") -> ReferencePhotos | None:
    if photos is None or isinstance(photos, ReferencePhotos):
        return photos
    if isinstance(photos, (str, Path)):
        return ReferencePhotos.from_dir(photos, name)
    return ReferencePhotos(list(photos), name)


# --------------------------------------------------------------------------- report


@dataclass
class MatrixEntry:
    """One face in one cell against one reference."""

    face: int
    recogniser: str
    detector: str
    crop: str
    resize: str
    encoding: str
    reference: str  # "original" | "gallery"
    similarity: float | None
    threshold: float
    recognised: bool
    status: str  # ok | no-face (probe not found) | no-reference (reference not found)
    passed: bool  # dodging: not recognised; impersonation: the target wins
    target_similarity: float | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("similarity", "target_similarity"):
            if d[k] is not None:
                d[k] = round(float(d[k]), 4)
        d["threshold"] = round(float(d["threshold"]), 4)
        if self.target_similarity is None:
            del d["target_similarity"]
        return d


@dataclass
class MatrixReport:
    """Everything the matrix measured on one (original, protected) pair."""

    size: str
    goal: str
    target: str | None
    faces: list[dict]
    recognisers: list[dict]
    entries: list[MatrixEntry]
    summaries: list[dict]
    protected: bool
    unmatched: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    registration: str = "size"
    seconds: float = 0.0
    axes: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"protected": self.protected, "size": self.size, "goal": self.goal,
                "target": self.target, "faces": self.faces, "recognisers": self.recognisers,
                "summary": self.summaries, "matrix": [e.to_dict() for e in self.entries],
                "unmatched": self.unmatched, "errors": self.errors, "notes": self.notes,
                "registration": self.registration, "axes": self.axes,
                "seconds": round(self.seconds, 3)}

    def share_passed(self) -> float:
        return sum(e.passed for e in self.entries) / len(self.entries) if self.entries else 0.0


def _margin(e: MatrixEntry, goal: str) -> float:
    """How far a cell is from failing (negative = failed): dodging τ − s; impersonation
    t − max(τ, s)."""
    if goal == "impersonate":
        if e.target_similarity is None:
            return -math.inf
        return e.target_similarity - max(e.threshold, e.similarity if e.similarity is not None
                                         else -math.inf)
    return math.inf if e.similarity is None else e.threshold - e.similarity


def summarise(entries: list[MatrixEntry], n_faces: int, recognisers: list[str], goal: str) -> list[dict]:
    """Per face and recogniser: cells, share passed, worst cell, protected."""
    out = []
    for i in range(n_faces):
        for r in recognisers:
            mine = [e for e in entries if e.face == i and e.recogniser == r]
            if not mine:
                continue
            worst = min(mine, key=lambda e: _margin(e, goal))
            out.append({
                "face": i, "recogniser": r, "cells": len(mine),
                "passed": sum(e.passed for e in mine),
                "share": round(sum(e.passed for e in mine) / len(mine), 4),
                "no_face": sum(e.status == "no-face" for e in mine),
                "protected": all(e.passed for e in mine),
                "worst": worst.to_dict(),
            })
    return out


def format_grid(report: MatrixReport | dict, width: int = 7) -> list[str]:
    """A compact text grid per face and recogniser: rows detector/crop/resize, columns
    encodings; ✓ passed / ✗ failed with the worst similarity over the references, ``–``
    for no face found."""
    d = report.to_dict() if isinstance(report, MatrixReport) else report
    axes = d["axes"]
    encs = axes.get("encodings", [])
    goal = d["goal"]
    lines = []
    cells: dict[tuple, list[dict]] = {}
    for e in d["matrix"]:
        cells.setdefault((e["face"], e["recogniser"], e["detector"], e["crop"], e["resize"],
                          e["encoding"]), []).append(e)
    for s in d["summary"]:
        i, r = s["face"], s["recogniser"]
        w = s["worst"]
        lines.append(f"face {i} · {r}: {'protected' if s['protected'] else 'RECOGNISED'} in "
                     f"{s['passed']}/{s['cells']} cells (worst: {w['detector']} {w['crop']} "
                     f"{w['resize']} {w['encoding']} vs {w['reference']}, "
                     f"{_fmt_sim(w.get('similarity'))} vs τ {w['threshold']:.3f})")
        lines.append(" " * 22 + "".join(f"{x[:width]:>{width + 1}}" for x in encs))
        for det, crop, kern in itertools.product(axes["detectors"], axes["crops"], axes["kernels"]):
            row = [_cell(cells.get((i, r, det, crop, kern, enc), []), goal) for enc in encs]
            if any(row):
                lines.append(f"  {det:5s} {crop:8s} {kern:8s}" + "".join(f"{c:>{width + 1}}" for c in row))
    return lines


def _fmt_sim(v) -> str:
    return "no face" if v is None else f"{v:.3f}"


def _cell(es: list[dict], goal: str) -> str:
    if not es:
        return ""
    ok = all(e["passed"] for e in es)
    sims = [e["similarity"] for e in es if e["similarity"] is not None]
    if goal == "impersonate":
        sims = [e["target_similarity"] for e in es if e.get("target_similarity") is not None]
        val = min(sims) if sims else None
    else:
        val = max(sims) if sims else None
    if val is None:
        return "–"
    return f"{'✓' if ok else '✗'}{val:.2f}"


# --------------------------------------------------------------------------- evaluation


@dataclass
class _Probe:
    """What one re-encoded variant gives one face under one detector."""

    detection: Detection | None
    pixels: np.ndarray | None


class ThreatMatrix:
    """The references of one original photo, ready to judge any number of protected versions.

    Args:
        original: ``(H, W, 3)`` uint8 RGB pixels of the clean photo.
        faces: the original's faces (:class:`~jndguard.core.faces.Face`, MTCNN); detected when
            None.
        recognisers: loaded torch recognisers and/or matrix recognisers, used as given;
            None: every registered model plus dlib's ResNet when installed.
        size: ``"quick"``, ``"full"`` or a :class:`MatrixSize`.
        gallery: the person's other photos (:class:`ReferencePhotos`, a folder or photos).
        target: impersonation target (:class:`ReferencePhotos` named after the identity).
        margin: safety margin κ: dodging passes when ``s < τ − κ``, impersonation when the
            target similarity is ``≥ τ + κ``.
        min_face_size: detection floor in the original (pixels).
    """

    def __init__(self, original: np.ndarray, faces=None, recognisers=None,
                 size: str | MatrixSize = "quick", gallery=None, target=None,
                 margin: float = 0.0, min_face_size: int = 20) -> None:
        from jndguard.core.threat.recognisers import as_matrix_recogniser, default_recognisers

        self.original = np.ascontiguousarray(original)
        self.size = matrix_size(size)
        self.notes: list[str] = []
        if recognisers is None:
            self.recognisers, self.notes = default_recognisers(None)
        else:
            self.recognisers = [as_matrix_recogniser(r) for r in recognisers]
        if not self.recognisers:
            raise ValueError("the threat matrix needs at least one recogniser")
        self.gallery = as_references(gallery, "gallery")
        self.target = as_references(target, "target") if target is not None else None
        if self.target is not None and not len(self.target):
            raise ValueError("the impersonation target has no photos")
        self.margin = float(margin)
        self.min_face_size = int(min_face_size)
        if faces is None:
            from jndguard.core.faces import detect_faces

            faces = detect_faces(self.original, "cpu", min_face_size=min_face_size)
        self.faces = list(faces)
        # the original's detection of each face under each detector
        self.face_dets: dict[str, list[Detection | None]] = {
            "mtcnn": [Detection("mtcnn", f.box, np.asarray(f.landmarks, dtype=np.float64))
                      for f in self.faces]}
        if "hog" in self.size.detectors:
            hog = self._find(self._variant(self.original, "file"), "hog", self.min_face_size)
            idx = match_boxes([f.box for f in self.faces], [h.box for h in hog], 0.1)
            self.face_dets["hog"] = [hog[j] if j is not None else None for j in idx]
        self._orig_emb: dict[tuple, np.ndarray | None] = {}
        self._embed_original()
        for refs in (self.gallery, self.target):
            if refs is not None:
                for rec in self.recognisers:
                    for det in self.size.detectors:
                        refs.embeddings(rec, det, self.size.crops_for(rec), self.size.kernels)

    def _embed_original(self) -> None:
        for rec in self.recognisers:
            batch, keys = [], []
            for det in self.size.detectors:
                for i, d in enumerate(self.face_dets[det]):
                    for c, k in itertools.product(self.size.crops_for(rec), self.size.kernels):
                        crop = None if d is None else make_crop(self.original, d, c, rec.input_size, k)
                        self._orig_emb[(rec.name, det, c, k, i)] = None
                        if crop is not None:
                            batch.append(crop)
                            keys.append((rec.name, det, c, k, i))
            if batch:
                for key, e in zip(keys, rec.embed(np.stack(batch))):
                    self._orig_emb[key] = e

    # ---------------------------------------------------------------- probe side

    def _variant(self, protected: np.ndarray, encoding: str) -> Variant:
        """One re-encoding of the protected photo (:class:`WindowMatrix`: of its window)."""
        return reencode(protected, encoding)

    def _find(self, variant: Variant, detector: str, min_face_size: int) -> list[Detection]:
        """The faces a detector finds in a re-encoded variant."""
        return _detect(variant.pixels, detector, min_face_size)

    def _to_original(self, reg: Registration, box, variant: Variant):
        """A box found in a variant, in the original's coordinates."""
        return reg.to_original(box, variant.scale)

    def _register(self, protected: np.ndarray) -> tuple[Registration, list[Detection], list]:
        """Registration of the protected photo to the original, its MTCNN faces and their
        matches to the original faces (the ``file`` variant)."""
        reg = size_registration(self.original.shape, protected.shape)
        file = self._variant(protected, "file")
        found = self._find(file, "mtcnn", max(12, int(self.min_face_size * min(reg.ax, reg.ay) / 2)))
        (ho, wo), (hp, wp) = self.original.shape[:2], protected.shape[:2]
        aspect_differs = abs((wp / hp) / (wo / ho) - 1) > 0.01
        match = match_boxes([f.box for f in self.faces], [self._to_original(reg, d.box, file) for d in found])
        lost = any(m is None for m in match) and len({m for m in match if m is not None}) < len(found)
        if aspect_differs or lost:
            alt = feature_registration(self.original, protected)
            if alt is not None:
                alt_match = match_boxes([f.box for f in self.faces],
                                        [self._to_original(alt, d.box, file) for d in found])
                if sum(m is not None for m in alt_match) >= sum(m is not None for m in match):
                    reg, match = alt, alt_match
            elif aspect_differs:
                self.notes.append("the protected photo has another aspect ratio and could not be "
                                  "registered to the original; faces matched by image size")
        return reg, found, match

    def evaluate(self, protected: np.ndarray) -> MatrixReport:
        """Judge one protected version (``(H, W, 3)`` uint8) in every cell of the matrix."""
        t0 = time.perf_counter()
        protected = np.ascontiguousarray(protected)
        size = self.size
        notes = list(self.notes)
        errors: list[str] = []
        goal = "impersonate" if self.target is not None else "dodge"
        n = len(self.faces)
        if not n:
            errors.append("no face found in the original")
        reg, found, match0 = self._register(protected)
        matched_idx = {m for m in match0 if m is not None}
        unmatched = [{"box": [round(v, 1) for v in d.box], "detector": "mtcnn",
                      "encoding": "file"} for j, d in enumerate(found) if j not in matched_idx]
        for i, m in enumerate(match0):
            if m is None and unmatched:
                errors.append(f"face {i} of the original matches no face of the protected photo, "
                              f"which has {len(unmatched)} face(s) that match no original face")
        if reg.method != "size":
            notes.append(f"protected photo registered to the original by features (scale "
                         f"{reg.ax:.3f}, offset {reg.tx:.0f}, {reg.ty:.0f} px)")
        # probes: per encoding, per detector, per face
        probes: dict[tuple, _Probe] = {}
        seen: list[tuple[np.ndarray, tuple, str]] = []
        alias: dict[str, str] = {}
        for enc in size.encodings:
            v = self._variant(protected, enc)
            same = next((name for px, sc, name in seen
                         if sc == v.scale and px.shape == v.pixels.shape and np.array_equal(px, v.pixels)),
                        None)
            if same is not None:
                alias[enc] = same
                continue
            seen.append((v.pixels, v.scale, enc))
            for det in size.detectors:
                if det == "mtcnn" and enc == "file":
                    dets = found
                else:
                    mfs = max(12, int(self.min_face_size * min(reg.ax * v.scale[0], reg.ay * v.scale[1]) / 2))
                    dets = self._find(v, det, mfs)
                refs = [None if d is None else d.box for d in self.face_dets[det]]
                if det != "mtcnn":  # faces the original's detector missed: match on MTCNN's box
                    refs = [r if r is not None else f.box for r, f in zip(refs, self.faces)]
                idx = match_boxes(refs, [self._to_original(reg, d.box, v) for d in dets])
                for i, j in enumerate(idx):
                    probes[(enc, det, i)] = _Probe(None if j is None else dets[j], v.pixels)
        entries: list[MatrixEntry] = []
        for rec in self.recognisers:
            batch, keys = [], []
            for (enc, det, i), p in probes.items():
                if p.detection is None:
                    continue
                for c, k in itertools.product(size.crops_for(rec), size.kernels):
                    crop = make_crop(p.pixels, p.detection, c, rec.input_size, k)
                    if crop is not None:
                        batch.append(crop)
                        keys.append((enc, det, i, c, k))
            emb = dict(zip(keys, rec.embed(np.stack(batch)))) if batch else {}
            for i, det, c, k, enc in itertools.product(range(n), size.detectors,
                                                        size.crops_for(rec), size.kernels,
                                                        size.encodings):
                src = alias.get(enc, enc)
                e = emb.get((src, det, i, c, k))
                entries += self._entries(rec, i, det, c, k, enc, e, goal)
        names = [r.name for r in self.recognisers]
        summaries = summarise(entries, n, names, goal)
        protected_ok = bool(n) and not errors and all(s["protected"] for s in summaries)
        return MatrixReport(
            size=size.name, goal=goal, target=None if self.target is None else self.target.name,
            faces=[f.to_dict() for f in self.faces],
            recognisers=[{"name": r.name, "threshold": round(float(r.threshold), 5),
                          "metric": r.metric, "input_size": r.input_size} for r in self.recognisers],
            entries=entries, summaries=summaries, protected=protected_ok, unmatched=unmatched,
            errors=errors, notes=notes, registration=reg.method,
            seconds=time.perf_counter() - t0,
            axes={"detectors": list(size.detectors), "crops": list(size.crops),
                  "kernels": list(size.kernels), "encodings": list(size.encodings),
                  "references": ["original"] + (["gallery"] if self.gallery is not None else []),
                  "gallery_photos": len(self.gallery) if self.gallery is not None else 0})

    def _entries(self, rec, i, det, c, k, enc, probe, goal) -> list[MatrixEntry]:
        tau = float(rec.threshold)
        refs = [("original", self._orig_emb.get((rec.name, det, c, k, i)))]
        if self.gallery is not None:
            g = self.gallery.get(rec, det, c, k)
            refs.append(("gallery", g if len(g) else None))
        tsim = None
        if self.target is not None and probe is not None:
            t = self.target.get(rec, det, c, k)
            tsim = float(rec.similarity(t, probe[None])[0].max()) if len(t) else None
        out = []
        for name, ref in refs:
            if probe is None:
                status, sim = "no-face", None
            elif ref is None:
                status, sim = "no-reference", None
            else:
                status = "ok"
                r = ref[None] if ref.ndim == 1 else ref
                sim = float(rec.similarity(r, probe[None])[0].max())
            recognised = sim is not None and sim >= tau - self.margin
            if goal == "impersonate":
                passed = (tsim is not None and tsim >= tau + self.margin
                          and (sim is None or tsim > sim))
            else:
                passed = not recognised
            out.append(MatrixEntry(i, rec.name, det, c, k, enc, name, sim, tau, recognised,
                                   status, passed, tsim))
        return out


def evaluate_matrix(original_pixels: np.ndarray, protected_pixels: np.ndarray, faces=None,
                    recognisers=None, size: str | MatrixSize = "quick", gallery=None, target=None,
                    margin: float = 0.0) -> MatrixReport:
    """Judge a protected photo in every cell of the threat matrix (see module docstring)."""
    return ThreatMatrix(original_pixels, faces, recognisers, size, gallery, target,
                        margin).evaluate(protected_pixels)
