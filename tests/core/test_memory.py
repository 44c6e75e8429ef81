"""The memory guard: a photo whose protection would not fit is refused with what to do."""

from __future__ import annotations

import pytest

from jndguard.core.memory import (
    PROTECT_BYTES_PER_PIXEL,
    MemoryBudgetError,
    available_memory,
    check_protect_memory,
    protect_memory_needed,
)


def test_guard_refuses_with_the_size_that_fits():
    need = protect_memory_needed(6000, 4000)
    assert need == int(PROTECT_BYTES_PER_PIXEL * 24e6)
    check_protect_memory(6000, 4000, "big.jpg", available=need)  # fits exactly
    with pytest.raises(MemoryBudgetError) as err:
        check_protect_memory(6000, 4000, "big.jpg", available=need // 4)
    msg = str(err.value)
    assert "big.jpg" in msg and "6000×4000" in msg and "downscale it to at most 3000×2000" in msg


def test_available_memory_is_measured():
    avail = available_memory()
    assert avail is None or avail > 0
