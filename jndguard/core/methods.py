"""The method registry: one declarative entry per protection method (no torch, no Qt).

Each :class:`MethodSpec` says what a method is called, which configuration class and factory
build it (``"module:name"`` strings, imported only when a method is built, so the CLI's
``--help`` and the GUI's controls never load torch), which settings it reads, its paper and
the values that paper fixes. :data:`OPTIONS` describes every user-facing setting once: label,
help, choices or numeric range. The pipeline, the CLI parsers, the GUI controls and settings
persistence and ``compare`` all read from here; adding a method (or an HVS-JND mode: a member
of :class:`~jndguard.core.settings.HvsMode`) is a change in one place.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from jndguard.core.settings import (
    DEVICES,
    Choice,
    Goal,
    HvsMode,
    JndColor,
    JndModel,
    ProtectionSettings,
    Variant,
)

# --- paper values (Xue et al. 2023, Algorithm 1 and §4.1) ------------------------------------

PAPER_BETA = {Goal.DODGE: 1500.0, Goal.IMPERSONATE: 30.0}
PAPER_DELTA = {Goal.DODGE: -50.0, Goal.IMPERSONATE: -1.0}
PAPER_M_RGB = (3.0, 5.0, 1.0)
# fast-mode defaults, chosen by measurement on the 25 validation faces (README "Calibration")
FAST_BETA = {Goal.DODGE: 15.0, Goal.IMPERSONATE: 15.0}
FAST_DELTA = {Goal.DODGE: -5.0, Goal.IMPERSONATE: -5.0}
# post-mode defaults, chosen by measurement on validation faces (README "Post mode")
POST_BETA = {Goal.DODGE: 15.0, Goal.IMPERSONATE: 15.0}
POST_DELTA = {Goal.DODGE: -5.0, Goal.IMPERSONATE: -5.0}
#: post mode's RMS step per pixel-channel, and the hinge margin past the stopping margin the
#: sampled views are pushed to (measured on validation faces, README "Post mode")
POST_STEP = 0.003
POST_TRAIN_EXTRA = 0.15


def _hvs_paper(goal: Goal) -> dict[str, Any]:
    b = PAPER_BETA[goal]
    return {"mode": HvsMode.PAPER, "beta": (b, b, b), "delta": PAPER_DELTA[goal], "m_rgb": PAPER_M_RGB}


# --- options ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    """How one numeric setting is bounded and shown: bounds, step, decimals, log scale, special."""

    minimum: float
    maximum: float
    step: float
    decimals: int
    log: bool = False
    suffix: str = ""
    special: str = ""  # text shown at the minimum (e.g. "auto"); the minimum then means None
    scale: float = 1.0  # shown value = stored value × scale (ε in 8-bit levels)


@dataclass(frozen=True)
class Option:
    """One user-facing setting: its flat key, label, help and either choices or a range."""

    key: str
    label: str
    help: str
    choices: type[Choice] | None = None
    range: Range | None = None

    def choice_labels(self) -> dict[str, str]:
        """value → label of a choice option."""
        return self.choices.choices() if self.choices is not None else {}


def _opts(*options: Option) -> Mapping[str, Option]:
    return MappingProxyType({o.key: o for o in options})


_BETA_RANGE = Range(0.01, 5000.0, 1.0, 2, log=True)

#: Every user-facing setting, by flat key (β and M split into ``beta1..3`` and ``m_r/g/b``).
OPTIONS: Mapping[str, Option] = _opts(
    Option("method", "Method", "Protection method. HVS-JND keeps the change below the JND map; "
           "the others are the papers' anchors for comparison."),
    Option("goal", "Goal", "Dodge: recognisers no longer match the face to you. "
           "Impersonate: they match it to the chosen person.", choices=Goal),
    Option("target", "Target", "The identity to impersonate (5-celebrity gallery)"),
    Option("mode", "Mode", "HVS-JND mode. Post (default): one perturbation for every white-box "
           "recogniser, crop convention and re-encoding. Lossless: one crop, the file as saved "
           "(formerly Fast). Paper: the paper's β, δ and restarts.", choices=HvsMode),
    Option("stop_margin", "Stop margin", "Post mode: margin past the threshold that every quick "
           "threat-matrix cell must clear before the optimiser stops (the strength), as a fraction "
           "of the distance from the threshold to a perfect match", range=Range(0.0, 0.5, 0.01, 2)),
    Option("budget", "JND budget", "Post mode: the share of the per-pixel JND the perturbation may "
           "use (with the perceptual guard on its colour and local mean; docs/design.md §5)",
           range=Range(0.1, 1.0, 0.05, 2)),
    Option("decoy", "Decoy identity", "Post mode, dodging: also pull the face toward the gallery "
           "identity least like it (Fawkes-style), so it leaves the person's cluster, not only "
           "this photo's embedding"),
    Option("eot_samples", "Views per step", "Post mode: sampled crops/encodings per recogniser "
           "and iteration", range=Range(1, 32, 1, 0)),
    Option("variant", "Loss", "Perceptual loss ablation (Xue et al. 2023, Table 1)", choices=Variant),
    Option("beta1", "β₁", "Weight of L₁, the mean perturbation beyond J (Xue et al. 2023, eq. 5)",
           range=_BETA_RANGE),
    Option("beta2", "β₂", "Weight of L₂, the squared perturbation beyond J", range=_BETA_RANGE),
    Option("beta3", "β₃", "Weight of G, the Sobel-gradient change beyond J", range=_BETA_RANGE),
    Option("delta", "δ", "Change of every β after a budget without success (β ← β + δ)",
           range=Range(-500.0, 0.0, 1.0, 2)),
    Option("m_r", "M(r)", "Penalty multiplier of the red channel beyond J", range=Range(0.0, 10.0, 0.1, 2)),
    Option("m_g", "M(g)", "Penalty multiplier of the green channel beyond J",
           range=Range(0.0, 10.0, 0.1, 2)),
    Option("m_b", "M(b)", "Penalty multiplier of the blue channel beyond J", range=Range(0.0, 10.0, 0.1, 2)),
    Option("jnd_model", "Model", "JND model (luminance adaptation + masking)", choices=JndModel),
    Option("jnd_color", "Colour", "How the luma threshold becomes R, G, B thresholds", choices=JndColor),
    Option("jnd_strength", "JND strength", "Global factor on the JND map (1 = the model's threshold)",
           range=Range(0.25, 3.0, 0.05, 2, suffix=" ×")),
    Option("max_iterations", "Iterations", "Iteration budget per face (per β attempt)",
           range=Range(1, 2000, 1, 0, log=True)),
    Option("step_size", "Step size", "Optimiser step in [0, 1] units (auto: the method's default)",
           range=Range(0.0, 0.05, 0.0005, 4, special="auto")),
    Option("epsilon", "ε (anchors)", "L∞ budget of BIM/PGD/MI-FGSM/DI²-FGSM in 8-bit levels",
           range=Range(0.5, 32.0, 0.5, 1, suffix=" levels", scale=255.0)),
    Option("margin", "Face margin", "Box margin around each face for the optimised region",
           range=Range(0.0, 1.0, 0.05, 2)),
    Option("safety_margin", "Safety margin κ", "Similarity margin below the threshold to call a face "
           "protected", range=Range(0.0, 0.3, 0.01, 2)),
    Option("jitter_samples", "Crop jitter", "Random face-box shifts per step (survives re-detection)",
           range=Range(1, 16, 1, 0)),
    Option("max_rounds", "Rounds", "Extra warm-started rounds for faces still recognised after "
           "re-detection", range=Range(1, 10, 1, 0)),
    Option("seed", "Seed", "Random seed (same seed, same result)", range=Range(0, 99999, 1, 0)),
    Option("robust", "Robust to JPEG and resizing",
           "Also optimise through differentiable JPEG and resizing (slower)"),
    Option("device", "Device", "Where the optimisation runs"),
    Option("model", "Recogniser", "Recogniser attacked (white box)"),
)

#: The numeric options (those with a range), in :data:`OPTIONS` order.
NUMERIC_OPTIONS: tuple[str, ...] = tuple(k for k, o in OPTIONS.items() if o.range is not None)

# --- methods ----------------------------------------------------------------------------------

_COMMON = ("goal", "target", "jnd_model", "jnd_color", "jnd_strength", "margin", "safety_margin",
           "jitter_samples", "robust", "seed", "device", "model")


@dataclass(frozen=True)
class MethodSpec:
    """One protection method.

    Attributes:
        name: the key in settings, reports and on the command line.
        label: what the GUI and tables show.
        family: ``"hvs-jnd"`` (the product's method) or ``"anchor"`` (a paper's method it is
            compared against, docs/design.md §5).
        config: ``"module:Class"`` of the method's configuration dataclass.
        factory: ``"module:function"`` building the method from :class:`ProtectionSettings`.
        options: the flat settings the method reads (besides the common ones).
        paper: the reference (authors year).
        paper_defaults: goal → the settings the paper fixes (empty: the config's defaults are
            the paper's already).
        rounds: faces still recognised after re-detection get further warm-started rounds.
    """

    name: str
    label: str
    family: str
    config: str
    factory: str
    options: tuple[str, ...]
    paper: str
    paper_defaults: Mapping[Goal, Mapping[str, Any]] = field(default_factory=dict)
    rounds: bool = False

    def settings_used(self) -> tuple[str, ...]:
        return _COMMON + self.options

    def config_class(self) -> type:
        return _load(self.config)

    def build(self, settings: ProtectionSettings):
        """The method object (every method has ``iterate(problem, init=None)``)."""
        return _load(self.factory)(settings)


def _load(ref: str):
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


_FACTORIES = "jndguard.core.attacks.factories"
_TA_OPTIONS = ("epsilon", "step_size", "anchor_iterations")


def _torchattacks(name: str, label: str, paper: str) -> MethodSpec:
    return MethodSpec(name, label, "anchor", "jndguard.core.attacks.torchattacks_adapter:TorchattacksConfig",
                      f"{_FACTORIES}:make_{name}", _TA_OPTIONS, paper)


REGISTRY: Mapping[str, MethodSpec] = MappingProxyType({s.name: s for s in (
    MethodSpec("hvs-jnd", "HVS-JND", "hvs-jnd", "jndguard.core.attacks.hvs_jnd:HVSJNDConfig",
               f"{_FACTORIES}:make_hvs_jnd",
               ("mode", "variant", "beta", "delta", "m_rgb", "max_iterations", "step_size", "max_rounds",
                "shrink", "stop_margin", "budget", "decoy", "eot_samples"),
               "Xue et al. 2023", {g: _hvs_paper(g) for g in Goal}, rounds=True),
    MethodSpec("mnd", "MND", "anchor", "jndguard.core.attacks.mnd:MNDConfig", f"{_FACTORIES}:make_mnd",
               ("beta", "step_size", "anchor_iterations"), "Sun, Jin & Lin 2023"),
    MethodSpec("jndmga", "JNDMGA", "anchor", "jndguard.core.attacks.jndmga:JNDMGAConfig",
               f"{_FACTORIES}:make_jndmga", ("step_size", "anchor_iterations"),
               "Akan, Akbas & Yarman Vural 2021"),
    _torchattacks("bim", "BIM", "Kurakin, Goodfellow & Bengio 2017"),
    _torchattacks("pgd", "PGD", "Madry et al. 2018"),
    _torchattacks("mifgsm", "MI-FGSM", "Dong et al. 2018"),
    _torchattacks("difgsm", "DI²-FGSM", "Xie et al. 2019"),
)})

RECOMMENDED_METHOD = "hvs-jnd"

#: name → label as the GUI shows it (the recommended method says so).
METHODS: Mapping[str, str] = MappingProxyType({
    n: s.label + (" (recommended)" if n == RECOMMENDED_METHOD else "") for n, s in REGISTRY.items()})

#: The anchor methods (every method but HVS-JND), in registry order.
ANCHOR_METHODS: tuple[str, ...] = tuple(n for n, s in REGISTRY.items() if s.family == "anchor")


def method_spec(name: str) -> MethodSpec:
    """The registry entry of ``name``.

    Raises:
        ValueError: unknown method.
    """
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(REGISTRY)}") from None


def build_method(settings: ProtectionSettings):
    """The method object for the settings (every method has ``iterate(problem, init=None)``)."""
    return method_spec(settings.method).build(settings)


def paper_defaults(method: str = RECOMMENDED_METHOD, goal: Goal | str = Goal.DODGE) -> ProtectionSettings:
    """Settings with the values the method's paper fixes (HVS-JND: paper mode, β, δ, M)."""
    g = Goal(goal)
    target = "madonna" if g is Goal.IMPERSONATE else None
    return ProtectionSettings(method=method, goal=g, target=target,
                              **dict(method_spec(method).paper_defaults.get(g, {})))


def parse_methods(text: str) -> list[str]:
    """``"all"`` or a comma-separated list of method names, checked against the registry.

    Raises:
        ValueError: an unknown name.
    """
    names = list(REGISTRY) if text.strip() == "all" else [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(REGISTRY)}")
    return names


__all__ = ["ANCHOR_METHODS", "DEVICES", "FAST_BETA", "FAST_DELTA", "METHODS", "NUMERIC_OPTIONS",
           "OPTIONS", "PAPER_BETA", "PAPER_DELTA", "PAPER_M_RGB", "RECOMMENDED_METHOD", "REGISTRY",
           "MethodSpec", "Option", "Range", "build_method", "method_spec", "paper_defaults",
           "parse_methods"]
