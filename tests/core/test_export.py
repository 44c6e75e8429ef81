"""Export: metadata stripped, names never collide, atomic writes, JSON/CSV reports."""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms, JpegImagePlugin, PngImagePlugin

from jndguard.core import export
from jndguard.core.export import (
    SUMMARY_NAME,
    ExportOptions,
    append_summary,
    export_image,
    export_photo,
    flatten,
    output_paths,
    summary_rows,
    write_json,
)
from jndguard.core.imageio import load_image
from jndguard.errors import ExportError

XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description/></rdf:RDF></x:xmpmeta>'
ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
FORMATS = ["png", "jpeg", "webp"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "ACME"  # Make
    exif[0x0110] = "Spy-Cam 3000"  # Model
    exif[0x0112] = 6  # Orientation: rotate 90° CW to display
    exif[0x927C] = b"maker-note-secret"  # MakerNote
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (52.0, 31.0, 12.5)
    gps[3] = "E"
    gps[4] = (13.0, 24.0, 1.0)
    return exif


def _photo_array(h: int = 48, w: int = 64) -> np.ndarray:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    arr[: h // 2] //= 2  # not symmetric, so a rotation is visible
    return arr


def _make_source(folder: Path, fmt: str) -> Path:
    img = Image.fromarray(_photo_array())
    suffix = {"jpeg": ".jpg", "png": ".png", "webp": ".webp"}[fmt]
    path = folder / f"holiday{suffix}"
    kw: dict = {"exif": _exif().tobytes(), "icc_profile": ICC}
    if fmt == "png":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", XMP.decode())
        kw["pnginfo"] = info
    else:
        kw["xmp"] = XMP
    if fmt == "jpeg":
        kw["quality"] = 95
    if fmt == "webp":
        kw["lossless"] = True
    img.save(path, format=fmt.upper(), **kw)
    # make sure the fixture really carries what we strip
    with Image.open(path) as check:
        assert check.getexif().get_ifd(0x8825)
        assert "xmp" in check.info and check.info.get("icc_profile")
    return path


def _assert_clean(path: Path, *, icc: bytes | None) -> None:
    data = path.read_bytes()
    with Image.open(path) as im:
        im.load()
        assert len(im.getexif()) == 0
        assert not im.getexif().get_ifd(0x8825)
        assert "exif" not in im.info
        assert "xmp" not in im.info and "XML:com.adobe.xmp" not in im.info
        assert im.info.get("icc_profile") == icc or (icc is None and not im.info.get("icc_profile"))
    for marker in (b"Exif\x00", b"xmpmeta", b"Spy-Cam", b"ACME", b"maker-note-secret"):
        assert marker not in data


@pytest.mark.parametrize("src_fmt", FORMATS)
@pytest.mark.parametrize("out_fmt", FORMATS)
def test_metadata_is_stripped_and_orientation_baked(
    tmp_path: Path, src_fmt: str, out_fmt: str
) -> None:
    src_dir = tmp_path / "in"
    src_dir.mkdir()
    source = _make_source(src_dir, src_fmt)
    before = _digest(source)
    loaded = load_image(source)
    assert (loaded.height, loaded.width) == (64, 48)  # orientation 6 applied by the loader

    out = export_image(
        loaded.pixels,
        tmp_path / "out",
        source=source,
        options=ExportOptions(format=out_fmt),
        icc_profile=loaded.icc_profile,
    )
    assert out.name == f"holiday.protected{ExportOptions(format=out_fmt).suffix}"
    _assert_clean(out, icc=None)
    with Image.open(out) as im:
        assert im.size == (48, 64)  # display orientation, no tag needed
    assert _digest(source) == before


@pytest.mark.parametrize("out_fmt", FORMATS)
def test_icc_kept_only_when_asked(tmp_path: Path, out_fmt: str) -> None:
    source = _make_source(tmp_path, "jpeg")
    loaded = load_image(source)
    assert loaded.icc_profile == ICC
    kept = export_image(
        loaded.pixels,
        tmp_path,
        source=source,
        icc_profile=loaded.icc_profile,
        options=ExportOptions(format=out_fmt, keep_icc=True),
    )
    _assert_clean(kept, icc=ICC)
    dropped = export_image(
        loaded.pixels,
        tmp_path,
        source=source,
        icc_profile=loaded.icc_profile,
        options=ExportOptions(format=out_fmt),
    )
    _assert_clean(dropped, icc=None)


def test_lossless_round_trip_and_jpeg_settings(tmp_path: Path) -> None:
    pixels = _photo_array(33, 47)
    for opts in (ExportOptions(), ExportOptions(format="webp", webp_lossless=True)):
        p = export_image(pixels, tmp_path, options=opts)
        assert np.array_equal(np.array(Image.open(p).convert("RGB")), pixels)
    tensor = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0).float() / 255
    p = export_image(tensor, tmp_path, options=ExportOptions())
    assert np.array_equal(np.array(Image.open(p).convert("RGB")), pixels)
    p = export_image(pixels, tmp_path, options=ExportOptions(format="jpg"))
    assert p.suffix == ".jpg"
    with Image.open(p) as im:
        assert JpegImagePlugin.get_sampling(im) == 0  # 4:4:4
        err = np.abs(np.array(im, dtype=int) - pixels).mean()
    assert err < 8  # quality 95 on noise


def test_options_validation() -> None:
    assert ExportOptions(format="JPG").format == "jpeg"
    for bad in (
        {"format": "gif"},
        {"jpeg_quality": 0},
        {"webp_quality": 101},
        {"jpeg_quality": 9.5},
        {"png_compress_level": 10},
    ):
        with pytest.raises(ValueError):
            ExportOptions(**bad)
    assert ExportOptions(format="webp", webp_lossless=True).as_dict() == {
        "format": "webp",
        "keep_icc": False,
        "lossless": True,
    }
    assert ExportOptions(format="jpeg").as_dict()["subsampling"] == "4:4:4"


def test_names_never_collide_or_touch_the_original(tmp_path: Path) -> None:
    source = _make_source(tmp_path, "png")
    before = _digest(source)
    pixels = load_image(source).pixels
    # output folder == input folder
    a = export_image(pixels, tmp_path, source=source)
    b = export_image(pixels, tmp_path, source=source)
    assert (a.name, b.name) == ("holiday.protected.png", "holiday.protected-2.png")
    # a report file alone also takes the name
    (tmp_path / "holiday.protected-3.json").write_text("{}")
    img, rep = output_paths(source, tmp_path, ExportOptions())
    assert (img.name, rep.name) == ("holiday.protected-4.png", "holiday.protected-4.json")
    # explicit destinations: never the original, never an existing file
    with pytest.raises(ExportError, match="original"):
        export_image(pixels, tmp_path, source=source, path=source)
    with pytest.raises(ExportError, match="exists"):
        export_image(pixels, tmp_path, source=source, path=a)
    # the original named like an output still cannot be hit
    tricky = tmp_path / "x.protected.png"
    tricky.write_bytes(source.read_bytes())
    out = export_image(pixels, tmp_path, source=tricky)
    assert out.name == "x.protected.protected.png"
    assert _digest(source) == before
    assert tricky.read_bytes() == source.read_bytes()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def _chmod_blocks_writes(folder: Path) -> bool:
    """False as root (or with CAP_DAC_OVERRIDE) and on Windows, where chmod 555 is no guard."""
    probe = folder / "probe"
    try:
        probe.write_bytes(b"")
    except PermissionError:
        return True
    probe.unlink()
    return False


def test_read_only_folder_chmod(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if not _chmod_blocks_writes(folder):
            pytest.skip("chmod does not stop writes here (root or Windows); see the injected test")
        with pytest.raises(ExportError, match="permission"):
            export_photo(_photo_array(), folder, report={"faces": []})
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


def test_read_only_folder_injected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open

    def deny(path, flags, *args, **kwargs):
        if str(path).endswith(".tmp"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(export.os, "open", deny)
    with pytest.raises(ExportError, match="permission"):
        export_photo(_photo_array(), tmp_path, report={"faces": []})
    assert list(tmp_path.iterdir()) == []


def test_read_only_file_system_injected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def erofs(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(export.os, "open", erofs)
    with pytest.raises(ExportError, match="read-only"):
        export_image(_photo_array(), tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
def test_disk_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if where == "write":

        def save(self, fp, *args, **kwargs):
            fp.write(b"\x89PNG partial")
            full()

        monkeypatch.setattr(Image.Image, "save", save)
    elif where == "fsync":
        monkeypatch.setattr(export.os, "fsync", full)
    else:
        monkeypatch.setattr(export.os, "replace", full)
    with pytest.raises(ExportError, match="full"):
        export_image(_photo_array(), tmp_path, options=ExportOptions())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("exc", [RuntimeError("encoder crashed"), KeyboardInterrupt()])
def test_killed_encoder_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: BaseException
) -> None:
    source = _make_source(tmp_path, "jpeg")
    before = sorted(p.name for p in tmp_path.iterdir())
    real_save = Image.Image.save

    def crash(self, fp, *args, **kwargs):
        buf = io.BytesIO()
        real_save(self, buf, *args, **kwargs)
        fp.write(buf.getvalue()[: len(buf.getvalue()) // 2])  # half an image
        raise exc

    monkeypatch.setattr(Image.Image, "save", crash)
    expected = ExportError if isinstance(exc, Exception) else type(exc)
    with pytest.raises(expected):
        export_photo(
            load_image(source).pixels,
            tmp_path,
            source=source,
            report={"faces": [{"method": "hvs-jnd"}]},
        )
    assert not (tmp_path / "holiday.protected.png").exists()
    assert _leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_written_files_respect_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        p = export_image(_photo_array(), tmp_path)
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == 0o644


def _face(i: int, **extra) -> dict:
    face = {
        "box": {"x0": 10 * i, "y0": 5, "x1": 10 * i + 40, "y1": 45},
        "method": "hvs-jnd",
        "parameters": {"beta": [15.0, 15.0, 15.0], "delta": -50, "mode": "fast"},
        "seed": 1234,
        "model": {"name": "facenet-ms1m-128", "hash": "ab" * 32},
        "device": "cpu",
        "times": {"optimise_s": 1.5 + i, "total_s": 2.0 + i},
        "metrics": {"psnr": 41.2, "ssim": 0.99, "ms_ssim": None, "jnd": {"over_fraction": 0.0}},
        "verdicts": [
            {"recogniser": "facenet", "encoding": "png", "cosine": 0.1, "dodged": True},
            {"recogniser": "facenet", "encoding": "jpeg75", "cosine": 0.3, "dodged": False},
        ],
    }
    face.update(extra)
    return face


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def test_export_photo_reports_and_summary(tmp_path: Path) -> None:
    src_dir = tmp_path / "in"
    src_dir.mkdir()
    source = _make_source(src_dir, "jpeg")
    before = _digest(source)
    out_dir = tmp_path / "out"
    pixels = load_image(source).pixels
    report = {
        "metrics": {"psnr": float("inf"), "ssim": 1.0},
        "faces": [_face(0), _face(1)],
        "tensor": torch.tensor([1.0, 2.0]),
    }
    res = export_photo(
        pixels, out_dir, source=source, report=report, options=ExportOptions(format="jpeg")
    )
    assert res.image.name == "holiday.protected.jpg"
    assert res.report.name == "holiday.protected.json"
    assert res.summary.name == SUMMARY_NAME
    data = json.loads(res.report.read_text(encoding="utf-8"))
    assert data["source"] == "holiday.jpg"  # file name only, no folder
    assert data["output"] == "holiday.protected.jpg"
    assert data["export"]["quality"] == 95
    assert data["metrics"]["psnr"] is None  # inf → null (strict JSON)
    assert data["tensor"] == [1.0, 2.0]
    assert len(data["faces"]) == 2 and data["faces"][1]["verdicts"][1]["dodged"] is False

    header, rows = _read_csv(res.summary)
    assert len(rows) == 2
    assert rows[1]["face.index"] == "1"
    assert rows[0]["face.model.hash"] == "ab" * 32
    assert rows[0]["face.parameters.beta"] == "[15.0, 15.0, 15.0]"
    assert rows[0]["face.verdicts.1.cosine"] == "0.3"
    assert rows[0]["face.verdicts.0.dodged"] == "true"
    assert rows[0]["face.metrics.ms_ssim"] == ""
    assert rows[0]["metrics.psnr"] == "inf"
    assert rows[1]["face.times.total_s"] == "3.0"
    assert header[:2] == ["schema", "source"]

    # a second photo with a new column: rows appended, union of columns
    res2 = export_photo(
        pixels, out_dir, source=source, report={"faces": [_face(0, robust={"jpeg": True})]}
    )
    assert res2.image.name == "holiday.protected-2.png"
    assert res2.report.name == "holiday.protected-2.json"
    header2, rows2 = _read_csv(res2.summary)
    assert header2[: len(header)] == header and "face.robust.jpeg" in header2
    assert len(rows2) == 3
    new_columns = set(header2) - set(header)
    assert {"face.robust.jpeg", "export.compress_level"} <= new_columns
    assert rows2[0] == {**rows[0], **dict.fromkeys(new_columns, "")}
    assert rows2[2]["face.robust.jpeg"] == "true" and rows2[2]["metrics.psnr"] == ""

    # a photo without faces still gets one row
    res3 = export_photo(pixels, out_dir, source=source, report={"faces": []})
    assert len(_read_csv(res3.summary)[1]) == 4
    assert _digest(source) == before
    assert _leftovers(out_dir) == []


def test_export_photo_is_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise ExportError("summary failed")

    monkeypatch.setattr(export, "_summary_bytes", broken)
    with pytest.raises(ExportError, match="summary failed"):
        export_photo(_photo_array(), tmp_path, report={"faces": [_face(0)]})
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ExportError, match="JSON"):
        export_photo(_photo_array(), tmp_path, report={"bad": object()})
    assert list(tmp_path.iterdir()) == []


def test_flatten_and_rows() -> None:
    flat = flatten(
        {"a": {"b": 1, "c": {"d": None}}, "e": [1, 2], "f": [{"g": 1}, {"g": 2}], "h": {}}
    )
    assert flat == {"a.b": 1, "a.c.d": None, "e": "[1, 2]", "f.0.g": 1, "f.1.g": 2}
    rows = summary_rows({"source": "x.png", "faces": [{"method": "pgd"}]})
    assert rows == [{"source": "x.png", "face.index": 0, "face.method": "pgd"}]


def test_reports_are_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "r.json"
    write_json({"v": 1}, target)
    append_summary(tmp_path, [{"a": 1}])
    summary = tmp_path / SUMMARY_NAME
    old_json, old_csv = target.read_bytes(), summary.read_bytes()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export.os, "fsync", full)
    with pytest.raises(ExportError, match="full"):
        write_json({"v": 2}, target)
    with pytest.raises(ExportError, match="full"):
        append_summary(tmp_path, [{"a": 2, "b": 3}])
    assert target.read_bytes() == old_json and summary.read_bytes() == old_csv
    assert _leftovers(tmp_path) == []


def test_unreadable_summary_is_not_clobbered(tmp_path: Path) -> None:
    summary = tmp_path / SUMMARY_NAME
    summary.write_bytes(b"a,b\n1,2,3\n")
    with pytest.raises(ExportError, match="summary"):
        append_summary(tmp_path, [{"a": 1}])
    assert summary.read_bytes() == b"a,b\n1,2,3\n"


def test_signal_during_publishing_is_held_until_all_three_files_are_in_place(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C (or SIGTERM turned into the same) arriving between the renames that publish a
    photo is delivered after the last one: the image, its report and its CSV row appear
    together."""
    import os
    import signal

    real = os.replace
    sent = []

    def replace_then_interrupt(src, dst):
        real(src, dst)
        if not sent:
            sent.append(dst)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(export.os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        export_photo(_photo_array(), tmp_path, report={"faces": [_face(0)]})
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["image.protected.json", "image.protected.png", SUMMARY_NAME]


def test_interrupt_while_verifying_leaves_nothing(tmp_path: Path) -> None:
    def interrupted(path):
        assert path.name.startswith(".image.protected.png.")  # the staged file is verified
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_photo(_photo_array(), tmp_path, report={"faces": [_face(0)]}, verify=interrupted)
    assert list(tmp_path.iterdir()) == []
