"""Long work is a generator of progress steps that returns a result (docs/design.md §2). One helper
drives such a generator to the end, for callers that do not run it in a GUI worker."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypeVar

R = TypeVar("R")


def drive(gen: Generator[Any, Any, R], on_step: Callable[[Any], None] | None = None) -> R:
    """Run ``gen`` to the end, passing every yielded step to ``on_step``; return its value."""
    while True:
        try:
            step = next(gen)
        except StopIteration as done:
            return done.value
        if on_step is not None:
            on_step(step)


def relay(gen: Generator[Any, Any, R], convert: Callable[[Any], Any]) -> Generator[Any, None, R]:
    """Re-yield ``convert(step)`` for every step of ``gen``; return its value (``yield from``)."""
    while True:
        try:
            step = next(gen)
        except StopIteration as done:
            return done.value
        yield convert(step)
