"""CLI flags of the protection settings, read from the method registry (one place).

Every command that takes a method, a goal, an HVS-JND mode, a JND model or an export format
adds the flag through these helpers: the choices, defaults and help come from
:mod:`jndguard.core.methods` and :mod:`jndguard.core.settings` (no torch is imported). A choice
accepts its aliases (``--format jpg``, an old HVS-JND mode name) and stores the canonical value.
"""

from __future__ import annotations

import argparse
import sys

from jndguard.core.defaults import DEVICE_CHOICES, is_device_name
from jndguard.core.methods import OPTIONS, RECOMMENDED_METHOD, REGISTRY
from jndguard.core.settings import Choice, ExportFormat, Goal, HvsMode, JndColor, JndModel, Variant


def choice_type(cls: type[Choice]):
    """An argparse ``type`` that resolves aliases to the canonical value (or rejects)."""

    def parse(text: str) -> str:
        try:
            return cls(text).value
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"invalid choice {text!r} (choose from {', '.join(cls.accepted())})") from None

    parse.__name__ = cls.__name__
    return parse


def add_choice(p: argparse.ArgumentParser, flag: str, cls: type[Choice], default: Choice | None,
               help: str, **kw) -> None:
    """``flag`` with the enum's values as choices (aliases accepted)."""
    p.add_argument(flag, type=choice_type(cls), choices=[m.value for m in cls],
                   default=None if default is None else default.value, help=help, **kw)


class _DeprecatedAlias(argparse.Action):
    """An old flag name: warns on stderr, then stores like the new one."""

    def __init__(self, *args, new_flag: str = "", **kw) -> None:
        self.new_flag = new_flag
        super().__init__(*args, **kw)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"jndguard: {option_string} is deprecated; use {self.new_flag}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_method(p: argparse.ArgumentParser, default: str = RECOMMENDED_METHOD) -> None:
    p.add_argument("--method", choices=list(REGISTRY), default=default,
                   help=f"protection method (default {default}); "
                        + ", ".join(f"{n}: {s.label} ({s.paper})" for n, s in REGISTRY.items()))


def add_goal(p: argparse.ArgumentParser, target: bool = True, help: str | None = None) -> None:
    """``--goal dodge|impersonate`` (``--mode``: deprecated alias) and ``--target``."""
    text = help or "dodge recognition (default) or impersonate --target"
    add_choice(p, "--goal", Goal, Goal.DODGE, text)
    p.add_argument("--mode", dest="goal", type=choice_type(Goal), choices=[m.value for m in Goal],
                   action=_DeprecatedAlias, new_flag="--goal", help="deprecated: use --goal")
    if target:
        p.add_argument("--target", help="identity to impersonate (a 5-celebrity name)")


def add_hvs_mode(p: argparse.ArgumentParser, help: str | None = None) -> None:
    modes = "; ".join(f"{m.value}: {m.label}" for m in HvsMode)
    add_choice(p, "--hvs-mode", HvsMode, HvsMode.POST, help or f"HVS-JND mode ({modes})")


def add_variant(p: argparse.ArgumentParser) -> None:
    add_choice(p, "--variant", Variant, Variant.FULL, "HVS-JND loss ablation (Xue et al. 2023, Table 1)")


def _listed(key: str, cls: type[Choice]) -> str:
    return f"{OPTIONS[key].help}: " + ", ".join(f"{k} ({v})" for k, v in cls.choices().items())


def add_jnd(p: argparse.ArgumentParser, prefix: str = "--jnd-",
            color_default: Choice | None = JndColor.SCALED) -> None:
    """``--jnd-model`` and ``--jnd-color`` (or ``--model``/``--color`` with ``prefix="--"``)."""
    add_choice(p, f"{prefix}model", JndModel, JndModel.YANG, _listed("jnd_model", JndModel))
    add_choice(p, f"{prefix}color", JndColor, color_default, _listed("jnd_color", JndColor))


def add_format(p: argparse.ArgumentParser) -> None:
    add_choice(p, "--format", ExportFormat, ExportFormat.PNG,
               "file format of the exported photos (jpg = jpeg)")


def device_type(text: str) -> str:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, lower-cased; whether the device is
    present is checked when the command runs (:func:`jndguard.core.device.resolve_device`)."""
    name = text.strip().lower()
    if is_device_name(name):
        return name
    raise argparse.ArgumentTypeError(f"unknown device {text!r}; choose from {', '.join(DEVICE_CHOICES)} "
                                     "or cuda:N")


def add_device(p: argparse.ArgumentParser, default: str = "auto", what: str = "") -> None:
    """``--device``: where the command computes (``what``: for what, in the help)."""
    p.add_argument("--device", type=device_type, default=default,
                   help=f"device{' ' + what if what else ''}: auto (the GPU when there is one), cpu, "
                        f"cuda, cuda:N or mps (default: {default})")


__all__ = ["add_choice", "add_device", "add_format", "add_goal", "add_hvs_mode", "add_jnd", "add_method",
           "add_variant", "choice_type", "device_type"]
