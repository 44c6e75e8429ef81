"""Start-up time of the command line: ``jndguard --help`` next to ``python -c "import torch"``.

``--help``, ``COMMAND --help``, ``bench TARGET --help`` and argument errors import no torch
(the parsers read their choices and defaults from torch-free modules,
:mod:`jndguard.core.defaults` and :mod:`jndguard.core.methods`; the benchmarks import torch
where they use it); this measures what that buys. Each command runs in a fresh
interpreter, alternating, several times; the table gives the median wall time of each and
its ratio to ``import torch`` measured in the same run. Target: ``jndguard --help`` ≤ 0.3×.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from jndguard.commands._output import emit_json, print_table

TARGET_RATIO = 0.3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeat", type=int, default=5, help="runs of each command (default 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def commands() -> dict[str, list[str]]:
    py = sys.executable
    return {
        "import torch": [py, "-c", "import torch"],
        "jndguard --help": [py, "-m", "jndguard", "--help"],
        "jndguard protect --help": [py, "-m", "jndguard", "protect", "--help"],
        "jndguard protect (argument error)": [py, "-m", "jndguard", "protect"],
        "jndguard bench attack --help": [py, "-m", "jndguard", "bench", "attack", "--help"],
    }


def _once(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t0


def run(args: argparse.Namespace) -> int:
    cmds = commands()
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for cmd in cmds.values():  # warm the file cache once
        _once(cmd)
    for _ in range(max(1, args.repeat)):
        for name, cmd in cmds.items():
            times[name].append(_once(cmd))
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["import torch"]
    rows = [{"command": k, "median_s": round(v, 3), "min_s": round(min(times[k]), 3),
             "ratio_to_import_torch": round(v / base, 3)} for k, v in med.items()]
    ok = med["jndguard --help"] <= TARGET_RATIO * base
    if args.json:
        emit_json({"repeat": args.repeat, "rows": rows, "target_ratio": TARGET_RATIO, "within_target": ok})
    else:
        print(f"CLI start-up, median of {args.repeat} fresh interpreters each")
        print_table(["command", "median s", "min s", "× import torch"],
                    [[r["command"], r["median_s"], r["min_s"], r["ratio_to_import_torch"]] for r in rows])
        print(f"jndguard --help / import torch = {med['jndguard --help'] / base:.2f} "
              f"(target ≤ {TARGET_RATIO:g}): {'OK' if ok else 'EXCEEDED'}")
    return 0 if ok else 1
