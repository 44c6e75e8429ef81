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
from jndguard.errors import JNDGuardError, NoFaceError

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
EXIT_FAILED = 1  # the command ran but its goal was not met: a face stayed recognised, or no face
EXIT_ERROR = 2  # an error: unreadable input, bad option, missing model, I/O, out of memory
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT); SIGTERM gives 143 (128 + 15)
EXIT_TERMINATED = 143

EPILOG = """exit status: 0 success (protect/verify: every face protected); 1 the goal was not
met: a face stayed recognised, or no face was found (the message says which); 2 an error:
unreadable input, bad option, missing models, I/O (full or read-only disk), out of memory;
130/143 interrupted by Ctrl-C/SIGTERM (nothing half-written is left)."""


class _Parser(argparse.ArgumentParser):
    """An option error is two lines: what is wrong, and where the help is (exit status 2)."""

    def error(self, message: str):
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n"
                              f"(see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="jndguard",
        description="Protect face photos from face recognition, below the human JND. "
        "Run without a command to start the desktop app.",
        epilog=EPILOG,
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
    from jndguard.core.signals import Terminated, terminate_as_interrupt

    try:
        with terminate_as_interrupt():  # SIGTERM rolls back like Ctrl-C
            return int(args.func(args) or EXIT_OK)
    except NoFaceError as exc:
        print(f"jndguard: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except JNDGuardError as exc:
        print(f"jndguard: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except MemoryError:
        print("jndguard: error: out of memory; downscale the photo or close other programs",
              file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        logging.getLogger(__name__).debug("I/O error", exc_info=True)
        name = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"jndguard: error:{name} {exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    except Terminated:
        print("jndguard: terminated; nothing half-written was left", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("jndguard: interrupted; nothing half-written was left", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
