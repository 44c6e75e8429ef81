"""Post mode's perceptual guard: what the per-pixel JND budget does not see.

A JND map (Yang et al. 2005's NAMM, docs/jnd.md) bounds each pixel-channel's change by what
masking hides *for that pixel*. It says nothing about how the changes add up over an area: the
eye integrates a coherent shift over a patch far better than independent noise of the same
amplitude (the contrast sensitivity function peaks at low spatial frequencies: Mannos &
Sakrison, "The effects of a visual fidelity criterion on the encoding of images", IEEE Trans.
Inf. Theory 1974), and it is most sensitive to colour changes precisely there (chromatic CSFs
are low-pass: Mullen, "The contrast sensitivity of human colour vision to red–green and
blue–yellow chromatic gratings", J. Physiol. 1985). Post mode, optimised against crops, JPEG and
downscaling, is drawn to exactly such coherent, low-frequency changes because they survive the
threat distribution: spent per channel up to J, they turned blue eyes brown and darkened the eye
sockets of a sample portrait at 35 dB (docs/results/post-sample-visible.png).

The guard is a projection applied after every optimiser step, on the perturbation ``P``:

1. in BT.601 Y/Cb/Cr (linear, no offset: :func:`jndguard.core.jnd.rgb_to_ycbcr`), the local
   mean of each channel — a Gaussian of ``sigma`` × the face's side — is kept within
   ``low_luma`` (Y) and ``low_chroma`` (Cb, Cr) 8-bit levels: the excess of the blurred
   perturbation over that bound is subtracted;
2. the chroma of ``P`` is kept within ``chroma`` × the luma threshold ``J_Y`` per pixel
   (colour changes stay a fraction of what luminance may change);
3. back in RGB, ``|P| ≤ jnd_clip·w·J`` per pixel-channel in whole 8-bit levels (the JND
   budget), where ``w`` is a foveal weight: people looking at a face fixate the eyes, nose and
   mouth (Yarbus, "Eye Movements and Vision", 1967), and the JND grows with the distance from
   the fixation point (the foveated JND of Chen & Guillemot, "Perceptually-friendly H.264/AVC
   video coding based on foveated just-noticeable-distortion model", IEEE TCSVT 2010). Here
   ``w`` is ``foveation`` at the five facial landmarks and rises linearly to 1 at ``fovea`` ×
   the face's side from the nearest one (a deliberately simple profile; the measured effect is
   in README "Post mode").

The values are chosen by measurement (README "Post mode": the strength curve) and can be set
per run; ``PerceptualGuard.off()`` keeps only step 3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from jndguard.core.jnd.color import rgb_to_luma, rgb_to_ycbcr, ycbcr_to_rgb

#: σ (pixels) from which :func:`gaussian_blur` works on a decimated copy (see there).
PYRAMID_SIGMA = 16.0


def _gaussian_kernel(sigma: float, radius: int, x: torch.Tensor) -> torch.Tensor:
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _blur_rows(x: torch.Tensor, k: torch.Tensor, radius: int) -> torch.Tensor:
    """1-D blur along the last axis, reflected borders (the kernel cut to the image and
    renormalised when the image is narrower than the kernel)."""
    pad = min(radius, x.shape[-1] - 1)
    kw = k[radius - pad: radius + pad + 1]
    c = x.shape[1]
    return F.conv2d(F.pad(x, (pad, pad, 0, 0), mode="reflect"),
                    (kw / kw.sum()).view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, C, H, W)`` with reflected borders (σ in pixels).

    Both passes run along rows (the columns as rows of the transpose: oneDNN's depthwise
    convolution with a tall kernel is several times slower). From σ = :data:`PYRAMID_SIGMA` on
    (faces of 250 px and more, with the guard's σ of a sixteenth of the face) the blur runs on
    a copy decimated by ``m = ⌊σ/8⌋`` (box average), with σ reduced for the box's variance, and
    is interpolated back bilinearly — about 100× faster on a 1 MP region; it differs from the
    full-resolution blur by about 1 % of the result on smooth fields and 10 % of its (tiny)
    standard deviation on white noise, well within what the guard's bounds were chosen by.
    """
    h, w = x.shape[-2:]
    m = int(sigma // 8) if sigma >= PYRAMID_SIGMA else 1
    if m >= 2 and min(h, w) >= 4 * m:
        small = F.avg_pool2d(F.pad(x, (0, (-w) % m, 0, (-h) % m), mode="replicate"), m)
        blurred = gaussian_blur(small, math.sqrt(max(sigma ** 2 - (m * m - 1) / 12, 1e-6)) / m)
        size = (blurred.shape[-2] * m, blurred.shape[-1] * m)
        return F.interpolate(blurred, size=size, mode="bilinear", align_corners=False)[..., :h, :w]
    radius = max(1, math.ceil(3 * sigma))
    k = _gaussian_kernel(sigma, radius, x)
    rows = _blur_rows(x, k, radius)
    return _blur_rows(rows.transpose(-1, -2), k, radius).transpose(-1, -2)


@dataclass(frozen=True)
class PerceptualGuard:
    """Bounds on the perturbation beyond the per-pixel JND (module docstring).

    Attributes:
        jnd_clip: ``|P| ≤ jnd_clip·J`` per pixel-channel, whole 8-bit levels (None: no clip).
        chroma: chroma of ``P`` (Cb, Cr) within ``chroma·J_Y`` per pixel (None: unbounded).
        low_luma: bound of the local mean of ``P``'s luma, 8-bit levels (None: unbounded).
        low_chroma: bound of the local mean of ``P``'s chroma, 8-bit levels (None: unbounded).
        sigma: the local mean's Gaussian σ as a fraction of the face's longer side.
        foveation: the J weight at the facial landmarks (None or 1: no foveal weighting).
        fovea: distance from the nearest landmark, fraction of the face's side, at which the
            weight is back to 1.
    """

    jnd_clip: float | None = 0.8
    chroma: float | None = 0.3
    low_luma: float | None = 1.0
    low_chroma: float | None = 0.3
    sigma: float = 1 / 16
    foveation: float | None = 0.5
    fovea: float = 0.25

    @classmethod
    def off(cls) -> PerceptualGuard:
        """Only the JND clip (post mode before the guard)."""
        return cls(jnd_clip=1.0, chroma=None, low_luma=None, low_chroma=None, foveation=None)

    def foveal_weight(self, shape: tuple[int, int], landmarks, face_side: float) -> torch.Tensor | None:
        """``w`` of step 3 on an ``(h, w)`` grid; ``landmarks`` ``(5, 2)`` in its pixel
        coordinates. None when foveal weighting is off or there are no landmarks."""
        if self.foveation is None or self.foveation >= 1 or landmarks is None or face_side <= 0:
            return None
        pts = torch.as_tensor(landmarks, dtype=torch.float32).reshape(-1, 2)
        yy, xx = torch.meshgrid(torch.arange(shape[0], dtype=torch.float32),
                                torch.arange(shape[1], dtype=torch.float32), indexing="ij")
        d = torch.stack([(xx - px).hypot(yy - py) for px, py in pts.tolist()]).amin(0)
        ramp = (d / (self.fovea * face_side)).clamp(0, 1)
        return (self.foveation + (1 - self.foveation) * ramp)[None, None]

    def prepare(self, jnd: torch.Tensor, face_side: float, landmarks=None) -> GuardState:
        """What does not change between iterations: the clip in whole levels (foveally
        weighted around ``landmarks``, ``(5, 2)`` in ``jnd``'s pixel coordinates), ``J_Y``, σ."""
        w = self.foveal_weight(tuple(jnd.shape[-2:]), landmarks, face_side)
        if w is not None:
            jnd = jnd * w.to(jnd)
        clip = (torch.floor(self.jnd_clip * jnd * 255 + 1e-4) / 255) if self.jnd_clip else None
        j_luma = rgb_to_luma(jnd).abs() if self.chroma is not None else None
        sigma_px = max(1.0, self.sigma * face_side) if face_side > 0 else 4.0
        return GuardState(self, clip, j_luma, sigma_px)


@dataclass
class GuardState:
    """A :class:`PerceptualGuard` prepared for one face (see :meth:`PerceptualGuard.prepare`)."""

    guard: PerceptualGuard
    clip: torch.Tensor | None
    j_luma: torch.Tensor | None
    sigma_px: float

    @torch.no_grad()
    def project(self, p: torch.Tensor) -> torch.Tensor:
        """The guarded perturbation (a new tensor; ``p`` is not changed)."""
        g = self.guard
        if g.chroma is not None or g.low_luma is not None or g.low_chroma is not None:
            ycc = rgb_to_ycbcr(p, offset=False)
            if g.low_luma is not None or g.low_chroma is not None:
                low = gaussian_blur(ycc, self.sigma_px)
                inf = float("inf")
                bound = torch.tensor([inf if g.low_luma is None else g.low_luma / 255]
                                     + [inf if g.low_chroma is None else g.low_chroma / 255] * 2,
                                     dtype=p.dtype, device=p.device).view(1, 3, 1, 1)
                ycc = ycc - (low - torch.maximum(torch.minimum(low, bound), -bound))
            if g.chroma is not None:
                lim = g.chroma * self.j_luma
                ycc = torch.cat([ycc[:, :1], torch.maximum(torch.minimum(ycc[:, 1:], lim), -lim)], 1)
            p = ycbcr_to_rgb(ycc, offset=False)
        if self.clip is not None:
            p = torch.maximum(torch.minimum(p, self.clip), -self.clip)
        return p

    @torch.no_grad()
    def measure(self, p: torch.Tensor) -> dict[str, float]:
        """The guarded quantities of ``p`` in 8-bit levels: the largest local mean of luma and
        chroma, and the largest chroma relative to ``J_Y`` (for tests and reports)."""
        ycc = rgb_to_ycbcr(p, offset=False)
        low = gaussian_blur(ycc, self.sigma_px).abs().amax(dim=(0, 2, 3)) * 255
        out = {"low_luma": float(low[0]), "low_chroma": float(low[1:].max())}
        if self.j_luma is not None:
            out["chroma_over_jy"] = float((ycc[:, 1:].abs() / self.j_luma.clamp_min(1e-6)).max())
        return out
