"""Photo-level helpers shared by the CLI, GUI and pipeline: load + detect + embed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from jndguard.core.faces import Face, detect_faces
from jndguard.core.imageio import LoadedImage, load_image
from jndguard.core.models.recogniser import Recogniser
from jndguard.errors import NoFaceError


@dataclass
class DetectedPhoto:
    """A loaded photo with its faces (most probable first)."""

    image: LoadedImage
    faces: list[Face]


def load_and_detect(path: str | Path, device: torch.device | str = "cpu",
                    min_face_size: int | None = None) -> DetectedPhoto:
    """Load a photo with the common loader and detect every face in it."""
    image = load_image(path)
    kwargs = {} if min_face_size is None else {"min_face_size": min_face_size}
    return DetectedPhoto(image, detect_faces(image.pixels, device, **kwargs))


@torch.no_grad()
def embed_faces(recogniser: Recogniser, image: torch.Tensor, faces: list[Face],
                raw: bool = False) -> torch.Tensor:
    """Embeddings ``(N, D)`` of the given faces of one (1, 3, H, W) photo, each seen through
    the recogniser's view; ``raw``: the descriptors before L2 normalisation."""
    if not faces:
        return torch.empty(0, recogniser.info.embedding_dim)
    crops = recogniser.crops(image, faces)
    return recogniser.descriptor(crops) if raw else recogniser(crops)


def main_face(photo: DetectedPhoto) -> Face:
    """The most probable face, or NoFaceError naming the file."""
    if not photo.faces:
        raise NoFaceError(f"{photo.image.path}: no face found")
    return photo.faces[0]
