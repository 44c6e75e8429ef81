"""Post mode's differentiable threat views and paired loss (no recogniser weights needed here,
except in the last test)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jndguard.core.attacks.post_eot import (
    ARCFACE_112,
    Encoding,
    FaceGeometry,
    PostEOT,
    RecogniserViews,
    ViewSpec,
    arcface_transform,
    box_transform,
    clean_references,
    encode,
    invert_affine,
    paired_loss,
    sample_encodings,
    sample_views,
    similarity_transform,
    view_specs,
    warp_views,
)
from jndguard.core.faces import crop_resize


class _TinyRecogniser(torch.nn.Module):
    """A real (random) conv embedder with the Recogniser interface, for shape/gradient tests."""

    def __init__(self, size: int = 32, threshold: float = 0.3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5, stride=2), torch.nn.ReLU(),
                                       torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(),
                                       torch.nn.Linear(32, 16))
        self.info = type("Info", (), {"input_size": size})()
        self.threshold, self.name = threshold, "tiny"

    @property
    def device(self):
        return torch.device("cpu")

    def forward(self, x):
        return torch.nn.functional.normalize(self.net(x), dim=1)


def _geometry():
    lm = np.array([[40.0, 50.0], [70.0, 49.0], [55.0, 66.0], [43.0, 82.0], [68.0, 81.0]])
    return FaceGeometry((25.0, 20.0, 85.0, 100.0), lm, 128, 128)


def test_similarity_transform_recovers_a_known_map():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    a = 1.7 * np.array([[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]])
    dst = src @ a.T + np.array([4.0, -9.0])
    m = similarity_transform(src, dst)
    assert np.allclose(m[:, :2], a, atol=1e-9) and np.allclose(m[:, 2], [4.0, -9.0], atol=1e-9)
    assert np.allclose(invert_affine(invert_affine(m)), m)


def test_arcface_alignment_maps_landmarks_onto_the_template():
    g = _geometry()
    m = arcface_transform(g.landmarks, 112)  # continuous coordinates, photo_from_out
    out = np.asarray(ARCFACE_112) + 0.5  # template in continuous coordinates
    mapped = out @ m[:, :2].T + m[:, 2]
    assert np.abs(mapped - (g.landmarks + 0.5)).max() < 3.0  # a least-squares fit of 5 points


def test_antialiased_box_view_equals_crop_resize():
    x = torch.rand(1, 3, 128, 128)
    box = (10.0, 12.0, 110.0, 118.0)
    ours = warp_views(x, torch.as_tensor(box_transform(box, 40))[None].float(), 40, antialias=True)
    ref = crop_resize(x, [box], size=40)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_views_have_the_recogniser_shape_and_gradients_reach_the_photo():
    rec = _TinyRecogniser()
    eot = PostEOT(samples=6, encodings=3, p_file=0.0, p_downscale=1.0)
    g = _geometry()
    specs = view_specs(eot, has_dlib_points=False)
    assert {s.convention for s in specs} == {"box", "mtcnn32", "arcface"}
    clean = torch.rand(1, 3, 128, 128)
    rv = RecogniserViews(rec, specs, clean_references(rec, clean, g, specs))
    photo = clean.clone().requires_grad_(True)
    gen = torch.Generator().manual_seed(0)
    encs = sample_encodings(eot, gen)
    encoded = [encode(photo, e.downscale, e.quality) for e in encs]
    vb = sample_views(rv, encoded, encs, g, eot, gen)
    assert vb.crops.shape == (6, 3, 32, 32)
    loss, _ = paired_loss(rv, rec(vb.crops), vb.spec_index, margin=2.0)  # margin 2: every view counts
    (grad,) = torch.autograd.grad(loss, [photo])
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    face = grad[..., 20:100, 25:85].abs().sum()
    assert face > 0.5 * grad.abs().sum()  # the gradient sits on the face


def test_paired_reference_equals_the_clean_view():
    """A clean photo through a sampled view without jitter, encoding or photometric shift has
    cosine 1 with its reference: the reference is the same view of the clean photo."""
    rec = _TinyRecogniser()
    eot = PostEOT(samples=8, encodings=1, box_shift=0.0, box_scale=0.0, landmark_jitter=0.0,
                  brightness=0.0, contrast=0.0, colour=0.0)
    g = _geometry()
    specs = view_specs(eot, has_dlib_points=False)
    clean = torch.rand(1, 3, 128, 128)
    rv = RecogniserViews(rec, specs, clean_references(rec, clean, g, specs))
    vb = sample_views(rv, [clean], [Encoding(1.0, None)], g, eot, torch.Generator().manual_seed(1))
    _, s = paired_loss(rv, rec(vb.crops), vb.spec_index, margin=0.0)
    assert torch.allclose(s, torch.ones_like(s), atol=1e-5)
    # and a different spec's reference is not the same view
    other = rv.references[(vb.spec_index + 1) % len(specs)]
    assert float((rec(vb.crops) * other).sum(1).min().detach()) < 0.9999


def test_downscaled_views_read_the_same_face():
    x = torch.rand(1, 3, 128, 128)
    x = torch.nn.functional.avg_pool2d(torch.nn.functional.interpolate(x, scale_factor=0.25), 1)
    x = torch.nn.functional.interpolate(x, size=(128, 128), mode="bilinear")  # smooth content
    spec = ViewSpec("box", True, 0.1)
    g = _geometry()
    from jndguard.core.attacks.post_eot import view_transform

    m = torch.as_tensor(view_transform(spec, g, 48))[None].float()
    full = warp_views(x, m, 48, True)
    half = warp_views(encode(x, 0.5, None), m * 0.5, 48, True)
    assert (full - half).abs().mean() < 0.02


def test_sample_encodings_cover_the_distribution():
    eot = PostEOT(encodings=400)
    big = sample_encodings(eot, torch.Generator().manual_seed(0), long_edge=4000, face_side=1000)
    q = [e.quality for e in big if e.quality is not None]
    f = [e.downscale for e in big if e.downscale < 0.999]
    assert 0.1 < sum(e.quality is None for e in big) / 400 < 0.3
    assert min(q) >= 60 and max(q) <= 95
    # a 4000 px photo goes through a site resize to 648–1080 px, the face keeps ≥ 112 px
    assert max(f) <= 1080 / 4000 + 1e-9 and min(f) * 1000 >= 112 - 1e-6
    assert len(f) > 100
    small = sample_encodings(eot, torch.Generator().manual_seed(0), long_edge=300, face_side=100)
    assert all(e.downscale == 1.0 for e in small)  # nothing a site would shrink, a face < 112 px
    with pytest.raises(ValueError):
        PostEOT(conventions=("box", "fisheye"))


def test_decoy_pulls_views_toward_the_decoy_identity():
    """With a decoy (dodging), the loss's gradient moves the views' embeddings toward the
    decoy; without it the loss does not care about the decoy at all."""
    emb = torch.nn.functional.normalize(torch.randn(4, 16, generator=torch.Generator().manual_seed(2)), dim=1)
    refs = emb.detach().clone()
    decoy = torch.nn.functional.normalize(torch.randn(16, generator=torch.Generator().manual_seed(3)), dim=0)
    rec = _TinyRecogniser()
    specs = view_specs(PostEOT(samples=4), has_dlib_points=False)[:4]
    idx = torch.arange(4)
    e = emb.clone().requires_grad_(True)
    with_decoy = RecogniserViews(rec, specs, refs, decoy=decoy)
    loss, _ = paired_loss(with_decoy, e, idx, margin=0.5)
    (g,) = torch.autograd.grad(loss, [e])
    assert float((-g * decoy).sum()) > 0  # descending the loss raises cos(view, decoy)
    plain, _ = paired_loss(RecogniserViews(rec, specs, refs), e, idx, margin=0.5)
    assert float(loss.detach()) > float(plain.detach())


def test_webp_views_are_the_real_codec_forward_and_the_identity_backward():
    """WebP has no differentiable model: the EOT's WebP encodings are Pillow's WebP in the
    forward pass (so the loss sees what the codec leaves) and pass the gradient straight through."""
    import io

    from PIL import Image

    from jndguard.core.attacks.post_eot import PostEOT, encode, sample_encodings

    g = torch.Generator().manual_seed(0)
    # inside (0, 1): the clamp before the codec has no gradient at the ends
    x = torch.rand(1, 3, 48, 64, generator=g).mul(253).add(1).round().div(255).requires_grad_(True)
    y = encode(x, 1.0, 80.0, "webp")
    buf = io.BytesIO()
    Image.fromarray((x.detach()[0].permute(1, 2, 0) * 255).round().byte().numpy()).save(
        buf, "WEBP", quality=80, method=4)
    ref = torch.from_numpy(np.array(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))).permute(2, 0, 1)
    assert torch.equal((y.detach()[0] * 255).round().byte(), ref)
    assert not torch.equal(ref, (x.detach()[0] * 255).round().byte())  # lossy: it did change
    (y * torch.arange(64.0)).sum().backward()
    assert torch.allclose(x.grad, torch.arange(64.0).expand_as(x))
    encs = sample_encodings(PostEOT(encodings=400), torch.Generator().manual_seed(1))
    codecs = [e.codec for e in encs if e.quality is not None]
    assert 0.15 < codecs.count("webp") / len(codecs) < 0.35  # p_webp of the lossy encodings
    assert any(e.label.startswith("webp") for e in encs)
