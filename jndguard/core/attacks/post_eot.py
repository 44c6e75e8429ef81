"""Post mode's expectation over the threat distribution: batched, differentiable recogniser views
of a face and the paired loss (docs/design.md §4 and §5).

A posted photo is re-encoded by the site and then cropped and aligned by someone else's
pipeline. Every iteration of post mode samples, for every white-box recogniser, a batch of
*views* of the protected photo: an encoding of the face's context region (downscale 0.35–1,
differentiable JPEG q60–95, or the file itself), a crop convention (face box + 0–30 % per side,
facenet-pytorch's ``MTCNN(margin=32)`` crop, five-point similarity alignment to the ArcFace
112×112 template, dlib's aligned 150 px chip) with small box or landmark jitter, an antialiased
(area-like supersampling) or plain bilinear resize to the recogniser's input, and a small
brightness/contrast/colour shift.

The loss is *paired*: each sampled view of the protected photo is compared with the clean photo
seen through the same crop convention and resize kernel — the attacker compares what they
download with the original (or other photos) processed by their own pipeline, never with one
fixed tight crop. The clean references are computed once per convention and kernel, on the
nominal (un-jittered) geometry and the unencoded original: the jitter stands for the detector's
box or landmarks moving on the protected photo, the encoding for what the site does to the
posted copy; the reference photo the attacker holds is neither (docs/design.md §4, "references").

Everything that does not change between iterations (clean references, geometry, JND) is computed
once; an iteration is one encoding pass per sampled encoding, one batched ``grid_sample`` per
(encoding, kernel) and one batched forward/backward per recogniser.

References: Athalye et al., "Synthesizing Robust Adversarial Examples", ICML 2018 (expectation
over transformation); Shin & Song, "JPEG-resistant adversarial images", NeurIPS-W 2017 and
Reich et al., "Differentiable JPEG: The Devil is in the Details", WACV 2024 (kornia's
differentiable JPEG); Umeyama, "Least-squares estimation of transformation parameters between
two point patterns", IEEE TPAMI 1991 (similarity alignment); Deng et al., "ArcFace", CVPR 2019
(the 112×112 five-point template); King, "Dlib-ml", JMLR 2009 (the aligned chip).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from jndguard.core.threat.conventions import ARCFACE_TEMPLATE, umeyama

#: The ArcFace 112×112 five-point template (docs/design.md §4) and the least-squares similarity
#: (Umeyama 1991) are the threat matrix's own, so the optimiser's views and the verification
#: align faces identically.
ARCFACE_112 = ARCFACE_TEMPLATE
similarity_transform = umeyama

#: facenet-pytorch ``MTCNN(margin=32, image_size=160)``: the margin is 32 px of the 160 px output.
MTCNN_MARGIN_PX, MTCNN_IMAGE_SIZE = 32, 160

CONVENTIONS = ("box", "mtcnn32", "arcface", "dlib-chip")


@dataclass(frozen=True)
class PostEOT:
    """The threat distribution post mode optimises over (docs/design.md §4).

    Attributes:
        samples: views per recogniser per iteration (one batched forward each).
        encodings: encodings of the photo sampled per iteration; the views are shared out
            among them.
        margins: box margins per side whose clean references are precomputed; sampled views
            add ``box_scale`` jitter, which covers the values in between.
        box_shift: largest box shift, fraction of the box side (detector noise).
        box_scale: largest relative change of the box size.
        landmark_jitter: standard deviation of landmark noise, fraction of the eye distance.
        p_file: share of encodings that are the file itself (no JPEG, no downscale).
        jpeg_quality: JPEG quality range of the differentiable codec.
        p_webp: share of the lossy encodings that are WebP instead of JPEG (real WebP in the
            forward pass, identity in the backward pass: :func:`webp_straight_through`).
        webp_quality: WebP quality range.
        p_downscale: share of JPEG encodings that are downscaled first.
        site_long_edge: long edges photo sites resize to (a photo larger than the sampled
            edge is reduced to it first; docs/design.md §4: 1080 and 720 px).
        downscale: range of a further downscale factor; its lower end is raised so the face
            keeps at least ``min_face_px`` pixels (smaller faces are not a recognition threat
            the clean photo survives either).
        min_face_px: face side below which no further downscale is sampled.
        brightness: largest additive brightness shift ([0, 1] units).
        contrast: largest relative contrast change.
        colour: largest relative per-channel gain change.
        conventions: crop conventions sampled (``dlib-chip`` only when dlib landmarks exist).
    """

    samples: int = 8
    encodings: int = 2
    margins: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3)
    box_shift: float = 0.04
    box_scale: float = 0.06
    landmark_jitter: float = 0.03
    p_file: float = 0.2
    jpeg_quality: tuple[float, float] = (60.0, 95.0)
    p_webp: float = 0.25
    webp_quality: tuple[float, float] = (70.0, 90.0)
    p_downscale: float = 0.5
    site_long_edge: tuple[float, float] = (648.0, 1080.0)
    downscale: tuple[float, float] = (0.35, 1.0)
    min_face_px: float = 112.0
    brightness: float = 0.03
    contrast: float = 0.05
    colour: float = 0.03
    conventions: tuple[str, ...] = CONVENTIONS

    def __post_init__(self) -> None:
        if self.samples < 1 or self.encodings < 1:
            raise ValueError("samples and encodings must be ≥ 1")
        unknown = set(self.conventions) - set(CONVENTIONS)
        if unknown:
            raise ValueError(f"unknown crop conventions {sorted(unknown)}")


@dataclass(frozen=True)
class ViewSpec:
    """One crop convention with one resize kernel; ``margin`` only for ``box``; ``detector``
    says whose box the box conventions start from (MTCNN's, or dlib's HOG detector's, which is
    smaller and lower: a search pipeline built on dlib crops around that one)."""

    convention: str
    antialias: bool
    margin: float = 0.0
    detector: str = "mtcnn"

    @property
    def label(self) -> str:
        name = f"box+{round(self.margin * 100)}%" if self.convention == "box" else self.convention
        who = "hog:" if self.detector == "hog" else ""
        return f"{who}{name}/{'area' if self.antialias else 'bilinear'}"


@dataclass(frozen=True)
class FaceGeometry:
    """Where a face is, in the pixel coordinates of the image the views are taken from.

    ``box`` is ``(x1, y1, x2, y2)`` in continuous coordinates (pixel ``k`` spans ``[k, k+1)``,
    as MTCNN's boxes and ``crop_resize``); landmarks are pixel-index coordinates (pixel ``k``'s
    centre is ``k``), five points each: ``landmarks`` from MTCNN, ``dlib_points`` from dlib's
    5-point shape predictor (None when dlib is not installed); ``hog_box`` is dlib's HOG
    detector's box of the same face (None when it finds none or dlib is not installed).
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    width: int
    height: int
    dlib_points: np.ndarray | None = None
    hog_box: tuple[float, float, float, float] | None = None

    def shifted(self, dx: float, dy: float) -> FaceGeometry:
        """The same face in an image cropped at ``(dx, dy)``."""
        off = np.array([dx, dy])

        def move(b):
            return None if b is None else (b[0] - dx, b[1] - dy, b[2] - dx, b[3] - dy)

        return FaceGeometry(move(self.box), np.asarray(self.landmarks, float) - off, self.width, self.height,
                            None if self.dlib_points is None else np.asarray(self.dlib_points, float) - off,
                            move(self.hog_box))

    def scaled(self, sx: float, sy: float, width: int, height: int) -> FaceGeometry:
        """The same face in a ``width`` × ``height`` resize of the image (``sx``, ``sy``: new
        size / old size per axis; pixel centres map as in an antialiased resize)."""
        f = np.array([sx, sy])

        def box(b):
            return None if b is None else (b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy)

        def pts(p):
            return None if p is None else (np.asarray(p, float) + 0.5) * f - 0.5

        return FaceGeometry(box(self.box), pts(self.landmarks), width, height, pts(self.dlib_points),
                            box(self.hog_box))


# --- geometry -------------------------------------------------------------------------------
def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a ``(2, 3)`` affine map."""
    a = np.linalg.inv(m[:, :2])
    return np.hstack([a, -(a @ m[:, 2:])])


def index_to_continuous(photo_from_out: np.ndarray) -> np.ndarray:
    """Convert a map between pixel-index coordinates (centre of pixel k is k) to continuous
    coordinates (pixel k spans [k, k+1)) on both sides."""
    a, t = photo_from_out[:, :2], photo_from_out[:, 2]
    return np.hstack([a, (t - a @ np.array([0.5, 0.5]) + 0.5)[:, None]])


def box_transform(box, size: int) -> np.ndarray:
    """``photo_from_out`` (continuous coordinates) of a box resized to ``size × size``."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return np.array([[(x2 - x1) / size, 0.0, x1], [0.0, (y2 - y1) / size, y1]])


def _expand(box, margin: float, dx: float = 0.0, dy: float = 0.0, ds: float = 0.0):
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    cx, cy = (x1 + x2) / 2 + dx * w, (y1 + y2) / 2 + dy * h
    s = (1 + 2 * margin) * (1 + ds)
    return (cx - w * s / 2, cy - h * s / 2, cx + w * s / 2, cy + h * s / 2)


def mtcnn_margin_box(box, width: int, height: int) -> tuple[float, float, float, float]:
    """facenet-pytorch's ``extract_face`` box for ``margin=32, image_size=160``: the margin is
    ``32·side/(160−32)`` split over both sides, clipped to the image, truncated to integers."""
    x1, y1, x2, y2 = box
    mx = MTCNN_MARGIN_PX * (x2 - x1) / (MTCNN_IMAGE_SIZE - MTCNN_MARGIN_PX)
    my = MTCNN_MARGIN_PX * (y2 - y1) / (MTCNN_IMAGE_SIZE - MTCNN_MARGIN_PX)
    return (float(int(max(x1 - mx / 2, 0))), float(int(max(y1 - my / 2, 0))),
            float(int(min(x2 + mx / 2, width))), float(int(min(y2 + my / 2, height))))


def arcface_transform(points: np.ndarray, size: int) -> np.ndarray:
    """``photo_from_out`` (continuous) of the ArcFace five-point alignment, output ``size``
    (the 112 px template scaled to the recogniser's input)."""
    template = np.asarray(ARCFACE_112) * (size / 112.0)
    out_from_photo = similarity_transform(np.asarray(points, float), template)
    return index_to_continuous(invert_affine(out_from_photo))


def dlib_chip_photo_from_out(points: np.ndarray, size: int) -> np.ndarray:
    """``photo_from_out`` (continuous) of dlib's 150 px aligned chip (padding 0.25) for dlib's
    5 landmarks, spread over an output of ``size`` pixels (``jndguard.core.faces.align``: chip
    pixel ``(0, 0)`` and ``(149, 0)`` land on the rectangle's corners)."""
    from jndguard.core.faces.align import dlib_chip_transform

    chip = np.asarray(dlib_chip_transform(np.asarray(points, float), size=150, padding=0.25),
                      dtype=float).reshape(2, 3)
    f = 149.0 / (size - 1)
    return index_to_continuous(np.hstack([chip[:, :2] * f, chip[:, 2:]]))


def view_transform(spec: ViewSpec, geom: FaceGeometry, size: int, jitter: np.ndarray | None = None,
                   landmark_noise: np.ndarray | None = None) -> np.ndarray:
    """``photo_from_out`` of one view (continuous coordinates).

    Args:
        spec: convention and kernel.
        geom: the face.
        size: the recogniser's input side.
        jitter: ``(dx, dy, ds)`` box jitter (box conventions).
        landmark_noise: ``(5, 2)`` pixel noise added to the landmarks (aligned conventions).
    """
    dx, dy, ds = (0.0, 0.0, 0.0) if jitter is None else (float(v) for v in jitter)
    box = geom.hog_box if spec.detector == "hog" else geom.box
    if box is None:
        raise ValueError("this view needs dlib's HOG box of the face")
    if spec.convention == "box":
        return box_transform(_expand(box, spec.margin, dx, dy, ds), size)
    if spec.convention == "mtcnn32":
        return box_transform(mtcnn_margin_box(_expand(box, 0.0, dx, dy, ds), geom.width,
                                              geom.height), size)
    noise = 0.0 if landmark_noise is None else landmark_noise
    if spec.convention == "arcface":
        return arcface_transform(np.asarray(geom.landmarks, float) + noise, size)
    if spec.convention == "dlib-chip":
        if geom.dlib_points is None:
            raise ValueError("the dlib chip needs dlib's 5-point landmarks")
        return dlib_chip_photo_from_out(np.asarray(geom.dlib_points, float) + noise, size)
    raise ValueError(f"unknown convention {spec.convention!r}")


def view_specs(eot: PostEOT, has_dlib_points: bool, has_hog_box: bool = False) -> list[ViewSpec]:
    """Every (convention, kernel) whose clean reference is precomputed; with ``has_hog_box``
    the box conventions also start from dlib's HOG box."""
    out = []
    detectors = ("mtcnn", "hog") if has_hog_box else ("mtcnn",)
    for aa in (True, False):
        for conv in eot.conventions:
            if conv == "box":
                out += [ViewSpec("box", aa, m, d) for d in detectors for m in eot.margins]
            elif conv == "mtcnn32":
                out += [ViewSpec(conv, aa, 0.0, d) for d in detectors]
            elif conv != "dlib-chip" or has_dlib_points:
                out.append(ViewSpec(conv, aa))
    return out


# --- sampling pixels --------------------------------------------------------------------------
def warp_views(images: torch.Tensor, photo_from_out: torch.Tensor, size: int, antialias: bool,
               index: torch.Tensor | None = None) -> torch.Tensor:
    """Differentiable affine views of images, ``(N, 3, size, size)``.

    ``photo_from_out`` ``(N, 2, 3)`` maps output to image coordinates (continuous: pixel ``k``
    spans ``[k, k+1)``); ``index`` ``(N,)`` says which image of ``images`` each view reads
    (default: all from image 0). Outside the image reads as zeros. ``antialias`` averages
    ``k × k`` bilinear samples per output pixel, ``k`` = the footprint of one output pixel in
    image pixels rounded up (as ``torchvision.ops.roi_align``, i.e. an area-like filter on
    downscales); otherwise one bilinear sample (a plain bilinear resize).
    """
    n = photo_from_out.shape[0]
    dev, dt = images.device, images.dtype
    m = photo_from_out.to(dev, dt)
    k = 1
    if antialias:
        det = (m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]).abs().sqrt()
        k = max(1, min(8, math.ceil(float(det.max()) - 1e-6)))
    s = size * k
    u = (torch.arange(s, device=dev, dtype=dt) + 0.5) / k  # output coordinates of the samples
    gv, gu = torch.meshgrid(u, u, indexing="ij")
    ones = torch.ones_like(gu)
    base = torch.stack([gu, gv, ones], -1).reshape(1, s * s, 3)
    xy = base @ m.transpose(1, 2)  # (N, s*s, 2) image coordinates
    h, w = images.shape[-2:]
    grid = torch.stack([xy[..., 0] * (2.0 / w) - 1.0, xy[..., 1] * (2.0 / h) - 1.0], -1)
    src = images if index is None and images.shape[0] == n else (
        images[index] if index is not None else images.expand(n, -1, -1, -1))
    out = F.grid_sample(src, grid.reshape(n, s, s, 2), mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    return F.avg_pool2d(out, k) if k > 1 else out


def webp_straight_through(image: torch.Tensor, quality: float) -> torch.Tensor:
    """``(1, 3, H, W)`` through Pillow's lossy WebP at ``quality`` in the forward pass and the
    identity in the backward pass (BPDA: Athalye, Carlini & Wagner, "Obfuscated Gradients Give
    a False Sense of Security", ICML 2018). There is no differentiable WebP; the loss still sees
    what the real codec leaves of the perturbation, and the gradient is taken at that point."""
    from PIL import Image

    from jndguard.core.imageio import to_uint8
    from jndguard.core.threat.encodings import codec_roundtrip  # the threat matrix's own WebP

    with torch.no_grad():
        coded = codec_roundtrip(Image.fromarray(to_uint8(image)), "WEBP", round(quality))
        out = torch.from_numpy(coded.copy()).permute(2, 0, 1)[None].to(image).div(255)
    return image + (out - image).detach()


def encode(image: torch.Tensor, downscale: float, quality: float | None, codec: str = "jpeg") -> torch.Tensor:
    """Differentiable re-encoding of ``(1, 3, H, W)``: antialiased downscale, then kornia's
    differentiable JPEG (4:2:0) at ``quality`` (``codec="webp"``: :func:`webp_straight_through`);
    ``None`` = no re-encoding."""
    x = image
    if downscale < 0.999:
        x = F.interpolate(x, scale_factor=downscale, mode="bilinear", antialias=True,
                          align_corners=False, recompute_scale_factor=False)
    if quality is not None and codec == "webp":
        return webp_straight_through(x.clamp(0, 1), quality)
    if quality is not None:
        from kornia.enhance import jpeg_codec_differentiable

        x = jpeg_codec_differentiable(x, torch.tensor([float(quality)], device=x.device, dtype=x.dtype))
    return x.clamp(0, 1)


@dataclass
class Encoding:
    downscale: float
    quality: float | None
    codec: str = "jpeg"

    @property
    def label(self) -> str:
        q = "file" if self.quality is None else f"{self.codec}{round(self.quality)}"
        return q if self.downscale >= 0.999 else f"x{self.downscale:.2f}+{q}"


def sample_encodings(eot: PostEOT, gen: torch.Generator, long_edge: float = 0.0,
                     face_side: float = 0.0) -> list[Encoding]:
    """``eot.encodings`` random encodings of a photo whose long edge is ``long_edge`` pixels
    with a face of ``face_side`` pixels: the file itself, or JPEG (WebP with probability
    ``p_webp``) at a random quality, after
    (with probability ``p_downscale``) a site resize to a random long edge and a further
    downscale that keeps the face at least ``min_face_px`` pixels."""
    out = []
    for _ in range(eot.encodings):
        r = torch.rand(6, generator=gen).tolist()
        if r[0] < eot.p_file:
            out.append(Encoding(1.0, None))
            continue
        qlo, qhi = eot.jpeg_quality
        f = 1.0
        if r[1] < eot.p_downscale:
            elo, ehi = eot.site_long_edge
            f = min(1.0, (elo + (ehi - elo) * r[2]) / long_edge) if long_edge > 0 else 1.0
            face = face_side * f
            lo = max(eot.downscale[0], min(1.0, eot.min_face_px / face)) if face > 0 else 1.0
            hi = eot.downscale[1]
            f *= lo + (hi - lo) * r[3] if lo < hi else 1.0
        if r[5] < eot.p_webp:
            wlo, whi = eot.webp_quality
            out.append(Encoding(f, wlo + (whi - wlo) * r[4], "webp"))
        else:
            out.append(Encoding(f, qlo + (qhi - qlo) * r[4]))
    return out


# --- one recogniser's views -------------------------------------------------------------------
@dataclass
class RecogniserViews:
    """A white-box recogniser with its own preprocessing of the photo and paired references.

    Attributes:
        recogniser: the embedder (input ``size × size`` crops in [0, 1]).
        specs: the conventions/kernels it is shown.
        references: ``(V, D)`` embeddings of the clean photo through each spec.
        target: impersonation target embedding ``(D,)`` for this recogniser (None = dodge).
        others: ``(K, D)`` identities the target must beat when impersonating.
        decoy: dodging only: ``(D,)`` an identity far from the face (the gallery centroid least
            like it) each view is also pulled toward, so the face leaves the person's cluster
            rather than only this photo's embedding (Shan et al., "Fawkes", USENIX Security
            2020); None = no decoy.
    """

    recogniser: torch.nn.Module
    specs: list[ViewSpec]
    references: torch.Tensor
    target: torch.Tensor | None = None
    others: torch.Tensor | None = None
    decoy: torch.Tensor | None = None
    hardness: torch.Tensor | None = None  # (V,) running gap past the line per spec (see below)

    def sampling_weights(self, temperature: float = 0.05) -> torch.Tensor:
        """Probability of each spec: half uniform, half a softmax of its running hardness (the
        relative gap of its recent views past the stopping line), so the views that still
        recognise the face are sampled more often ("hard view mining")."""
        v = len(self.specs)
        if self.hardness is None:
            return torch.full((v,), 1.0 / v)
        return 0.5 / v + 0.5 * torch.softmax(self.hardness / temperature, 0)

    def update_hardness(self, spec_index: torch.Tensor, gap: torch.Tensor, decay: float = 0.7) -> None:
        """Fold the relative gaps ``(S,)`` of this iteration's views into their specs' hardness."""
        if self.hardness is None:
            self.hardness = torch.zeros(len(self.specs))
        rel = gap.detach().float().cpu() / max(1e-6, 1.0 - self.threshold)
        for i, r in zip(spec_index.tolist(), rel.tolist()):
            self.hardness[i] = decay * self.hardness[i] + (1 - decay) * r

    @property
    def size(self) -> int:
        return int(self.recogniser.info.input_size)

    @property
    def threshold(self) -> float:
        return float(self.recogniser.threshold)

    @property
    def name(self) -> str:
        return str(self.recogniser.name)

    def margin(self, relative: float) -> float:
        """A margin given as a fraction of the distance from τ to a perfect match, ``1 − τ``, in
        this recogniser's cosine units: recognisers differ in scale (FaceNet τ ≈ 0.25, dlib's
        ResNet τ ≈ 0.9), and one relative margin asks the same of both."""
        return relative_margin(relative, self.threshold)


def relative_margin(relative: float, threshold: float) -> float:
    """``relative · (1 − τ)`` (see :meth:`RecogniserViews.margin`)."""
    return float(relative) * (1.0 - float(threshold))


@torch.no_grad()
def clean_references(recogniser, clean: torch.Tensor, geom: FaceGeometry,
                     specs: list[ViewSpec]) -> torch.Tensor:
    """Embeddings of the clean image through every spec (nominal geometry, no encoding)."""
    size = int(recogniser.info.input_size)
    crops = []
    for aa in (True, False):
        idx = [i for i, s in enumerate(specs) if s.antialias == aa]
        if not idx:
            continue
        m = torch.as_tensor(np.stack([view_transform(specs[i], geom, size) for i in idx]),
                            dtype=clean.dtype)
        crops.append((idx, warp_views(clean, m, size, aa)))
    order = [i for idx, _ in crops for i in idx]
    emb = recogniser(torch.cat([c for _, c in crops]))
    out = torch.empty_like(emb)
    out[torch.as_tensor(order)] = emb
    return out


@dataclass
class ViewBatch:
    """The sampled views of one iteration for one recogniser."""

    crops: torch.Tensor  # (S, 3, size, size)
    spec_index: torch.Tensor  # (S,) into the recogniser's specs / references
    labels: list[str] = field(default_factory=list)


def sample_views(rv: RecogniserViews, encoded: list[torch.Tensor], encodings: list[Encoding],
                 geom: FaceGeometry, eot: PostEOT, gen: torch.Generator,
                 samples: int | None = None) -> ViewBatch:
    """Sample ``samples`` views of the encoded images for one recogniser (one grid_sample per
    encoding and kernel), with box/landmark jitter and a photometric shift per view."""
    n = samples or eot.samples
    size = rv.size
    spec_idx = torch.multinomial(rv.sampling_weights(), n, replacement=True, generator=gen)
    enc_idx = torch.arange(n) % len(encoded)
    jit = (torch.rand(n, 3, generator=gen) * 2 - 1) * torch.tensor(
        [eot.box_shift, eot.box_shift, eot.box_scale])
    lm_noise = torch.randn(n, 5, 2, generator=gen) * eot.landmark_jitter
    iod = float(np.linalg.norm(np.asarray(geom.landmarks[1]) - np.asarray(geom.landmarks[0])))
    mats = []
    for i in range(n):
        spec = rv.specs[int(spec_idx[i])]
        m = view_transform(spec, geom, size, jit[i].numpy(), lm_noise[i].numpy() * iod)
        f = encodings[int(enc_idx[i])].downscale
        mats.append(m * f if f < 0.999 else m)  # the encoded image is f× the original
    mats_t = torch.as_tensor(np.stack(mats), dtype=encoded[0].dtype)
    crops: list[torch.Tensor | None] = [None] * n
    for e, img in enumerate(encoded):
        for aa in (True, False):
            sel = [i for i in range(n) if int(enc_idx[i]) == e and rv.specs[int(spec_idx[i])].antialias == aa]
            if not sel:
                continue
            out = warp_views(img, mats_t[sel], size, aa)
            for j, i in enumerate(sel):
                crops[i] = out[j]
    batch = torch.stack(crops)  # type: ignore[arg-type]
    # photometric shift: contrast about the view's mean, brightness, per-channel gain
    r = torch.rand(n, 5, generator=gen).to(batch) * 2 - 1
    contrast = 1 + eot.contrast * r[:, 0]
    bright = eot.brightness * r[:, 1]
    gains = 1 + eot.colour * r[:, 2:5]
    mean = batch.mean(dim=(1, 2, 3), keepdim=True)
    batch = ((batch - mean) * contrast[:, None, None, None] + mean + bright[:, None, None, None])
    batch = (batch * gains[:, :, None, None]).clamp(0, 1)
    labels = [f"{rv.specs[int(spec_idx[i])].label}@{encodings[int(enc_idx[i])].label}" for i in range(n)]
    return ViewBatch(batch, spec_idx, labels)


def paired_similarities(rv: RecogniserViews, emb: torch.Tensor, spec_index: torch.Tensor) -> torch.Tensor:
    """Cosine of each sampled view to the clean photo through the same convention and kernel."""
    return (emb * rv.references[spec_index.to(emb.device)]).sum(1)


def paired_loss(rv: RecogniserViews, emb: torch.Tensor, spec_index: torch.Tensor,
                margin: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Hinge loss of one recogniser's views (docs/design.md §4's success test, ``margin`` past τ).

    Dodging: ``mean relu(cos(view, clean view) − (τ − margin))``, plus, with a decoy,
    ``mean relu(cos(view, clean view) − cos(view, decoy) + margin)`` (each view nearer the
    decoy identity than its own clean view). Impersonation:
    ``mean relu(τ + margin − cos(view, target)) + relu(max_k cos(view, other_k) − cos(view, target)
    + margin)``. The loss is divided by ``1 − τ`` so recognisers of different cosine scales pull
    equally (FaceNet's τ ≈ 0.25, dlib's ≈ 0.9: a raw hinge would leave dlib unprotected).
    Returns ``(loss, per-view decisive similarity)`` (self when dodging, target when
    impersonating).
    """
    from jndguard.core.losses.adversarial import cosine_margin_loss

    s_self = paired_similarities(rv, emb, spec_index)
    scale = 1.0 / max(1e-6, 1.0 - rv.threshold)
    if rv.target is None:
        loss = cosine_margin_loss(s_self, rv.threshold, margin)
        if rv.decoy is not None:
            loss = loss + torch.relu(s_self - emb @ rv.decoy.to(emb) + margin).mean()
        return scale * loss, s_self.detach()
    s_t = emb @ rv.target
    others = emb @ rv.others.T if rv.others is not None and rv.others.numel() else None
    others = s_self[:, None] if others is None else torch.cat([s_self[:, None], others], 1)
    return scale * cosine_margin_loss(s_self, rv.threshold, margin, s_t, others), s_t.detach()
