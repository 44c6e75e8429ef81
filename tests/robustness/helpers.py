"""Helpers of the robustness suite: odd files built with Pillow."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

from PIL import Image


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` × ``height`` (its pixel data is one 1×1 image): what
    a decompression bomb or a huge photo looks like before decoding."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1), (128, 128, 128)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = 8 + 8  # signature, then length + type of the IHDR chunk
    data[ihdr:ihdr + 8] = struct.pack(">II", width, height)
    body = bytes(data[12:ihdr + 13])  # chunk type + 13-byte IHDR payload
    data[ihdr + 13:ihdr + 17] = struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


def listing(folder: Path) -> list[str]:
    """Every name in a folder, hidden temporary files included."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def copy_store(src: Path, dst: Path) -> Path:
    """A private copy of the model store to damage: files copied, the 90 MB archive hard-linked
    when possible (tests never write to it; a repair only reads it)."""
    import os
    import shutil

    for p in src.rglob("*"):
        if p.is_dir() or ".partial-" in str(p) or p.name.startswith(".extract-"):
            continue
        q = dst / p.relative_to(src)
        q.parent.mkdir(parents=True, exist_ok=True)
        if p.parent.name == "downloads":
            try:
                os.link(p, q)
                continue
            except OSError:
                pass
        shutil.copy2(p, q)
    return dst


def flip_byte(path: Path, at: float = 0.5) -> None:
    """Flip one bit of the byte at fraction ``at`` of the file."""
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0x40
    path.write_bytes(bytes(data))
