"""Checks of the command line made before any work starts: every bad option, input or output
folder is refused at once with one line that names it and says what to do (exit status 2).

Kept apart from the parsers so that the same checks hold however the options are declared.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import tempfile
from pathlib import Path

from jndguard.errors import UsageError


def _finite(name: str, value: float | None, low: float | None = None, high: float | None = None,
            low_open: bool = False) -> None:
    if value is None:
        return
    if not math.isfinite(value):
        raise UsageError(f"{name} {value}: must be a finite number")
    if low is not None and (value <= low if low_open else value < low):
        raise UsageError(f"{name} {value:g}: must be {'>' if low_open else '≥'} {low:g}")
    if high is not None and value > high:
        raise UsageError(f"{name} {value:g}: must be ≤ {high:g}")


def check_device(name: str) -> None:
    """``--device``: refuse a device this machine does not have."""
    from jndguard.core.device import resolve_device

    resolve_device(name)  # raises UsageError naming the option


def check_output_folder(folder: Path) -> None:
    """``-o``: an existing folder we can write in, or one we can create.

    A missing folder is created here (and removed again if it cannot be written), so a
    read-only parent, a regular file in the way, or a full disk are found before the work.
    """
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"-o {folder}: this is a file, not a folder; choose a folder for the results")
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:  # a file somewhere in the path
        raise UsageError(f"-o {folder}: part of this path is a file, not a folder") from exc
    except OSError as exc:
        raise UsageError(f"-o {folder}: cannot create this folder ({exc.strerror or exc}); "
                         "choose another output folder") from exc
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".jndguard-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise UsageError(f"-o {folder}: cannot write in this folder ({exc.strerror or exc}); "
                         "choose another output folder") from exc


def check_inputs(paths: list[Path]) -> None:
    """Every input exists (a file or a folder)."""
    for p in paths:
        if not p.exists():
            raise UsageError(f"{p}: no such file or folder")


def validate_protect(args: argparse.Namespace) -> None:
    """All checks of ``jndguard protect`` (options, inputs, output folder); raises UsageError."""
    if not 1 <= args.quality <= 100:
        raise UsageError(f"--quality {args.quality}: must be an integer from 1 to 100")
    if args.iterations < 1:
        raise UsageError(f"--iterations {args.iterations}: must be at least 1")
    _finite("--margin", args.margin, 0.0)
    _finite("--jnd-strength", args.jnd_strength, 0.0, low_open=True)
    _finite("--safety-margin", args.safety_margin, 0.0, 2.0)
    _finite("--delta", args.delta)
    if getattr(args, "budget", None) is not None:
        _finite("--budget", args.budget, 0.0, 1.0, low_open=True)
    for name, vals in (("--beta", args.beta), ("--m", args.m)):
        for v in vals or ():
            _finite(name, v, 0.0)
    if args.seed < 0:
        raise UsageError(f"--seed {args.seed}: must be ≥ 0")
    goal = getattr(args, "goal", None) or getattr(args, "mode", None)
    if goal == "impersonate" and not args.target:
        raise UsageError("--goal impersonate needs --target NAME (an identity of the gallery, "
                         "e.g. --target madonna)")
    if args.target and goal != "impersonate":
        raise UsageError(f"--target {args.target} is only used with --goal impersonate")
    if args.method == "hvs-jnd":
        from jndguard.core.losses.hvs_jnd import ABLATIONS

        if args.variant not in ABLATIONS:
            raise UsageError(f"--variant {args.variant}: choose from {', '.join(ABLATIONS)}")
    check_device(args.device)
    check_inputs(args.photos)
    check_output_folder(args.output)
