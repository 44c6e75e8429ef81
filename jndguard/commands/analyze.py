"""``jndguard analyze ORIGINAL PROTECTED -o OUTDIR``: difference maps, |change|/J histogram and
Grad-CAM of the recogniser on the clean and the protected face."""

from __future__ import annotations

import argparse
from pathlib import Path

from jndguard.commands._options import add_device
from jndguard.commands._output import emit_json


def register(sub: argparse._SubParsersAction) -> None:
    from jndguard.commands import _options as opt

    p = sub.add_parser("analyze", help="difference maps, |change|/J histogram, Grad-CAM")
    p.add_argument("original", type=Path)
    p.add_argument("protected", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    opt.add_jnd(p)
    p.add_argument("--no-gradcam", action="store_true", help="skip the recogniser (faster)")
    p.add_argument("--model", help="recogniser (see `jndguard models list`)")
    add_device(p)
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jndguard.core.device import resolve_device
    from jndguard.core.research.analysis import analyze

    rec = None
    if not args.no_gradcam:
        from jndguard.core.models import load_recogniser

        rec = load_recogniser(args.model, resolve_device(args.device))
    s = analyze(args.original, args.protected, args.output, rec, args.jnd_model, args.jnd_color)
    if args.json:
        emit_json(s)
        return 0
    print(f"changed pixels: {100 * s['changed_ratio']:.1f}% "
          f"(R {100 * s['changed_ratio_R']:.1f}%, G {100 * s['changed_ratio_G']:.1f}%, "
          f"B {100 * s['changed_ratio_B']:.1f}%)")
    print(f"changed pixel-channels beyond the JND: {100 * s['jnd_ratio']['over_one']:.1f}%")
    if "similarity" in s:
        print(f"similarity to the clean face: {s['similarity']:.3f} "
              f"(threshold {s['threshold']:.3f})")
    for n in s.get("notes", []):
        print(f"note: {n}")
    print(f"files in {args.output}")
    return 0
