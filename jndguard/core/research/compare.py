"""Compare protection methods on the same faces with the same recogniser (docs/design.md §8).

One (method, photo) evaluation is :func:`evaluate_photo`: protect, export, and judge the
exported file in the full threat matrix with the gallery threat (docs/design.md §4, §8: the
references are the original and the person's train photos of the 5-celebrity set).
:func:`summarise` turns the per-face rows of one configuration into the table: share of faces
protected in every cell, mean share of cells passed, the cells failed most often, the
optimiser's own tight-crop check, PSNR and SSIM mean±sd, iterations, seconds per face.
:func:`compare_steps` runs every configuration on every photo, appending each finished
row to ``results.jsonl`` so that an interrupted run resumes where it stopped. The table writers
(Markdown, CSV, LaTeX) and the benchmark ``jndguard bench protection`` share this code.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jndguard.core.tables import csv_table, latex_escape, latex_row, markdown_table, write_texts

# the HVS-JND loss ablations (jndguard.core.settings.Variant) in the paper's Table 1 order
ABLATIONS: tuple[str, ...] = ("L1", "L1_ori", "L2", "L2_ori", "L1+L2", "L1+L2+G")
RESULTS_FILE = "results.jsonl"
OTHER_TARGET = {"madonna": "ben_afflek"}  # impersonate someone other than the photo's person


def mean_sd(values: Iterable[float | None], digits: int = 2) -> str:
    """``"mean±sd"`` (population sd) of the non-None values, ``"–"`` if none."""
    v = [x for x in values if x is not None]
    if not v:
        return "–"
    return f"{statistics.mean(v):.{digits}f}±{statistics.pstdev(v):.{digits}f}"


def resolve_config(config: dict, photo: Path) -> dict:
    """The ProtectionSettings fields for one photo (``target: "auto"`` → someone else)."""
    cfg = dict(config)
    if cfg.get("target") == "auto":
        cfg["target"] = OTHER_TARGET.get(photo.parent.name, "madonna")
    return cfg


def person_gallery(photo: Path, home: Path | None = None):
    """The gallery threat's references for a 5-celebrity photo: the same person's train photos
    (never the photo itself); None for other photos."""
    from jndguard.core.models.store import dataset_dir
    from jndguard.core.threat.matrix import ReferencePhotos

    try:
        folder = dataset_dir(home) / "train" / Path(photo).parent.name
    except Exception:  # no model store: no gallery
        return None
    if not folder.is_dir():
        return None
    return ReferencePhotos.from_dir(folder, exclude=[photo])


def cell_key(e: dict) -> str:
    """A readable name of a matrix cell (without the face)."""
    return " ".join(str(e[k]) for k in ("recogniser", "detector", "crop", "resize", "encoding",
                                        "reference"))


def matrix_row(report: dict, face: int = 0) -> dict:
    """The figures of one face in a matrix report: protected in every cell, share passed (all
    recognisers, and per recogniser), the failed cells and the worst cell per recogniser."""
    mine = [e for e in report["matrix"] if e["face"] == face]
    per = {s["recogniser"]: s for s in report["summary"] if s["face"] == face}
    return {
        "matrix_size": report["size"],
        "matrix_protected": bool(mine) and not report["errors"] and all(e["passed"] for e in mine),
        "matrix_share": sum(e["passed"] for e in mine) / len(mine) if mine else 0.0,
        "matrix_by_recogniser": {r: s["share"] for r, s in per.items()},
        "matrix_worst": {r: s["worst"] for r, s in per.items()},
        "failed_cells": [cell_key(e) for e in mine if not e["passed"]],
        "matrix_cells": len(mine),
    }


def evaluate_photo(config: dict, photo: Path, rec, reencode: bool, tmp: str | Path,
                   protect_fn: Callable | None = None, save_to: Path | None = None,
                   matrix: str = "full", galleries: dict | None = None,
                   recognisers: list | None = None) -> dict | None:
    """Protect one photo with one configuration; its row (None when no face was found).

    Args:
        config: ProtectionSettings fields (``target`` may be ``"auto"``).
        photo: the photo.
        rec: the loaded recogniser (the same for every method).
        reencode: judge the exported PNG (re-loaded) in the threat matrix.
        tmp: scratch folder for the exported file.
        protect_fn: ``protect(image, settings, recogniser) -> ProtectionResult`` (tests inject
            a stub; default :func:`jndguard.core.pipeline.protect`).
        save_to: also save the protected photo as this PNG (for figures).
        matrix: matrix size (``full`` for the benchmark protocol).
        galleries: cache of :func:`person_gallery` by person (embedded once per run).
        recognisers: the matrix's recognisers (default ``rec`` plus dlib's ResNet).

    Returns:
        ``{photo, success, psnr, ssim, iterations, seconds, over_jnd}`` plus, when judged,
        the :func:`matrix_row` figures of the first face, and ``box`` when ``save_to`` is given.
    """
    from jndguard.core.imageio import load_image
    from jndguard.core.pipeline import ProtectionSettings, protect

    protect_fn = protect_fn or protect
    settings = ProtectionSettings(**resolve_config(config, photo))
    t = time.perf_counter()
    image = load_image(photo)
    res = protect_fn(image, settings, rec)
    secs = time.perf_counter() - t
    if not res.per_face:
        return None
    f = res.per_face[0]
    row = {"photo": photo.name, "success": f["success"], "psnr": f["psnr"], "ssim": f["ssim"],
           "iterations": f["iterations"], "seconds": secs,
           "over_jnd": (f["quality"].get("jnd") or {}).get("over_fraction")}
    if reencode:
        row.update(judge(photo, image.pixels, res.protected, rec, tmp, settings, matrix, galleries,
                         recognisers))
    if save_to is not None:
        from PIL import Image

        save_to.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(res.protected, dtype=np.uint8)).save(save_to)
        row["box"] = [float(v) for v in f["box"]]
    return row


def judge(photo: Path, original: np.ndarray, protected: np.ndarray, rec, tmp: str | Path,
          settings=None, matrix: str = "full", galleries: dict | None = None,
          recognisers: list | None = None) -> dict:
    """The matrix figures of a protected photo, judged on its exported (re-loaded) PNG."""
    from jndguard.core.export import ExportOptions, export_image
    from jndguard.core.imageio import load_image
    from jndguard.core.threat.matrix import ThreatMatrix
    from jndguard.core.threat.recognisers import default_recognisers
    from jndguard.core.verify import target_photos

    person = Path(photo).parent.name
    galleries = {} if galleries is None else galleries
    if person not in galleries:
        galleries[person] = person_gallery(photo, getattr(rec, "home", None))
    if recognisers is None:
        recognisers, _ = default_recognisers([rec], device=getattr(rec, "device", "cpu"))
    target = None
    if settings is not None and settings.goal == "impersonate":
        target = target_photos(settings.target, getattr(rec, "home", None))
    out = export_image(protected, tmp, source=photo, options=ExportOptions())
    try:
        pixels = load_image(out).pixels
    finally:
        out.unlink()
    tm = ThreatMatrix(original, recognisers=recognisers, size=matrix, gallery=galleries[person],
                      target=target)
    return matrix_row(tm.evaluate(pixels).to_dict())


def summarise(config: dict, faces: list[dict]) -> dict:
    """The table figures of one configuration from its per-face rows (threat-matrix figures
    over the faces judged in the matrix)."""
    n = len(faces)

    def rate(key):
        vals = [r[key] for r in faces if key in r]
        return sum(vals) / len(vals) if vals else None

    failed: dict[str, int] = {}
    for r in faces:
        for c in r.get("failed_cells", []):
            failed[c] = failed.get(c, 0) + 1
    judged = [r for r in faces if "matrix_share" in r]
    per_rec: dict[str, list[float]] = {}
    for r in judged:
        for name, share in (r.get("matrix_by_recogniser") or {}).items():
            per_rec.setdefault(name, []).append(share)
    return {
        "config": config, "faces": faces, "n": n,
        "success": rate("success"), "matrix_protected": rate("matrix_protected"),
        "matrix_share": rate("matrix_share"),
        "share_by_recogniser": {k: statistics.mean(v) for k, v in sorted(per_rec.items())},
        "worst_cells": sorted(failed.items(), key=lambda kv: (-kv[1], kv[0]))[:3],
        "matrix_faces": len(judged),
        "psnr": mean_sd(r["psnr"] for r in faces), "ssim": mean_sd((r["ssim"] for r in faces), 4),
        "median_iterations": statistics.median(r["iterations"] for r in faces) if n else None,
        "seconds_per_face": statistics.mean(r["seconds"] for r in faces) if n else None,
        "over_jnd": mean_sd((r["over_jnd"] for r in faces), 4),
    }


def evaluate(config: dict, photos: list[Path], rec, reencode: bool,
             protect_fn: Callable | None = None, matrix: str = "full",
             galleries: dict | None = None) -> dict:
    """Run one configuration on the photos; per-face rows and the summary."""
    faces = []
    galleries = {} if galleries is None else galleries
    with tempfile.TemporaryDirectory() as tmp:
        for p in photos:
            row = evaluate_photo(config, p, rec, reencode, tmp, protect_fn, matrix=matrix,
                                 galleries=galleries)
            if row is not None:
                faces.append(row)
    return summarise(config, faces)


# --------------------------------------------------------------------------- configurations


@dataclass(frozen=True)
class Entry:
    """One row of the comparison: a label and the ProtectionSettings fields it runs."""

    label: str
    config: dict


def method_entries(methods: list[str], goal: str = "dodge", ablations: bool = False,
                   max_iterations: int | None = None, seed: int = 0,
                   hvs_mode: str = "post") -> list[Entry]:
    """The rows to compare: each method, then (if asked) the HVS-JND loss ablations.

    ``max_iterations`` caps HVS-JND's budget per β attempt and the anchors' iterations.
    ``hvs_mode`` is ``post`` (the default), ``lossless`` (alias ``fast``) or ``paper``; the labels
    of the non-default modes say the mode. ``hvs_mode="paper"`` runs HVS-JND and its ablations
    with the paper's β, δ, M and restarts (the registry's paper defaults,
    :mod:`jndguard.core.methods`; ≈ 3,000 iterations per face on CPU).
    """
    from jndguard.core.methods import method_spec, parse_methods
    from jndguard.core.settings import Goal, HvsMode

    parse_methods(",".join(methods))  # raises ValueError for an unknown name
    hvs_mode = HvsMode(hvs_mode).value  # raises ValueError for an unknown mode
    base: dict = {"goal": goal, "seed": seed}
    if goal == "impersonate":
        base["target"] = "auto"
    if max_iterations is not None:
        base["max_iterations"] = max_iterations
        base["anchor_iterations"] = max_iterations
    hvs: dict = {"mode": hvs_mode}
    suffix = "" if hvs_mode == "post" else f" ({hvs_mode})"
    if hvs_mode == "paper":
        paper = method_spec("hvs-jnd").paper_defaults[Goal(goal)]
        hvs = {k: list(v) if isinstance(v, tuple) else str(v) if isinstance(v, HvsMode) else v
               for k, v in paper.items()}
        suffix = " (paper)"
    out = [Entry(m + (suffix if m == "hvs-jnd" else ""),
                 {**base, "method": m, **(hvs if m == "hvs-jnd" else {})}) for m in methods]
    if ablations:
        out += [Entry(f"hvs-jnd[{v}]{suffix}", {**base, "method": "hvs-jnd", **hvs, "variant": v})
                for v in ABLATIONS]
    return out


# --------------------------------------------------------------------------- resumable run


def result_key(entry: Entry, photo: Path) -> str:
    """What identifies a result: the row label, its exact settings and the photo's path (a
    rerun with other settings under the same label computes afresh)."""
    return f"{entry.label}\t{json.dumps(entry.config, sort_keys=True)}\t{Path(photo).resolve()}"


def load_results(path: Path) -> dict[str, dict]:
    """Finished results of an earlier run by :func:`result_key`; a torn or foreign line is ignored."""
    done: dict[str, dict] = {}
    if not path.exists():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
            key = result_key(Entry(rec["label"], rec["config"]), Path(rec["photo"]))
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
        done[key] = rec
    return done


@dataclass
class CompareStep:
    """Progress of a comparison (one per finished or skipped evaluation)."""

    done: int
    total: int
    label: str
    photo: str
    skipped: bool


def compare_steps(entries: list[Entry], photos: list[Path], rec, outdir: str | Path,
                  reencode: bool = True, protect_fn: Callable | None = None,
                  matrix: str = "full") -> Generator[CompareStep, None, list[dict]]:
    """Evaluate every entry on every photo, resumably; returns one summary per entry.

    Each finished (entry, photo) is appended to ``OUTDIR/results.jsonl`` at once, and a rerun
    skips what is recorded there. The protected photos are kept under ``OUTDIR/images/`` for
    :func:`jndguard.core.research.figure.comparison_figure`. With ``reencode``, a recorded row
    that was not judged in the threat matrix is judged now from its saved image (no new
    protection run).
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / RESULTS_FILE
    done = load_results(path)
    total = len(entries) * len(photos)
    n = 0
    galleries: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for e in entries:
            for p in photos:
                key = result_key(e, p)
                n += 1
                img = outdir / "images" / _safe(e.label) / f"{p.stem}.png"
                if key in done:
                    old = done[key]
                    row = old.get("row")
                    if (reencode and row is not None and "matrix_share" not in row
                            and (outdir / (old.get("image") or "")).is_file()):
                        from jndguard.core.imageio import load_image
                        from jndguard.core.pipeline import ProtectionSettings

                        row.update(judge(p, load_image(p).pixels,
                                         load_image(outdir / old["image"]).pixels, rec, tmp,
                                         ProtectionSettings(**resolve_config(e.config, p)),
                                         matrix, galleries))
                        with path.open("a", encoding="utf-8") as fh:
                            fh.write(json.dumps(old, sort_keys=True) + "\n")
                        yield CompareStep(n, total, e.label, p.name, False)
                        continue
                    yield CompareStep(n, total, e.label, p.name, True)
                    continue
                row = evaluate_photo(e.config, p, rec, reencode, tmp, protect_fn, save_to=img,
                                     matrix=matrix, galleries=galleries)
                rec_ = {"label": e.label, "config": e.config, "photo": str(p),
                        "row": row, "image": str(img.relative_to(outdir)) if row else None}
                with path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(rec_, sort_keys=True) + "\n")
                done[key] = rec_
                yield CompareStep(n, total, e.label, p.name, False)
    return summaries(entries, photos, done)


def summarise_folders(folders: Iterable[str | Path]) -> list[dict]:
    """One summary per configuration from the ``results.jsonl`` of earlier runs, running nothing:
    e.g. shards of one comparison run in several processes or on several machines. A result
    recorded in more than one folder counts once (the last read wins); configurations keep the
    order in which they are first met; two configurations under one label (a dodging and an
    impersonation run of the same method) are told apart by their goal."""
    done: dict[str, dict] = {}
    for d in folders:
        done.update(load_results(Path(d) / RESULTS_FILE))
    groups: dict[str, tuple[str, dict, list[dict]]] = {}
    for rec in done.values():
        key = f"{rec['label']}\t{json.dumps(rec['config'], sort_keys=True)}"
        label, config, rows = groups.setdefault(key, (rec["label"], rec["config"], []))
        if rec.get("row") is not None:
            rows.append(rec["row"])
    labels = [label for label, _, _ in groups.values()]
    out = []
    for label, config, rows in groups.values():
        s = summarise(config, rows)
        s["label"] = label if labels.count(label) == 1 else f"{label} ({config.get('goal', 'dodge')})"
        out.append(s)
    return out


def summaries(entries: list[Entry], photos: list[Path], done: dict[str, dict]) -> list[dict]:
    """One summary per entry from the recorded results, in entry and photo order."""
    out = []
    for e in entries:
        rows = [done[k]["row"] for k in (result_key(e, p) for p in photos)
                if k in done and done[k]["row"] is not None]
        s = summarise(e.config, rows)
        s["label"] = e.label
        out.append(s)
    return out


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in label)


# --------------------------------------------------------------------------- tables

COLUMNS = ["Method", "Faces", "Protected (every cell)", "Mean share of cells", "Share per recogniser",
           "Own crop", "PSNR (dB)", "SSIM", "Iterations", "s/face", "Cells failed most often"]


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.0f}%"


def _share(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def table_rows(results: list[dict]) -> list[list[str]]:
    """Table cells (strings) per summary: the threat-matrix figures (share of faces protected
    in every cell, mean share of cells passed, overall and per recogniser, the cells failed on
    most faces), the optimiser's own tight-crop check, PSNR and SSIM (four decimals: 0.99±0.00
    says little), iterations and seconds per face."""
    rows = []
    for r in results:
        it = r["median_iterations"]
        sec = r["seconds_per_face"]
        worst = "; ".join(f"{c} ({k}/{r.get('matrix_faces', r['n'])})"
                          for c, k in r.get("worst_cells") or [])
        per_rec = "; ".join(f"{k} {_share(v)}" for k, v in (r.get("share_by_recogniser") or {}).items())
        rows.append([r.get("label") or r["config"].get("method", "?"), str(r["n"]),
                     _pct(r.get("matrix_protected")), _share(r.get("matrix_share")),
                     per_rec or "–",
                     _pct(r["success"]),
                     mean_sd((f["psnr"] for f in r["faces"]), 2),
                     mean_sd((f["ssim"] for f in r["faces"]), 4),
                     "–" if it is None else f"{it:g}", "–" if sec is None else f"{sec:.1f}",
                     worst or "–"])
    return rows


def to_markdown(results: list[dict]) -> str:
    return markdown_table(COLUMNS, table_rows(results))


def to_csv(results: list[dict]) -> str:
    return csv_table(COLUMNS, table_rows(results))


def to_latex(results: list[dict]) -> str:
    rows = [latex_row(map(latex_escape, r)) for r in table_rows(results)]
    return "\n".join([r"\begin{tabular}{l" + "r" * (len(COLUMNS) - 1) + "}", r"\toprule",
                      latex_row(map(latex_escape, COLUMNS)), r"\midrule", *rows,
                      r"\bottomrule", r"\end{tabular}"]) + "\n"


def write_tables(results: list[dict], outdir: str | Path) -> dict[str, Path]:
    """Write table.md, table.csv and table.tex (atomically); their paths by format."""
    return write_texts(outdir, {ext: (f"table.{ext}", fn(results))
                                for ext, fn in (("md", to_markdown), ("csv", to_csv), ("tex", to_latex))})
