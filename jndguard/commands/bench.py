"""``jndguard bench TARGET [options]``: run one of the built-in benchmarks.

Each target is a module ``jndguard/benchmarks/<target>.py`` exposing ``run(args) -> int``
and, optionally, ``add_arguments(parser)``. Modules are imported only when their target
runs, so a heavy benchmark costs nothing to the rest of the CLI. To add one, write the
module and add a line to :data:`BENCHMARKS`.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util

from jndguard.errors import JNDGuardError

#: target name → (module, one-line description)
BENCHMARKS: dict[str, tuple[str, str]] = {
    "jnd": ("jndguard.benchmarks.jnd", "JND map speed (face, 12 MP photo) vs a recogniser step"),
    "attack": ("jndguard.benchmarks.attack", "protection attack speed"),
    "gui": ("jndguard.benchmarks.gui", "desktop app responsiveness"),
    "post": ("jndguard.benchmarks.post",
             "post mode on the validation faces, judged on the threat matrix; iteration cost"),
    "protection": ("jndguard.benchmarks.protection",
                   "threat-matrix protection, PSNR/SSIM, iterations per method on the validation faces"),
    "matrix": ("jndguard.benchmarks.matrix", "threat matrix cost per face (quick and full)"),
    "e2e": ("jndguard.benchmarks.e2e", "one photo's time per stage (2 MP and 12 MP)"),
    "cli": ("jndguard.benchmarks.cli", "`jndguard --help` start-up time vs `import torch`"),
    "memory": ("jndguard.benchmarks.memory",
               "peak memory per stage of protecting one photo at several sizes (memory model)"),
}


def _is_built(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def register(subparsers) -> None:
    lines = [
        f"  {name:8s} {desc}" + ("" if _is_built(mod) else " (not built yet)")
        for name, (mod, desc) in BENCHMARKS.items()
    ]
    p = subparsers.add_parser(
        "bench",
        help="run a benchmark (jndguard bench TARGET --help for its options)",
        description="Run a benchmark and print a table (or JSON).\n\ntargets:\n"
        + "\n".join(lines),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", metavar="TARGET", help="what to benchmark: " + ", ".join(BENCHMARKS))
    p.add_argument("bench_args", nargs=argparse.REMAINDER, metavar="...",
                   help="options of the target (see jndguard bench TARGET --help)")
    p.set_defaults(func=run)


def load_benchmark(target: str):
    """Import the module of a benchmark target.

    Raises:
        JNDGuardError: unknown target, or a known one that is not built in this version.
    """
    if target not in BENCHMARKS:
        raise JNDGuardError(
            f"unknown benchmark {target!r}; available: {', '.join(BENCHMARKS)}"
        )
    module_name = BENCHMARKS[target][0]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise JNDGuardError(
                f"benchmark {target!r} is not built in this version of JNDGuard"
            ) from exc
        raise


def run(args: argparse.Namespace) -> int:
    module = load_benchmark(args.target)
    parser = argparse.ArgumentParser(
        prog=f"jndguard bench {args.target}",
        description=(module.__doc__ or BENCHMARKS[args.target][1]).strip().splitlines()[0],
    )
    add_arguments = getattr(module, "add_arguments", None)
    if add_arguments is not None:
        add_arguments(parser)
    bench_args = parser.parse_args(args.bench_args)
    bench_args.verbose = getattr(args, "verbose", False)
    return int(module.run(bench_args) or 0)
