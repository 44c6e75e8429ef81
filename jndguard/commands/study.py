"""``jndguard study build|run|score``: subjective viewing tests (see docs/study.md).

- ``build CLEAN_DIR --method NAME=DIR … --proposed NAME -o STUDY.json`` pairs every clean
  photo with each method's output (matched by stem: ``x.png`` ↔ ``x.protected.png``), or
  generates the outputs first with ``--generate METHOD`` (the methods of ``jndguard protect``).
- ``run STUDY.json`` opens the study window (keyboard only; results per participant).
- ``score RESULTS… -o OUTDIR`` screens participants (ITU-R BT.500) and writes the per-photo
  mean ± sd of "proposed vs anchor" as table.md, table.csv and table.tex.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jndguard.commands._options import add_device
from jndguard.commands._output import emit_json, progress_bar


def _method_dir(text: str) -> tuple[str, Path]:
    name, sep, folder = text.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"expected NAME=DIR, got {text!r}")
    return name.strip(), Path(folder)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "study",
        help="subjective viewing tests: build, run and score studies",
        description=__doc__.split("\n\n")[0],
    )
    ssub = p.add_subparsers(dest="study_command", metavar="ACTION", required=True)

    b = ssub.add_parser("build", help="make a study manifest from a folder of clean photos")
    b.add_argument("clean_dir", type=Path, help="folder of clean (original) photos")
    b.add_argument(
        "--method",
        dest="methods",
        action="append",
        type=_method_dir,
        default=[],
        metavar="NAME=DIR",
        help="a method's outputs (repeat for each method)",
    )
    b.add_argument(
        "--generate",
        action="append",
        default=[],
        metavar="METHOD",
        help="protect the clean photos with this method now (repeatable; e.g. hvs-jnd, pgd, mnd)",
    )
    b.add_argument(
        "--outputs", type=Path, help="where generated outputs go (default: <STUDY>-outputs/<method>/)"
    )
    b.add_argument("--iterations", type=int, default=100, help="HVS-JND budget when generating")
    add_device(b, what="when generating")
    b.add_argument("--proposed", help="the method under test (default: hvs-jnd when present)")
    b.add_argument("-o", "--output", type=Path, required=True, help="study manifest to write (.json)")
    b.add_argument("--name", help="study name (default: the clean folder's name)")
    b.add_argument(
        "--view-size",
        type=int,
        default=512,
        help="long edge in screen pixels of every image shown (0: 1:1 pixels)",
    )
    b.add_argument("--repeats", type=int, default=1, help="presentations of each trial per participant")
    b.add_argument("--training", type=int, default=3, help="training trials before the test")
    b.add_argument("--break-every", type=int, default=20, help="a break after this many trials (0: none)")
    b.add_argument("--break-seconds", type=int, default=10, help="minimum length of a break")
    b.add_argument("--gap-ms", type=int, default=500, help="mid-grey pause between trials")
    b.add_argument("--seed", type=int, default=0, help="study seed (plans also depend on the participant)")
    b.add_argument("--json", action="store_true", help="print one JSON document")
    b.set_defaults(func=run_build)

    r = ssub.add_parser("run", help="open the study window")
    r.add_argument("study", type=Path, help="study manifest (.json)")
    r.add_argument("--results", type=Path, help="results folder (default: <STUDY>-results/ next to it)")
    r.add_argument("--participant", help="anonymous participant id (default: asked, e.g. P03)")
    r.add_argument("--windowed", action="store_true", help="a window instead of full screen")
    r.set_defaults(func=run_run)

    s = ssub.add_parser("score", help="screen participants and tabulate the scores")
    s.add_argument("results", nargs="+", type=Path, help="results CSVs or folders of them")
    s.add_argument("--proposed", help="score from this method's point of view (default: the study's)")
    s.add_argument("-o", "--output", type=Path, required=True, help="folder for table.md/.csv/.tex")
    s.add_argument("--no-screening", action="store_true", help="keep every participant (no BT.500 screening)")
    s.add_argument("--exclude", action="append", default=[], metavar="ID", help="leave out a participant")
    s.add_argument("--digits", type=int, default=2, help="decimals in the Markdown and LaTeX tables")
    s.add_argument("--json", action="store_true", help="print one JSON document")
    s.set_defaults(func=run_score)


def _generate(args: argparse.Namespace, methods: dict[str, Path]) -> None:
    from dataclasses import replace

    from jndguard.core.methods import parse_methods
    from jndguard.core.pipeline import ProtectionSettings
    from jndguard.core.progress import drive
    from jndguard.core.study import StudyError, generate_steps

    try:
        parse_methods(",".join(args.generate))
    except ValueError as exc:
        raise StudyError(str(exc)) from None
    root = args.outputs or args.output.with_name(args.output.stem + "-outputs")
    base = replace(ProtectionSettings(), max_iterations=args.iterations, device=args.device)
    with progress_bar(None, "generating", unit="step") as bar:

        def show(ev) -> None:
            if ev.note:
                print(f"note: {ev.note}", file=sys.stderr)
            bar.set_postfix_str(f"{ev.method} {ev.photo} {ev.message}"[:60])
            bar.update(1)

        methods.update(drive(generate_steps(args.clean_dir, args.generate, root, base), show))


def run_build(args: argparse.Namespace) -> int:
    from jndguard.core.study import StudyError, StudySettings, build_study, save_study

    methods: dict[str, Path] = {}
    for name, folder in args.methods:
        if name in methods:
            raise StudyError(f"method {name!r} given twice")
        methods[name] = folder
    if args.generate:
        clash = [m for m in args.generate if m in methods]
        if clash:
            raise StudyError(f"method(s) {', '.join(clash)} given both with --method and --generate")
        _generate(args, methods)
    if len(methods) < 2:
        raise StudyError(
            "a study needs at least two methods: give --method NAME=DIR (or --generate) "
            "for the proposed method and for at least one anchor"
        )
    proposed = args.proposed or ("hvs-jnd" if "hvs-jnd" in methods else None)
    if proposed is None:
        raise StudyError(f"say which method is under test: --proposed {'|'.join(methods)}")
    settings = StudySettings(
        view_size=args.view_size,
        repeats=args.repeats,
        training=args.training,
        break_every=args.break_every,
        break_seconds=args.break_seconds,
        gap_ms=args.gap_ms,
        seed=args.seed,
    )
    study, skipped = build_study(args.clean_dir, methods, proposed, name=args.name, settings=settings)
    path = save_study(study, args.output)
    if args.json:
        emit_json(
            {
                "study": str(path),
                "name": study.name,
                "proposed": study.proposed,
                "anchors": list(study.anchors),
                "images": len(study.images),
                "trials": len(study.trials),
                "training": len(study.training),
                "skipped": skipped,
            }
        )
    else:
        for line in skipped:
            print(f"skipped {line}", file=sys.stderr)
        per = len(study.trials) * study.settings.repeats + len(study.training)
        print(
            f"wrote {path}: {len(study.images)} photos, {study.proposed} vs "
            f"{', '.join(study.anchors)}; {per} presentations per participant"
        )
        print(f"run it with: jndguard study run {path}")
    return 0


def run_run(args: argparse.Namespace) -> int:
    from jndguard.launch import study_window

    return study_window(args.study, args.results, args.participant, args.windowed)


def run_score(args: argparse.Namespace) -> int:
    from jndguard.core.study import read_ratings, score_study, to_markdown, write_tables

    rows = read_ratings(args.results)
    table = score_study(rows, args.proposed, screen=not args.no_screening, exclude=args.exclude)
    written = write_tables(table, args.output, digits=args.digits)
    if args.json:
        emit_json(
            {
                "proposed": table.proposed,
                "anchors": table.anchors,
                "participants": table.participants,
                "excluded": table.excluded,
                "files": {k: str(v) for k, v in written.items()},
                "cells": [
                    {"image": i, "anchor": a, "n": c.n, "mean": c.mean, "std": c.std, "ci95": c.ci95}
                    for (i, a), c in sorted(table.cells.items())
                ],
                "average": {a: table.average(a) for a in table.anchors},
                "screening": None
                if table.screening is None
                else [
                    {
                        "participant": o.participant,
                        "presentations": o.presentations,
                        "P": o.p,
                        "Q": o.q,
                        "rejected": o.rejected,
                    }
                    for o in table.screening.observers
                ],
            }
        )
        return 0
    print(to_markdown(table, args.digits), end="")
    kept = len(table.participants) - len(table.excluded)
    print(f"\n{kept} of {len(table.participants)} participants scored; positive = {table.proposed} better.")
    if table.screening is not None:
        if table.screening.rejected:
            print("BT.500 screening rejected: " + ", ".join(table.screening.rejected))
        else:
            print("BT.500 screening rejected nobody.")
        if len(table.participants) < 15:
            print("note: BT.500 asks for at least 15 observers; with fewer, the screening is only a hint.")
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0
