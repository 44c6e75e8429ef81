"""Identity galleries for the identity head: the 5-celebrity train-split centroids.

Cached per recogniser (by model hash) next to the model store, and checked every time it is
read: against the SHA-256 the manifest records for it (``models fetch`` and ``models
register`` record it), and for content (finite, unit-length centroids, one per name), so a
damaged file is refused with a message that names it instead of giving silently wrong
similarities. When protecting a face, the
identities the recogniser already verifies as that person (centroid cosine ≥ τ) are removed
from its gallery: "the person themself" is class 0 of the identity head (docs/design.md §4).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from jndguard.core.models.recogniser import Recogniser

_CACHE: dict[str, tuple[list[str], torch.Tensor]] = {}
# a centroid is L2-normalised when written; float32 round-off stays far below this
_NORM_TOLERANCE = 1e-3


def gallery_path(home, model_sha256: str):
    """Where the gallery of the model with this hash is cached."""
    return home / "models" / f"gallery-{model_sha256[:16]}.pt"


def check_gallery_file(path, expected_sha256: str | None = None, dim: int | None = None) -> str | None:
    """What is wrong with a cached gallery file, or None when it is sound.

    Checks the recorded hash when given, then the content: it loads, has one finite,
    unit-length centroid of ``dim`` values per name.
    """
    from jndguard.core.models.store import sha256_file

    if expected_sha256 is not None and sha256_file(path) != expected_sha256:
        return f"{path} does not match its recorded hash"
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        names, cents = list(data["names"]), data["centroids"]
    except Exception as exc:  # a damaged zip, pickle or missing key
        return f"{path} cannot be read ({type(exc).__name__}: {exc})"
    if not all(isinstance(n, str) for n in names) or cents.ndim != 2 or cents.shape[0] != len(names):
        return f"{path} does not hold one centroid per identity"
    if dim is not None and cents.shape[1] != dim:
        return f"{path} holds {cents.shape[1]}-d centroids, the model gives {dim}-d"
    norms = cents.float().norm(dim=1)
    if not torch.isfinite(cents).all() or (norms - 1).abs().max() > _NORM_TOLERANCE:
        return f"{path} holds centroids that are not unit vectors (damaged)"
    return None


def _recorded_sha(home, model_sha256: str) -> str | None:
    from jndguard.core.models.store import read_manifest

    for entry in read_manifest(home).get("models", {}).values():
        if entry.get("sha256") == model_sha256 and isinstance(entry.get("gallery"), dict):
            return entry["gallery"].get("sha256")
    return None


def celebrity_gallery(recogniser: Recogniser, home=None) -> tuple[list[str], torch.Tensor]:
    """``(names, (5, D) L2-normalised centroids)`` of the 5-celebrity train photos.

    Raises:
        ModelIntegrityError: the cached file is damaged (its name and the repair command
            are in the message).
    """
    from jndguard.core.models.calibrate import embed_dataset, index_faces
    from jndguard.core.models.store import dataset_dir, models_home
    from jndguard.errors import ModelIntegrityError

    key = recogniser.info.sha256
    home = home or getattr(recogniser, "home", None) or models_home()
    cache = gallery_path(home, key)
    if str(cache) in _CACHE:
        return _CACHE[str(cache)]
    if cache.is_file():
        problem = check_gallery_file(cache, _recorded_sha(home, key), recogniser.info.embedding_dim)
        if problem is not None:
            raise ModelIntegrityError(f"{problem}; run `jndguard models fetch` to repair the store")
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
    _CACHE[str(cache)] = (names, cents)
    return names, cents


def forget_gallery(path) -> None:
    """Drop a gallery from the in-process cache (the store is repairing it)."""
    _CACHE.pop(str(path), None)


def gallery_for(clean_embedding: torch.Tensor, names: list[str], centroids: torch.Tensor,
                threshold: float, keep: str | None = None) -> tuple[list[str], torch.Tensor]:
    """Drop identities the recogniser already matches to this face (except ``keep``)."""
    sims = centroids.to(clean_embedding.device) @ clean_embedding
    idx = [i for i, n in enumerate(names) if n == keep or float(sims[i]) < threshold]
    return [names[i] for i in idx], centroids[idx].to(clean_embedding.device)
