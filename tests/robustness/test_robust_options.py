"""Bad options, inputs and output folders are refused before any work, with exit status 2 and
one line naming the option or file. These run with an empty model store: a check made after
loading the models would answer "no face models" instead, so each test also proves the order."""

from __future__ import annotations

import errno
import os
import tempfile

import pytest
import torch
from PIL import Image

from jndguard.cli import main
from tests.robustness.helpers import listing


@pytest.fixture()
def photo(tmp_path):
    p = tmp_path / "in" / "photo.png"
    p.parent.mkdir()
    Image.new("RGB", (32, 32), (200, 150, 120)).save(p)
    return p


def _run(capsys, *argv):
    try:
        rc = main(list(argv))
    except SystemExit as exc:  # refused by the parser itself (an unknown choice)
        rc = exc.code
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


BAD_OPTIONS = [
    (["--quality", "0"], "--quality 0"),
    (["--quality", "101"], "--quality 101"),
    (["--goal", "impersonate"], "--target"),
    (["--target", "madonna"], "--goal impersonate"),
    (["--iterations", "0"], "--iterations 0"),
    (["--margin", "-1"], "--margin -1"),
    (["--margin", "nan"], "--margin nan"),
    (["--jnd-strength", "0"], "--jnd-strength 0"),
    (["--safety-margin", "-0.5"], "--safety-margin -0.5"),
    (["--variant", "L9"], "--variant"),
    (["--quality", "high"], "--quality"),
    (["--device", "tpu"], "--device: unknown device 'tpu'"),  # refused while parsing
    (["--budget", "0"], "--budget 0"),
    (["--budget", "1.5"], "--budget 1.5"),
]


@pytest.mark.parametrize(("extra", "named"), BAD_OPTIONS, ids=[" ".join(e) for e, _ in BAD_OPTIONS])
def test_bad_option_is_one_line_exit_2(capsys, photo, tmp_path, extra, named):
    out = tmp_path / "out"
    rc, _, err = _run(capsys, "protect", str(photo), "-o", str(out), *extra)
    assert rc == 2
    assert named in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2, err
    assert not out.exists()  # refused before the output folder was made


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda(capsys, photo, tmp_path):
    rc, _, err = _run(capsys, "protect", str(photo), "-o", str(tmp_path / "o"), "--device", "cuda")
    assert rc == 2 and "--device cuda" in err and "--device cpu" in err and "Traceback" not in err
    rc, _, err = _run(capsys, "detect", str(photo), "--device", "cuda")
    assert rc == 2 and "--device cuda" in err


def test_output_that_is_a_file(capsys, photo, tmp_path):
    target = tmp_path / "results"
    target.write_text("not a folder")
    rc, _, err = _run(capsys, "protect", str(photo), "-o", str(target))
    assert rc == 2 and "this is a file, not a folder" in err and str(target) in err
    assert target.read_text() == "not a folder"


def test_output_folder_not_writable(capsys, photo, tmp_path, monkeypatch):
    out = tmp_path / "ro"
    out.mkdir()
    if os.geteuid() != 0:
        out.chmod(0o555)
    else:  # root writes through permissions: make the write itself fail as a read-only folder does
        def refuse(*args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    try:
        rc, _, err = _run(capsys, "protect", str(photo), "-o", str(out))
    finally:
        out.chmod(0o755)
    assert rc == 2 and "cannot write in this folder" in err and str(out) in err
    assert listing(out) == []


def test_missing_input(capsys, tmp_path):
    rc, _, err = _run(capsys, "protect", str(tmp_path / "nope.jpg"), "-o", str(tmp_path / "o"))
    assert rc == 2 and "nope.jpg: no such file or folder" in err


def test_folder_with_only_unsupported_files(capsys, tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "a.heic").write_bytes(b"\0" * 64)
    Image.new("RGB", (16, 16)).save(folder / "b.protected.png")
    rc, stdout, err = _run(capsys, "protect", str(folder), "-o", str(tmp_path / "o"), "--json")
    assert rc == 2 and stdout == ""
    assert "no photo to process" in err and "a.heic" in err and "b.protected.png" in err


def test_empty_folder(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    rc, _, err = _run(capsys, "protect", str(tmp_path / "empty"), "-o", str(tmp_path / "o"))
    assert rc == 2 and "it is empty" in err


def test_detect_folder(capsys, tmp_path):
    rc, _, err = _run(capsys, "detect", str(tmp_path))
    assert rc == 2 and "is a folder, not a photo" in err and "no such file" not in err


def test_verify_with_empty_store_refuses(capsys, photo):
    rc, _, err = _run(capsys, "verify", str(photo), str(photo))
    assert rc == 2 and "jndguard models fetch" in err


def test_exit_codes_are_documented(capsys):
    with pytest.raises(SystemExit):
        main(["protect", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "exit status: 0 every face" in text and "1 a face stayed recognised" in text
    assert "2 an error" in text
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "exit status" in capsys.readouterr().out
