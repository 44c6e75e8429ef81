"""``jndguard verify ORIGINAL PROTECTED [--gallery DIR] [--matrix quick|full] [--json]``:
is the face recognised anywhere in the threat matrix (docs/design.md §4)?

Exit status: 0 protected in every cell (with ``--target``: impersonates in every cell),
1 recognised somewhere (or a face could not be matched), 2 bad input.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jndguard.commands._options import add_device
from jndguard.commands._output import emit_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="check a protected file against its original in the threat matrix")
    p.add_argument("original", type=Path)
    p.add_argument("protected", type=Path)
    p.add_argument("--gallery", type=Path, metavar="DIR",
                   help="the person's other photos: a face matching any of them counts as recognised")
    p.add_argument("--matrix", choices=["quick", "full"], default="quick",
                   help="quick: the measured hardest cells (default); full: every cell")
    p.add_argument("--target", metavar="NAME",
                   help="verify impersonation of this identity (a 5-celebrity name)")
    p.add_argument("--no-dlib", action="store_true", help="skip dlib even when installed")
    add_device(p)
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jndguard.core.device import resolve_device
    from jndguard.core.models import load_recogniser
    from jndguard.core.verify import summarise, verify

    device = resolve_device(args.device)
    load_recogniser(None, device)  # refuses an empty or damaged store, as protect and identify do
    report = verify(args.original, args.protected, device=device,
                    matrix=args.matrix, gallery=args.gallery, use_dlib=not args.no_dlib,
                    target=args.target)
    if args.json:
        emit_json(report)
    else:
        print("\n".join(summarise(report)))
        for n in report["notes"]:
            print(f"note: {n}")
        cells = len(report["matrix"])
        passed = sum(e["passed"] for e in report["matrix"])
        what = (f"impersonates {args.target}" if args.target else "protected")
        verdict = (f"{what} in all {cells} cells" if report["protected"]
                   else f"NOT {what}: {cells - passed} of {cells} cells fail")
        print(f"{verdict} ({report['size']} matrix"
              + (f", gallery of {report['axes']['gallery_photos']} photos" if args.gallery else "")
              + ")")
    return 0 if report["protected"] else 1
