"""Interruptions: SIGTERM takes the same rollback path as Ctrl-C, and a commit is never cut.

- :func:`terminate_as_interrupt` turns SIGTERM into :class:`Terminated`, a
  ``KeyboardInterrupt``, so every ``except KeyboardInterrupt`` / ``except BaseException``
  clean-up (temporary files, half-exported photos) runs for ``kill PID`` as it does for
  Ctrl-C. Python's default for SIGTERM is to die at once, leaving whatever was written.
- :func:`deferred_signals` holds SIGINT and SIGTERM back for the few renames that publish a
  photo's files, so an interruption lands before them (nothing appears) or after them
  (everything appears), never between.

Signal handlers can only be installed from the main thread; elsewhere (the GUI's worker
threads) both helpers do nothing, and the process that owns the main thread decides.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_HELD = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM; raised where Python would raise KeyboardInterrupt."""


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _raise_terminated(signum, frame) -> None:
    raise Terminated(f"terminated by signal {signum}")


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While active, SIGTERM raises :class:`Terminated` (the previous handler comes back)."""
    if not _in_main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then deliver the first one received.

    Use only around short, non-blocking work (renames): the user cannot interrupt it.
    """
    if not _in_main_thread():
        yield
        return
    received: list[int] = []
    old = {s: signal.getsignal(s) for s in _HELD}

    def hold(signum, frame):
        received.append(signum)

    for s in _HELD:
        signal.signal(s, hold)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if received:
        signum = received[0]
        handler = old[signum]
        if callable(handler):
            handler(signum, None)
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt
        elif handler == signal.SIG_DFL:
            signal.raise_signal(signum)
