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
    ver = report["verification"]
    assert ver["size"] == "quick" and ver["matrix"]
    assert {e["encoding"] for e in ver["matrix"]} >= {"file", "jpeg60"}
    assert {r["name"] for r in ver["recognisers"]} >= {"facenet128-msceleb", "dlib-resnet"}
    # the exit status is the matrix's verdict: 1 when the face is recognised in any cell
    recognised = any(not e["passed"] for e in ver["matrix"])
    assert ver["protected"] is (not recognised)
    assert rc == (1 if recognised else 0), doc
    assert doc["photos"][0]["matrix"] == ver["matrix"]
    with open(out / "jndguard-summary.csv", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 and rows[0]["method"] == "hvs-jnd"
    assert rows[0]["verification.protected"] == str(ver["protected"]).lower()
    assert "face.matrix.facenet128-msceleb.share" in rows[0]
    assert not any(k.startswith("verification.matrix") for k in rows[0])
    assert not Image.open(png).getexif()
    # verify reports what actually happens on the exported file, the same verdict
    code = main(["verify", str(photo), str(png), "--json"])
    again = json.loads(capsys.readouterr().out)
    assert code == (0 if again["protected"] else 1)
    assert [e["passed"] for e in again["matrix"]] == [e["passed"] for e in ver["matrix"]]


def test_verify_unprotected_copy_is_same_person(store_env, photo, tmp_path, capsys):
    copy = tmp_path / "copy.png"
    Image.open(photo).save(copy)
    assert main(["verify", str(photo), str(copy), "--json"]) == 1
    ver = json.loads(capsys.readouterr().out)
    assert ver["matrix"] and all(e["recognised"] and not e["passed"] for e in ver["matrix"])
    assert ver["protected"] is False


def test_verify_human_output_is_a_grid(store_env, photo, tmp_path, capsys):
    copy = tmp_path / "copy.png"
    Image.open(photo).save(copy)
    assert main(["verify", str(photo), str(copy), "--no-dlib"]) == 1
    out = capsys.readouterr().out
    assert "file" in out and "jpeg60" in out and "✗" in out and "NOT protected" in out


def test_dlib_check_skipped_with_message_when_missing(store_env, photo, tmp_path, monkeypatch,
                                                      recogniser):
    from jndguard.core import verify as v
    from jndguard.core.threat import recognisers as R

    monkeypatch.setattr(v, "dlib_status", lambda: (False, "dlib check skipped: install the extra"))
    monkeypatch.setattr(R, "registered_port", lambda device="cpu": None)
    copy = tmp_path / "copy.png"
    Image.open(photo).save(copy)
    rep = v.verify(photo, copy, [recogniser])  # no port registered, dlib not installed
    assert "dlib check skipped" in " ".join(rep["notes"])
    assert not {"dlib", "dlib-resnet"} & {r["name"] for r in rep["recognisers"]}


def test_dlib_check_runs_when_installed(store_env, photo, tmp_path):
    from jndguard.core import verify as v

    ok, why = v.dlib_status()
    if not ok:
        pytest.skip(why)
    copy = tmp_path / "copy.png"
    Image.open(photo).save(copy)
    rep = v.verify(photo, copy)
    d = [e for e in rep["matrix"] if e["recogniser"] in ("dlib", "dlib-resnet")]
    assert d and all(e["recognised"] for e in d)


def test_dlib_black_box_without_the_port(store_env, photo, tmp_path, monkeypatch, recogniser):
    """Without the registered port, dlib itself is the matrix's dlib recogniser (its own
    chips only), with dlib's rule: similarity 1 − distance ≥ 1 − 0.6."""
    from jndguard.core import verify as v
    from jndguard.core.threat import recognisers as R

    ok, why = v.dlib_status()
    if not ok:
        pytest.skip(why)
    monkeypatch.setattr(R, "registered_port", lambda device="cpu": None)
    copy = tmp_path / "copy.png"
    Image.open(photo).save(copy)
    rep = v.verify(photo, copy, [recogniser], matrix="quick")
    d = [e for e in rep["matrix"] if e["recogniser"] == "dlib"]
    assert d and {e["crop"] for e in d} == {"dlib150"}
    assert all(e["recognised"] and e["similarity"] >= 1 - 0.6 for e in d)


def test_protect_no_face_exit_code(store_env, kodak_dir, tmp_path, capsys):
    assert main(["protect", str(kodak_dir / "kodim01.png"), "-o", str(tmp_path / "o")]) == 1
    assert "no face" in capsys.readouterr().err
    assert not (tmp_path / "o" / "kodim01.protected.png").exists()
