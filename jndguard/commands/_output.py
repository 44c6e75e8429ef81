"""Shared CLI output helpers: one JSON document on stdout, progress bars on stderr."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if callable(getattr(obj, "to_dict", None)):
        return obj.to_dict()
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _clean(obj: Any) -> Any:
    """Replace NaN/inf (not valid JSON) with None, recursively."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def to_json(obj: Any) -> str:
    return json.dumps(_clean(obj), default=_default, indent=2, allow_nan=False)


def emit_json(obj: Any) -> None:
    """Print exactly one JSON document to stdout."""
    sys.stdout.write(to_json(obj) + "\n")
    sys.stdout.flush()


@contextmanager
def progress_bar(total: int | None, desc: str, unit: str = "it", initial: int = 0) -> Iterator[Any]:
    """A tqdm progress bar on stderr (silent when stderr is not a terminal and quiet).

    ``initial``: work already done (a resumed run), left out of the rate and the ETA.
    """
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
               leave=False, disable=None, initial=initial)
    try:
        yield bar
    finally:
        bar.close()


def print_table(headers: list[str], rows: list[list[Any]], file=None) -> None:
    """Print an aligned plain-text table (benchmarks, summaries)."""
    file = file or sys.stdout
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, r in enumerate(cells):
        print("  ".join(c.rjust(w) if n else c.ljust(w) for c, w in zip(r, widths)), file=file)
        if n == 0:
            print("  ".join("-" * w for w in widths), file=file)


def _fmt(c: Any) -> str:
    if isinstance(c, float):
        return f"{c:.4g}" if abs(c) < 1e4 else f"{c:.0f}"
    return str(c)
