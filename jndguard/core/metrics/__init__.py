"""Quality and protection metrics (docs/design.md §7).

- :mod:`.quality`: PSNR and SSIM with pinned definitions, MS-SSIM, FSIM, GMSD, HaarPSI and
  VIF (the last five from ``piq``).
- :mod:`.protection`: figures on the 8-bit change (over-JND fraction, per-channel energy,
  maximum change, changed region).
- :mod:`.report`: :func:`quality_report`, all of the above for one photo as a plain dict;
  :func:`photo_report` the same at the cost of the changed window, :func:`region_report` a face's.
"""

from jndguard.core.metrics.protection import (
    changed_region,
    channel_energy,
    level_change,
    max_abs_change,
    over_jnd,
)
from jndguard.core.metrics.quality import (
    MIN_SIDE,
    fsim,
    gmsd,
    haarpsi,
    ms_ssim,
    psnr,
    ssim,
    ssim_map,
    vif,
)
from jndguard.core.metrics.report import (
    METRICS_VERSION,
    change_windows,
    photo_report,
    photo_report_windows,
    quality_report,
    region_box,
    region_report,
)

__all__ = [
    "METRICS_VERSION",
    "MIN_SIDE",
    "change_windows",
    "changed_region",
    "channel_energy",
    "fsim",
    "gmsd",
    "haarpsi",
    "level_change",
    "max_abs_change",
    "ms_ssim",
    "over_jnd",
    "photo_report",
    "photo_report_windows",
    "psnr",
    "quality_report",
    "region_box",
    "region_report",
    "ssim",
    "ssim_map",
    "vif",
]
