"""Command-line entry point: ``jndguard <command> …``; no command starts the GUI.

Each subcommand lives in ``jndguard/commands/<name>.py`` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a callable
``(args) -> int``. ``--json`` commands print exactly one JSON document to stdout; progress
and errors go to stderr; errors exit non-zero.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from jndguard import __version__
from jndguard.errors import JNDGuardError

COMMAND_MODULES = (
    "models",
    "detect",
    "identify",
    "embed",
    "jnd",
    "protect",
    "verify",
    "bench",
    "study",
    "compare",
    "analyze",
    "dmvjnd",
)

EXIT_OK = 0
EXIT_FAILED = 1  # the command ran but its goal was not met (e.g. a face stayed unprotected)
EXIT_ERROR = 2  # bad input, missing model, I/O error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jndguard",
        description="Protect face photos from face recognition, below the human JND. "
        "Run without a command to start the desktop app.",
    )
    parser.add_argument("--version", action="version", version=f"jndguard {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"jndguard.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"jndguard.commands.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    import multiprocessing

    multiprocessing.freeze_support()  # the GUI's worker process in the frozen app
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command is None:
        from jndguard.launch import gui

        return gui([])
    try:
        return int(args.func(args) or EXIT_OK)
    except JNDGuardError as exc:
        print(f"jndguard: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("jndguard: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
