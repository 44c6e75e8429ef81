"""``jndguard identify PHOTO_A PHOTO_B [--json]``: same person or not."""

from __future__ import annotations

import argparse
from pathlib import Path

from jndguard.commands._options import add_device
from jndguard.commands._output import emit_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("identify", help="compare the main face of two photos")
    p.add_argument("photo_a", type=Path)
    p.add_argument("photo_b", type=Path)
    p.add_argument("--model", default=None, help="recogniser name (see `jndguard models list`)")
    add_device(p)
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jndguard.core.device import resolve_device
    from jndguard.core.models import load_recogniser
    from jndguard.core.photo import embed_faces, load_and_detect, main_face

    device = resolve_device(args.device)
    rec = load_recogniser(args.model, device)
    embs, faces = [], []
    for path in (args.photo_a, args.photo_b):
        photo = load_and_detect(path, device)
        face = main_face(photo)
        faces.append(face)
        embs.append(embed_faces(rec, photo.image.tensor(), [face])[0])
    cos = float(embs[0] @ embs[1])
    same = cos >= rec.threshold
    result = {"photo_a": str(args.photo_a), "photo_b": str(args.photo_b),
              "face_a": faces[0].to_dict(), "face_b": faces[1].to_dict(),
              "model": rec.name, "cosine_similarity": round(cos, 5),
              "threshold": round(rec.threshold, 5), "same_person": same}
    if args.json:
        emit_json(result)
    else:
        verdict = "same person" if same else "different people"
        print(f"cosine similarity {cos:.3f} (threshold {rec.threshold:.3f}, {rec.name}): {verdict}")
    return 0
