"""protect → export → verify on real faces; verify on an unprotected copy."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil

import pytest
from PIL import Image

from jndguard.cli import main


@pytest.fixture()
def store_env(model_home, monkeypatch):
    monkeypatch.setenv("JNDGUARD_HOME", str(model_home))


@pytest.fixture(scope="module")
def photo(celeb_dir, tmp_path_factory):
    src = sorted((celeb_dir / "val" / "elton_john").glob("*.jpg"))[0]
    d = tmp_path_factory.mktemp("in")
    dst = d / "elton.jpg"
    shutil.copy(src, dst)
    return dst


def _sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_protect_exports_verified_files(store_env, photo, tmp_path, capsys):
    before = _sha(photo)
    out = tmp_path / "out"
    rc = main(["protect", str(photo), "-o", str(out), "--json", "--device", "cpu"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0, doc
    assert _sha(photo) == before  # the original is untouched
    png = out / "elton.protected.png"
    assert png.is_file() and (out / "elton.protected.json").is_file()
    report = json.loads((out / "elton.protected.json").read_text())
    assert report["method"] == "hvs-jnd" and report["model"]["sha256"]
    # the one report builder the GUI uses too (jndguard.core.results.build_report)
    assert report["goal"] == "dodge" and report["settings"]["max_iterations"] == 100
    face = report["faces"][0]
    assert face["index"] == 0 and face["method"] == "hvs-jnd" and face["parameters"] == report["settings"]
    assert face["model"] == report["model"]["name"] and "probability" in face and "success" in face
    assert report["verification"]["protected_ok"] is True
    variants = {c["variant"] for c in report["verification"]["checks"]}
    assert {"exported", "jpeg95", "jpeg85", "jpeg75", "resize1080"} <= variants
    with open(out / "jndguard-summary.csv", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 and rows[0]["method"] == "hvs-jnd"
    assert not Image.open(png).getexif()
    # verify reports what actually happens on the exported file
    assert main(["verify", str(photo), str(png), "--json", "--no-dlib"]) == 0
    ver = json.loads(capsys.readouterr().out)
    # the recogniser it was protected against (verify also runs every other registered one,
    # the dlib port among them, whose verdict is transfer, not a promise)
    first = ver["recognisers"][0]
    exp = [c for c in ver["checks"] if c["variant"] == "exported" and c["recogniser"] == first]
    assert ver["recognisers"][0] == "facenet128-msceleb"
    assert exp and all(not c["same_person"] for c in exp)


def test_verify_unprotected_copy_is_same_person(store_env, photo, tmp_path, capsys):
    copy = tmp_path / "copy.png"
    Image.open(photo).save(copy)
    assert main(["verify", str(photo), str(copy), "--json"]) == 1
    ver = json.loads(capsys.readouterr().out)
    assert ver["checks"] and all(c["same_person"] for c in ver["checks"])
    assert ver["protected_ok"] is False


def test_dlib_check_skipped_with_message_when_missing(store_env, photo, tmp_path, monkeypatch):
    from jndguard.core import verify as v

    monkeypatch.setattr(v, "dlib_status", lambda: (False, "dlib check skipped: install the extra"))
    copy = tmp_path / "copy.png"
    Image.open(photo).save(copy)
    rep = v.verify(photo, copy, jpeg_qualities=(), long_edge=None)
    assert "dlib check skipped" in " ".join(rep["notes"])
    assert "dlib" not in rep["recognisers"]


def test_dlib_check_runs_when_installed(store_env, photo, tmp_path):
    from jndguard.core import verify as v

    ok, why = v.dlib_status()
    if not ok:
        pytest.skip(why)
    copy = tmp_path / "copy.png"
    Image.open(photo).save(copy)
    rep = v.verify(photo, copy, jpeg_qualities=(), long_edge=None)
    d = [c for c in rep["checks"] if c["recogniser"] == "dlib"]
    assert d and d[0]["same_person"] and d[0]["distance"] < 0.6


def test_protect_no_face_exit_code(store_env, kodak_dir, tmp_path, capsys):
    assert main(["protect", str(kodak_dir / "kodim01.png"), "-o", str(tmp_path / "o")]) == 1
    assert "no face" in capsys.readouterr().err
    assert not (tmp_path / "o" / "kodim01.protected.png").exists()
