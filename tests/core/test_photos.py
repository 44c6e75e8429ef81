"""One photo collector and one suffix list for the CLI, the GUI and the study builder."""

from __future__ import annotations

from jndguard.core.imageio import SUPPORTED_SUFFIXES, is_supported
from jndguard.core.photos import PHOTO_SUFFIXES, collect_photos, is_photo, photo_filter


def _touch(p):
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"")
    return p


def test_collect_photos_rules(tmp_path):
    a = _touch(tmp_path / "d" / "b.JPG")
    b = _touch(tmp_path / "d" / "a.png")
    _touch(tmp_path / "d" / ".hidden.jpg")
    _touch(tmp_path / "d" / "notes.txt")
    out = _touch(tmp_path / "d" / "a.protected.png")
    deep = _touch(tmp_path / "d" / "sub" / "c.webp")
    odd = _touch(tmp_path / "given.xyz")
    d = tmp_path / "d"
    assert collect_photos([d]) == [b, out, a]
    assert collect_photos([d], skip_protected=True) == [b, a]
    assert collect_photos([d], recursive=True, skip_protected=True) == [b, a, deep]
    # explicit files are kept whatever their suffix; nothing twice
    assert collect_photos([odd, d, b], skip_protected=True) == [odd, b, a]


def test_one_suffix_list():
    assert SUPPORTED_SUFFIXES is PHOTO_SUFFIXES
    assert is_photo("x.TIFF") and is_supported("x.jpeg") and is_photo("x.gif")  # first frame
    assert not is_photo("x.heic") and not is_photo("x.txt")
    assert photo_filter() == "Photos (" + " ".join("*" + s for s in PHOTO_SUFFIXES) + ")"
    assert photo_filter(all_files=True).endswith(";;All files (*)")
