"""The memory model of protecting one photo, and the guard that refuses a photo too large for
the memory this machine has available.

Protection works on face regions (docs/design.md §11): apart from a few 8-bit copies of the
photo, its memory follows the regions the optimiser reads, not the photo's megapixels.
``jndguard bench memory`` measures the peak resident memory of protecting photos of several
sizes with small and large faces (each in a fresh process) and fits
``peak = base + photo_bytes × photo pixels + region_bytes × largest region's pixels``. The
guard needs the part not yet paid when it runs (the models are loaded by then):

- before a photo is decoded, from its header: ``PROTECT_BASE_BYTES + PHOTO_BYTES_PER_PIXEL ×
  pixels`` (the regions are not known yet);
- after the faces are found: the same plus ``REGION_BYTES_PER_PIXEL`` × the largest face
  region's pixels (the optimisation of one face at a time) plus ``KEPT_BYTES_PER_PIXEL`` × the
  other regions' pixels (each face's region of the photo, of J and its perturbation stay in
  memory between rounds: three float32 RGB maps, by construction).

The loader's own limit (:data:`jndguard.core.imageio.MAX_PIXELS`) only guards the decoding.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from jndguard.errors import JNDGuardError

logger = logging.getLogger(__name__)

# `jndguard bench memory --mode post --layouts scene,portrait --no-verify` (CPU, default
# settings: HVS-JND post mode with its perceptual guard; README "Memory"): whole-run peak RSS
# of scene 24 MP (0.70 MP face region) and portrait 1 and 6 MP (the region is the whole photo),
# fitted by non-negative least squares: 1.55 GiB + 0 bytes/photo pixel + 1067 bytes/region
# pixel (residuals −0.09 … +0.10 GiB; the guard adds the largest shortfall, 0.10 GiB, to the
# base). Before the perceptual guard, six runs (scene 1–24 MP, portrait 1 and 6 MP) gave
# 1.40 GiB + 0 + 1075 bytes/region pixel. Lossless mode (scene 1–24 MP, portrait 1–12 MP):
# 1.07 GiB + 5 bytes/photo pixel + 592 bytes/region pixel; the guard keeps post mode's base
# for it, and post mode's figures for every method not measured. The photo term is below the
# measurements' noise, so the guard counts what is in memory by construction while J's edge map
# is computed
# (docs/design.md §11): the photo, its protected copy, four int16 planes and three uint8 maps,
# 18 bytes per pixel.
#
# Post mode optimises a face whose context region is over
# :data:`~jndguard.core.attacks.post_scale.WORK_MAX_PIXELS` at a working scale (post_scale), so
# its region term counts at most that many pixels; the full-resolution region then costs
# ``SCALED_BYTES_PER_PIXEL`` by construction (J of the region in float32, the lift's 8-bit
# clip, the metrics' float copies of the region: 12 + 3 + 24 bytes). Measured with it (same
# bench, portrait 1/6/24 MP and scene 1/6/24 MP): portrait 24 MP 3.23 GiB (the guard: 3.96),
# 6 MP 2.83 (3.00), 1 MP 2.71 (2.71, hence the base's margin of 0.15 GiB); scene 24 MP 2.13.
PROTECT_BASE_BYTES = int((1.55 + 0.15 - 0.86) * 2**30)  # less the models (0.86 GiB), loaded first
PHOTO_BYTES_PER_PIXEL = 18.0
REGION_BYTES_PER_PIXEL = 1067.0
LOSSLESS_REGION_BYTES_PER_PIXEL = 592.0
KEPT_BYTES_PER_PIXEL = 36.0  # region of the photo, of J and the perturbation: 3 × 3 × 4 bytes
SCALED_BYTES_PER_PIXEL = 39.0


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


def protect_memory_needed(width: int, height: int, regions: Sequence[tuple[int, int, int, int]] = (),
                          region_bytes: float = REGION_BYTES_PER_PIXEL,
                          work_max_pixels: int | None = None) -> int:
    """Bytes that protecting a ``width`` × ``height`` photo adds to the loaded models; with
    its face ``regions`` (``(x0, y0, x1, y1)``, what the optimiser reads), the optimisation too
    (``region_bytes`` per pixel of the largest: :data:`LOSSLESS_REGION_BYTES_PER_PIXEL` for
    lossless mode). ``work_max_pixels``: the most pixels of a region the optimiser works on
    (post mode's working scale); a larger region adds :data:`SCALED_BYTES_PER_PIXEL` per
    full-resolution pixel instead."""
    areas = sorted(((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in regions), reverse=True)
    if not areas:
        return int(PROTECT_BASE_BYTES + PHOTO_BYTES_PER_PIXEL * width * height)
    largest = areas[0]
    if work_max_pixels is not None and largest > work_max_pixels:
        optimise = region_bytes * work_max_pixels + SCALED_BYTES_PER_PIXEL * largest
    else:
        optimise = region_bytes * largest
    return int(PROTECT_BASE_BYTES + PHOTO_BYTES_PER_PIXEL * width * height + optimise
               + KEPT_BYTES_PER_PIXEL * sum(areas[1:]))


def _refuse(label: str, what: str, width: int, height: int, need: int, available: int,
            regions: Sequence = (), region_bytes: float = REGION_BYTES_PER_PIXEL,
            work_max_pixels: int | None = None) -> MemoryBudgetError:
    scaled = max(1, protect_memory_needed(width, height, regions, region_bytes, work_max_pixels)
                 - PROTECT_BASE_BYTES)
    # every term scales with area (but a capped working region: then the size is conservative)
    fit = (max(0, available - PROTECT_BASE_BYTES) / scaled) ** 0.5
    w, h = max(1, int(width * fit)), max(1, int(height * fit))
    return MemoryBudgetError(
        f"{label}: {what} needs about {need / 2**30:.1f} GB to protect, {available / 2**30:.1f} GB "
        f"is available; downscale it to at most {w}×{h} (or close other programs) and try again")


def check_protect_memory(width: int, height: int, label: str, available: int | None = None) -> None:
    """Refuse a photo whose protection would not fit in the available memory, from its size
    alone (before decoding; its face regions are checked by :func:`check_region_memory`).

    Raises:
        MemoryBudgetError: the message gives the need, what is available, and the largest
            size of this photo that fits.
    """
    available = available_memory() if available is None else available
    if available is None:
        return
    need = protect_memory_needed(width, height)
    if need > available:
        raise _refuse(label, f"{width}×{height} ({width * height / 1e6:.0f} MP)", width, height, need,
                      available)


def check_region_memory(width: int, height: int, regions: Sequence[tuple[int, int, int, int]], label: str,
                        available: int | None = None, region_bytes: float = REGION_BYTES_PER_PIXEL,
                        work_max_pixels: int | None = None) -> None:
    """Refuse a photo whose face regions would not fit in the available memory (after the
    faces are found, before any region is computed; ``region_bytes`` and ``work_max_pixels``
    as :func:`protect_memory_needed`).

    Raises:
        MemoryBudgetError: as :func:`check_protect_memory`, naming the face regions.
    """
    available = available_memory() if available is None else available
    if available is None or not regions:
        return
    need = protect_memory_needed(width, height, regions, region_bytes, work_max_pixels)
    if need > available:
        px = max((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in regions)
        raise _refuse(label, f"{width}×{height} with a face region of {px / 1e6:.1f} MP", width, height,
                      need, available, regions, region_bytes, work_max_pixels)
