"""``jndguard verify ORIGINAL PROTECTED [--json]``: does any recogniser still match?"""

from __future__ import annotations

import argparse
from pathlib import Path

from jndguard.commands._output import emit_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="check a protected file against its original")
    p.add_argument("original", type=Path)
    p.add_argument("protected", type=Path)
    p.add_argument("--no-dlib", action="store_true", help="skip dlib even when installed")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jndguard.core.device import resolve_device
    from jndguard.core.models import load_recogniser
    from jndguard.core.verify import summarise, verify

    device = resolve_device(args.device)
    load_recogniser(None, device)  # refuses an empty or damaged store, as protect and identify do
    report = verify(args.original, args.protected, device=device,
                    use_dlib=not args.no_dlib)
    if args.json:
        emit_json(report)
    else:
        if not report["faces"]:
            print(f"{args.original}: no face found")
        print("\n".join(summarise(report)))
        for n in report["notes"]:
            print(f"note: {n}")
        first = report["recognisers"][0] if report["recognisers"] else "recogniser"
        print(f"protected against {first}" if report["protected_ok"]
              else f"NOT protected: {first} still matches")
        if report["protected_ok"] and not report["all_recognisers_ok"]:
            print("(another recogniser still matches: see above)")
    return 0 if report["protected_ok"] else 1
