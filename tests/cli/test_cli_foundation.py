"""CLI: detect / identify / models, JSON on stdout, errors on stderr with non-zero exit."""

from __future__ import annotations

import json

from PIL import Image

from jndguard.cli import main


def test_detect_json_exif_rotated(kodak_dir, tmp_path, capsys):
    img = Image.open(kodak_dir / "kodim04.png")  # portrait 512×768
    stored = img.transpose(Image.Transpose.ROTATE_90)  # stored landscape, EXIF says rotate back
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "rotated.jpg"
    stored.save(p, "JPEG", exif=exif.tobytes(), quality=95)
    assert main(["detect", str(p), "--json", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["width"], out["height"]) == (512, 768)
    assert len(out["faces"]) == 1
    x1, y1, x2, y2 = out["faces"][0]["box"]
    assert 0 <= x1 < x2 <= 512 and 0 <= y1 < y2 <= 768


def test_detect_errors(tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert main(["detect", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "broken.png" in err and "error" in err


def test_identify(model_home, celeb_dir, capsys, monkeypatch):
    monkeypatch.setenv("JNDGUARD_HOME", str(model_home))
    a = sorted((celeb_dir / "val" / "madonna").glob("*.jpg"))[0]
    b = sorted((celeb_dir / "train" / "madonna").glob("*.jpg"))[0]
    c = sorted((celeb_dir / "train" / "jerry_seinfeld").glob("*.jpg"))[0]
    assert main(["identify", str(a), str(b), "--json"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert same["same_person"] and same["cosine_similarity"] >= same["threshold"]
    assert main(["identify", str(a), str(c), "--json"]) == 0
    diff = json.loads(capsys.readouterr().out)
    assert not diff["same_person"]


def test_identify_without_models_says_what_to_run(kodak_dir, capsys):
    assert main(["identify", str(kodak_dir / "kodim04.png"), str(kodak_dir / "kodim17.png")]) == 2
    assert "jndguard models fetch" in capsys.readouterr().err


def test_no_face_is_a_clear_error(model_home, kodak_dir, capsys, monkeypatch):
    monkeypatch.setenv("JNDGUARD_HOME", str(model_home))
    # exit status 1: the command ran but found no face (2 is kept for errors)
    assert main(["identify", str(kodak_dir / "kodim01.png"), str(kodak_dir / "kodim04.png")]) == 1
    assert "no face" in capsys.readouterr().err


def test_models_list_and_verify(model_home, capsys, monkeypatch):
    monkeypatch.setenv("JNDGUARD_HOME", str(model_home))
    assert main(["models", "list", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["models"][0]["name"] == "facenet128-msceleb"
    assert main(["models", "verify", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as e:
        assert e.code == 0
    assert "jndguard" in capsys.readouterr().out


