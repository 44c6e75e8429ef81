"""Post mode at a reduced working scale, for faces too large to optimise at full resolution.

Post mode's optimisation holds about 1 KB per pixel of a face's context region in memory (the
autograd intermediates of the differentiable JPEG and of the warps; :mod:`jndguard.core.memory`),
so a face that fills a 24 MP photo would need about 25 GB. No recogniser needs that resolution:
every crop convention of the threat matrix resizes the face to 112–160 px, and photo sites resize
the photo to 1080 px or less (docs/design.md §4). A face whose context region (box + 60 %) has
more than :data:`WORK_MAX_PIXELS` pixels is therefore optimised on an area downscale of that
region to :data:`WORK_MAX_PIXELS`, with J computed on the downscale, and its perturbation is
carried back to full resolution (:meth:`WorkScale.lift`):

1. bilinear upsampling of the perturbation (pixel centres aligned as in the downscale; the same
   weights as ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``), done
   row block by row block so no full-resolution float copy of the region is ever held;
2. the full-resolution JND budget, ``|P| ≤ ⌊budget·J⌋`` whole 8-bit levels per pixel-channel,
   with J computed on the full-resolution photo (the bound the quality report counts);
3. rounding to the 8-bit grid.

Bilinear weights are non-negative and sum to one, so the perceptual guard's bounds (local mean,
chroma; :mod:`jndguard.core.attacks.perceptual_guard`), enforced on the working scale, carry over
to the upsampled perturbation up to the interpolation of the bounds themselves. The stopping
check and the exported file both see the lifted full-resolution result, never the working copy,
so what is claimed is measured where it is posted.

The cost: the perturbation has no detail finer than 1/scale pixels. On screen, a photo of that
size is shown downscaled anyway; at 100 % zoom the perturbation is smoother than at native
resolution (README "Post mode").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

#: the largest face context region (pixels) post mode optimises at full resolution; larger ones
#: are optimised at the scale that brings them to this size (module docstring). 1 MP is a
#: 1000 × 1000 context, a face box of about 450 px — three times the recognisers' input.
WORK_MAX_PIXELS = 1_000_000

Rect = tuple[int, int, int, int]


def work_scale(rect: Rect, max_pixels: int | None = None) -> float:
    """The working scale (≤ 1) of a context region ``(x0, y0, x1, y1)`` (``max_pixels``:
    default :data:`WORK_MAX_PIXELS`)."""
    max_pixels = WORK_MAX_PIXELS if max_pixels is None else max_pixels
    x0, y0, x1, y1 = rect
    area = (x1 - x0) * (y1 - y0)
    return 1.0 if area <= max_pixels else math.sqrt(max_pixels / area)


def _linear_taps(n_out: int, n_in: int, start: int = 0, stop: int | None = None):
    """Indices and weights of 1-D linear interpolation from ``n_in`` to ``n_out`` samples for
    outputs ``start:stop`` (align_corners=False, the source coordinate clamped at 0, as
    PyTorch's bilinear ``interpolate``)."""
    stop = n_out if stop is None else stop
    src = ((torch.arange(start, stop, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5).clamp_min(0)
    i0 = src.floor().long().clamp_max(n_in - 1)
    i1 = (i0 + 1).clamp_max(n_in - 1)
    w1 = (src - i0).float().clamp(0, 1)
    return i0, i1, w1


@dataclass
class WorkScale:
    """One face optimised at a reduced scale (module docstring).

    Attributes:
        context: the face's context region ``(x0, y0, x1, y1)`` in photo coordinates.
        change: its changing region in photo coordinates (inside ``context``).
        small: the ``(h, w, 3)`` uint8 area downscale of the context region (what the optimiser
            reads).
        clean: the full-resolution changing region of the clean photo, ``(H, W, 3)`` uint8.
        clip: ``⌊budget·J⌋`` of the full-resolution changing region, ``(3, H, W)`` uint8 levels.
    """

    context: Rect
    change: Rect
    small: np.ndarray
    clean: np.ndarray
    clip: torch.Tensor

    @classmethod
    def build(cls, pixels: np.ndarray, context: Rect, change: Rect, jnd_context: torch.Tensor,
              budget: float, max_pixels: int | None = None) -> WorkScale:
        """The working copy of a face: ``pixels`` is the whole photo, ``jnd_context`` J of the
        context region at full resolution (``(1, 3, H, W)``, [0, 1] units)."""
        from PIL import Image

        cx0, cy0, cx1, cy1 = context
        s = work_scale(context, max_pixels)
        size = (max(1, round((cx1 - cx0) * s)), max(1, round((cy1 - cy0) * s)))
        small = np.array(Image.fromarray(np.ascontiguousarray(pixels[cy0:cy1, cx0:cx1])).resize(
            size, Image.BOX))
        x0, y0, x1, y1 = change
        j = jnd_context[0, :, y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0]
        clip = torch.floor(j * (255.0 * budget) + 1e-4).clamp(0, 255).to(torch.uint8).cpu()
        return cls(context, change, small, pixels[y0:y1, x0:x1], clip)

    @property
    def factors(self) -> tuple[float, float]:
        """``(sx, sy)``: working size / full size per axis."""
        cx0, cy0, cx1, cy1 = self.context
        return self.small.shape[1] / (cx1 - cx0), self.small.shape[0] / (cy1 - cy0)

    @property
    def change_small(self) -> Rect:
        """The changing region in the working copy's pixels (rounded outward)."""
        sx, sy = self.factors
        cx0, cy0 = self.context[:2]
        x0, y0, x1, y1 = self.change
        h, w = self.small.shape[:2]
        return (max(0, math.floor((x0 - cx0) * sx)), max(0, math.floor((y0 - cy0) * sy)),
                min(w, math.ceil((x1 - cx0) * sx)), min(h, math.ceil((y1 - cy0) * sy)))

    @torch.no_grad()
    def lift(self, region: torch.Tensor, rows: int = 256) -> np.ndarray:
        """The full-resolution changing region ``(H, W, 3)`` uint8 for a working-scale changing
        region ``(1, 3, h, w)`` in [0, 1] on the 8-bit grid (module docstring, steps 1–3)."""
        a0, b0, a1, b1 = self.change_small
        hs, ws = self.small.shape[:2]
        clean_small = torch.from_numpy(self.small[b0:b1, a0:a1]).permute(2, 0, 1).float()
        delta = torch.zeros((3, hs, ws))
        delta[:, b0:b1, a0:a1] = region[0].detach().float().cpu().mul(255).round() - clean_small
        cx0, cy0, cx1, cy1 = self.context
        x0, y0, x1, y1 = self.change
        xi0, xi1, xw = _linear_taps(cx1 - cx0, ws, x0 - cx0, x1 - cx0)
        out = np.empty_like(self.clean)
        for r0 in range(0, y1 - y0, rows):
            r1 = min(y1 - y0, r0 + rows)
            yi0, yi1, yw = _linear_taps(cy1 - cy0, hs, y0 - cy0 + r0, y0 - cy0 + r1)
            d = delta[:, yi0] * (1 - yw)[None, :, None] + delta[:, yi1] * yw[None, :, None]
            d = d[:, :, xi0] * (1 - xw) + d[:, :, xi1] * xw
            lim = self.clip[:, r0:r1].float()
            d = torch.maximum(torch.minimum(d, lim), -lim)
            base = torch.from_numpy(self.clean[r0:r1]).permute(2, 0, 1).float()
            out[r0:r1] = (base + d).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
        return out
