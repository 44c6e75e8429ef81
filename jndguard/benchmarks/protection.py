"""Protection quality on the 25 validation faces: success (8-bit file, re-detected; JPEG q75;
1080 px resize), PSNR/SSIM on the face region, iterations, seconds — for several settings.

``jndguard bench protection --config '{"method": "hvs-jnd"}' --config '{"method": "bim"}'``
prints one row per config (docs/design.md §8 protocol; all configs on the same faces in one run).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from jndguard.commands._output import emit_json, print_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", action="append", default=[],
                        help="ProtectionSettings fields as JSON (repeatable; default: HVS-JND defaults)")
    parser.add_argument("--faces", type=int, default=25)
    parser.add_argument("--goal", default="dodge")
    parser.add_argument("--reencode", action="store_true",
                        help="also judge after JPEG q75 and a 1080 px resize (slower)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", action="store_true")


def evaluate(config: dict, photos: list[Path], rec, reencode: bool) -> dict:
    """Run one configuration on the photos; per-face figures and a summary."""
    from jndguard.core.research.compare import evaluate as _evaluate

    return _evaluate(config, photos, rec, reencode)


def run(args: argparse.Namespace) -> int:
    from jndguard.core.models import load_recogniser
    from jndguard.core.models.store import validation_photos

    if args.threads:
        torch.set_num_threads(args.threads)
    rec = load_recogniser()
    photos = validation_photos(args.faces)
    configs = [json.loads(c) for c in args.config] or [{}]
    results = []
    for c in configs:
        c.setdefault("goal", args.goal)
        if c["goal"] == "impersonate":
            c.setdefault("target", "auto")
        results.append(evaluate(c, photos, rec, args.reencode))
    if args.json:
        emit_json(results)
        return 0

    def pct(v):
        return "–" if v is None else f"{100 * v:.0f}%"

    print_table(
        ["config", "faces", "success", "JPEG q75", "1080 px", "PSNR dB", "SSIM", "med. iters",
         "s/face", "share > J"],
        [[json.dumps(r["config"], separators=(",", ":")), r["n"], pct(r["success"]), pct(r["jpeg75"]),
          pct(r["resize1080"]), r["psnr"], r["ssim"], r["median_iterations"],
          f"{r['seconds_per_face']:.1f}", r["over_jnd"]] for r in results])
    return 0
