"""End-to-end time of protecting one photo, split by stage, for a ~2 MP and a 12 MP photo.

What a user waits for, from the file to the exported, verified result: load, detect, JND,
optimisation, re-check (re-detection on the 8-bit result), metrics, verification of the
exported file, export. The photo is an upscaled Kodak kodim04 (a portrait; docs/design.md
§8) saved as a JPEG q95 (what a phone writes), so both sizes show the same face. Stage times
come from the pipeline's own ``timings`` (its progress steps otherwise).

Target: with the default settings on the 12 MP photo, everything that is not the
optimisation takes at most 50 % of the optimisation's time without verification and at most
100 % with it. Ratios are measured in one run, never absolute seconds (shared machines).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from jndguard.commands._options import add_device
from jndguard.commands._output import emit_json, print_table

STAGES = ("load", "detect", "jnd", "setup", "optimisation", "recheck", "metrics", "export", "verify")
#: stages counted as overhead next to the optimisation (verification is judged separately);
#: ``setup``: post mode's other recognisers and the quick matrix's clean side
OVERHEAD = ("load", "detect", "jnd", "setup", "recheck", "metrics", "export")
TARGET_NO_VERIFY = 0.5
TARGET_VERIFY = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--megapixels", default="2,12",
                        help="comma-separated photo sizes in megapixels (default 2,12)")
    parser.add_argument("--photo", type=Path, default=None,
                        help="source photo to upscale (default: Kodak kodim04)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="iteration budget per face (default: the protect default)")
    add_device(parser)
    parser.add_argument("--mode", default=None,
                        help="HVS-JND mode (default: the product default; e.g. lossless, post)")
    parser.add_argument("--no-verify", action="store_true", help="skip the verification stage")
    parser.add_argument("--full-metrics", action="store_true",
                        help="also compute the full-photo MS-SSIM/VIF/FSIM/… (off by default)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: as is)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def _default_photo() -> Path:
    kodak = os.environ.get("JNDGUARD_KODAK")
    candidates = [Path(kodak)] if kodak else []
    candidates.append(Path(__file__).resolve().parents[2] / "tests" / "data" / "kodak")
    for d in candidates:
        if (d / "kodim04.png").is_file():
            return d / "kodim04.png"
    from jndguard.core.models.store import validation_photos

    return validation_photos()[0]


def make_photo(source: Path, megapixels: float, folder: Path) -> Path:
    """``source`` resized (Lanczos) to about ``megapixels`` and saved as JPEG q95."""
    from PIL import Image

    with Image.open(source) as im:
        im = im.convert("RGB")
        k = (megapixels * 1e6 / (im.width * im.height)) ** 0.5
        big = im.resize((round(im.width * k), round(im.height * k)), Image.LANCZOS)
    out = folder / f"{source.stem}-{megapixels:g}mp.jpg"
    big.save(out, "JPEG", quality=95)
    return out


def _stage_times_from_steps(marks: list[tuple[str, float]], t_end: float) -> dict[str, float]:
    """Seconds per stage from (stage, time) progress marks (pipelines without ``timings``)."""
    names = {"detect": "detect", "jnd": "jnd", "attack": "optimisation", "verify": "recheck",
             "done": "metrics"}
    out: dict[str, float] = {}
    for (stage, t), (_, t_next) in zip(marks, [*marks[1:], ("end", t_end)]):
        key = names.get(stage, stage)
        out[key] = out.get(key, 0.0) + (t_next - t)
    return out


def time_photo(path: Path, settings, rec, device, verify: bool) -> dict:
    """Protect, export and verify one photo; seconds per stage."""
    from jndguard.core.export import export_photo
    from jndguard.core.imageio import load_image
    from jndguard.core.pipeline import protect_steps
    from jndguard.core.progress import drive

    times: dict[str, float] = {}
    t0 = time.perf_counter()
    image = load_image(path)
    times["load"] = time.perf_counter() - t0
    marks: list[tuple[str, float]] = []

    def mark(step) -> None:  # the time each stage starts
        if not marks or step.stage != marks[-1][0]:
            marks.append((step.stage, time.perf_counter()))

    result = drive(protect_steps(image, settings, rec), mark)
    t_end = time.perf_counter()
    timings = getattr(result, "timings", None)
    times.update(timings if timings else _stage_times_from_steps(marks, t_end))
    report = {"method": settings.method, "metrics": result.metrics, "faces": result.per_face}
    with tempfile.TemporaryDirectory(prefix="jndguard-e2e-") as out:
        t0 = time.perf_counter()
        written = export_photo(result.protected, out, source=path, report=report)
        times["export"] = time.perf_counter() - t0
        ok = None
        if verify:
            t0 = time.perf_counter()
            ver = _verify(path, written.image, rec, device, result)
            times["verify"] = time.perf_counter() - t0
            ok = ver.get("protected_ok")
    return {"photo": path.name, "width": image.width, "height": image.height,
            "faces": len(result.faces), "protected": result.success, "verified": ok,
            "mode": str(getattr(settings, "mode", "")),
            "seconds": {k: round(times.get(k, 0.0), 3) for k in STAGES},
            # inside the optimisation: post mode's interim quick-matrix checks
            "optimisation_checks": round(times.get("checks", 0.0), 3)}


def _verify(original: Path, protected: Path, rec, device, result) -> dict:
    from jndguard.core.verify import verify

    return verify(original, protected, [rec], device)


def summarise(row: dict) -> dict:
    s = row["seconds"]
    opt = s["optimisation"] or float("nan")
    over = sum(s[k] for k in OVERHEAD)
    total = sum(s.values())
    return {"total": round(total, 3), "overhead": round(over, 3),
            "overhead_ratio": round(over / opt, 3),
            "overhead_with_verify_ratio": round((over + s["verify"]) / opt, 3)}


def run(args: argparse.Namespace) -> int:
    import torch

    from jndguard.core.device import resolve_device
    from jndguard.core.models import load_recogniser
    from jndguard.core.pipeline import ProtectionSettings

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    rec = load_recogniser(None, device)
    kw = {"device": args.device}
    if args.iterations:
        kw["max_iterations"] = args.iterations
    if args.mode:
        kw["mode"] = args.mode
    if args.full_metrics and "full_metrics" in ProtectionSettings.__dataclass_fields__:
        kw["full_metrics"] = True
    settings = ProtectionSettings(**kw)
    sizes = [float(v) for v in args.megapixels.split(",") if v.strip()]
    source = args.photo or _default_photo()
    rows = []
    with tempfile.TemporaryDirectory(prefix="jndguard-e2e-src-") as tmp:
        for mp in sizes:
            photo = make_photo(source, mp, Path(tmp))
            row = time_photo(photo, settings, rec, device, not args.no_verify)
            row["megapixels"] = mp
            row.update(summarise(row))
            rows.append(row)
            print(f"{photo.name}: {row['total']:.1f} s", file=sys.stderr)
    doc = {"source": str(source), "device": str(device), "threads": torch.get_num_threads(),
           "load_average": [round(x, 2) for x in os.getloadavg()],
           "settings": {"method": settings.method, "max_iterations": settings.max_iterations},
           "photos": rows, "target_no_verify": TARGET_NO_VERIFY, "target_verify": TARGET_VERIFY}
    if args.json:
        emit_json(doc)
        return 0
    print(f"End-to-end time per stage ({settings.method} {rows[0]['mode'] if rows else ''}, "
          f"{settings.max_iterations} iterations, "
          f"{device}, {doc['threads']} torch threads, load average {doc['load_average'][0]})")
    headers = ["stage"] + [f"{r['width']}×{r['height']} s" for r in rows] + [
        f"{r['megapixels']:g} MP share" for r in rows]
    table = []
    for k in STAGES:
        table.append([k] + [r["seconds"][k] for r in rows]
                     + [f"{100 * r['seconds'][k] / max(r['total'], 1e-9):.1f} %" for r in rows])
    table.append(["total"] + [r["total"] for r in rows] + ["100 %" for _ in rows])
    print_table(headers, table)
    for r in rows:
        if r["optimisation_checks"]:
            print(f"{r['megapixels']:g} MP: the optimisation includes {r['optimisation_checks']:.1f} s of "
                  "interim quick-matrix checks")
        print(f"{r['megapixels']:g} MP: faces {r['faces']}, protected {r['protected']}, verified "
              f"{r['verified']}; not-optimisation / optimisation = {r['overhead_ratio']:.2f} "
              f"(target ≤ {TARGET_NO_VERIFY:g}), with verification {r['overhead_with_verify_ratio']:.2f} "
              f"(target ≤ {TARGET_VERIFY:g})")
    return 0
