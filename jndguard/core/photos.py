"""Which files are photos, and the photos a list of files and folders names (no torch, no Qt).

The one suffix list (:data:`PHOTO_SUFFIXES`) the loader, the CLI, the GUI's file dialogs and
the study builder use, and the one collector (:func:`collect_photos`) the CLI commands and the
GUI's queue use.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

#: File name suffixes the loader reads (:func:`jndguard.core.imageio.load_image`).
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
#: The marker of JNDGuard's own outputs (``photo.protected.png``).
PROTECTED_MARK = ".protected"


def is_photo(path: str | Path) -> bool:
    """True when the file name has a suffix the loader reads."""
    return Path(path).suffix.lower() in PHOTO_SUFFIXES


def photo_filter(label: str = "Photos", all_files: bool = False) -> str:
    """A file-dialog filter for the readable photos (``"Photos (*.jpg *.jpeg …)"``)."""
    text = f"{label} ({' '.join('*' + s for s in PHOTO_SUFFIXES)})"
    return text + (";;All files (*)" if all_files else "")


def _key(p: Path) -> Path:
    try:
        return p.resolve()
    except OSError:
        return p


def collect_photos(paths: Iterable[str | os.PathLike], recursive: bool = False,
                   skip_protected: bool = False) -> list[Path]:
    """Files as given plus the photos inside folders (sorted per folder, no duplicates).

    Files given explicitly are kept even with an unknown suffix (the loader then says why it
    cannot read them); files found in folders are filtered by suffix, and hidden files
    (``.name``) are skipped.

    Args:
        paths: files and folders.
        recursive: also look in sub-folders.
        skip_protected: leave out JNDGuard's outputs (``*.protected.*``) found in folders.
    """
    out: list[Path] = []
    seen: set[Path] = set()
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(
                q for q in (p.rglob("*") if recursive else p.iterdir())
                if q.is_file() and is_photo(q) and not q.name.startswith(".")
                and not (skip_protected and PROTECTED_MARK in q.name))
        else:
            found = [p]
        for q in found:
            key = _key(q)
            if key not in seen:
                seen.add(key)
                out.append(q)
    return out


__all__ = ["PHOTO_SUFFIXES", "PROTECTED_MARK", "collect_photos", "is_photo", "photo_filter"]
