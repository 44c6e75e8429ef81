"""The threat matrix on real faces (docs/design.md §4): crop conventions against the libraries
they imitate, no false "protected" on clean photos, the regression it exists for, and the
verdicts of ``verify`` on resized copies, impersonation and multi-face photos."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from jndguard.core.imageio import load_image
from jndguard.core.threat import conventions as C
from jndguard.core.threat.matrix import (
    FULL,
    MatrixSize,
    ReferencePhotos,
    ThreatMatrix,
    evaluate_matrix,
    match_boxes,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def store_env(model_home, monkeypatch):
    monkeypatch.setenv("JNDGUARD_HOME", str(model_home))


@pytest.fixture(scope="module")
def person(model_home):
    """Two photos of the same person: a validation photo and one train photo."""
    from jndguard.core.models.store import dataset_dir, validation_photos

    val = validation_photos(1, model_home)[0]
    train = sorted((dataset_dir(model_home) / "train" / val.parent.name).glob("*.jpg"))[0]
    return val, train


def test_arcface_alignment_matches_skimage(person):
    from skimage.transform import SimilarityTransform

    px = load_image(person[0]).pixels
    for det in C.detect_mtcnn(px)[:1] + C.detect_hog(px)[:1]:
        pts = C.five_points(px, det)
        m = C.arcface_matrix(pts, 112)
        ours = pts @ m[:, :2].T + m[:, 2]
        ref = SimilarityTransform.from_estimate(pts, C.ARCFACE_TEMPLATE)
        assert np.abs(ours - ref(pts)).max() < 0.5
        # and the crop lands the eyes on the template: warp the points, compare
        assert np.abs(ours - C.ARCFACE_TEMPLATE).max() < 8


def test_dlib_chip_matches_dlib(person):
    import dlib

    px = load_image(person[0]).pixels
    for det in C.detect_mtcnn(px)[:1] + C.detect_hog(px)[:1]:
        shape = C.dlib_shape(px, det)
        ref = dlib.get_face_chip(px, shape, size=150, padding=0.25).astype(np.float64)
        for kernel in ("bilinear", "aa"):
            ours = C.make_crop(px, det, "dlib150", 150, kernel).astype(np.float64)
            assert np.abs(ours - ref).mean() <= 1.0, kernel


def test_facenet_pytorch_margin_box():
    # extract_face: margin·w/(160 − margin) source pixels, truncated, clipped
    box = C.crop_box("fnp32", (50.5, 60.5, 178.5, 188.5), 1000, 1000)
    m = 32 * 128 / (160 - 32)
    assert box == (int(50.5 - m / 2), int(60.5 - m / 2), int(178.5 + m / 2), int(188.5 + m / 2))
    assert C.crop_box("fnp32", (2, 2, 130, 130), 100, 100)[:2] == (0, 0)


def test_box_matching_is_one_to_one():
    refs = [(0, 0, 10, 10), (20, 0, 30, 10)]
    assert match_boxes(refs, [(21, 0, 31, 10), (0, 1, 10, 11)]) == [1, 0]
    assert match_boxes(refs, [(100, 100, 110, 110)]) == [None, None]


@pytest.fixture(scope="module")
def clean_full(person, recogniser):
    """The full matrix of a clean photo against itself, with another photo of the same
    person as the gallery."""
    from jndguard.core.threat.recognisers import DlibBlackBox

    val, train = person
    px = load_image(val).pixels
    recs = [recogniser] + ([DlibBlackBox()] if C.dlib_available() else [])
    return evaluate_matrix(px, px, recognisers=recs, size=FULL, gallery=ReferencePhotos([train]))


def test_clean_photo_recognised_in_every_cell(clean_full):
    rep = clean_full
    assert not rep.protected and not rep.errors
    assert {e.reference for e in rep.entries} == {"original", "gallery"}
    assert {e.recogniser for e in rep.entries} >= {"facenet128-msceleb"}
    missing = [e for e in rep.entries if e.status != "ok"]
    assert not missing, missing[:3]
    passed = [e for e in rep.entries if e.passed]
    assert not passed, [(e.recogniser, e.detector, e.crop, e.resize, e.encoding, e.reference,
                         e.similarity) for e in passed[:5]]
    assert rep.share_passed() == 0.0
    doc = rep.to_dict()
    assert doc["protected"] is False
    for key in ("face", "recogniser", "crop", "encoding", "reference", "similarity", "recognised",
                "status"):
        assert key in doc["matrix"][0]


def test_resized_unprotected_copy_is_recognised(person, recogniser, tmp_path, store_env, capsys):
    """An unprotected copy resized to 50 % was certified "protected (no face found)": faces
    are matched by the scale of the copy now."""
    from jndguard.cli import main

    val = person[0]
    img = Image.open(val).convert("RGB")
    small = tmp_path / "small.png"
    img.resize((img.width // 2, img.height // 2), Image.LANCZOS).save(small)
    size = MatrixSize("t", ("mtcnn",), ("tight", "m20"), ("aa",), ("file", "jpeg75"))
    rep = evaluate_matrix(load_image(val).pixels, load_image(small).pixels,
                          recognisers=[recogniser], size=size)
    assert not rep.protected and not rep.errors
    assert all(e.status == "ok" and e.recognised for e in rep.entries)
    code = main(["verify", str(val), str(small), "--json", "--no-dlib"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and doc["protected"] is False
    assert doc["matrix"] and all(e["status"] == "ok" for e in doc["matrix"])


def test_impersonation_is_verified_as_impersonation(person, recogniser, tmp_path, store_env,
                                                    capsys):
    """A copy of the person's own photo does not impersonate anyone, whatever its
    similarity; ``verify --target`` judges the target, not dodging."""
    from jndguard.cli import main

    val = person[0]
    copy = tmp_path / "copy.png"
    Image.open(val).convert("RGB").save(copy)
    target = "madonna" if val.parent.name != "madonna" else "ben_afflek"
    code = main(["verify", str(val), str(copy), "--json", "--no-dlib", "--target", target])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and doc["protected"] is False and doc["goal"] == "impersonate"
    for e in doc["matrix"]:
        assert e["target_similarity"] is not None
        assert e["passed"] == (e["target_similarity"] >= e["threshold"]
                               and e["target_similarity"] > e["similarity"])
    assert not any(e["passed"] for e in doc["matrix"])


def test_multi_face_photo_no_face_and_unmatched(kodak_dir, recogniser):
    px = load_image(kodak_dir / "kodim12.png").pixels
    size = MatrixSize("t", ("mtcnn",), ("tight",), ("aa",), ("file",))
    tm = ThreatMatrix(px, recognisers=[recogniser], size=size)
    assert len(tm.faces) == 2
    rep = tm.evaluate(px)
    assert {e.face for e in rep.entries} == {0, 1}
    assert all(e.recognised for e in rep.entries)
    # hide face 1: not found there (reported as no-face), face 0 still recognised
    hidden = px.copy()
    x1, y1, x2, y2 = (int(v) for v in tm.faces[1].box)
    hidden[max(0, y1 - 10):y2 + 10, max(0, x1 - 10):x2 + 10] = 128
    rep = tm.evaluate(hidden)
    f1 = [e for e in rep.entries if e.face == 1]
    assert f1 and all(e.status == "no-face" and not e.recognised for e in f1)
    assert not rep.protected and not rep.errors
    # both faces hidden and another person's face pasted elsewhere: it matches no original
    # face while the original faces found no match: an error, never "protected"
    face4 = load_image(kodak_dir / "kodim04.png").pixels
    b = C.detect_mtcnn(face4)[0].box
    x1, y1, x2, y2 = C.crop_box("m20", b, face4.shape[1], face4.shape[0])
    patch = np.asarray(Image.fromarray(face4[y1:y2, x1:x2]).resize((90, 110)))
    x1, y1, x2, y2 = (int(v) for v in tm.faces[0].box)
    hidden[max(0, y1 - 10):y2 + 10, max(0, x1 - 10):x2 + 10] = 128
    hidden[20:130, 20:110] = patch
    rep = tm.evaluate(hidden)
    assert rep.unmatched and rep.errors and not rep.protected


@pytest.mark.slow
def test_default_output_recropped_at_20_percent_is_recognised(person, recogniser):
    """The regression the matrix exists for: 0.1's default protection (now ``lossless`` mode)
    fools the tight crop, not a pipeline cropping 20 % wider."""
    from jndguard.core.pipeline import ProtectionSettings, protect

    val = person[0]
    image = load_image(val)
    res = protect(image, ProtectionSettings(mode="lossless"), recogniser)
    assert res.success  # the optimiser's own tight-crop check
    size = MatrixSize("t", ("mtcnn",), ("tight", "m20"), ("aa",), ("file",))
    rep = evaluate_matrix(image.pixels, res.protected, recognisers=[recogniser], size=size)
    m20 = [e for e in rep.entries if e.crop == "m20"]
    assert m20 and all(e.recognised for e in m20)
    assert not rep.protected
