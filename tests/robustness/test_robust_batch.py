"""A batch of odd photos through ``protect``: every bad file is reported and the batch goes
on; tiny images give "no face found" (exit 1), not a traceback; the loader's notes reach the
JSON report and the output; running out of memory while measuring the finished photo keeps
the protection; a photo too large for the available memory is refused before decoding."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from jndguard.cli import main
from jndguard.core import memory
from tests.robustness.helpers import listing, png_claiming


def _noted_face(pixels: np.ndarray, path):
    """The face upside down in the file with EXIF orientation 3 (display: upright), a
    transparent corner, and a second frame: an animated PNG the loader must explain."""
    h, w = pixels.shape[:2]
    rgba = np.dstack([pixels, np.full((h, w), 255, np.uint8)])
    rgba[: h // 8, : w // 8, 3] = 0
    first = Image.fromarray(np.ascontiguousarray(rgba[::-1, ::-1]), "RGBA")
    second = Image.new("RGBA", (w, h), (0, 0, 255, 255))
    exif = Image.Exif()
    exif[0x0112] = 3
    first.save(path, save_all=True, append_images=[second], exif=exif, duration=100)
    return path


@pytest.fixture()
def batch(tmp_path, face_pixels):
    d = tmp_path / "in"
    d.mkdir()
    (d / "a-empty.jpg").write_bytes(b"")
    (d / "b-text.jpg").write_text("this is not a photo")
    buf = d / "c-truncated.png"
    Image.fromarray(face_pixels).save(buf)
    buf.write_bytes(buf.read_bytes()[: buf.stat().st_size // 2])
    Image.new("RGB", (1, 1)).save(d / "d-1x1.png")
    Image.new("RGB", (11, 11), (90, 60, 40)).save(d / "e-11x11.png")
    Image.new("RGB", (6000, 30), (90, 60, 40)).save(d / "f-6000x30.png")
    _noted_face(face_pixels, d / "g-face.png")
    (d / "h.heic").write_bytes(b"\0" * 32)  # skipped in a folder, and said so
    return d


def test_batch_goes_on_and_reports_each_photo(store_env, batch, tmp_path, capsys, monkeypatch):
    import jndguard.core.metrics as metrics

    def out_of_memory_on_the_whole_photo(*args, **kwargs):
        raise MemoryError("injected: no memory for the whole-photo metrics")

    monkeypatch.setattr(metrics, "photo_report_windows", out_of_memory_on_the_whole_photo)
    out = tmp_path / "out"
    # lossless mode, one iteration per β attempt (measured quicker than post mode, or PGD and its
    # torchattacks import): what is tested is the batch, not the protection
    rc = main(["protect", str(batch), "-o", str(out), "--json", "--no-verify", "--device", "cpu",
               "--hvs-mode", "lossless", "--iterations", "1"])
    cap = capsys.readouterr()
    doc = json.loads(cap.out)
    assert "Traceback" not in cap.err
    by = {p["photo"].rsplit("/", 1)[-1]: p for p in doc["photos"]}
    for name in ("a-empty.jpg", "b-text.jpg", "c-truncated.png"):
        assert by[name]["status"] == "error" and by[name]["exit_code"] == 2
        assert name in by[name]["error"] and name in cap.err
    for name in ("d-1x1.png", "e-11x11.png", "f-6000x30.png"):
        assert by[name]["status"] == "no_face" and by[name]["exit_code"] == 1
        assert "no face found" in by[name]["message"]
    assert [s["path"].rsplit("/", 1)[-1] for s in doc["skipped"]] == ["h.heic"]
    assert "skipped" in cap.err and "h.heic" in cap.err

    face = by["g-face.png"]
    assert face["status"] in ("protected", "not_protected") and face["exit_code"] in (0, 1)
    notes = " | ".join(face["notes"])
    assert "first frame of 2 taken" in notes and "EXIF orientation 3 applied" in notes
    assert "transparency composited on white" in notes
    assert "out of memory measuring the whole photo" in notes
    report = json.loads((out / "g-face.protected.json").read_text())
    assert report["notes"] == face["notes"]
    assert report["faces"][0]["psnr"] is not None  # measured on the face region instead
    with open(out / "jndguard-summary.csv", encoding="utf-8-sig") as fh:
        assert len(list(csv.DictReader(fh))) == len(report["faces"])
    assert rc == 2 and doc["exit_code"] == 2  # errors outrank "not protected"
    assert listing(out) == ["g-face.protected.json", "g-face.protected.png", "jndguard-summary.csv"]


def test_notes_in_plain_output(store_env, tmp_path, face_pixels, capsys):
    photo = _noted_face(face_pixels, tmp_path / "noted.png")
    rc = main(["detect", str(photo)])
    out = capsys.readouterr().out
    assert rc == 0 and "note: first frame of 2 taken" in out and "1 face(s)" in out


def test_photo_too_large_for_memory_is_refused_before_decoding(store_env, tmp_path, capsys,
                                                               monkeypatch):
    """A 144 MP photo (under the decoding limit) on a machine with memory for a quarter of it."""
    side = 12000
    avail = memory.PROTECT_BASE_BYTES + int(memory.PHOTO_BYTES_PER_PIXEL * side * side / 4)
    monkeypatch.setattr(memory, "available_memory", lambda: avail)
    huge = png_claiming(tmp_path / "huge.png", side, side)
    out = tmp_path / "out"
    rc = main(["protect", str(huge), "-o", str(out), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and "huge.png" in err and "downscale it to at most 6000×6000" in err and "GB" in err
    assert "corrupt" not in err  # refused from the header, before the pixels were read
    assert listing(out) == []


def test_face_regions_too_large_for_memory_are_refused_before_the_work(store_env, tmp_path, face_pixels,
                                                                        capsys, monkeypatch):
    """The photo fits, its face region does not: refused once the face is found, before J or
    the optimisation, with the size that would fit; nothing is written."""
    photo = tmp_path / "face.png"
    Image.fromarray(face_pixels).save(photo)
    h, w = face_pixels.shape[:2]
    monkeypatch.setattr(memory, "available_memory", lambda: memory.protect_memory_needed(w, h) + 1)
    out = tmp_path / "out"
    rc = main(["protect", str(photo), "-o", str(out), "--device", "cpu", "--no-verify"])
    err = capsys.readouterr().err
    assert rc == 2 and "face.png" in err and "face region of" in err and "downscale it to at most" in err
    assert "Traceback" not in err and listing(out) == []
