"""Face recognisers: an embedder with its preprocessing inside, plus its verification threshold.

``Recogniser.forward`` takes RGB crops in [0, 1] at the model's input size and returns
L2-normalised embeddings. Preprocessing is part of the model so attacks differentiate through it:

- ``per-image`` (Keras FaceNet): ``(x − mean) / max(std, 1/√N)`` over all pixels and channels
  of each crop, on the 0–255 scale (FaceNet's "prewhiten").
- ``fixed`` (facenet-pytorch VGGFace2): ``(255·x − 127.5) / 128``.
- ``none``: the backbone normalises its input itself (dlib's ResNet: ``(255·x − mean) / 256``
  with the means stored in its ``.dat`` file).

What the recogniser sees of a photo is its *view* of a face (:mod:`jndguard.core.faces.views`):
``alignment="box"`` models (FaceNet) take the face box resized to the input size;
``alignment="dlib-chip"`` models (dlib's ResNet) take dlib's 150×150 chip aligned on dlib's
5 landmarks of the clean photo. :meth:`Recogniser.face_view` builds the view of a face and
:meth:`Recogniser.crops` applies it; every caller that turns a photo into recogniser input
goes through them.

The threshold is a cosine similarity measured on the 5-celebrity pairs when the model is
fetched or registered (:mod:`jndguard.core.models.calibrate`); never guessed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from jndguard.errors import ShapeError


@dataclass(frozen=True)
class RecogniserInfo:
    """What is known about a recogniser: identity, provenance, calibrated threshold."""

    name: str
    embedding_dim: int
    threshold: float
    sha256: str
    preprocess: str = "per-image"
    input_size: int = 160
    source: str = ""
    stats: dict = field(default_factory=dict)
    alignment: str = "box"  # "box" | "dlib-chip" (see module docstring)


def standardise(x: torch.Tensor, mode: str) -> torch.Tensor:
    """Recogniser preprocessing of [0, 1] crops (see module docstring)."""
    x255 = x * 255.0
    if mode == "none":
        return x
    if mode == "fixed":
        return (x255 - 127.5) / 128.0
    if mode == "per-image":
        n = x[0].numel()
        mean = x255.mean(dim=(1, 2, 3), keepdim=True)
        std = x255.std(dim=(1, 2, 3), keepdim=True, unbiased=False)
        return (x255 - mean) / std.clamp_min(1.0 / math.sqrt(n))
    raise ValueError(f"unknown preprocessing {mode!r}")


class Recogniser(nn.Module):
    """An embedding network with preprocessing and L2 normalisation built in.

    Always in eval mode: ``train()`` is refused because BatchNorm in train mode changes the
    embeddings of single crops.

    Shape:
        input ``(N, 3, S, S)`` in [0, 1] with ``S = info.input_size``; output ``(N, D)``.
    """

    def __init__(self, backbone: nn.Module, info: RecogniserInfo) -> None:
        super().__init__()
        self.backbone = backbone.eval()
        self.info = info
        self.home = None  # the model store it was loaded from (set by load_recogniser)
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.train(False)
        # hand the input over channels-last when the backbone's convs hold their weights that
        # way (:func:`jndguard.core.models.inference.prepare_backbone`)
        conv = next((m for m in self.backbone.modules() if isinstance(m, nn.Conv2d)), None)
        self.channels_last = conv is not None and not conv.weight.is_contiguous() \
            and conv.weight.is_contiguous(memory_format=torch.channels_last)

    def train(self, mode: bool = True) -> Recogniser:
        return super().train(False)

    @property
    def threshold(self) -> float:
        return self.info.threshold

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    def descriptor(self, crops: torch.Tensor) -> torch.Tensor:
        """The backbone's output ``(N, D)`` before this wrapper's L2 normalisation: for dlib's
        ResNet exactly what ``compute_face_descriptor`` returns (unnormalised); facenet-pytorch's
        InceptionResnetV1 already normalises inside."""
        s = self.info.input_size
        if crops.ndim != 4 or crops.shape[1:] != (3, s, s):
            raise ShapeError(f"recogniser input must be (N, 3, {s}, {s}), got {tuple(crops.shape)}")
        x = standardise(crops, self.info.preprocess)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.backbone(x)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.descriptor(crops), p=2, dim=1)

    embed = forward

    # -- from a photo to recogniser input ---------------------------------------------------

    def face_view(self, pixels: np.ndarray | None, face):
        """How this recogniser sees ``face`` (a :class:`~jndguard.core.faces.Face` or a box
        ``(x1, y1, x2, y2)``) of a photo; ``pixels`` is the clean ``(H, W, 3)`` uint8 photo,
        needed by landmark-aligned models (dlib's landmarks are found on it)."""
        from jndguard.core.faces.views import BoxView, DlibChipView

        box = tuple(float(v) for v in getattr(face, "box", face))
        if self.info.alignment == "box":
            return BoxView(box, self.info.input_size)
        if self.info.alignment == "dlib-chip":
            from jndguard.core.faces.align import dlib_chip_details, dlib_landmarks

            if pixels is None:
                raise ValueError("dlib's chip needs the photo's pixels for its landmarks")
            return DlibChipView(dlib_chip_details(dlib_landmarks(pixels, box), self.info.input_size))
        raise ValueError(f"unknown alignment {self.info.alignment!r}")

    def crops(self, x: torch.Tensor, faces: Sequence, pixels: np.ndarray | None = None) -> torch.Tensor:
        """Recogniser input ``(N, 3, S, S)`` of ``faces`` of the photo ``x`` ``(1, 3, H, W)``,
        differentiable in ``x``. ``pixels``: the clean photo the views are fixed on (default:
        ``x`` itself, quantised). Box models crop all boxes in one ``crop_resize`` call."""
        from jndguard.core.faces.crop import crop_resize

        x = x.to(self.device)
        if not faces:
            return x.new_zeros(0, 3, self.info.input_size, self.info.input_size)
        if self.info.alignment == "box":
            boxes = [tuple(float(v) for v in getattr(f, "box", f)) for f in faces]
            return crop_resize(x, boxes, size=self.info.input_size)
        if pixels is None:
            from jndguard.core.imageio import to_uint8

            pixels = to_uint8(x)
        return torch.cat([self.face_view(pixels, f)(x) for f in faces])


class IdentityHead(nn.Module):
    """Turn an embedder + gallery into a classifier (docs/design.md §4).

    ``logits_k = s · cos(emb(x), c_k)`` over gallery embeddings ``c_0..c_K``; by convention
    ``c_0`` is the protected person's own clean embedding and ``c_1..c_K`` are other
    identities. Classifier-style attacks (torchattacks) run on this unchanged.

    Args:
        recogniser: the embedder (takes [0, 1] crops).
        gallery: ``(K+1, D)`` L2-normalised embeddings.
        scale: logit scale ``s`` (cosines are in [−1, 1]; s = 30 makes softmax decisive).
        labels: optional names of the gallery entries.
    """

    def __init__(self, recogniser: Recogniser, gallery: torch.Tensor, scale: float = 30.0,
                 labels: list[str] | None = None) -> None:
        super().__init__()
        if gallery.ndim != 2 or gallery.shape[1] != recogniser.info.embedding_dim:
            raise ShapeError(f"gallery must be (K, {recogniser.info.embedding_dim})")
        self.recogniser = recogniser
        self.register_buffer("gallery", F.normalize(gallery.detach(), dim=1))
        self.scale = float(scale)
        self.labels = labels or [f"id{k}" for k in range(gallery.shape[0])]

    def similarities(self, crops: torch.Tensor) -> torch.Tensor:
        """Cosine similarity of each crop to each gallery entry, ``(N, K+1)``."""
        return self.recogniser(crops) @ self.gallery.T

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.scale * self.similarities(crops)
