"""Atomic text files: written to a temporary file in the same folder, fsynced, then renamed
onto the final name, so a crash leaves the old file or the new one — never half of one.

Manifests, study state, tables and reports use :func:`atomic_write_text`; exported photos use
:func:`jndguard.core.export.atomic_write`, which adds the export rules (never the original,
optional no-overwrite) and reports failures as ``ExportError``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically; create the folder.

    Raises:
        OSError: the folder cannot be created or written (nothing appears under ``path``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file a normal mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
