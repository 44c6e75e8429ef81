"""``jndguard compare PHOTOS... --methods all|LIST -o OUTDIR``: every method on the same faces
with the same recogniser, judged in the threat matrix (docs/design.md §4, §8), as a table
(table.md/.csv/.tex) and the papers' Fig. 2 (figure.png).

Resumable: each finished (method, photo) is appended to ``OUTDIR/results.jsonl``; a rerun
skips those and writes the same tables (fixed seeds). ``--summarise DIR...`` writes the tables
of folders run earlier (shards run side by side or on other machines) without running anything.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jndguard.commands._options import add_device
from jndguard.commands._output import emit_json, progress_bar
from jndguard.errors import JNDGuardError


def register(sub: argparse._SubParsersAction) -> None:
    from jndguard.commands import _options as opt

    p = sub.add_parser("compare", help="compare protection methods (Table 1, Fig. 2)")
    p.add_argument("photos", nargs="*", type=Path, help="photos or folders")
    p.add_argument("--validation", type=int, nargs="?", const=25, default=None, metavar="N",
                   help="also the first N validation faces of the model store "
                        "(default 25: the benchmark protocol's faces)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--methods", default="all",
                   help="'all' or a comma-separated list (see `jndguard protect --help`)")
    opt.add_goal(p, target=False,
                 help="impersonation targets another celebrity than the photo's folder name")
    p.add_argument("--ablations", action="store_true",
                   help="also the HVS-JND loss ablations (L1, L1_ori, L2, L2_ori, L1+L2, L1+L2+G)")
    opt.add_hvs_mode(p, help="HVS-JND and ablations in post mode (default), lossless mode ('fast' "
                             "is its old name) or with the paper's β, δ and restarts (≈ 3,000 "
                             "iterations per face: a GPU job)")
    p.add_argument("--max-iterations", type=int, default=None,
                   help="iteration budget of every method (default: each method's own)")
    p.add_argument("--no-reencode", action="store_true",
                   help="skip the threat-matrix judgement of the exported files (faster)")
    p.add_argument("--matrix", choices=["quick", "full"], default="full",
                   help="threat matrix the exported files are judged in, with the gallery threat "
                        "for 5-celebrity photos (default full: the benchmark protocol)")
    p.add_argument("--model", help="recogniser (see `jndguard models list`)")
    add_device(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--summarise", nargs="+", type=Path, metavar="DIR",
                   help="run nothing: write the tables of the results on record in these folders "
                        "(e.g. shards of one comparison run side by side) to OUTPUT")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.summarise:
        return _summarise(args)
    from jndguard.commands.protect import collect_photos
    from jndguard.core.device import resolve_device
    from jndguard.core.methods import parse_methods
    from jndguard.core.models import load_recogniser
    from jndguard.core.progress import drive
    from jndguard.core.research.compare import (
        RESULTS_FILE,
        compare_steps,
        load_results,
        method_entries,
        result_key,
        write_tables,
    )
    from jndguard.core.research.figure import write_comparison_figure

    try:
        methods = parse_methods(args.methods)
    except ValueError as exc:
        raise JNDGuardError(f"compare: {exc}") from None
    entries = method_entries(methods, args.goal, args.ablations, args.max_iterations, args.seed,
                             args.hvs_mode)
    photos = collect_photos(args.photos)
    if args.validation:
        from jndguard.core.models.store import validation_photos

        photos += validation_photos(args.validation)
    if not photos:
        raise JNDGuardError("compare: give photos or folders, or --validation (run "
                            "`jndguard models fetch` first for the validation faces)")
    rec = load_recogniser(args.model, resolve_device(args.device))
    total = len(entries) * len(photos)
    done = load_results(args.output / RESULTS_FILE)
    resumed = sum(result_key(e, p) in done for e in entries for p in photos)
    if resumed:
        print(f"resuming: {resumed} of {total} evaluations are on record in {args.output}",
              file=sys.stderr)
    with progress_bar(total, "compare", unit="face", initial=resumed) as bar:
        def show(step, bar=bar):
            if step.skipped:
                return
            bar.set_postfix_str(f"{step.label} {step.photo}")
            bar.update(1)

        results = drive(compare_steps(entries, photos, rec, args.output,
                                      reencode=not args.no_reencode, matrix=args.matrix), show)
    paths = write_tables(results, args.output)
    fig = write_comparison_figure(args.output, entries, photos[0]) if photos else None
    return _report(args, results, paths, fig)


def _report(args: argparse.Namespace, results: list[dict], paths: dict, fig=None) -> int:
    """Print the written tables (Markdown, then where they are), or one JSON document."""
    if args.json:
        emit_json({"results": results, "tables": paths, "figure": fig})
    else:
        print(paths["md"].read_text(encoding="utf-8"), end="")
        print(f"tables: {', '.join(str(p) for p in paths.values())}")
        if fig:
            print(f"figure: {fig}")
    return 0


def _summarise(args: argparse.Namespace) -> int:
    """``--summarise DIR...``: the tables of results on record, no model loaded."""
    from jndguard.core.research.compare import RESULTS_FILE, summarise_folders, write_tables

    missing = [str(d) for d in args.summarise if not (d / RESULTS_FILE).is_file()]
    if missing:
        raise JNDGuardError(f"compare --summarise: no {RESULTS_FILE} in {', '.join(missing)}")
    results = summarise_folders(args.summarise)
    return _report(args, results, write_tables(results, args.output))
