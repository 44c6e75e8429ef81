"""Results as text: the rows of the metrics table and the verdict of each face. No Qt.

The numbers come from the pipeline's :class:`ProtectionResult` (``metrics`` from
``quality_report``, ``per_face`` verdicts) and from the verification of the saved file;
this module only picks and formats them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jndguard.gui.params import METHODS


@dataclass
class Row:
    """One line of the metrics table: a label and one cell per result."""

    label: str
    cells: list[str]
    verdicts: list[bool | None] = field(default_factory=list)  # colours the cells
    tooltip: str = ""
    section: bool = False


@dataclass
class FaceVerdict:
    index: int
    protected: bool | None  # None: unknown
    title: str
    detail: str


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f


def _fmt(v: Any, spec: str = ".3f", suffix: str = "") -> str:
    f = _num(v)
    if f is None:
        return "—"
    if math.isinf(f):
        return "∞" + suffix
    return f"{f:{spec}}{suffix}"


def _get(d: Any, *path: str) -> Any:
    for k in path:
        if not isinstance(d, Mapping):
            return None
        d = d.get(k)
    return d


def method_label(method: str) -> str:
    return METHODS.get(method, method).replace(" (recommended)", "")


def headers(results: Sequence[Any]) -> list[str]:
    return [method_label(r.method) for r in results]


def metric_rows(results: Sequence[Any]) -> list[Row]:
    """The metrics table for one photo: one column per method result (``MethodResult``)."""
    if not results:
        return []
    rows: list[Row] = []

    def add(
        label: str,
        fn: Callable[[Any], Any],
        fmt: Callable[[Any], str],
        tip: str = "",
        judge: Callable[[Any], bool | None] | None = None,
    ) -> None:
        vals = [fn(r) for r in results]
        rows.append(Row(label, [fmt(v) for v in vals], [judge(v) if judge else None for v in vals], tip))

    def section(label: str) -> None:
        rows.append(Row(label, [""] * len(results), section=True))

    m = lambda r, *p: _get(r.result.metrics, *p)  # noqa: E731
    section("Verdict")
    add(
        "Protected",
        lambda r: getattr(r, "success", r.result.success),
        lambda v: "yes ✓" if v else "no ✗",
        "Every face judged on the 8-bit result, re-detected, and — when the saved file was "
        "checked — in every cell of the threat matrix",
        judge=lambda v: bool(v),
    )
    if any(getattr(r.result, "notes", None) for r in results):
        add(
            "Notes",
            lambda r: list(getattr(r.result, "notes", None) or []),
            lambda v: "; ".join(v) if v else "—",
            "What the loader changed (first frame taken, orientation, transparency) and what was "
            "left out (possible faces below the probability floor)",
        )
    section("Quality (whole photo)")
    add("PSNR", lambda r: m(r, "psnr"), lambda v: _fmt(v, ".2f", " dB"), "Peak signal-to-noise ratio")
    add("SSIM", lambda r: m(r, "ssim"), lambda v: _fmt(v, ".4f"), "Structural similarity (11×11 Gaussian)")
    add("MS-SSIM", lambda r: m(r, "ms_ssim"), lambda v: _fmt(v, ".4f"),
        "Multi-scale SSIM of the whole photo: computed on request (jndguard protect --full-metrics); "
        "every face region has it below")
    add(
        "Over J",
        lambda r: m(r, "jnd", "over_fraction"),
        lambda v: "—" if _num(v) is None else f"{100 * float(v):.2f} %",
        "Share of pixel-channels whose change exceeds the JND map",
    )
    add(
        "Max |Z−X|",
        lambda r: m(r, "max_abs_change"),
        lambda v: _fmt(v, ".0f", " levels"),
        "Largest change of any pixel-channel, in 8-bit levels",
    )
    add(
        "Mean J",
        lambda r: m(r, "jnd", "mean_jnd"),
        lambda v: _fmt(v, ".2f", " levels"),
        "Mean JND threshold over the photo",
    )
    n_faces = max(len(r.result.per_face) for r in results)
    for i in range(n_faces):
        section(f"Face {i + 1}")
        pf = lambda r, i=i: r.result.per_face[i] if i < len(r.result.per_face) else {}  # noqa: E731
        add(
            "Similarity",
            lambda r, pf=pf: pf(r).get("similarity"),
            lambda v: _fmt(v, ".3f"),
            "Cosine similarity to the original face (re-detected)",
        )
        add(
            "Threshold τ",
            lambda r, pf=pf: pf(r).get("threshold"),
            lambda v: _fmt(v, ".3f"),
            "The recogniser's verification threshold (same person at or above it)",
        )
        add(
            "Verdict",
            lambda r, pf=pf: pf(r).get("success"),
            lambda v: "—" if v is None else ("protected ✓" if v else "recognised ✗"),
            judge=lambda v: None if v is None else bool(v),
        )
        add("Face PSNR", lambda r, pf=pf: pf(r).get("psnr"), lambda v: _fmt(v, ".2f", " dB"))
        add("Face SSIM", lambda r, pf=pf: pf(r).get("ssim"), lambda v: _fmt(v, ".4f"))
        add(
            "Face MS-SSIM",
            lambda r, pf=pf: (pf(r).get("quality") or {}).get("ms_ssim"),
            lambda v: _fmt(v, ".4f"),
            "Multi-scale SSIM of the face region",
        )
        add("Iterations", lambda r, pf=pf: pf(r).get("iterations"), lambda v: _fmt(v, ".0f"))
        add("Time", lambda r, pf=pf: pf(r).get("seconds"), lambda v: _fmt(v, ".1f", " s"))
    ver_rows = verification_rows(results)
    if ver_rows:
        section("Verification of the saved file")
        rows.extend(ver_rows)
    section("Run")
    add("Recogniser", lambda r: (getattr(r.result, "model", None) or {}).get("name"), lambda v: v or "—")
    add("Device", lambda r: getattr(r.result, "device", None), lambda v: v or "—")
    add("Total time", lambda r: getattr(r.result, "seconds", None), lambda v: _fmt(v, ".1f", " s"))
    return rows


VARIANT_LABELS = {"exported": "saved file"}


def variant_label(name: str) -> str:
    if name in VARIANT_LABELS:
        return VARIANT_LABELS[name]
    if name.startswith("jpeg"):
        return f"JPEG q{name[4:]}"
    if name.startswith("resize"):
        return f"resized to {name[6:]} px"
    return name


def check_cell(c: Mapping[str, Any] | None) -> tuple[str, bool | None]:
    """One verification check → (text, protected?)."""
    if not c:
        return "—", None
    ok = not c.get("same_person", False)
    mark = "✓" if ok else "✗"
    if not c.get("redetected", True):
        return f"no face found {mark}", ok
    thr = _num(c.get("threshold"))
    if c.get("similarity") is not None:
        return f"{float(c['similarity']):.3f} vs τ {thr:.3f} {mark}" if thr is not None else mark, ok
    if c.get("distance") is not None:
        return f"d {float(c['distance']):.3f} vs {thr:.2f} {mark}" if thr is not None else mark, ok
    return mark, ok


def verification_rows(results: Sequence[Any]) -> list[Row]:
    """Rows of the verification of the saved file: the threat-matrix verdict, and per face and
    recogniser the share of cells passed and the worst cell (older reports: one row per face,
    version and recogniser)."""
    vers = [r.verification if isinstance(r.verification, Mapping) else None for r in results]
    if not any(vers):
        return []
    rows: list[Row] = []
    errors = [v.get("error") if v else None for v in vers]
    if any(errors):
        rows.append(Row("Verification", [f"failed: {e}" if e else "" for e in errors]))
    if any(v and "matrix" in v for v in vers):
        return rows + _matrix_rows(vers)
    keys: list[tuple[int, str, str]] = []
    recs: set[str] = set()
    for v in vers:
        for c in (v or {}).get("checks", []) or []:
            k = (int(c.get("face", 0)), str(c.get("variant")), str(c.get("recogniser")))
            recs.add(k[2])
            if k not in keys:
                keys.append(k)
    add_ok = [
        ("protected_ok", "Saved file (white box)", "The recogniser the protection was computed for"),
        ("all_recognisers_ok", "Every recogniser", "Every recogniser, the independent ones included"),
    ]
    for key, label, tip in add_ok:
        vals = [None if not v or key not in v else bool(v[key]) for v in vers]
        rows.append(
            Row(
                label,
                ["—" if x is None else ("protected ✓" if x else "recognised ✗") for x in vals],
                vals,
                tip,
            )
        )
    for face, variant, rec in keys:
        label = f"Face {face + 1} · {variant_label(variant)}" + (f" · {rec}" if len(recs) > 1 else "")
        cells, verdicts = [], []
        for v in vers:
            match = next(
                (
                    c
                    for c in (v or {}).get("checks", []) or []
                    if (int(c.get("face", 0)), str(c.get("variant")), str(c.get("recogniser")))
                    == (face, variant, rec)
                ),
                None,
            )
            text, ok = check_cell(match)
            cells.append(text)
            verdicts.append(ok)
        rows.append(
            Row(
                label,
                cells,
                verdicts,
                "Similarity to the original face after re-loading and "
                "re-detecting this version of the file (✓: not the same person)",
            )
        )
    return rows


def _matrix_rows(vers: list) -> list[Row]:
    rows = []
    vals = [None if not v or "matrix" not in v else bool(v.get("protected")) for v in vers]

    def overall(v):
        if not v or "matrix" not in v:
            return "—"
        n = len(v["matrix"])
        failed = sum(not e["passed"] for e in v["matrix"])
        what = "impersonates" if v.get("goal") == "impersonate" else "protected"
        if v.get("errors"):
            return "face not matched ✗"
        return f"{what} in all {n} cells ✓" if not failed else f"fails {failed} of {n} cells ✗"

    rows.append(Row("Threat matrix", [overall(v) for v in vers], vals,
                    "Every recogniser × crop convention × re-encoding × reference (the original "
                    "and your other photos): protected only when no cell recognises the face"))
    keys: list[tuple[int, str]] = []
    for v in vers:
        for s in (v or {}).get("summary", []) or []:
            if (s["face"], s["recogniser"]) not in keys:
                keys.append((s["face"], s["recogniser"]))
    for face, rec in keys:
        cells, verdicts = [], []
        for v in vers:
            s = next((s for s in (v or {}).get("summary", []) or []
                      if (s["face"], s["recogniser"]) == (face, rec)), None)
            if s is None:
                cells.append("—")
                verdicts.append(None)
                continue
            w = s["worst"]
            cells.append(f"{100 * s['share']:.0f}% of cells · worst {_worst_text(w)}")
            verdicts.append(bool(s["protected"]))
        rows.append(Row(f"Face {face + 1} · {rec}", cells, verdicts,
                        "Share of matrix cells where the face is not recognised, and the cell "
                        "closest to (or furthest past) the threshold"))
    return rows


def _worst_text(w: Mapping[str, Any]) -> str:
    sim = w.get("target_similarity") if w.get("target_similarity") is not None else w.get("similarity")
    val = "no face" if sim is None else f"{float(sim):.2f}"
    return f"{val} ({w['crop']} {w['resize']}, {cell_encoding(w['encoding'])}, vs {w['reference']})"


def cell_encoding(name: str) -> str:
    if name == "file":
        return "saved file"
    if name.startswith("jpeg"):
        return f"JPEG q{name[4:]}"
    if name.startswith("webp"):
        return f"WebP q{name[4:]}"
    if "+" in name:
        edge, _ = name.split("+", 1)
        return f"{edge} px + JPEG q85"
    return name


CROP_LABELS = {
    "tight": "tight box", "m10": "box +10 %", "m20": "box +20 %", "m30": "box +30 %",
    "fnp32": "facenet-pytorch margin 32", "arcface": "ArcFace 5-point", "dlib150": "dlib chip",
}


@dataclass
class GridCell:
    text: str
    ok: bool | None  # None: no face found / no reference
    tooltip: str


@dataclass
class MatrixGrid:
    """One face and recogniser of a matrix report: rows detector·crop·resize, columns
    re-encodings, each cell the worst over the references."""

    title: str
    rows: list[str]
    columns: list[str]
    cells: list[list[GridCell]]
    protected: bool


def matrix_grids(verification: Any) -> list[MatrixGrid]:
    """The grids of a matrix verification (empty for older reports)."""
    if not isinstance(verification, Mapping) or "matrix" not in verification:
        return []
    axes = verification.get("axes") or {}
    encs = list(axes.get("encodings", []))
    impersonate = verification.get("goal") == "impersonate"
    by: dict[tuple, list] = {}
    for e in verification["matrix"]:
        by.setdefault((e["face"], e["recogniser"], e["detector"], e["crop"], e["resize"],
                       e["encoding"]), []).append(e)
    grids = []
    for s in verification.get("summary", []) or []:
        face, rec = s["face"], s["recogniser"]
        labels, cells = [], []
        for det in axes.get("detectors", []):
            for crop in axes.get("crops", []):
                for kern in axes.get("kernels", []):
                    row = [_grid_cell(by.get((face, rec, det, crop, kern, enc), []), impersonate)
                           for enc in encs]
                    if all(c is None for c in row):
                        continue
                    labels.append(f"{det.upper() if det == 'hog' else 'MTCNN'} · "
                                  f"{CROP_LABELS.get(crop, crop)} · {kern}")
                    cells.append([c or GridCell("", None, "") for c in row])
        title = (f"Face {face + 1} · {rec}: "
                 + (f"{'impersonates' if impersonate else 'protected'} in every cell" if s["protected"]
                    else f"{s['cells'] - s['passed']} of {s['cells']} cells fail"))
        grids.append(MatrixGrid(title, labels, [cell_encoding(x) for x in encs], cells,
                                bool(s["protected"])))
    return grids


def _grid_cell(es: list, impersonate: bool) -> GridCell | None:
    if not es:
        return None
    ok = all(e["passed"] for e in es)
    lines = []
    for e in es:
        sim = e.get("similarity")
        line = f"vs {e['reference']}: " + ("no face found" if e["status"] == "no-face" else
                                            "reference has no face" if sim is None else
                                            f"{sim:.3f} (τ {e['threshold']:.3f})")
        if impersonate and e.get("target_similarity") is not None:
            line += f", target {e['target_similarity']:.3f}"
        lines.append(line + (" ✓" if e["passed"] else " ✗"))
    e0 = es[0]
    head = (f"{e0['recogniser']} · {e0['detector']} · {CROP_LABELS.get(e0['crop'], e0['crop'])} · "
            f"{e0['resize']} resize · {cell_encoding(e0['encoding'])}")
    vals = [e.get("target_similarity") if impersonate else e.get("similarity") for e in es]
    vals = [v for v in vals if v is not None]
    if not vals:
        return GridCell("no face", None if ok else False, head + "\n" + "\n".join(lines))
    val = min(vals) if impersonate else max(vals)
    return GridCell(f"{'✓' if ok else '✗'} {val:.2f}", ok, head + "\n" + "\n".join(lines))


def worst_cell(verification: Any, recogniser: str | None = None) -> tuple[float, float, str] | None:
    """The worst matrix cell of the first (or named) recogniser over every face:
    ``(similarity, threshold, description)`` — what presentation mode's gauge shows."""
    if not isinstance(verification, Mapping) or "summary" not in verification:
        return None
    summ = [s for s in verification["summary"] if recogniser is None or s["recogniser"] == recogniser]
    if not summ:
        return None
    first = summ[0]["recogniser"]
    ws = [s["worst"] for s in summ if s["recogniser"] == first and s["worst"].get("similarity") is not None]
    if not ws:
        return None
    w = max(ws, key=lambda w: w["similarity"] - w["threshold"])
    return float(w["similarity"]), float(w["threshold"]), _worst_text(w)


def held_versions(verification: Any, face: int) -> tuple[int, int] | None:
    """(cells passed, all cells) of a face for the first (white-box) recogniser (older
    reports: protected versions, all versions)."""
    if isinstance(verification, Mapping) and "summary" in verification:
        mine = [s for s in verification["summary"] if s["face"] == face]
        return (mine[0]["passed"], mine[0]["cells"]) if mine else None
    if not isinstance(verification, Mapping) or not verification.get("checks"):
        return None
    recs = verification.get("recognisers") or []
    first = recs[0] if recs else None
    mine = [
        c
        for c in verification["checks"]
        if int(c.get("face", -1)) == face and (first is None or c.get("recogniser") == first)
    ]
    if not mine:
        return None
    return sum(not c.get("same_person") for c in mine), len(mine)


def face_verdicts(mr: Any) -> list[FaceVerdict]:
    """A verdict badge per face of one result."""
    if mr is None:
        return []
    res = mr.result
    model = (getattr(res, "model", None) or {}).get("name", "recogniser")
    out = []
    if not res.faces:
        return [FaceVerdict(0, None, "No face found", "Nothing to protect in this photo")]
    ver = getattr(mr, "verification", None)
    matrix = isinstance(ver, Mapping) and "summary" in ver
    for i, pf in enumerate(res.per_face):
        ok = pf.get("success")
        if matrix:  # the threat matrix decides; the optimiser's own crop is a detail
            mine = [s for s in ver["summary"] if s["face"] == i]
            ok = bool(mine) and all(s["protected"] for s in mine) and not ver.get("errors")
        sim, thr = _num(pf.get("similarity")), _num(pf.get("threshold"))
        goal = getattr(res.settings, "goal", "dodge")
        if pf.get("redetected") is False:
            detail = "no longer detected as a face"
        elif sim is not None and thr is not None:
            rel = "<" if sim < thr else "≥"
            detail = f"similarity {sim:.3f} {rel} τ {thr:.3f} ({model})"
        else:
            detail = model
        if goal == "impersonate":
            tsim = _num(pf.get("target_similarity"))
            if tsim is not None:
                detail = f"target similarity {tsim:.3f} · " + detail
            title = f"Face {i + 1}: " + ("impersonates ✓" if ok else "not impersonating ✗")
        else:
            title = f"Face {i + 1}: " + ("protected ✓" if ok else "still recognised ✗")
        if matrix:
            detail = "own crop: " + detail
        held = held_versions(ver, i) if goal == "dodge" else None
        if held is not None:
            unit = "matrix cells" if "summary" in (getattr(mr, "verification", None) or {}) else \
                "versions (JPEG, resize)"
            detail += f"\nsaved file: protected in {held[0]} of {held[1]} {unit}"
        out.append(FaceVerdict(i, None if ok is None else bool(ok), title, detail))
    return out
