"""The memory model of protecting one photo, and the guard that refuses a photo too large for
the memory this machine has available.

``jndguard bench memory`` measures the peak resident memory of protecting a portrait at
several sizes (each stage in a fresh process) and fits ``peak = base + bytes/pixel × pixels``.
The guard needs the part not yet paid when it runs (the models are loaded by then): a photo is
refused before any work when ``PROTECT_BASE_BYTES + PROTECT_BYTES_PER_PIXEL × pixels`` is more
than the memory available now. The loader's own limit
(:data:`jndguard.core.imageio.MAX_PIXELS`) only guards the decoding.
"""

from __future__ import annotations

import logging
import os
import sys

from jndguard.errors import JNDGuardError

logger = logging.getLogger(__name__)

# `jndguard bench memory --sizes 1,6 --no-verify` (CPU, default settings: HVS-JND post mode),
# whole-run peak RSS: 2.59 GiB at 1.0 MP and 7.36 GiB at 6.0 MP → 1.64 GiB + 1020 bytes/pixel,
# of which 0.92 GiB are the models loaded before the check runs.
PROTECT_BYTES_PER_PIXEL = 1020.0
PROTECT_BASE_BYTES = int((1.64 - 0.92) * 2**30)  # recognisers and buffers loaded after the check


class MemoryBudgetError(JNDGuardError):
    """A photo would need more memory than is available to protect it."""


def available_memory() -> int | None:
    """Bytes of memory available to this process now, or None when unknown.

    Linux: ``MemAvailable`` (and the cgroup limit, when lower); Windows:
    ``GlobalMemoryStatusEx``; elsewhere the physical memory.
    """
    avail: int | None = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if avail is not None:
        for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
            try:
                with open(path) as fh:
                    limit = fh.read().strip()
                if limit.isdigit() and int(limit) < avail:
                    usage_path = path.replace("memory.max", "memory.current").replace(
                        "limit_in_bytes", "usage_in_bytes")
                    with open(usage_path) as fh:
                        avail = min(avail, max(0, int(limit) - int(fh.read().strip())))
            except (OSError, ValueError):
                continue
        return avail
    if sys.platform == "win32":  # pragma: no cover - Windows only
        import ctypes

        class _Status(ctypes.Structure):
            _fields_ = [("dwLength", ctypes.c_ulong), ("dwMemoryLoad", ctypes.c_ulong),
                        ("ullTotalPhys", ctypes.c_ulonglong), ("ullAvailPhys", ctypes.c_ulonglong),
                        ("ullTotalPageFile", ctypes.c_ulonglong), ("ullAvailPageFile", ctypes.c_ulonglong),
                        ("ullTotalVirtual", ctypes.c_ulonglong), ("ullAvailVirtual", ctypes.c_ulonglong),
                        ("ullAvailExtendedVirtual", ctypes.c_ulonglong)]

        st = _Status()
        st.dwLength = ctypes.sizeof(_Status)
        if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(st)):
            return int(st.ullAvailPhys)
        return None
    try:  # pragma: no cover - macOS and other POSIX systems: total physical memory
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def protect_memory_needed(width: int, height: int) -> int:
    """Bytes that protecting a ``width`` × ``height`` photo adds to the loaded models."""
    return int(PROTECT_BASE_BYTES + PROTECT_BYTES_PER_PIXEL * width * height)


def check_protect_memory(width: int, height: int, label: str, available: int | None = None) -> None:
    """Refuse a photo whose protection would not fit in the available memory.

    Raises:
        MemoryBudgetError: the message gives the need, what is available, and the largest
            size of this photo that fits.
    """
    available = available_memory() if available is None else available
    if available is None:
        return
    need = protect_memory_needed(width, height)
    if need <= available:
        return
    fit = (max(0, available - PROTECT_BASE_BYTES) / PROTECT_BYTES_PER_PIXEL / (width * height)) ** 0.5
    w, h = max(1, int(width * fit)), max(1, int(height * fit))
    raise MemoryBudgetError(
        f"{label}: {width}×{height} ({width * height / 1e6:.0f} MP) needs about {need / 2**30:.1f} GB "
        f"to protect, {available / 2**30:.1f} GB is available; downscale it to at most {w}×{h} "
        "(or close other programs) and try again")
