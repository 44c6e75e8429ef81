"""Atomic, metadata-free export of protected photos plus their JSON and CSV reports.

Decisions:
- Formats: PNG (default, lossless), JPEG (quality 95, 4:4:4 chroma, optimised Huffman
  tables), WebP (quality 90, or lossless). Pixels are written as given: they are already in
  display orientation (the loader applied EXIF orientation), so no orientation tag is needed.
- Metadata: the image is rebuilt from bare pixels, so EXIF (incl. GPS and maker notes), XMP,
  IPTC and comments never reach the file. The ICC profile is dropped too unless
  ``keep_icc=True`` (keep it for wide-gamut photos, e.g. Display P3, whose colours otherwise
  shift).
- Names: ``<stem>.protected.<ext>`` next to ``<stem>.protected.json``; when either name is
  taken the next free ``<stem>.protected-2``, ``-3``, … is used, so nothing is ever
  overwritten, and a destination that is the input file itself is refused.
- Atomicity: every file is written to ``.<final name>.<random>.tmp`` in the target folder,
  flushed, fsynced and moved into place with :func:`os.replace`; on any failure the temporary
  file is removed and :class:`~jndguard.errors.ExportError` explains what happened (read-only
  folder, disk full, …). A process killed mid-write can leave only such a hidden ``.tmp``
  file, never a partial file under the final name.
- Reports: ``<stem>.protected.json`` per photo (NaN/inf become ``null``), and
  ``jndguard-summary.csv`` per output folder with one row per face (a photo without faces
  gets one row): nested dicts become dotted columns (``face.metrics.psnr``), lists of dicts
  get their index as a key part (``face.verdicts.0.cosine``), other lists become JSON text.
  Adding photos appends rows; the header is the union of all columns, in first-seen order.
  The CSV is UTF-8 with a byte-order mark (so spreadsheet programs detect the encoding).
- :func:`export_photo` is all-or-nothing per photo: the image, its report and the new
  summary are each written completely to hidden temporary files first (verification runs
  on the staged image, the very bytes that will be published), then renamed into place
  together with SIGINT/SIGTERM held back; a failure or interruption at any point before
  leaves none of the three, and a rename that fails undoes the ones before it.
"""

from __future__ import annotations

import csv
import dataclasses
import errno
import io
import json
import logging
import math
import os
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from PIL import Image

from jndguard.core.imageio import to_uint8
from jndguard.errors import ExportError

log = logging.getLogger(__name__)

FORMATS: dict[str, str] = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}
_ALIASES = {"jpg": "jpeg", "jpe": "jpeg"}
PROTECTED_TAG = "protected"
SUMMARY_NAME = "jndguard-summary.csv"
REPORT_SCHEMA = "jndguard.photo-report/1"
MAX_NUMBERED_NAMES = 10_000

_TEMP_SUFFIX = ".tmp"


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """How protected photos are encoded.

    Attributes:
        format: ``"png"`` (default), ``"jpeg"`` (``"jpg"`` accepted) or ``"webp"``.
        jpeg_quality: JPEG quality 1–100 (default 95); chroma is never subsampled (4:4:4).
        webp_quality: WebP quality 1–100 (default 90), ignored when ``webp_lossless``.
        webp_lossless: write lossless WebP.
        png_compress_level: zlib level 0–9 for PNG (lossless either way).
        keep_icc: embed the source's ICC profile (default: strip it with the rest).
    """

    format: str = "png"
    jpeg_quality: int = 95
    webp_quality: int = 90
    webp_lossless: bool = False
    png_compress_level: int = 6
    keep_icc: bool = False

    def __post_init__(self) -> None:
        fmt = str(self.format).lower().lstrip(".")
        fmt = _ALIASES.get(fmt, fmt)
        if fmt not in FORMATS:
            raise ValueError(f"unknown export format {self.format!r}; use png, jpeg or webp")
        object.__setattr__(self, "format", fmt)
        for name in ("jpeg_quality", "webp_quality"):
            q = getattr(self, name)
            if isinstance(q, bool) or not isinstance(q, int) or not 1 <= q <= 100:
                raise ValueError(f"{name} must be an integer from 1 to 100, got {q!r}")
        lvl = self.png_compress_level
        if isinstance(lvl, bool) or not isinstance(lvl, int) or not 0 <= lvl <= 9:
            raise ValueError(f"png_compress_level must be an integer from 0 to 9, got {lvl!r}")

    @property
    def suffix(self) -> str:
        """File suffix of the format, with the dot (``.png``, ``.jpg``, ``.webp``)."""
        return FORMATS[self.format]

    def as_dict(self) -> dict[str, Any]:
        """The settings that matter for this format, for reports."""
        out: dict[str, Any] = {"format": self.format, "keep_icc": self.keep_icc}
        if self.format == "jpeg":
            out.update(quality=self.jpeg_quality, subsampling="4:4:4")
        elif self.format == "webp":
            out.update(lossless=self.webp_lossless)
            if not self.webp_lossless:
                out["quality"] = self.webp_quality
        else:
            out["compress_level"] = self.png_compress_level
        return out


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """Where :func:`export_photo` wrote things."""

    image: Path
    report: Path | None
    summary: Path | None


# --------------------------------------------------------------------------- atomic writes


def _describe_os_error(exc: OSError, path: Path) -> str:
    folder = path.parent
    code = exc.errno
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return f"cannot write {path.name}: the disk holding {folder} is full (or over quota)"
    if code == errno.EROFS:
        return f"cannot write {path.name}: {folder} is on a read-only file system"
    if code in (errno.EACCES, errno.EPERM):
        return (
            f"cannot write {path.name}: no permission to write in {folder} (read-only "
            "folder, or the file is open in another program); choose another output folder"
        )
    if code == errno.ENOENT:
        return f"cannot write {path.name}: the folder {folder} does not exist"
    return f"cannot write {path}: {exc.strerror or exc}"


def _same_file(a: Path, b: Path) -> bool:
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
        return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))
    except OSError:
        return False


def _open_temp(folder: Path, final_name: str) -> tuple[Path, int]:
    flags = (
        os.O_WRONLY
        | os.O_CREAT
        | os.O_EXCL
        | getattr(os, "O_BINARY", 0)
        | getattr(os, "O_CLOEXEC", 0)
    )
    for _ in range(100):
        tmp = folder / f".{final_name}.{secrets.token_hex(4)}{_TEMP_SUFFIX}"
        try:
            return tmp, os.open(tmp, flags, 0o666)  # mode 0o666 & ~umask, like open()
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(folder))


def _unlink_quiet(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:  # pragma: no cover - depends on the file system
        log.warning("could not remove temporary file %s: %s", path, exc)


def _fsync_folder(folder: Path) -> None:
    """Persist the rename itself (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _stage(path: Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write a complete, fsynced temporary file in ``path``'s folder; return its name.

    Raises:
        ExportError: any failure (the temporary file is removed).
    """
    try:
        tmp, fd = _open_temp(path.parent, path.name)
    except OSError as exc:
        raise ExportError(_describe_os_error(exc, path)) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        _unlink_quiet(tmp)
        raise ExportError(_describe_os_error(exc, path)) from exc
    except Exception as exc:
        _unlink_quiet(tmp)
        raise ExportError(f"cannot write {path}: {type(exc).__name__}: {exc}") from exc
    except BaseException:  # KeyboardInterrupt, SIGTERM, GeneratorExit: clean up, then propagate
        _unlink_quiet(tmp)
        raise
    return tmp


def _publish(staged: Sequence[tuple[Path, Path, bool]]) -> None:
    """Rename staged temporary files onto their final names, all or none.

    ``staged`` holds ``(temporary, final, overwrite)``. SIGINT and SIGTERM are held back
    while the renames run (:func:`jndguard.core.signals.deferred_signals`); if a rename
    fails, the files already renamed are removed again (files that replaced an existing
    file, the summary, are renamed last, so a failure never leaves them changed alone).

    Raises:
        ExportError: a destination appeared meanwhile, or a rename failed.
    """
    from jndguard.core.signals import deferred_signals

    done: list[Path] = []
    with deferred_signals():
        try:
            for tmp, final, overwrite in staged:
                if not overwrite and os.path.lexists(final):
                    raise ExportError(f"refusing to overwrite {final}: the file appeared meanwhile")
                try:
                    os.replace(tmp, final)
                except OSError as exc:
                    raise ExportError(_describe_os_error(exc, final)) from exc
                done.append(final)
        except BaseException:
            for final in done:
                _unlink_quiet(final)
            raise
    for folder in {final.parent for _, final, _ in staged}:
        _fsync_folder(folder)


def atomic_write(
    path: str | Path,
    write: Callable[[IO[bytes]], None],
    *,
    overwrite: bool = True,
    protect: Iterable[str | Path] = (),
) -> Path:
    """Write a file so that it appears complete under its final name, or not at all.

    ``write`` receives a binary file object on a temporary file in the same folder; the file
    is then flushed, fsynced and renamed onto ``path`` with :func:`os.replace`.

    Args:
        path: final file name.
        write: callable that writes the content to the given file object.
        overwrite: when False, refuse if ``path`` exists (checked again just before the
            rename).
        protect: files that must never be written (the originals); ``path`` resolving to
            any of them is refused.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ExportError: refused destination, or any failure while writing (the temporary
            file is removed; nothing appears under ``path``).
    """
    path = Path(path)
    _check_destination(path, overwrite, protect)
    tmp = _stage(path, write)
    try:
        _publish([(tmp, path, overwrite)])
    finally:
        _unlink_quiet(tmp)
    return path


def _check_destination(path: Path, overwrite: bool, protect: Iterable[str | Path]) -> None:
    for original in protect:
        if _same_file(path, Path(original)):
            raise ExportError(f"refusing to write {path}: it is the original photo")
    if not overwrite and os.path.lexists(path):
        raise ExportError(f"refusing to overwrite {path}: the file already exists")


# --------------------------------------------------------------------------- images


def as_pixels(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """Bring an image to (H, W, 3) uint8 RGB.

    Args:
        image: uint8 array (H, W, 3), or a float tensor (1, 3, H, W) / (3, H, W) in [0, 1]
            (rounded to the 8-bit grid as :func:`jndguard.core.imageio.to_uint8` does).

    Returns:
        A C-contiguous (H, W, 3) uint8 array.

    Raises:
        ValueError: any other shape or dtype.
    """
    if isinstance(image, torch.Tensor):
        if image.ndim not in (3, 4) or image.shape[-3] != 3 or not image.is_floating_point():
            raise ValueError(
                f"image tensor must be float (1, 3, H, W) or (3, H, W), got "
                f"{tuple(image.shape)} {image.dtype}"
            )
        return np.ascontiguousarray(to_uint8(image))
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"pixels must be (H, W, 3) uint8, got {arr.shape} {arr.dtype}")
    return np.ascontiguousarray(arr)


def encode_image(
    pixels: np.ndarray,
    fh: IO[bytes],
    options: ExportOptions,
    icc_profile: bytes | None = None,
) -> None:
    """Encode bare RGB pixels into ``fh`` with no metadata (ICC only when kept).

    Args:
        pixels: (H, W, 3) uint8 RGB, display orientation.
        fh: writable binary file object.
        options: format and quality settings.
        icc_profile: the source's ICC profile; written only when ``options.keep_icc``.
    """
    img = Image.fromarray(as_pixels(pixels), "RGB")
    img.info = {}  # a fresh image has none; make sure nothing can be copied along
    extra: dict[str, Any] = {}
    if options.keep_icc and icc_profile:
        extra["icc_profile"] = icc_profile
    if options.format == "png":
        img.save(fh, format="PNG", compress_level=options.png_compress_level, **extra)
    elif options.format == "jpeg":
        img.save(
            fh,
            format="JPEG",
            quality=options.jpeg_quality,
            subsampling=0,
            optimize=True,
            **extra,
        )
    else:
        img.save(
            fh,
            format="WEBP",
            quality=options.webp_quality,
            lossless=options.webp_lossless,
            method=4,
            **extra,
        )


def output_paths(
    source: str | Path | None,
    out_dir: str | Path,
    options: ExportOptions,
    *,
    stem: str | None = None,
) -> tuple[Path, Path]:
    """The first free ``(image, report)`` pair of names for a protected photo.

    ``<stem>.protected.<ext>`` and ``<stem>.protected.json``; if either exists (or is the
    source), ``<stem>.protected-2.*``, ``-3``, … .

    Args:
        source: the original file (its stem names the output), or None.
        out_dir: target folder.
        options: export options (for the suffix).
        stem: name to use instead of the source's stem (default ``"image"`` without source).

    Returns:
        ``(image_path, report_path)``, neither of which exists.

    Raises:
        ExportError: no free name among the first :data:`MAX_NUMBERED_NAMES`.
    """
    out_dir = Path(out_dir)
    base = stem or (Path(source).stem if source is not None else "image")
    for n in range(1, MAX_NUMBERED_NAMES + 1):
        name = f"{base}.{PROTECTED_TAG}" + ("" if n == 1 else f"-{n}")
        image = out_dir / (name + options.suffix)
        report = out_dir / (name + ".json")
        if os.path.lexists(image) or os.path.lexists(report):
            continue
        if source is not None and (
            _same_file(image, Path(source)) or _same_file(report, Path(source))
        ):
            continue
        return image, report
    raise ExportError(f"no free output name for {base} in {out_dir}")


def _ensure_folder(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(
            f"cannot create the output folder {out_dir}: {exc.strerror or exc}"
        ) from exc
    if not out_dir.is_dir():
        raise ExportError(f"the output folder {out_dir} is not a folder")


def export_image(
    image: np.ndarray | torch.Tensor,
    out_dir: str | Path,
    *,
    source: str | Path | None = None,
    options: ExportOptions | None = None,
    icc_profile: bytes | None = None,
    path: str | Path | None = None,
) -> Path:
    """Write one protected image atomically under a fresh, non-colliding name.

    Args:
        image: (H, W, 3) uint8 pixels or a float (1, 3, H, W) tensor in [0, 1].
        out_dir: target folder (created if missing).
        source: the original photo; names the output and is never written.
        options: encoding options (default PNG).
        icc_profile: the source's ICC profile, embedded only with ``options.keep_icc``.
        path: explicit destination instead of the automatic name (must not exist).

    Returns:
        The path written.

    Raises:
        ExportError: the destination is the original or exists, or writing failed.
        ValueError: bad pixels.
    """
    options = options or ExportOptions()
    pixels = as_pixels(image)
    out_dir = Path(out_dir)
    _ensure_folder(out_dir)
    dest = Path(path) if path is not None else output_paths(source, out_dir, options)[0]
    protect = [source] if source is not None else []
    atomic_write(
        dest,
        lambda fh: encode_image(pixels, fh, options, icc_profile),
        overwrite=False,
        protect=protect,
    )
    log.info("exported %s", dest)
    return dest


# --------------------------------------------------------------------------- reports


def _plain(obj: Any) -> Any:
    """Tensors, arrays, numpy scalars, paths and dataclasses → plain Python values."""
    if isinstance(obj, (torch.Tensor, np.ndarray, np.generic)):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    return obj


def _json_ready(obj: Any) -> Any:
    obj = _plain(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def to_json_text(obj: Any) -> str:
    """Strict JSON (NaN and ±inf become ``null``), indented, UTF-8 friendly, newline-ended.

    Raises:
        TypeError: an object that has no JSON form.
    """
    return json.dumps(_json_ready(obj), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_json(obj: Any, path: str | Path) -> Path:
    """Write ``obj`` as JSON atomically (replacing an existing file of that name).

    Raises:
        ExportError: not serialisable, or the write failed.
    """
    try:
        data = to_json_text(obj).encode("utf-8")
    except TypeError as exc:
        raise ExportError(f"cannot write {path}: report is not JSON serialisable ({exc})") from exc
    return atomic_write(path, lambda fh: fh.write(data))


def flatten(obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings into dotted keys, for CSV columns.

    Nested mappings and lists of mappings recurse (list items keyed by index); other lists
    become JSON text; empty mappings vanish.

    Args:
        obj: the mapping to flatten.
        prefix: key prefix (without the trailing dot).

    Returns:
        ``{"a.b.c": scalar, ...}`` in first-seen order.
    """
    out: dict[str, Any] = {}

    def rec(value: Any, key: str) -> None:
        value = _plain(value)
        if isinstance(value, Mapping):
            for k, v in value.items():
                rec(v, f"{key}.{k}" if key else str(k))
        elif isinstance(value, (list, tuple)) and any(
            isinstance(_plain(v), Mapping) for v in value
        ):
            for i, v in enumerate(value):
                rec(v, f"{key}.{i}" if key else str(i))
        elif isinstance(value, (list, tuple)):
            out[key] = json.dumps(_json_ready(value), ensure_ascii=False)
        else:
            out[key] = value

    rec(obj, prefix)
    return out


def summary_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One flat row per face of a photo report (one row when it has no faces).

    Photo-level keys keep their names (``source``, ``metrics.psnr``, …); the fields of each
    entry of ``report["faces"]`` get a ``face.`` prefix (``face.index``,
    ``face.verdicts.0.cosine``, …).

    Args:
        report: a photo report as written by :func:`export_photo`.

    Returns:
        Flattened rows.
    """
    ver = report.get("verification")
    bulky = ("matrix", "summary", "faces", "axes", "recognisers", "unmatched")
    photo = flatten({k: v for k, v in report.items() if k not in ("faces", "verification")})
    if isinstance(ver, Mapping):  # the threat matrix: its verdicts here, its cells in the JSON
        photo.update(flatten({k: v for k, v in ver.items() if k not in bulky}, "verification"))
        photo["verification.cells"] = len(ver.get("matrix") or [])
    faces = report.get("faces") or []
    if not faces:
        return [photo]
    rows = []
    for i, face in enumerate(faces):
        face = _plain(face)
        row = dict(photo)
        row["face.index"] = i
        row.update(flatten(face, "face"))
        if isinstance(ver, Mapping):
            for s in ver.get("summary") or []:
                if s.get("face") == i:
                    w = s["worst"]
                    pre = f"face.matrix.{s['recogniser']}"
                    row[f"{pre}.protected"] = s["protected"]
                    row[f"{pre}.share"] = s["share"]
                    row[f"{pre}.worst_cell"] = " ".join(
                        str(w[k]) for k in ("detector", "crop", "resize", "encoding", "reference"))
                    row[f"{pre}.worst_similarity"] = w.get("similarity")
        rows.append(row)
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # shortest round-trip; "inf"/"nan" for non-finite
    return str(value)


def _read_summary(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            rows = [dict(r) for r in reader]
            header = list(reader.fieldnames or [])
    except FileNotFoundError:
        return [], []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ExportError(
            f"cannot append to {path}: it is not a readable summary ({exc}); move it away"
        ) from exc
    if any(None in r for r in rows):
        raise ExportError(f"cannot append to {path}: a row has more cells than the header")
    return header, rows


def append_summary(
    out_dir: str | Path, rows: Sequence[Mapping[str, Any]], *, name: str = SUMMARY_NAME
) -> Path:
    """Append flat rows to the batch summary CSV (atomic rewrite, union of columns).

    Args:
        out_dir: folder of the summary.
        rows: rows from :func:`summary_rows` (nested values are flattened here too).
        name: file name of the summary.

    Returns:
        The summary path.

    Raises:
        ExportError: unreadable existing summary or failed write.
    """
    path = Path(out_dir) / name
    data = _summary_bytes(path, rows)
    return atomic_write(path, lambda fh: fh.write(data))


def _summary_bytes(path: Path, rows: Sequence[Mapping[str, Any]]) -> bytes:
    """The summary at ``path`` with ``rows`` appended, as the bytes to write."""
    header, old = _read_summary(path)
    new = [{k: _cell(v) for k, v in flatten(r).items()} for r in rows]
    seen = set(header)
    for r in new:
        for k in r:
            if k not in seen:
                seen.add(k)
                header.append(k)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(old)
    writer.writerows(new)
    return buf.getvalue().encode("utf-8-sig")


def export_photo(
    image: np.ndarray | torch.Tensor,
    out_dir: str | Path,
    *,
    source: str | Path | None = None,
    report: Mapping[str, Any] | None = None,
    options: ExportOptions | None = None,
    icc_profile: bytes | None = None,
    summary: bool = True,
    verify: Callable[[Path], Mapping[str, Any]] | None = None,
) -> ExportResult:
    """Export one protected photo with its JSON report and its rows in the batch summary.

    The report written is ``{"schema", "source" (file name only), "output", "export",
    "created", "jndguard_version", **report}``; ``report["faces"]`` (a list of dicts:
    method, parameters, seed, model, device, times, metrics, verdicts, …) gives one summary
    row per face. The three files appear together or not at all (module docstring): an
    error, a full disk, Ctrl-C or SIGTERM (with :func:`jndguard.core.signals.terminate_as_interrupt`)
    at any point leaves nothing of this photo.

    Args:
        image: (H, W, 3) uint8 pixels or a float (1, 3, H, W) tensor in [0, 1].
        out_dir: target folder (created if missing; may be the input folder).
        source: the original photo (names the output; never written).
        report: caller's report fields (JSON-ready values, tensors and dataclasses allowed).
        options: encoding options (default PNG).
        icc_profile: the source's ICC profile, embedded only with ``options.keep_icc``.
        summary: also append to ``jndguard-summary.csv`` in ``out_dir``.
        verify: called with the path of the staged (complete, fsynced) image before the
            report is written; what it returns is stored under ``"verification"``
            (verification runs on the real file's bytes).

    Returns:
        The paths written.

    Raises:
        ExportError: refused destination or failed write (nothing of this photo is left).
    """
    from jndguard import __version__

    options = options or ExportOptions()
    pixels = as_pixels(image)
    out_dir = Path(out_dir)
    _ensure_folder(out_dir)
    image_path, report_path = output_paths(source, out_dir, options)
    full: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "source": None if source is None else Path(source).name,
        "output": image_path.name,
        "export": options.as_dict(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "jndguard_version": __version__,
    }
    full.update(report or {})
    try:
        to_json_text(full)
    except TypeError as exc:
        raise ExportError(f"cannot write the report of {image_path.name}: {exc}") from exc

    protect = [source] if source is not None else []
    _check_destination(image_path, False, protect)
    _check_destination(report_path, False, protect)
    staged: list[tuple[Path, Path, bool]] = []
    try:
        image_tmp = _stage(image_path, lambda fh: encode_image(pixels, fh, options, icc_profile))
        staged.append((image_tmp, image_path, False))
        if verify is not None:
            verification = verify(image_tmp)  # the very bytes that will be published
            if isinstance(verification, Mapping):  # name the published file, not the staged one
                verification = {k: str(image_path) if v == str(image_tmp) else v
                                for k, v in verification.items()}
            full["verification"] = verification
        try:
            json_bytes = to_json_text(full).encode("utf-8")
        except TypeError as exc:
            raise ExportError(f"cannot write the report of {image_path.name}: {exc}") from exc
        staged.append((_stage(report_path, lambda fh: fh.write(json_bytes)), report_path, False))
        summary_path = None
        if summary:
            summary_path = out_dir / SUMMARY_NAME
            csv_bytes = _summary_bytes(summary_path, summary_rows(full))
            staged.append((_stage(summary_path, lambda fh: fh.write(csv_bytes)), summary_path, True))
        _publish(staged)
    finally:
        for tmp, _, _ in staged:
            _unlink_quiet(tmp)
    log.info("exported %s", image_path)
    return ExportResult(image_path, report_path, summary_path)
