"""Identity galleries for the identity head: the 5-celebrity train-split centroids.

Cached per recogniser (by model hash) next to the model store. When protecting a face, the
identities the recogniser already verifies as that person (centroid cosine ≥ τ) are removed
from its gallery: "the person themself" is class 0 of the identity head (docs/design.md §4).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from jndguard.core.models.recogniser import Recogniser

_CACHE: dict[str, tuple[list[str], torch.Tensor]] = {}


def celebrity_gallery(recogniser: Recogniser, home=None) -> tuple[list[str], torch.Tensor]:
    """``(names, (5, D) L2-normalised centroids)`` of the 5-celebrity train photos."""
    from jndguard.core.models.calibrate import embed_dataset, index_faces
    from jndguard.core.models.store import dataset_dir, models_home

    key = recogniser.info.sha256
    if key in _CACHE:
        return _CACHE[key]
    home = home or getattr(recogniser, "home", None) or models_home()
    cache = home / "models" / f"gallery-{key[:16]}.pt"
    if cache.is_file():
        data = torch.load(cache, map_location="cpu", weights_only=True)
        names, cents = list(data["names"]), data["centroids"]
    else:
        faces = [f for f in index_faces(dataset_dir(home)) if f.split == "train"]
        emb = embed_dataset(recogniser, faces)
        names = sorted({f.person for f in faces})
        cents = torch.stack([
            F.normalize(emb[[i for i, f in enumerate(faces) if f.person == n]].mean(0), dim=0)
            for n in names])
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        torch.save({"names": names, "centroids": cents}, tmp)
        tmp.replace(cache)
    _CACHE[key] = (names, cents)
    return names, cents


def gallery_for(clean_embedding: torch.Tensor, names: list[str], centroids: torch.Tensor,
                threshold: float, keep: str | None = None) -> tuple[list[str], torch.Tensor]:
    """Drop identities the recogniser already matches to this face (except ``keep``)."""
    sims = centroids.to(clean_embedding.device) @ clean_embedding
    idx = [i for i, n in enumerate(names) if n == keep or float(sims[i]) < threshold]
    return [names[i] for i in idx], centroids[idx].to(clean_embedding.device)
