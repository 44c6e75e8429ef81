"""What a protection run reports, typed, and the one report builder the CLI and the GUI use.

:class:`FaceResult` names the fields of ``ProtectionResult.per_face`` (plain dicts, so reports
and older code read them as before); :func:`build_report` turns a
:class:`~jndguard.core.pipeline.ProtectionResult` into the fields of the JSON report that
:func:`jndguard.core.export.export_photo` writes next to the protected photo (docs/design.md §4:
protection is claimed only as measured, so every verdict and figure is in it).
"""

from __future__ import annotations

from typing import Any, TypedDict


class FaceQuality(TypedDict, total=False):
    """Quality of a face region (:func:`jndguard.core.metrics.quality_report` ``"region"``)."""

    psnr: float
    ssim: float
    jnd: dict[str, Any]


class FaceResult(TypedDict, total=False):
    """One face of a protection run (an entry of ``ProtectionResult.per_face``)."""

    face: int  # index among the detected faces
    box: list[float]  # the face box (after re-detection: the re-detected box)
    region: list[int]  # the optimised rectangle (x0, y0, x1, y1)
    iterations: int  # over every round
    seconds: float
    rounds: int
    beta: tuple[float, float, float] | None
    attempts: int
    optimiser_success: bool  # the method's own verdict on its check boxes
    notes: list[str]
    redetected: bool  # found again on the 8-bit result
    similarity: float | None  # cosine to the clean face, re-detected crop
    target_similarity: float | None  # cosine to the impersonation target
    success: bool  # the verdict on the 8-bit result (docs/design.md §4)
    threshold: float
    quality: FaceQuality
    psnr: float
    ssim: float


def build_report(result: Any, verification: dict | None = None) -> dict[str, Any]:
    """The report fields of one protected photo (export adds file names and versions).

    Args:
        result: a :class:`~jndguard.core.pipeline.ProtectionResult`.
        verification: the check of the written file (:func:`jndguard.core.verify.verify`),
            when it is known before export.
    """
    settings = result.settings
    settings_dict = settings.to_dict() if hasattr(settings, "to_dict") else dict(settings)
    model = getattr(result, "model", None) or {}
    device = getattr(result, "device", None)
    per_face = list(getattr(result, "per_face", []) or [])
    faces = []
    for i, face in enumerate(getattr(result, "faces", []) or []):
        entry: dict[str, Any] = {"index": i}
        entry.update(face.to_dict() if hasattr(face, "to_dict") else {"box": getattr(face, "box", None)})
        entry["method"] = settings_dict.get("method")
        entry["parameters"] = settings_dict
        entry["model"] = model.get("name")
        entry["device"] = device
        if i < len(per_face):
            entry.update(per_face[i])
        faces.append(entry)
    report: dict[str, Any] = {
        "method": settings_dict.get("method"),
        "goal": settings_dict.get("goal"),
        "target": settings_dict.get("target"),
        "settings": settings_dict,
        "model": getattr(result, "model", None),
        "device": device,
        "seconds": round(float(getattr(result, "seconds", 0.0) or 0.0), 2),
        "timings": dict(getattr(result, "timings", None) or {}),
        "success": bool(getattr(result, "success", False)),
        "metrics": getattr(result, "metrics", None),
        "faces": faces,
        # what the loader changed and which detections were left alone (possible faces)
        "notes": list(getattr(result, "notes", None) or []),
        "possible_faces": [f.to_dict() for f in getattr(result, "possible_faces", None) or []],
    }
    if verification is not None:
        report["verification"] = verification
    return report


__all__ = ["FaceQuality", "FaceResult", "build_report"]
