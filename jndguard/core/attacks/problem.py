"""What a method optimises: one face region of a photo, at native resolution.

The perturbation lives on the region (face box plus margin) of the full-resolution photo;
the recogniser sees the differentiable ``crop_resize`` of the face box inside it (docs/design.md §2),
or, for a landmark-aligned recogniser (dlib's ResNet), its own view of the face
(:mod:`jndguard.core.faces.views`) with the same jitter applied to the aligned chip.
Two things make the result survive the real pipeline:

- **Crop jitter** (default): every recogniser pass samples random shifts and scales of the face
  box, the size of MTCNN's box changes between the clean and the saved photo; and success is
  judged on a fixed set of jittered boxes around the nominal one (all must pass), then on
  faces re-detected in the quantised photo.
- **Robust mode**: each sample also goes through a differentiable JPEG (kornia) at a random
  quality in 70–95 and a random downscale, so the protection survives re-encoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from jndguard.core.attacks.base import Goal
from jndguard.core.faces.crop import crop_resize
from jndguard.core.models.recogniser import IdentityHead, Recogniser


@dataclass(frozen=True)
class JitterConfig:
    """Expectation over transformations used while optimising and when judging success."""

    samples: int = 4  # recogniser passes per iteration (1 = no jitter)
    shift: float = 0.04  # max box shift, fraction of box size
    scale: float = 0.04  # max box scale change
    robust: bool = False  # add differentiable JPEG + downscale
    jpeg_quality: tuple[float, float] = (70.0, 95.0)
    downscale: tuple[float, float] = (0.5, 1.0)


# The fixed boxes success is judged on: nominal, ±shift on each axis, ±scale (fractions).
_CHECK_JITTER = [(0, 0, 0), (0.03, 0, 0), (-0.03, 0, 0), (0, 0.03, 0), (0, -0.03, 0),
                 (0, 0, 0.03), (0, 0, -0.03)]


def _real_jpeg(region: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode and decode a (1, 3, h, w) region with Pillow's JPEG (4:2:0, as social networks)."""
    import io

    import numpy as np
    from PIL import Image

    arr = region[0].permute(1, 2, 0).mul(255).round().byte().cpu().numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality)
    out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return torch.from_numpy(out.copy()).permute(2, 0, 1)[None].float().div(255).to(region.device)


@dataclass
class AttackProblem:
    """One face region to protect.

    Attributes:
        clean: ``(1, 3, h, w)`` region of the photo in [0, 1] (on the 8-bit grid).
        jnd: ``(1, 3, h, w)`` JND budget of the region, [0, 1] units (from the full photo).
        box: the face box ``(x1, y1, x2, y2)`` in region coordinates.
        recogniser: the white-box recogniser.
        clean_embedding: ``(D,)`` embedding of the clean face.
        gallery: ``(K, D)`` embeddings of other identities (e.g. 5-celebrity centroids).
        gallery_labels: names of the gallery identities.
        goal: dodge or impersonate.
        target: gallery index of the impersonation target.
        safety_margin: κ; dodge needs ``cos < τ − κ``, impersonation ``cos ≥ τ + κ``.
        jitter: the expectation-over-transformation settings.
        generator: the only source of randomness.
        logit_scale: ``s`` of the identity head.
        jnd_space: ``rgb`` (J per R/G/B channel) or ``ycbcr`` (strict mode: J bounds the
            perturbation's Y/Cb/Cr components).
        view: the recogniser's view of the face in region coordinates when it is not the
            box crop (``Recogniser.face_view(...).translate(-x0, -y0)``); None: the box crop.
    """

    clean: torch.Tensor
    jnd: torch.Tensor
    box: tuple[float, float, float, float]
    recogniser: Recogniser
    clean_embedding: torch.Tensor
    gallery: torch.Tensor
    gallery_labels: list[str] = field(default_factory=list)
    goal: Goal = Goal.DODGE
    target: int | None = None
    safety_margin: float = 0.0
    jitter: JitterConfig = field(default_factory=JitterConfig)
    generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0))
    logit_scale: float = 10.0
    jnd_space: str = "rgb"  # "ycbcr": J holds Y/Cb/Cr thresholds on Δ = M₆₀₁·δ
    view: object | None = None  # a jndguard.core.faces.views view; None = the box crop

    def __post_init__(self) -> None:
        if self.goal is Goal.IMPERSONATE and self.target is None:
            raise ValueError("impersonation needs a target identity")

    @property
    def threshold(self) -> float:
        return self.recogniser.threshold

    @property
    def device(self) -> torch.device:
        return self.clean.device

    @property
    def target_embedding(self) -> torch.Tensor | None:
        return None if self.target is None else self.gallery[self.target]

    def identity_head(self) -> IdentityHead:
        """Classifier over ``[self, gallery…]``: label 0 is the person (docs/design.md §4)."""
        g = torch.cat([self.clean_embedding[None], self.gallery], 0)
        return IdentityHead(self.recogniser, g, self.logit_scale,
                            ["self", *self.gallery_labels])

    @property
    def true_label(self) -> int:
        return 0

    @property
    def target_label(self) -> int | None:
        return None if self.target is None else self.target + 1

    # --- recogniser views of a region ------------------------------------------------------
    def _boxes(self, jitters) -> torch.Tensor:
        x1, y1, x2, y2 = self.box
        w, h = x2 - x1, y2 - y1
        j = torch.as_tensor(jitters, dtype=torch.float32)
        cx = (x1 + x2) / 2 + j[:, 0] * w
        cy = (y1 + y2) / 2 + j[:, 1] * h
        s = 1 + j[:, 2]
        return torch.stack([cx - w * s / 2, cy - h * s / 2, cx + w * s / 2, cy + h * s / 2], 1)

    def sample_jitter(self, n: int) -> torch.Tensor:
        """``(n, 3)`` random (dx, dy, ds); the first sample is the nominal box."""
        cfg = self.jitter
        r = torch.rand(n, 3, generator=self.generator) * 2 - 1
        r[:, :2] *= cfg.shift
        r[:, 2] *= cfg.scale
        r[0] = 0
        return r

    def crops(self, region: torch.Tensor, samples: int | None = None,
              transforms: bool = True) -> torch.Tensor:
        """Differentiable recogniser inputs of a region under random jitter (and robust mode).

        Returns ``(S, 3, 160, 160)``.
        """
        n = samples or self.jitter.samples
        jitter = self.sample_jitter(n)
        if self.view is not None:
            if transforms and self.jitter.robust:
                return torch.cat([self._robust_crop(region, None, j) for j in jitter])
            return self.view(region, jitter)
        boxes = self._boxes(jitter).to(region.device)
        if transforms and self.jitter.robust:
            return torch.cat([self._robust_crop(region, b) for b in boxes])
        return crop_resize(region, boxes, size=self.recogniser.info.input_size)

    def _robust_crop(self, region: torch.Tensor, box: torch.Tensor | None,
                     jitter: torch.Tensor | None = None) -> torch.Tensor:
        """Random downscale + differentiable JPEG of the region, then the crop (the box, or
        the view under ``jitter``)."""
        from kornia.enhance import jpeg_codec_differentiable

        lo, hi = self.jitter.downscale
        f = float(lo + (hi - lo) * torch.rand(1, generator=self.generator))
        x = region
        view = self.view
        if f < 0.999:
            x = F.interpolate(region, scale_factor=f, mode="bilinear", antialias=True,
                              align_corners=False)
            if view is not None:
                view = view.scale(f)
            else:
                box = box * f
        h, w = x.shape[-2:]
        ph, pw = (-h) % 16, (-w) % 16
        if ph or pw:  # kornia's JPEG needs sides divisible by 16
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        qlo, qhi = self.jitter.jpeg_quality
        q = qlo + (qhi - qlo) * torch.rand(1, generator=self.generator)
        x = jpeg_codec_differentiable(x, q.to(x.device, x.dtype))[..., :h, :w]
        if view is not None:
            return view(x, jitter[None])
        return crop_resize(x, box[None], size=self.recogniser.info.input_size)

    def check_crops(self, region: torch.Tensor) -> torch.Tensor:
        """The fixed jittered crops success is judged on, ``(7, 3, S, S)``."""
        if self.view is not None:
            return self.view(region, _CHECK_JITTER)
        boxes = self._boxes(_CHECK_JITTER).to(region.device)
        return crop_resize(region, boxes, size=self.recogniser.info.input_size)

    @torch.no_grad()
    def judge(self, region: torch.Tensor,
              extra_margin: float = 0.0) -> tuple[bool, float, float | None]:
        """Success on the quantised region over the fixed check boxes.

        ``extra_margin`` is added to κ (methods stop a little past the line so the result
        survives re-detection). Returns ``(success, worst similarity to self, worst
        similarity to target)``: "worst" is the case least favourable to protection.
        """
        q = region.detach().clamp(0, 1).mul(255).round().div(255)
        views = [q]
        if self.jitter.robust:  # robust mode must also hold after a real (not differentiable) JPEG
            views.append(_real_jpeg(q, int(self.jitter.jpeg_quality[0])))
        emb = torch.cat([self.recogniser(self.check_crops(v)) for v in views])
        sim = emb @ self.clean_embedding
        worst_self = float(sim.max())
        if self.goal is Goal.DODGE:
            return worst_self < self.threshold - self.safety_margin - extra_margin, worst_self, None
        tsim = emb @ self.gallery[self.target]
        others = emb @ torch.cat([self.clean_embedding[None], self.gallery]).T
        others[:, self.target + 1] = -2
        top1 = bool((tsim > others.max(1).values).all())
        worst_t = float(tsim.min())
        ok = top1 and worst_t >= self.threshold + self.safety_margin + extra_margin
        return ok, worst_self, worst_t

    def similarities(self, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Cosine to self and (if impersonating) to the target, per crop."""
        s = emb @ self.clean_embedding
        t = emb @ self.gallery[self.target] if self.target is not None else None
        return s, t


@dataclass
class PostVerdict:
    """What the stopping check of post mode found on real encodes of the 8-bit photo.

    ``worst`` is the decisive similarity least favourable to protection relative to each
    recogniser's threshold, as a signed distance: ``cos − (τ − κ)`` when dodging (must be < 0),
    ``(τ + κ) − cos_target`` when impersonating (must be ≤ 0); ``cells``/``failed`` count the cells
    judged and failed; ``worst_similarity`` is the decisive cosine of the worst cell;
    ``details`` names the worst cells.
    """

    success: bool
    worst: float
    worst_similarity: float = float("nan")
    cells: int = 0
    failed: int = 0
    details: list[str] = field(default_factory=list)


@dataclass
class PostProblem:
    """One face for post mode (docs/design.md §5): its context region of the photo, the
    region that may change (face box + 35 %), the face geometry, and one view set per
    white-box recogniser (:mod:`jndguard.core.attacks.post_eot`).

    Attributes:
        context: ``(1, 3, H, W)`` clean context region (on the 8-bit grid); every view reads it.
        change: ``(x0, y0, x1, y1)`` of the changing region inside the context.
        jnd: ``(1, 3, h, w)`` JND budget of the changing region.
        geometry: the face in context coordinates.
        views: one :class:`~jndguard.core.attacks.post_eot.RecogniserViews` per recogniser.
        eot: the threat distribution.
        judge: takes the quantised changing region, returns a :class:`PostVerdict` on real
            encodes (the quick threat matrix) with the stopping margin.
        goal: dodge or impersonate.
        train_margin: how far past τ the loss pushes each sampled view, as a fraction of
            ``1 − τ`` (:meth:`~jndguard.core.attacks.post_eot.RecogniserViews.margin`).
        stop_margin: how far past τ every cell of the stopping check must be (same units).
        generator: the only source of randomness.
        jnd_space: ``rgb`` or ``ycbcr`` (see :class:`AttackProblem`).
    """

    context: torch.Tensor
    change: tuple[int, int, int, int]
    jnd: torch.Tensor
    geometry: object
    views: list
    eot: object
    judge: object
    goal: Goal = Goal.DODGE
    train_margin: float = 0.25
    stop_margin: float = 0.1
    generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0))
    jnd_space: str = "rgb"
    long_edge: float = 0.0  # of the whole photo (site resizes)
    face_side: float = 0.0  # the face box's longer side

    @property
    def clean(self) -> torch.Tensor:
        """The clean changing region ``(1, 3, h, w)``."""
        x0, y0, x1, y1 = self.change
        return self.context[:, :, y0:y1, x0:x1]

    @property
    def device(self) -> torch.device:
        return self.context.device

    @property
    def threshold(self) -> float:
        return min(v.threshold for v in self.views)
