"""The memory guard: a photo whose protection would not fit is refused with what to do, first
from its size (before decoding), then from its face regions (after detection)."""

from __future__ import annotations

import pytest

from jndguard.core.memory import (
    KEPT_BYTES_PER_PIXEL,
    LOSSLESS_REGION_BYTES_PER_PIXEL,
    PHOTO_BYTES_PER_PIXEL,
    PROTECT_BASE_BYTES,
    REGION_BYTES_PER_PIXEL,
    MemoryBudgetError,
    available_memory,
    check_protect_memory,
    check_region_memory,
    protect_memory_needed,
)


def test_guard_refuses_with_the_size_that_fits():
    need = protect_memory_needed(6000, 4000)
    assert need == int(PROTECT_BASE_BYTES + PHOTO_BYTES_PER_PIXEL * 24e6)
    check_protect_memory(6000, 4000, "big.jpg", available=need)  # fits exactly
    with pytest.raises(MemoryBudgetError) as err:
        check_protect_memory(6000, 4000, "big.jpg",
                             available=PROTECT_BASE_BYTES + int(PHOTO_BYTES_PER_PIXEL * 6e6))
    msg = str(err.value)
    assert "big.jpg" in msg and "6000×4000" in msg and "downscale it to at most 3000×2000" in msg


def test_face_regions_count_the_largest_once_and_keep_the_others():
    regions = [(0, 0, 1000, 1000), (2000, 0, 2500, 500)]  # 1 MP and 0.25 MP
    need = protect_memory_needed(6000, 4000, regions)
    assert need == int(PROTECT_BASE_BYTES + PHOTO_BYTES_PER_PIXEL * 24e6 + REGION_BYTES_PER_PIXEL * 1e6
                       + KEPT_BYTES_PER_PIXEL * 0.25e6)
    check_region_memory(6000, 4000, regions, "group.jpg", available=need)
    with pytest.raises(MemoryBudgetError) as err:
        check_region_memory(6000, 4000, regions, "group.jpg", available=need - 1)
    msg = str(err.value)
    assert "group.jpg" in msg and "face region of 1.0 MP" in msg and "downscale it to at most" in msg
    check_region_memory(6000, 4000, [], "none.jpg", available=0)  # no face: nothing to refuse
    lossless = protect_memory_needed(6000, 4000, regions, LOSSLESS_REGION_BYTES_PER_PIXEL)
    assert lossless < need  # measured lower per region pixel
    check_region_memory(6000, 4000, regions, "group.jpg", available=lossless,
                        region_bytes=LOSSLESS_REGION_BYTES_PER_PIXEL)


def test_available_memory_is_measured():
    avail = available_memory()
    assert avail is None or avail > 0


def test_a_region_over_the_working_cap_counts_the_cap_and_its_full_resolution_copies():
    from jndguard.core.memory import SCALED_BYTES_PER_PIXEL

    regions = [(0, 0, 4000, 6000)]  # a face filling a 24 MP photo
    need = protect_memory_needed(4000, 6000, regions, work_max_pixels=1_000_000)
    assert need == int(PROTECT_BASE_BYTES + PHOTO_BYTES_PER_PIXEL * 24e6 + REGION_BYTES_PER_PIXEL * 1e6
                       + SCALED_BYTES_PER_PIXEL * 24e6)
    assert need < 4 * 2**30 - 0.86 * 2**30  # the 4 GB budget, the models (0.86 GiB) included
    assert protect_memory_needed(4000, 6000, regions) > 20 * 2**30  # at full resolution: ~25 GB
    small = [(0, 0, 500, 500)]  # under the cap: unchanged
    assert protect_memory_needed(4000, 6000, small, work_max_pixels=1_000_000) == protect_memory_needed(
        4000, 6000, small)
