"""``jndguard --help``, ``COMMAND --help`` and argument errors import no heavy library.

Each case runs in a fresh interpreter (the test process has long imported torch) and reports
which of the heavy modules ended up in ``sys.modules``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jndguard.cli import COMMAND_MODULES

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "torchvision", "facenet_pytorch", "piq", "kornia", "PySide6", "cv2", "dlib")

PROBE = """
import contextlib, io, json, sys
from jndguard.cli import main
out = io.StringIO()
code = None
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
print(json.dumps({"code": code, "text": out.getvalue(),
                  "heavy": sorted(m for m in HEAVY if m in sys.modules)}))
"""


def _probe(*argv: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    code = f"HEAVY = {HEAVY!r}\n" + PROBE
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_top_level_help_imports_nothing_heavy():
    got = _probe("--help")
    assert got["code"] == 0 and "protect" in got["text"]
    assert got["heavy"] == []


@pytest.mark.parametrize("command", ["protect", "detect", "jnd", "dmvjnd", "verify", "compare"])
def test_command_help_imports_nothing_heavy(command):
    got = _probe(command, "--help")
    assert got["code"] == 0 and command in got["text"]
    assert got["heavy"] == []


def test_every_command_parser_is_light():
    """All subcommands are registered by ``--help``; their parsers must not import torch."""
    modules = [m for m in COMMAND_MODULES if (ROOT / "jndguard" / "commands" / f"{m}.py").is_file()]
    got = _probe("--help")
    for m in modules:
        assert m in got["text"]
    assert got["heavy"] == []


def test_argument_error_imports_nothing_heavy():
    got = _probe("protect", "photo.jpg", "--iterations", "many")
    assert got["code"] == 2 and "invalid int value" in got["text"]
    assert got["heavy"] == []


def _bench_targets() -> list[str]:
    from jndguard.commands.bench import BENCHMARKS

    return list(BENCHMARKS)


@pytest.mark.parametrize("target", _bench_targets())
def test_bench_target_help_imports_nothing_heavy(target):
    """``jndguard bench TARGET --help`` imports the target's module for its options, never torch."""
    got = _probe("bench", target, "--help")
    assert got["code"] == 0 and f"jndguard bench {target}" in got["text"]
    assert got["heavy"] == []
