"""Cost of the threat matrix per face (docs/design.md §4), models loaded: the quick and the full
matrix, with and without dlib's black-box ResNet, on validation faces.

``jndguard bench matrix [--faces N] [--threads 2]`` prints, per size and recogniser set: cells
per face, seconds per face to judge a protected version (the original's and the gallery's
embeddings already computed: they are cached across versions, as the post-protection mode and
``compare`` use them), the one-off reference cost (original + the person's train photos as
gallery), and both as multiples of one FaceNet forward of 32 crops measured in the same run
(absolute seconds on a shared machine say little; the ratios do).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from jndguard.commands._options import add_device
from jndguard.commands._output import emit_json, print_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--faces", type=int, default=3, help="validation faces (one per person first)")
    add_device(parser)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", default="quick,full")
    parser.add_argument("--no-dlib", action="store_true")
    parser.add_argument("--json", action="store_true")


def _faces(n: int):
    from jndguard.core.models.store import validation_photos

    photos = validation_photos(25)
    first: dict[str, object] = {}
    for p in photos:
        first.setdefault(p.parent.name, p)
    ordered = list(first.values()) + [p for p in photos if p not in first.values()]
    return ordered[:n]


def run(args: argparse.Namespace) -> int:
    import torch

    from jndguard.core.device import resolve_device
    from jndguard.core.imageio import load_image
    from jndguard.core.models import load_recogniser
    from jndguard.core.models.store import dataset_dir
    from jndguard.core.threat.encodings import reencode
    from jndguard.core.threat.matrix import ReferencePhotos, ThreatMatrix
    from jndguard.core.threat.recognisers import TorchEmbedder, default_recognisers

    torch.set_num_threads(args.threads)
    rec = load_recogniser(device=resolve_device(args.device))
    emb = TorchEmbedder(rec)
    crops = np.random.default_rng(0).integers(0, 256, (32, 160, 160, 3), dtype=np.uint8)
    emb.embed(crops)
    t = time.perf_counter()
    emb.embed(crops)
    unit = time.perf_counter() - t
    sets = [("facenet", [rec])]
    if not args.no_dlib:
        both, _ = default_recognisers([rec], device=rec.device)
        if len(both) > 1:
            sets.append((" + ".join(r.name for r in both), both))
    photos = _faces(args.faces)
    galleries: dict = {}  # embeddings cached per recogniser: shared by every configuration
    rows, out = [], []
    for size in args.sizes.split(","):
        for label, recs in sets:
            evals, setups, cells = [], [], []
            for p in photos:
                px = load_image(p).pixels
                probe = reencode(px, "jpeg95").pixels  # a changed version, same faces
                t = time.perf_counter()
                gallery = galleries.get(p.parent.name) or galleries.setdefault(
                    p.parent.name, ReferencePhotos.from_dir(dataset_dir() / "train" / p.parent.name))
                tm = ThreatMatrix(px, recognisers=recs, size=size, gallery=gallery)
                setups.append(time.perf_counter() - t)
                t = time.perf_counter()
                rep = tm.evaluate(probe)
                evals.append((time.perf_counter() - t) / max(1, len(tm.faces)))
                cells.append(len(rep.entries) // max(1, len(tm.faces)))
            r = {"size": size, "recognisers": label, "faces": len(photos),
                 "cells_per_face": int(statistics.mean(cells)),
                 "seconds_per_face": statistics.mean(evals),
                 "setup_seconds": statistics.mean(setups),
                 "per_face_in_facenet_batches": statistics.mean(evals) / unit,
                 "facenet_batch32_seconds": unit}
            out.append(r)
            rows.append([size, label, r["cells_per_face"], f"{r['seconds_per_face']:.1f}",
                         f"{r['per_face_in_facenet_batches']:.1f}", f"{r['setup_seconds']:.1f}"])
    if args.json:
        emit_json(out)
        return 0
    print(f"one FaceNet forward of 32 crops: {unit:.2f} s ({args.threads} threads)")
    print_table(["matrix", "recognisers", "cells/face", "s/face", "× FaceNet batch",
                 "references s (original + gallery, cached after the first)"], rows)
    return 0
