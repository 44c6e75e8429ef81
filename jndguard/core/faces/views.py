"""How a recogniser sees one face of a photo: a differentiable map photo → recogniser input.

A view is fixed on the clean photo (its box, or its landmarks) and then applied to any
perturbed version of it, so the optimiser differentiates through exactly the crop the
recogniser takes (docs/design.md §2–3):

- :class:`BoxView`: FaceNet's input, the face box resized (``crop_resize``);
- :class:`DlibChipView`: dlib's input, the 150×150 chip aligned on dlib's 5 landmarks
  (:func:`jndguard.core.faces.align.dlib_face_chip`).

Both take the same jitter ``(dx, dy, ds)`` rows the attack problem samples (shift by a
fraction of the face size, scale by ``1 + ds``), can be moved into a region's coordinates
(:meth:`translate`) or onto a rescaled photo (:meth:`scale`), and report the photo area they
read (:meth:`footprint`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from jndguard.core.faces.align import ChipDetails, dlib_chip_footprint, dlib_face_chip
from jndguard.core.faces.crop import crop_resize


def _jitter_rows(jitter: torch.Tensor | Sequence | None) -> torch.Tensor:
    if jitter is None:
        return torch.zeros(1, 3)
    j = torch.as_tensor(jitter, dtype=torch.float32).reshape(-1, 3)
    return j.cpu()


@dataclass(frozen=True)
class BoxView:
    """The face box ``(x1, y1, x2, y2)`` resized to ``size × size``."""

    box: tuple[float, float, float, float]
    size: int

    def boxes(self, jitter: torch.Tensor | Sequence | None = None) -> torch.Tensor:
        """``(S, 4)`` jittered boxes."""
        x1, y1, x2, y2 = self.box
        w, h = x2 - x1, y2 - y1
        j = _jitter_rows(jitter)
        cx = (x1 + x2) / 2 + j[:, 0] * w
        cy = (y1 + y2) / 2 + j[:, 1] * h
        s = 1 + j[:, 2]
        return torch.stack([cx - w * s / 2, cy - h * s / 2, cx + w * s / 2, cy + h * s / 2], 1)

    def __call__(self, x: torch.Tensor, jitter: torch.Tensor | Sequence | None = None) -> torch.Tensor:
        return crop_resize(x, self.boxes(jitter).to(x.device), size=self.size)

    def translate(self, dx: float, dy: float) -> BoxView:
        x1, y1, x2, y2 = self.box
        return replace(self, box=(x1 + dx, y1 + dy, x2 + dx, y2 + dy))

    def scale(self, f: float) -> BoxView:
        return replace(self, box=tuple(v * f for v in self.box))

    def footprint(self) -> tuple[float, float, float, float]:
        return self.box


@dataclass(frozen=True)
class DlibChipView:
    """dlib's aligned chip (``extract_image_chip`` of ``get_face_chip_details``)."""

    details: ChipDetails
    quantise: bool = True

    def jittered(self, dx: float, dy: float, ds: float) -> ChipDetails:
        """The chip rectangle shifted by ``(dx, dy)`` × its side and scaled by ``1 + ds``."""
        l, t, r, b = self.details.rect
        side = r - l + 1
        cx, cy = (l + r) / 2 + dx * side, (t + b) / 2 + dy * side
        half = (side * (1 + ds) - 1) / 2
        return replace(self.details, rect=(cx - half, cy - half, cx + half, cy + half))

    def __call__(self, x: torch.Tensor, jitter: torch.Tensor | Sequence | None = None) -> torch.Tensor:
        rows = _jitter_rows(jitter).tolist()
        return torch.cat([dlib_face_chip(x, self.jittered(*row), self.quantise) for row in rows])

    def translate(self, dx: float, dy: float) -> DlibChipView:
        l, t, r, b = self.details.rect
        return replace(self, details=replace(self.details, rect=(l + dx, t + dy, r + dx, b + dy)))

    def scale(self, f: float) -> DlibChipView:
        """The same chip on the photo resized by ``f`` (pixel centres: ``(p + ½)·f − ½``)."""
        rect = tuple((v + 0.5) * f - 0.5 for v in self.details.rect)
        return replace(self, details=replace(self.details, rect=rect))

    def footprint(self) -> tuple[float, float, float, float]:
        """The photo area dlib reads for this chip (rotated rectangle + its pyramid border),
        with a margin for the largest jitter the attack samples."""
        left, top, right, bottom = dlib_chip_footprint(self.jittered(0.0, 0.0, 0.1))
        return (left - 0.05 * (right - left), top - 0.05 * (bottom - top),
                right + 1 + 0.05 * (right - left), bottom + 1 + 0.05 * (bottom - top))


FaceView = BoxView | DlibChipView
