"""``jndguard embed PHOTO [--model NAME] [--json]``: the embedding of every face.

For ``dlib-resnet`` the embedding is exactly what dlib's ``compute_face_descriptor`` returns
for the face (unnormalised; dlib compares descriptors by Euclidean distance, 0.6), computed by
the PyTorch port on dlib's aligned chip from dlib's 5 landmarks in the MTCNN box; for the
FaceNet models it is the L2-normalised vector the cosine threshold applies to. Researchers
use it to check models against each other.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jndguard.commands._options import add_device
from jndguard.commands._output import emit_json
from jndguard.core.defaults import DEFAULT_MIN_FACE_SIZE


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="print the embedding of every face of a photo")
    p.add_argument("photo", type=Path)
    p.add_argument("--model", default=None, help="recogniser name (see `jndguard models list`)")
    p.add_argument("--min-face-size", type=int, default=DEFAULT_MIN_FACE_SIZE,
                   help="ignore faces smaller than this many pixels (default %(default)s)")
    add_device(p)
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def embed_photo(path: Path, model: str | None = None, device: str = "auto",
                min_face_size: int = DEFAULT_MIN_FACE_SIZE) -> dict:
    """``{"model", "normalised", "faces": [{"box", "embedding", …}]}`` for one photo."""
    from jndguard.core.device import resolve_device
    from jndguard.core.models import load_recogniser
    from jndguard.core.photo import embed_faces, load_and_detect

    dev = resolve_device(device)
    rec = load_recogniser(model, dev)
    photo = load_and_detect(path, dev, min_face_size)
    raw = rec.info.alignment == "dlib-chip"  # dlib's descriptor is used unnormalised
    embs = embed_faces(rec, photo.image.tensor(dev), photo.faces, raw=raw).cpu().double()
    faces = []
    for f, e in zip(photo.faces, embs):
        row = {"box": [round(v, 2) for v in f.box], "probability": round(f.probability, 5),
               "embedding": [float(v) for v in e]}
        if raw:
            from jndguard.core.faces.align import dlib_landmarks

            row["landmarks"] = dlib_landmarks(photo.image.pixels, f.box).tolist()
        faces.append(row)
    return {"photo": str(path), "model": rec.name, "sha256": rec.info.sha256,
            "normalised": not raw, "faces": faces}


def run(args: argparse.Namespace) -> int:
    doc = embed_photo(args.photo, args.model, args.device, args.min_face_size)
    if args.json:
        emit_json(doc)
        return 0
    kind = "L2-normalised" if doc["normalised"] else "unnormalised (dlib's descriptor)"
    print(f"{args.photo}: {len(doc['faces'])} face(s), {doc['model']}, {kind}")
    for i, f in enumerate(doc["faces"]):
        e = f["embedding"]
        head = " ".join(f"{v:+.4f}" for v in e[:6])
        print(f"face {i} box {[round(v) for v in f['box']]}: [{head} …] ({len(e)}-d)")
    return 0
