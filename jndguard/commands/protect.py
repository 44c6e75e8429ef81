"""``jndguard protect PHOTOS... -o OUTDIR``: protect, export, verify, report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jndguard.commands._output import emit_json, progress_bar


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

    p = sub.add_parser("protect", help="protect the faces in photos and export the results")
    p.add_argument("photos", nargs="+", type=Path, help="photos or folders")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    opt.add_method(p)
    opt.add_goal(p)
    opt.add_hvs_mode(p)
    p.add_argument("--stop-margin", type=float, default=None,
                   help="post mode: margin past the threshold every quick threat-matrix cell must "
                        "clear (the strength; default: the Standard preset)")
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
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    opt.add_format(p)
    p.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality")
    p.add_argument("--keep-icc", action="store_true", help="keep the colour profile")
    p.add_argument("--no-verify", action="store_true", help="skip verification of the exported file")
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


def collect_photos(paths: list[Path]) -> list[Path]:
    """The photos the command line names: folders' photos (not recursive, not our outputs)."""
    from jndguard.core.photos import collect_photos as collect

    return collect(paths, recursive=False, skip_protected=True)


def run(args: argparse.Namespace) -> int:
    from jndguard.core.device import resolve_device
    from jndguard.core.export import ExportOptions, export_photo
    from jndguard.core.imageio import load_image
    from jndguard.core.models import load_recogniser
    from jndguard.core.pipeline import ProtectionSettings, protect_steps
    from jndguard.core.progress import drive
    from jndguard.core.results import build_report
    from jndguard.core.verify import summarise, verify
    from jndguard.errors import JNDGuardError

    settings = ProtectionSettings(
        method=args.method, goal=args.goal, target=args.target, mode=args.hvs_mode,
        variant=args.variant, beta=args.beta, delta=args.delta, m_rgb=tuple(args.m),
        max_iterations=args.iterations, margin=args.margin, robust=args.robust,
        jnd_model=args.jnd_model, jnd_color=args.jnd_color, jnd_strength=args.jnd_strength,
        device=args.device, seed=args.seed, model=args.model, safety_margin=args.safety_margin,
        **({} if args.stop_margin is None else {"stop_margin": args.stop_margin}))
    device = resolve_device(args.device)
    rec = load_recogniser(args.model, device)
    options = ExportOptions(format=args.format, jpeg_quality=args.quality, webp_quality=args.quality,
                            keep_icc=args.keep_icc)
    photos = collect_photos(args.photos)
    gallery = None
    if args.gallery is not None and not args.no_verify:
        from jndguard.core.threat.matrix import ReferencePhotos

        gallery = ReferencePhotos.from_dir(args.gallery)  # embedded once for every photo
    results, failures = [], 0
    for path in photos:
        entry: dict = {"photo": str(path)}
        try:
            image = load_image(path)
            with progress_bar(None, path.name, unit="step") as bar:
                def show(step, bar=bar):
                    if step.stage == "attack":
                        bar.set_postfix_str(f"face {step.face_index + 1}/{step.n_faces} "
                                            f"cos {step.similarity:.3f}")
                    bar.update(1)

                result = drive(protect_steps(image, settings, rec, full_metrics=args.full_metrics), show)
            if not result.faces:
                raise JNDGuardError(f"{path}: no face found (nothing to protect)")
            report = build_report(result)
            verifier = None if args.no_verify else (
                lambda p, src=path: verify(src, p, [rec], device, matrix=args.matrix,
                                           gallery=gallery,
                                           target=args.target if args.goal == "impersonate" else None))
            written = export_photo(result.protected, args.output, source=path, report=report,
                                   options=options, icc_profile=image.icc_profile, verify=verifier)
            entry.update(output=str(written.image), report=str(written.report), success=result.success,
                         faces=[{"success": f["success"], "similarity": f.get("similarity"),
                                 "psnr": f.get("psnr"), "iterations": f.get("iterations")}
                                for f in result.per_face])
            ok = result.success
            lines = []
            for i, f in enumerate(result.per_face):
                sim = f.get("similarity")
                lines.append(f"  face {i}: {'protected' if f['success'] else 'NOT protected'}"
                             + (f" (cos {sim:.3f} vs threshold {f['threshold']:.3f}" if sim is not None
                                else " (face no longer detected") + f", PSNR {f['psnr']:.1f} dB, "
                             f"{f['iterations']} iterations)")
            if not args.no_verify:
                import json

                ver = json.loads(written.report.read_text())["verification"]
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
            failures += not ok
            if not args.json:
                print(f"{path} → {written.image}")
                print("\n".join(lines))
        except JNDGuardError as exc:
            failures += 1
            entry["error"] = str(exc)
            print(f"jndguard: {exc}", file=sys.stderr)
        results.append(entry)
    if args.json:
        emit_json({"output": str(args.output), "photos": results, "failures": failures})
    elif failures:
        print(f"{failures} of {len(photos)} photo(s) not fully protected", file=sys.stderr)
    return 1 if failures else 0
