"""``jndguard dmvjnd PHOTOS... -o OUTDIR``: the recogniser's own JND (DMV-JND, Jin et al. 2022) of each
photo's first face, next to the human JND map; PSNR of the tolerated noise and RCA."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from jndguard.commands._options import add_device
from jndguard.commands._output import emit_json, progress_bar


def register(sub: argparse._SubParsersAction) -> None:
    from jndguard.core.defaults import DMVJND_MARGIN as DEFAULT_MARGIN

    p = sub.add_parser("dmvjnd", help="estimate the recogniser's own JND (DMV-JND)")
    p.add_argument("photos", nargs="+", type=Path, help="photos or folders")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--margin", type=float, default=DEFAULT_MARGIN,
                   help="cosine over the threshold the chosen noise must keep (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", help="recogniser (see `jndguard models list`)")
    add_device(p)
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def _fmt(v, pct=False) -> str:
    if v is None:
        return "–"
    return f"{100 * v:.0f}%" if pct else (f"{v:.2f}" if math.isfinite(v) else "inf")


def to_markdown(summary: dict) -> str:
    """Per-face rows and the summary line of a DMV-JND run."""
    lines = ["| Photo | DMV-JND PSNR (dB) | Human JND PSNR (dB) | Kept (crop) | Kept (photo) "
             "| WGN kept | k/9 kept | CAM low/high |", "|---|---:|---:|:-:|:-:|:-:|:-:|---:|"]
    yes = {True: "yes", False: "no", None: "–"}
    for r in summary["results"]:
        if "error" in r:
            lines.append(f"| {Path(r['photo']).name} | {r['error']} |||||||")
            continue
        lines.append(f"| {Path(r['photo']).name} | {_fmt(r['psnr'])} | {_fmt(r['hvs_psnr'])} | "
                     f"{yes[r['identity_kept']]} | {yes[r['identity_kept_photo']]} | "
                     f"{yes[r['wgn_kept']]} | {yes[r['homogeneous']]} | {_fmt(r['cam_contrast'])} |")
    s = summary
    lines.append(f"| **mean / rate ({s['faces']} faces)** | {_fmt(s['psnr'])} | {_fmt(s['hvs_psnr'])} | "
                 f"{_fmt(s['rca'], True)} | {_fmt(s['rca_photo'], True)} | "
                 f"{_fmt(s['rca_wgn'], True)} | {_fmt(s['homogeneous'], True)} | "
                 f"{_fmt(s['cam_contrast'])} |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from jndguard.commands.protect import collect_photos
    from jndguard.core.device import resolve_device
    from jndguard.core.files import atomic_write_text
    from jndguard.core.models import load_recogniser
    from jndguard.core.research.dmvjnd import dmvjnd_photo, summarise

    rec = load_recogniser(args.model, resolve_device(args.device))
    photos = collect_photos(args.photos)
    rows = []
    with progress_bar(len(photos), "dmvjnd", unit="face") as bar:
        for p in photos:
            rows.append(dmvjnd_photo(p, rec, args.output, args.iterations, args.seed, args.margin))
            bar.update(1)
    summary = {**summarise(rows), "iterations": args.iterations, "margin": args.margin,
               "results": rows}
    atomic_write_text(args.output / "dmvjnd.json", json.dumps(summary, indent=2))
    atomic_write_text(args.output / "dmvjnd.md", to_markdown(summary))
    if args.json:
        emit_json(summary)
        return 0
    for r in rows:
        if "error" in r:
            print(f"{r['photo']}: {r['error']}")
        else:
            print(f"{Path(r['photo']).name}: DMV-JND PSNR {_fmt(r['psnr'])} dB "
                  f"(human JND {_fmt(r['hvs_psnr'])} dB), identity kept: {r['identity_kept']} "
                  f"(cos {r['similarity']:.3f}), in the photo: {r['identity_kept_photo']}")
    if summary["faces"]:
        s = summary
        print(f"RCA {_fmt(s['rca'], True)} (crop), {_fmt(s['rca_photo'], True)} (in the photo, "
              f"re-detected); same-MSE white noise {_fmt(s['rca_wgn'], True)}; "
              f"mean PSNR {_fmt(s['psnr'])} dB vs human JND {_fmt(s['hvs_psnr'])} dB "
              f"over {s['faces']} face(s)")
    print(f"tables: {args.output / 'dmvjnd.md'}, {args.output / 'dmvjnd.json'}")
    return 0
