"""The one image loader every entry point uses (CLI, GUI, pipeline, verification).

Decisions (written down because nobody else will):
- Orientation: EXIF orientation is applied, so pixels are what a viewer shows; exported
  files have the rotation baked in and no EXIF left.
- Modes: grayscale, palette, CMYK, 16-bit and float images become 8-bit sRGB-encoded RGB.
  16-bit values are scaled by 255/65535 (rounded), not truncated.
- Alpha: composited on white (what most viewers and social networks show for a transparent
  background). The alpha channel itself is not carried to the export.
- Size: images over ``MAX_PIXELS`` (default 200 megapixels) are refused with a clear message
  before decoding, instead of Pillow's decompression-bomb warning.
- Corrupt or truncated files raise :class:`ImageLoadError` naming the file; nothing is
  silently padded with grey.
- Frames: animated or multi-page files (GIF, APNG, WebP, TIFF) give their first frame.
- Notes: every such conversion (first frame of N taken, orientation applied, transparency
  composited, bit depth or colour model converted) is written to ``LoadedImage.notes``,
  which the pipeline carries into the report, the CLI output and the app.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from jndguard.core.photos import PHOTO_SUFFIXES as SUPPORTED_SUFFIXES  # the one suffix list
from jndguard.errors import ImageLoadError

MAX_PIXELS = 200_000_000

ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclass
class LoadedImage:
    """A decoded photo: 8-bit RGB pixels in display orientation plus what we know of it."""

    path: Path | None
    pixels: np.ndarray  # (H, W, 3) uint8, RGB, display orientation
    source_mode: str
    source_format: str | None
    icc_profile: bytes | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    def tensor(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """The photo as a float32 (1, 3, H, W) tensor in [0, 1]."""
        return to_tensor(self.pixels, device)


def to_tensor(pixels: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(H, W, 3) uint8 → (1, 3, H, W) float32 in [0, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(pixels)).to(device)
    return t.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) float in [0, 1] → (H, W, 3) uint8 (round half to even)."""
    if image.ndim == 4:
        if image.shape[0] != 1:
            raise ValueError("to_uint8 takes a single image")
        image = image[0]
    arr = image.detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0)
    return arr.cpu().numpy()


def quantise(image: torch.Tensor) -> torch.Tensor:
    """Round a [0, 1] tensor to the 8-bit grid it will be saved on (no gradient)."""
    return image.detach().clamp(0, 1).mul(255).round().div(255)


def _to_rgb8(img: Image.Image, notes: list[str]) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if mode == "F":
            hi = 1.0 if arr.max(initial=0.0) <= 1.0 else 255.0
        elif mode == "I" and arr.max(initial=0) <= 255:
            hi = 255.0
        else:
            hi = 65535.0
        notes.append(f"{mode} image scaled to 8 bits")
        arr8 = np.clip(np.rint(arr * (255.0 / hi)), 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    if mode == "CMYK":
        notes.append("CMYK converted to RGB")
        return img.convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode == "P" and "transparency" in img.info
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        if rgba.getextrema()[3][0] < 255:
            notes.append("transparency composited on white")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    notes.append(f"{mode} converted to RGB")
    return img.convert("RGB")


def load_image(source: str | Path | bytes, *, max_pixels: int = MAX_PIXELS) -> LoadedImage:
    """Load any supported photo as 8-bit RGB in display orientation.

    Args:
        source: a file path, or the encoded bytes of an image.
        max_pixels: refuse images with more pixels than this (decompression-bomb guard).

    Returns:
        A :class:`LoadedImage`.

    Raises:
        ImageLoadError: missing, unreadable, corrupt, truncated or oversized input.
    """
    path = None if isinstance(source, bytes) else Path(source)
    label = "<bytes>" if path is None else str(path)
    if path is not None and path.is_dir():
        raise ImageLoadError(f"{label}: is a folder, not a photo; give one photo file")
    if path is not None and not path.is_file():
        raise ImageLoadError(f"{label}: no such file")
    try:
        fp = io.BytesIO(source) if path is None else open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise ImageLoadError(f"{label}: cannot open ({exc.strerror or exc})") from exc
    notes: list[str] = []
    try:
        with fp, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            old_limit = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None  # we do the size check ourselves, below
            try:
                img = Image.open(fp)
            finally:
                Image.MAX_IMAGE_PIXELS = old_limit
            w, h = img.size
            if w * h > max_pixels:
                raise ImageLoadError(
                    f"{label}: {w}×{h} = {w * h / 1e6:.0f} megapixels is over the limit of "
                    f"{max_pixels / 1e6:.0f} megapixels (possible decompression bomb); "
                    "downscale the photo first"
                )
            fmt = img.format
            source_mode = img.mode
            icc = img.info.get("icc_profile")
            frames = int(getattr(img, "n_frames", 1) or 1)
            if frames > 1:
                notes.append(f"first frame of {frames} taken ({fmt} with {frames} frames)")
            img.load()
            oriented = ImageOps.exif_transpose(img)
            if oriented is not img:
                orientation = img.getexif().get(0x0112)
                if orientation not in (None, 1):
                    notes.append(f"EXIF orientation {orientation} applied (rotated/flipped for display)")
            rgb = _to_rgb8(oriented, notes)
            pixels = np.array(rgb, dtype=np.uint8)
    except ImageLoadError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageLoadError(f"{label}: not an image file JNDGuard can read") from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageLoadError(f"{label}: corrupt or truncated image ({exc})") from exc
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise ImageLoadError(f"{label}: decoded to an unexpected shape {pixels.shape}")
    return LoadedImage(path, pixels, source_mode, fmt, icc, notes)


def read_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` from the file's header, without decoding the pixels.

    Raises:
        ImageLoadError: as :func:`load_image` does for a missing or unreadable file.
    """
    path = Path(path)
    if path.is_dir():
        raise ImageLoadError(f"{path}: is a folder, not a photo; give one photo file")
    old_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # only the header is read; load_image applies the guard
    try:
        with Image.open(path) as img:
            return img.size
    except FileNotFoundError as exc:
        raise ImageLoadError(f"{path}: no such file") from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError(f"{path}: not an image file JNDGuard can read") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(f"{path}: corrupt or truncated image ({exc})") from exc
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit


def is_supported(path: str | Path) -> bool:
    """True when the file name has a suffix the loader reads."""
    return Path(path).suffix.lower() in SUPPORTED_SUFFIXES
