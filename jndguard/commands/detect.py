"""``jndguard detect PHOTO [--json]``: faces, boxes, probabilities."""

from __future__ import annotations

import argparse
from pathlib import Path

from jndguard.commands._options import add_device
from jndguard.commands._output import emit_json, print_table
from jndguard.core.defaults import DEFAULT_MIN_FACE_SIZE


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="list the faces in a photo")
    p.add_argument("photo", type=Path)
    p.add_argument("--min-face-size", type=int, default=DEFAULT_MIN_FACE_SIZE,
                   help="ignore faces smaller than this many pixels (default %(default)s)")
    add_device(p)
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jndguard.core.device import resolve_device
    from jndguard.core.faces.detect import PROTECT_MIN_PROBABILITY, split_possible
    from jndguard.core.photo import load_and_detect

    photo = load_and_detect(args.photo, resolve_device(args.device), args.min_face_size)
    img = photo.image
    faces, possible = split_possible(photo.faces, PROTECT_MIN_PROBABILITY)
    if args.json:
        emit_json({"photo": str(args.photo), "width": img.width, "height": img.height,
                   "notes": img.notes, "faces": [f.to_dict() for f in faces],
                   "possible_faces": [f.to_dict() for f in possible],
                   "min_probability": PROTECT_MIN_PROBABILITY})
        return 0
    print(f"{args.photo}: {img.width}×{img.height}, {len(faces)} face(s)"
          + (f", {len(possible)} possible face(s) below probability {PROTECT_MIN_PROBABILITY:g} "
             "(not protected unless `protect --include-possible-faces`)" if possible else ""))
    for n in img.notes:
        print(f"note: {n}")
    if photo.faces:
        print_table(["#", "x1", "y1", "x2", "y2", "size", "probability", ""],
                    [[i, *(round(v) for v in f.box), round(f.size), f"{f.probability:.4f}",
                      "" if f.probability >= PROTECT_MIN_PROBABILITY else "possible"]
                     for i, f in enumerate(photo.faces)])
    return 0
