"""Protection on the 25 validation faces, judged in the full threat matrix with the gallery
threat (docs/design.md §4, §8): share of faces protected in every cell, mean share of cells,
the cells failed most often; PSNR/SSIM on the face region, iterations, seconds — for several
settings.

``jndguard bench protection --config '{"method": "hvs-jnd"}' --config '{"method": "bim"}'``
prints one row per config (docs/design.md §8 protocol; all configs on the same faces in one run).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jndguard.commands._options import add_device
from jndguard.commands._output import emit_json, print_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", action="append", default=[],
                        help="ProtectionSettings fields as JSON (repeatable; default: HVS-JND defaults)")
    parser.add_argument("--faces", type=int, default=25)
    parser.add_argument("--goal", default="dodge")
    parser.add_argument("--matrix", choices=["quick", "full", "none"], default="full",
                        help="threat matrix the exported files are judged in (none: the "
                             "optimiser's own check only; faster)")
    add_device(parser)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", action="store_true")


def evaluate(config: dict, photos: list[Path], rec, matrix: str = "full",
             galleries: dict | None = None) -> dict:
    """Run one configuration on the photos; per-face figures and a summary."""
    from jndguard.core.research.compare import evaluate as _evaluate

    return _evaluate(config, photos, rec, matrix != "none",
                     matrix=matrix if matrix != "none" else "full", galleries=galleries)


def run(args: argparse.Namespace) -> int:
    import torch

    from jndguard.core.device import resolve_device
    from jndguard.core.models import load_recogniser
    from jndguard.core.models.store import validation_photos

    if args.threads:
        torch.set_num_threads(args.threads)
    rec = load_recogniser(device=resolve_device(args.device))
    photos = validation_photos(args.faces)
    configs = [json.loads(c) for c in args.config] or [{}]
    results = []
    galleries: dict = {}  # the gallery threat's references, embedded once for every config
    for c in configs:
        c.setdefault("goal", args.goal)
        if c["goal"] == "impersonate":
            c.setdefault("target", "auto")
        results.append(evaluate(c, photos, rec, args.matrix, galleries))
    if args.json:
        emit_json(results)
        return 0

    from jndguard.core.research.compare import table_rows

    rows = table_rows(results)
    for r, c in zip(rows, results):
        r[0] = json.dumps(c["config"], separators=(",", ":"))
    from jndguard.core.research.compare import COLUMNS

    print_table(["config", *COLUMNS[1:]], rows)
    return 0
