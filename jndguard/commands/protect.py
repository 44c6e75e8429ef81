"""``jndguard protect PHOTOS... -o OUTDIR``: protect, export, verify, report."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from jndguard.commands._options import add_device
from jndguard.commands._output import emit_json, progress_bar

logger = logging.getLogger(__name__)

EPILOG = """exit status: 0 every face of every photo protected (and verified); 1 a face stayed
recognised, or no face was found in a photo (the message says which); 2 an error:
unreadable input, bad option, I/O (full or read-only disk), out of memory. With several
photos the highest applies; --json gives each photo's "status" and "exit_code"."""


def _floats(n: int):
    def parse(text: str) -> tuple[float, ...]:
        vals = tuple(float(v) for v in text.split(","))
        if len(vals) == 1 and n > 1:
            vals = vals * n
        if len(vals) != n:
            raise argparse.ArgumentTypeError(f"expected {n} comma-separated numbers")
        return vals
    return parse


def register(sub: argparse._SubParsersAction) -> None:
    from jndguard.commands import _options as opt
    from jndguard.core.settings import PRECISIONS

    p = sub.add_parser("protect", help="protect the faces in photos and export the results",
                       epilog=EPILOG)
    p.add_argument("photos", nargs="+", type=Path, help="photos or folders")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    opt.add_method(p)
    opt.add_goal(p)
    opt.add_hvs_mode(p)
    p.add_argument("--stop-margin", type=float, default=None,
                   help="post mode: margin past the threshold every quick threat-matrix cell must "
                        "clear (the strength; default: the Standard preset)")
    p.add_argument("--budget", type=float, default=None,
                   help="post mode: share of the per-pixel JND the change may use, 0.1–1 (with "
                        "--stop-margin the strength; default: the Standard preset)")
    p.add_argument("--decoy", action="store_true",
                   help="post mode, dodging: also pull the face toward the gallery identity least "
                        "like it (experimental; README \"Post mode\")")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="post mode: precision of the optimiser's own passes (auto: bfloat16 on CPUs "
                        "with bf16 units, else float32; every check is float32; README \"Speed\")")
    opt.add_variant(p)
    p.add_argument("--beta", type=_floats(3), help="β1,β2,β3 (or one value for all)")
    p.add_argument("--delta", type=float, help="β adjuster δ")
    p.add_argument("--m", type=_floats(3), default=(3.0, 5.0, 1.0), help="channel weights M(r,g,b)")
    p.add_argument("--iterations", type=int, default=100, help="iteration budget per attempt")
    p.add_argument("--margin", type=float, default=0.2, help="face box margin (fraction)")
    p.add_argument("--robust", action="store_true", help="also survive JPEG and resizing")
    p.add_argument("--jnd-strength", type=float, default=1.0)
    opt.add_jnd(p)
    p.add_argument("--safety-margin", type=float, default=0.0, help="κ below the threshold")
    p.add_argument("--model", help="recogniser (see `jndguard models list`)")
    add_device(p)
    p.add_argument("--seed", type=int, default=0)
    opt.add_format(p)
    p.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality")
    p.add_argument("--keep-icc", action="store_true", help="keep the colour profile")
    p.add_argument("--no-verify", action="store_true", help="skip verification of the exported file")
    p.add_argument("--include-possible-faces", action="store_true",
                   help="also protect low-probability detections (listed as possible faces)")
    p.add_argument("--matrix", choices=["quick", "full"], default="quick",
                   help="threat matrix the exported file is verified in (quick: the measured "
                        "hardest cells; full: every cell)")
    p.add_argument("--gallery", type=Path, metavar="DIR",
                   help="the person's other photos: recognised when the face matches any of them")
    p.add_argument("--full-metrics", action="store_true",
                   help="also MS-SSIM, FSIM, GMSD, HaarPSI and VIF of the whole photo (slow on large "
                        "photos; the face regions always have them)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def collect_inputs(paths: list[Path]) -> tuple[list[Path], list[dict]]:
    """The photos to process and the files skipped in folders (with the reason).

    Files given by name are always tried (the loader says if it cannot read one); in a
    folder, files without a supported suffix and JNDGuard's own outputs are skipped.

    Raises:
        UsageError: a path that does not exist, or a folder with no photo to process.
    """
    from jndguard.core.photos import PHOTO_SUFFIXES, PROTECTED_MARK, is_photo
    from jndguard.errors import UsageError

    out: list[Path] = []
    skipped: list[dict] = []
    for p in paths:
        if p.is_dir():
            found = []
            for q in sorted(p.iterdir()):
                if not q.is_file() or q.name.startswith("."):
                    continue
                if PROTECTED_MARK in q.name:
                    skipped.append({"path": str(q), "reason": "a protected output (name has .protected)"})
                elif not is_photo(q):
                    why = f"not a supported photo ({q.suffix or 'no suffix'})"
                    skipped.append({"path": str(q), "reason": why})
                else:
                    found.append(q)
            if not found:
                here = [s for s in skipped if Path(s["path"]).parent == p]
                listed = ", ".join(f"{Path(s['path']).name}: {s['reason']}" for s in here[:3])
                raise UsageError(
                    f"{p}: no photo to process in this folder"
                    + (f" (skipped {len(here)} file(s): {listed}{', …' if len(here) > 3 else ''})"
                       if here else " (it is empty)")
                    + f"; supported: {' '.join(PHOTO_SUFFIXES)}; give files by name to try others")
            out += found
        elif p.exists():
            out.append(p)
        else:
            raise UsageError(f"{p}: no such file or folder")
    return out, skipped


def collect_photos(paths: list[Path]) -> list[Path]:
    """The photos the command line names: folders' photos (not recursive, not our outputs)."""
    from jndguard.core.photos import collect_photos as collect

    return collect(paths, recursive=False, skip_protected=True)


#: exit status of one photo, and of the run (the highest of its photos'): README, --help
EXIT_PROTECTED, EXIT_NOT_PROTECTED, EXIT_ERROR = 0, 1, 2


def _verifier(path: Path, rec, device, min_probability: float, **kw):
    """Verification of the exported file; out of memory there keeps the photo (the pipeline
    already judged the 8-bit result) and says how to verify it later."""
    from jndguard.core.pipeline import is_out_of_memory
    from jndguard.core.verify import verify

    def check(written: Path) -> dict:
        try:
            return verify(path, written, [rec], device, min_probability=min_probability, **kw)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            import gc

            gc.collect()
            return {"error": "out of memory while verifying the exported file; run "
                             f"`jndguard verify {path} PROTECTED` with more free memory"}

    return check


def _face_line(i: int, f: dict) -> str:
    sim = f.get("similarity")
    psnr = f.get("psnr")
    return (f"  face {i}: {'protected' if f['success'] else 'NOT protected'}"
            + (f" (cos {sim:.3f} vs threshold {f['threshold']:.3f}" if sim is not None
               else " (face no longer detected")
            + (f", PSNR {psnr:.1f} dB" if psnr is not None else "")
            + f", {f['iterations']} iterations)")


def run(args: argparse.Namespace) -> int:
    from jndguard.commands._validate import validate_protect
    from jndguard.core.device import resolve_device
    from jndguard.core.export import ExportOptions, export_photo
    from jndguard.core.faces.detect import DEFAULT_MIN_PROBABILITY, PROTECT_MIN_PROBABILITY
    from jndguard.core.imageio import load_image, read_size
    from jndguard.core.memory import check_protect_memory
    from jndguard.core.models import load_recogniser
    from jndguard.core.pipeline import ProtectionSettings, is_out_of_memory, protect_steps
    from jndguard.core.progress import drive
    from jndguard.core.results import build_report
    from jndguard.core.verify import summarise
    from jndguard.errors import JNDGuardError, UsageError

    validate_protect(args)  # options, inputs and the output folder, before any work
    photos, skipped = collect_inputs(args.photos)
    settings = ProtectionSettings(
        method=args.method, goal=args.goal, target=args.target, mode=args.hvs_mode,
        variant=args.variant, beta=args.beta, delta=args.delta, m_rgb=tuple(args.m),
        max_iterations=args.iterations, margin=args.margin, robust=args.robust,
        jnd_model=args.jnd_model, jnd_color=args.jnd_color, jnd_strength=args.jnd_strength,
        device=args.device, seed=args.seed, model=args.model, safety_margin=args.safety_margin,
        min_probability=DEFAULT_MIN_PROBABILITY if args.include_possible_faces else PROTECT_MIN_PROBABILITY,
        decoy=args.decoy, precision=args.precision,
        **({} if args.stop_margin is None else {"stop_margin": args.stop_margin}),
        **({} if args.budget is None else {"budget": args.budget}))
    device = resolve_device(args.device)
    rec = load_recogniser(args.model, device)
    if args.target:
        from jndguard.core.models.gallery import celebrity_gallery

        names = celebrity_gallery(rec)[0]
        if args.target not in names:
            raise UsageError(f"--target {args.target}: unknown identity; choose from {', '.join(names)}")
    options = ExportOptions(format=args.format, jpeg_quality=args.quality, webp_quality=args.quality,
                            keep_icc=args.keep_icc)
    gallery = None
    if args.gallery is not None and not args.no_verify:
        from jndguard.core.threat.matrix import ReferencePhotos

        gallery = ReferencePhotos.from_dir(args.gallery)  # embedded once for every photo
    for s in skipped:
        print(f"jndguard: skipped {s['path']}: {s['reason']}", file=sys.stderr)
    target = args.target if args.goal == "impersonate" else None
    results, codes = [], []
    for path in photos:
        entry: dict = {"photo": str(path)}
        try:
            check_protect_memory(*read_size(path), str(path))  # before decoding
            image = load_image(path)
            with progress_bar(None, path.name, unit="step") as bar:
                def show(step, bar=bar):
                    if step.stage == "attack" and step.similarity is not None:
                        bar.set_postfix_str(f"face {step.face_index + 1}/{step.n_faces} "
                                            f"cos {step.similarity:.3f}")
                    bar.update(1)

                result = drive(protect_steps(image, settings, rec, full_metrics=args.full_metrics), show)
            entry["notes"] = list(result.notes)
            entry["possible_faces"] = [f.to_dict() for f in result.possible_faces]
            if not result.faces:
                entry.update(status="no_face", exit_code=EXIT_NOT_PROTECTED,
                             message=f"{path}: no face found, nothing to protect"
                             + (f" ({len(result.possible_faces)} possible face(s) below probability "
                                f"{settings.min_probability:g}: add --include-possible-faces)"
                                if result.possible_faces else ""))
                codes.append(EXIT_NOT_PROTECTED)
                print(f"jndguard: {entry['message']}", file=sys.stderr)
                for n in result.notes:
                    print(f"  note: {n}", file=sys.stderr)
                results.append(entry)
                continue
            report = build_report(result)
            verifier = None if args.no_verify else _verifier(
                path, rec, device, settings.min_probability,
                matrix=args.matrix, gallery=gallery, target=target)
            written = export_photo(result.protected, args.output, source=path, report=report,
                                   options=options, icc_profile=image.icc_profile, verify=verifier)
            entry.update(output=str(written.image), report=str(written.report), success=result.success,
                         faces=[{"success": f["success"], "similarity": f.get("similarity"),
                                 "psnr": f.get("psnr"), "iterations": f.get("iterations")}
                                for f in result.per_face])
            ok = result.success
            lines = [_face_line(i, f) for i, f in enumerate(result.per_face)]
            if not args.no_verify:
                import json

                ver = json.loads(written.report.read_text())["verification"]
                if "error" in ver:
                    entry["verified"] = None
                    lines.append(f"  verify: not done: {ver['error']}")
                else:
                    entry["verified"] = ver["protected"]
                    entry["matrix"] = ver["matrix"]
                    entry["matrix_summary"] = ver["summary"]
                    ok = ok and ver["protected"]
                    cells = len(ver["matrix"])
                    failed = sum(not e["passed"] for e in ver["matrix"])
                    lines += ["  " + s for s in summarise(ver)] + [f"  note: {n}" for n in ver["notes"]]
                    lines.append(f"  threat matrix ({ver['size']}): "
                                 + ("passed in every cell" if ver["protected"]
                                    else f"{failed} of {cells} cells fail: NOT protected"))
            lines += [f"  note: {n}" for n in result.notes]
            code = EXIT_PROTECTED if ok else EXIT_NOT_PROTECTED
            entry.update(status="protected" if ok else "not_protected", exit_code=code)
            if not ok:
                entry["message"] = f"{path}: a face is still recognised (see the faces above)"
            codes.append(code)
            if not args.json:
                print(f"{path} → {written.image}")
                print("\n".join(lines))
        except JNDGuardError as exc:
            codes.append(EXIT_ERROR)
            entry.update(status="error", exit_code=EXIT_ERROR, error=str(exc))
            print(f"jndguard: {exc}", file=sys.stderr)
        except Exception as exc:  # a batch goes on past a photo that breaks something
            codes.append(EXIT_ERROR)
            if is_out_of_memory(exc):
                msg = (f"{path}: out of memory while protecting it; downscale the photo or close "
                       "other programs, then try again")
            else:
                msg = f"{path}: unexpected error ({type(exc).__name__}: {exc}); run with -v for details"
                logger.debug("protecting %s failed", path, exc_info=True)
            entry.update(status="error", exit_code=EXIT_ERROR, error=msg)
            print(f"jndguard: {msg}", file=sys.stderr)
        results.append(entry)
    code = max(codes, default=EXIT_ERROR)
    if args.json:
        emit_json({"output": str(args.output), "photos": results, "skipped": skipped,
                   "failures": sum(c != EXIT_PROTECTED for c in codes), "exit_code": code})
    else:
        n_err = codes.count(EXIT_ERROR)
        n_not = codes.count(EXIT_NOT_PROTECTED)
        if n_err or n_not:
            print(f"{len(photos) - n_err - n_not} of {len(photos)} photo(s) protected"
                  + (f", {n_not} not protected or without a face" if n_not else "")
                  + (f", {n_err} error(s)" if n_err else ""), file=sys.stderr)
    return code
