"""The settings of a protection run, in one place (no torch, no Qt).

:class:`ProtectionSettings` is what a run is defined by and what every report records. It is
grouped: the method, goal and target at the top, then one frozen sub-config per concern —
:class:`HVSJNDOptions` (the HVS-JND method, Xue et al. 2023), :class:`AnchorOptions` (the
anchor methods: MND, JNDMGA and the torchattacks methods), :class:`JNDOptions` (the JND map),
:class:`FaceOptions` (regions, re-detection, rounds) and :class:`RunOptions` (device, seed,
recogniser). Choices are enums (:class:`Goal`, :class:`HvsMode`, :class:`Variant`,
:class:`JndModel`, :class:`JndColor`, :class:`ExportFormat`); each enum member carries its label
and a value may have aliases (an old spelling that still loads).

The flat form (``max_iterations``, ``jnd_strength``, … — the names of the CLI reports and of the
GUI's saved settings) stays the interface of record: ``ProtectionSettings(max_iterations=50)``,
``settings.max_iterations``, ``dataclasses.replace(settings, seed=1)``, :meth:`to_dict` and
:meth:`from_flat` all speak it, so old reports and saved settings keep loading.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

from jndguard.core.defaults import DEVICE_CHOICES

# --- choices ----------------------------------------------------------------------------------

#: Old or alternative spellings of choice values: enum class name → {alias: value}.
_ALIASES: dict[str, dict[str, str]] = {}


class Choice(str, enum.Enum):
    """A string choice with a label; ``str()``/``format()`` give the value, aliases resolve."""

    label: str

    def __new__(cls, value: str, label: str = ""):
        obj = str.__new__(cls, value)
        obj._value_ = value
        obj.label = label or value
        return obj

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @classmethod
    def _missing_(cls, value: object):
        alias = _ALIASES.get(cls.__name__, {}).get(str(value).lower()) if value is not None else None
        if alias is not None:
            return cls(alias)
        for m in cls:  # case-insensitive
            if isinstance(value, str) and m.value.lower() == value.lower():
                return m
        return None

    @classmethod
    def choices(cls) -> dict[str, str]:
        """value → label, in declaration order."""
        return {m.value: m.label for m in cls}

    @classmethod
    def accepted(cls) -> list[str]:
        """Every spelling a parser accepts: the values, then the aliases."""
        return [m.value for m in cls] + list(_ALIASES.get(cls.__name__, {}))


def add_alias(cls: type[Choice], alias: str, value: str) -> None:
    """Let ``cls(alias)`` mean ``cls(value)`` (old saved settings, CLI synonyms)."""
    cls(value)  # must exist
    _ALIASES.setdefault(cls.__name__, {})[alias.lower()] = value


class Goal(Choice):
    """What protection means (docs/design.md §4)."""

    DODGE = "dodge", "Dodge (not recognised as me)"  # not verified as the same person
    IMPERSONATE = "impersonate", "Impersonate a chosen person"  # verified as the chosen target


class HvsMode(Choice):
    """How HVS-JND runs (docs/design.md §5); add a mode here and in its method's config."""

    POST = "post", "Post (holds across recognisers, crops, JPEG and resizing)"
    LOSSLESS = "lossless", "Lossless (one crop, the file as saved)"
    PAPER = "paper", "Paper (the paper's β schedule)"


add_alias(HvsMode, "fast", "lossless")  # the 0.1 name of the lossless mode


class Variant(Choice):
    """The perceptual-loss ablations of Xue et al. 2023, Table 1."""

    FULL = "L1+L2+G"
    L1_L2 = "L1+L2"
    L1 = "L1"
    L1_ORI = "L1_ori"
    L2 = "L2"
    L2_ORI = "L2_ori"


class JndModel(Choice):
    """The pixel-domain JND model (docs/jnd.md)."""

    YANG = "yang", "Yang NAMM (default)"
    CHOU = "chou", "Chou & Li"
    WU = "wu", "Wu pattern complexity"


class JndColor(Choice):
    """How the JND budget is spread over the colour channels (docs/jnd.md)."""

    SCALED = "scaled", "Per-channel scaled (R 1.3, G 1, B 1.55)"
    GRAY = "gray", "Same for R, G, B"
    YCBCR = "ycbcr", "YCbCr budget"


class ExportFormat(Choice):
    """File format of an exported photo."""

    PNG = "png", "PNG (lossless)"
    JPEG = "jpeg", "JPEG"
    WEBP = "webp", "WebP"


add_alias(ExportFormat, "jpg", "jpeg")

DEVICES = DEVICE_CHOICES  # one list (jndguard.core.defaults)

# --- sub-configs ------------------------------------------------------------------------------


#: Precisions of post mode's optimiser passes (:mod:`jndguard.core.models.inference`).
PRECISIONS = ("auto", "fp32", "bf16")


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`; ValueError otherwise."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    return precision


@dataclass(frozen=True)
class HVSJNDOptions:
    """What the user sets of HVS-JND (Xue et al. 2023); the rest is ``HVSJNDConfig``'s."""

    mode: HvsMode = HvsMode.POST
    variant: Variant = Variant.FULL
    delta: float | None = None  # β adjuster δ; None = the mode's default
    m_rgb: tuple[float, float, float] = (3.0, 5.0, 1.0)  # channel weights M(r, g, b)
    max_iterations: int = 100  # budget per β attempt
    shrink: bool = True  # lossless mode: shrink the successful perturbation (measured)
    # post mode (docs/design.md §5): the margin every quick threat-matrix cell must clear before
    # the optimiser stops (the strength), the other white-box recognisers optimised against
    # together with the run's recogniser, and the sampled views per recogniser and iteration
    stop_margin: float = 0.1  # fraction of 1 − τ per recogniser
    white_box: tuple[str, ...] = ("dlib-resnet",)
    eot_samples: int = 8
    # the share of the per-pixel JND post mode may spend (its perceptual guard's clip: the
    # strength presets' other half), and, dodging, a pull of every view toward the identity
    # least like the face (Fawkes-style decoy)
    budget: float = 0.8
    decoy: bool = False
    # post mode: the precision of the optimiser's own forward/backward passes (decisions are
    # always float32): auto = bfloat16 on CPUs with bf16 units (jndguard.core.models.inference)
    precision: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", HvsMode(self.mode))
        object.__setattr__(self, "variant", Variant(self.variant))
        object.__setattr__(self, "m_rgb", tuple(float(v) for v in self.m_rgb))
        object.__setattr__(self, "white_box", tuple(self.white_box))
        check_precision(self.precision)


@dataclass(frozen=True)
class AnchorOptions:
    """What the user sets of the anchor methods (MND, JNDMGA, torchattacks)."""

    epsilon: float = 8 / 255  # torchattacks L∞ budget, [0, 1] units
    iterations: int | None = None  # None = the method's own (torchattacks 10, MND/JNDMGA 1000)

    def __post_init__(self) -> None:
        if self.iterations is not None and self.iterations < 1:
            raise ValueError("anchor_iterations must be ≥ 1 (or None for the method's default)")


@dataclass(frozen=True)
class JNDOptions:
    """The JND map every method is budgeted by."""

    model: JndModel = JndModel.YANG
    color: JndColor = JndColor.SCALED
    strength: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", JndModel(self.model))
        object.__setattr__(self, "color", JndColor(self.color))


#: MTCNN probability below which a detection is only a "possible face": listed, not protected
#: (measured on the validation and Kodak faces: :mod:`jndguard.core.faces.detect`).
PROTECT_MIN_PROBABILITY = 0.88


@dataclass(frozen=True)
class FaceOptions:
    """Regions, robustness and the re-detection check (docs/design.md §4)."""

    margin: float = 0.2  # box margin of the optimised region (fraction)
    robust: bool = False  # also survive JPEG and resizing
    jitter_samples: int = 4  # crop shifts per step
    min_face_size: int = 20
    min_probability: float = PROTECT_MIN_PROBABILITY  # lower: include possible faces
    safety_margin: float = 0.0  # κ past the threshold
    max_rounds: int = 3  # warm-started rounds for faces still recognised after re-detection


@dataclass(frozen=True)
class RunOptions:
    """Where and how reproducibly a run computes."""

    device: str = "auto"
    seed: int = 0
    model: str | None = None  # recogniser name; None = the default


#: flat name → (sub-config attribute, field name); top-level fields map to (None, name).
FLAT: dict[str, tuple[str | None, str]] = {
    "method": (None, "method"),
    "goal": (None, "goal"),
    "target": (None, "target"),
    "mode": ("hvs", "mode"),
    "variant": ("hvs", "variant"),
    "beta": (None, "beta"),
    "delta": ("hvs", "delta"),
    "m_rgb": ("hvs", "m_rgb"),
    "max_iterations": ("hvs", "max_iterations"),
    "step_size": (None, "step_size"),
    "epsilon": ("anchor", "epsilon"),
    "anchor_iterations": ("anchor", "iterations"),
    "margin": ("faces", "margin"),
    "robust": ("faces", "robust"),
    "jitter_samples": ("faces", "jitter_samples"),
    "jnd_model": ("jnd", "model"),
    "jnd_color": ("jnd", "color"),
    "jnd_strength": ("jnd", "strength"),
    "device": ("run", "device"),
    "seed": ("run", "seed"),
    "model": ("run", "model"),
    "min_face_size": ("faces", "min_face_size"),
    "min_probability": ("faces", "min_probability"),
    "safety_margin": ("faces", "safety_margin"),
    "max_rounds": ("faces", "max_rounds"),
    "shrink": ("hvs", "shrink"),
    "stop_margin": ("hvs", "stop_margin"),
    "white_box": ("hvs", "white_box"),
    "eot_samples": ("hvs", "eot_samples"),
    "budget": ("hvs", "budget"),
    "decoy": ("hvs", "decoy"),
    "precision": ("hvs", "precision"),
}

_GROUPS = {"hvs": HVSJNDOptions, "anchor": AnchorOptions, "jnd": JNDOptions, "faces": FaceOptions,
           "run": RunOptions}


@dataclass(frozen=True, init=False)
class ProtectionSettings:
    """Everything that defines a protection run (recorded, flat, in every report).

    Construct with the groups (``hvs=HVSJNDOptions(...)``) or the flat names
    (``max_iterations=50``; a flat name wins over its group). ``beta`` (β₁..β₃) and
    ``step_size`` are shared: HVS-JND and MND both weight their losses by β, and every method
    has an optimiser step (None = the method's default).
    """

    method: str
    goal: Goal
    target: str | None
    beta: tuple[float, float, float] | None
    step_size: float | None
    hvs: HVSJNDOptions
    anchor: AnchorOptions
    jnd: JNDOptions
    faces: FaceOptions
    run: RunOptions

    FLAT: ClassVar[dict[str, tuple[str | None, str]]] = FLAT

    def __init__(self, method: str = "hvs-jnd", goal: Goal | str = Goal.DODGE,
                 target: str | None = None, beta: tuple[float, float, float] | None = None,
                 step_size: float | None = None, hvs: HVSJNDOptions | None = None,
                 anchor: AnchorOptions | None = None, jnd: JNDOptions | None = None,
                 faces: FaceOptions | None = None, run: RunOptions | None = None,
                 **flat: Any) -> None:
        groups = {"hvs": hvs or HVSJNDOptions(), "anchor": anchor or AnchorOptions(),
                  "jnd": jnd or JNDOptions(), "faces": faces or FaceOptions(), "run": run or RunOptions()}
        per_group: dict[str, dict[str, Any]] = {}
        for name, value in flat.items():
            where = FLAT.get(name)
            if where is None or where[0] is None:
                raise TypeError(f"ProtectionSettings got an unexpected keyword argument {name!r}")
            per_group.setdefault(where[0], {})[where[1]] = value
        for g, kw in per_group.items():
            groups[g] = replace(groups[g], **kw)
        set_ = object.__setattr__
        set_(self, "method", str(method))
        set_(self, "goal", Goal(goal))
        set_(self, "target", target)
        set_(self, "beta", None if beta is None else tuple(float(b) for b in beta))
        set_(self, "step_size", step_size)
        for g, v in groups.items():
            set_(self, g, v)
        self._validate()

    def _validate(self) -> None:
        from jndguard.core.methods import METHODS

        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose from {', '.join(METHODS)}")
        if self.goal is Goal.IMPERSONATE and not self.target:
            raise ValueError("impersonation needs a target identity")

    def __getattr__(self, name: str) -> Any:  # the flat names of the sub-config fields
        where = FLAT.get(name)
        if where is None or where[0] is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(object.__getattribute__(self, where[0]), where[1])

    def __reduce__(self):  # pickles (to the GUI helper process) through the constructor
        return (_rebuild, (self.to_dict(),))

    def to_dict(self) -> dict[str, Any]:
        """The flat form, plain values only (what reports record and JSON holds)."""
        out: dict[str, Any] = {}
        for name in FLAT:
            v = getattr(self, name)
            out[name] = v.value if isinstance(v, Choice) else v
        return out

    def with_(self, **flat: Any) -> ProtectionSettings:
        """A copy with some flat (or group) values changed."""
        return replace(self, **flat)

    @classmethod
    def from_flat(cls, values: dict[str, Any]) -> ProtectionSettings:
        """From the flat form (a report's ``settings``); unknown keys are ignored."""
        kw = {k: v for k, v in values.items() if k in FLAT}
        for k in ("beta", "m_rgb", "white_box"):
            if isinstance(kw.get(k), list):
                kw[k] = tuple(kw[k])
        return cls(**kw)


def _rebuild(flat: dict[str, Any]) -> ProtectionSettings:
    return ProtectionSettings.from_flat(flat)


def flat_names() -> tuple[str, ...]:
    """The flat settings names, in the order reports list them."""
    return tuple(FLAT)


def group_fields(group: str) -> tuple[str, ...]:
    """The field names of one sub-config (``"hvs"``, ``"anchor"``, …)."""
    return tuple(f.name for f in fields(_GROUPS[group]))


__all__ = ["DEVICES", "FLAT", "PRECISIONS", "AnchorOptions", "Choice", "ExportFormat", "FaceOptions", "Goal",
           "HVSJNDOptions", "HvsMode", "JNDOptions", "JndColor", "JndModel", "ProtectionSettings",
           "RunOptions", "Variant", "add_alias", "flat_names", "group_fields"]
