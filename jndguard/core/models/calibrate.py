"""Measure a recogniser on the 5-celebrity photos: identification, pair AUC, threshold.

The verification threshold is the cosine similarity that minimises the balanced error
``(FAR + FRR) / 2`` over all same/different pairs of the 118 photos (93 train + 25 val);
FAR and FRR at that threshold are stored with it. Identification is nearest-centroid: each
validation face against the centroids of the train faces of the 5 people.

For dlib's ResNet, :func:`euclidean_rule` also reports dlib's own decision rule on the same
pairs: the same person when the Euclidean distance of the unnormalised descriptors is below
0.6 (King, dlib's ``dnn_face_recognition_ex.cpp``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from jndguard.core.faces import get_detector
from jndguard.core.imageio import load_image
from jndguard.core.models.recogniser import Recogniser

logger = logging.getLogger(__name__)

FACES_INDEX = "faces.json"


@dataclass(frozen=True)
class DatasetFace:
    """The most probable face of one dataset photo."""

    path: Path
    person: str
    split: str  # "train" | "val"
    box: tuple[float, float, float, float]


def index_faces(root: Path, device: torch.device | str = "cpu",
                progress: Callable[[int, int], None] | None = None) -> list[DatasetFace]:
    """Detect the most probable face in every ``root/{train,val}/<person>/*.jpg``.

    The result is cached in ``root/faces.json`` (detection is the slow part).
    """
    cache = root / FACES_INDEX
    if cache.is_file():
        data = json.loads(cache.read_text())
        return [DatasetFace(root / d["path"], d["person"], d["split"], tuple(d["box"])) for d in data]
    photos = sorted(root.glob("*/*/*.jpg"))
    detector = get_detector(device, min_face_size=20)
    out: list[DatasetFace] = []
    for i, p in enumerate(photos):
        faces = detector.detect(load_image(p).pixels)
        if not faces:
            raise RuntimeError(f"no face found in dataset photo {p}")
        out.append(DatasetFace(p, p.parent.name, p.parent.parent.name, faces[0].box))
        if progress:
            progress(i + 1, len(photos))
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps([
        {"path": str(f.path.relative_to(root)), "person": f.person, "split": f.split,
         "box": list(f.box)} for f in out], indent=1))
    tmp.replace(cache)
    return out


@torch.no_grad()
def embed_dataset(recogniser: Recogniser, faces: list[DatasetFace], batch: int = 16,
                  raw: bool = False) -> torch.Tensor:
    """Embeddings ``(N, D)`` of the dataset faces, each seen through the recogniser's view
    (box crop, or dlib's aligned chip); ``raw``: the descriptors before L2 normalisation."""
    embs = []
    for i in range(0, len(faces), batch):
        crops = []
        for f in faces[i:i + batch]:
            img = load_image(f.path)
            crops.append(recogniser.crops(img.tensor(recogniser.device), [f.box], pixels=img.pixels))
        crops = torch.cat(crops)
        embs.append(recogniser.descriptor(crops) if raw else recogniser(crops))
    return torch.cat(embs).cpu()


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Area under the ROC curve = P(score_pos > score_neg) (ties count half)."""
    scores = np.concatenate([pos, neg])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    # average ranks of ties
    _, inv, counts = np.unique(scores, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    ranks = (sums / counts)[inv]
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _pairs(faces: list[DatasetFace], scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores of the same-person and different-person pairs (each unordered pair once)."""
    persons = sorted({f.person for f in faces})
    labels = np.array([persons.index(f.person) for f in faces])
    iu = np.triu_indices(len(faces), k=1)
    same = labels[iu[0]] == labels[iu[1]]
    return scores[iu][same], scores[iu][~same]


def euclidean_rule(descriptors: torch.Tensor, faces: list[DatasetFace], threshold: float) -> dict:
    """A distance rule on raw descriptors (dlib's: same person when ``‖a − b‖ < threshold``):
    FAR, FRR and accuracy over the same pairs as :func:`calibrate`, and the AUC of −distance."""
    dist = torch.cdist(descriptors.double(), descriptors.double()).numpy()
    pos, neg = _pairs(faces, dist)
    far, frr = float((neg < threshold).mean()), float((pos >= threshold).mean())
    return {
        "distance_threshold": threshold, "far": far, "frr": frr,
        "accuracy": float(((pos < threshold).sum() + (neg >= threshold).sum()) / (len(pos) + len(neg))),
        "pair_auc": _auc(-pos, -neg), "pairs_same": len(pos), "pairs_different": len(neg),
        "mean_distance_same": float(pos.mean()), "mean_distance_different": float(neg.mean()),
    }


def calibrate(recogniser: Recogniser, faces: list[DatasetFace],
              embeddings: torch.Tensor | None = None) -> dict:
    """Identification accuracy, pair AUC and the balanced-error threshold with FAR/FRR.

    ``embeddings``: the faces' L2-normalised embeddings when already computed.
    """
    emb = embed_dataset(recogniser, faces) if embeddings is None else embeddings
    persons = sorted({f.person for f in faces})
    labels = np.array([persons.index(f.person) for f in faces])
    split = np.array([f.split for f in faces])
    sims = (emb @ emb.T).numpy()
    pos, neg = _pairs(faces, sims)
    candidates = np.unique(np.concatenate([pos, neg]))
    far = np.array([(neg >= t).mean() for t in candidates])
    frr = np.array([(pos < t).mean() for t in candidates])
    best = int(np.argmin(far + frr))
    threshold = float(candidates[best])
    # centre the threshold in the gap between neighbouring scores so it is not one pair's value
    if best > 0:
        threshold = float((candidates[best] + candidates[best - 1]) / 2)
    train, val = split == "train", split == "val"
    centroids = torch.stack([
        torch.nn.functional.normalize(emb[torch.from_numpy(train & (labels == k))].mean(0), dim=0)
        for k in range(len(persons))
    ])
    pred = (emb[torch.from_numpy(val)] @ centroids.T).argmax(1).numpy()
    correct = int((pred == labels[val]).sum())
    return {
        "threshold": threshold,
        "far": float((neg >= threshold).mean()),
        "frr": float((pos < threshold).mean()),
        "pair_auc": _auc(pos, neg),
        "pairs_same": len(pos),
        "pairs_different": len(neg),
        "identification_correct": correct,
        "identification_total": int(val.sum()),
        "persons": persons,
    }
