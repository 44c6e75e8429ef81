"""What the controls edit, without Qt: the protection settings, their ranges and presets.

The GUI builds a :class:`ProtectionSettings` (the pipeline's frozen dataclass) from its
controls and hands it to the worker unchanged. This module knows the methods, the ranges of
every advanced control, the everyday strength presets and the conversion to and from the
flat key/value form the settings facade persists. It imports no Qt and computes nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields, replace
from typing import Any

from jndguard.core.pipeline import METHODS, ProtectionSettings, paper_defaults

try:
    from jndguard.core.losses.hvs_jnd import ABLATIONS
except ImportError:  # pragma: no cover
    ABLATIONS = ("L1+L2+G",)

RECOMMENDED_METHOD = "hvs-jnd"
GOALS = {"dodge": "Dodge (not recognised as me)", "impersonate": "Impersonate a chosen person"}
MODES = {
    "post": "Post (holds across recognisers, crops, JPEG, resizing)",
    "lossless": "Lossless (one crop, the file as saved; formerly Fast)",
    "paper": "Paper (the paper's β schedule)",
}
JND_MODELS = {"yang": "Yang NAMM (default)", "chou": "Chou & Li", "wu": "Wu pattern complexity"}
JND_COLORS = {
    "scaled": "Per-channel scaled (R 1.3, G 1, B 1.55)",
    "gray": "Same for R, G, B",
    "ycbcr": "YCbCr budget",
}
DEVICES = ("auto", "cpu", "cuda", "mps")
JND_FIELDS = ("jnd_model", "jnd_color", "jnd_strength")


@dataclass(frozen=True)
class Range:
    """How one numeric control is shown: bounds, step, decimals, log scale, special value."""

    minimum: float
    maximum: float
    step: float
    decimals: int
    log: bool = False
    suffix: str = ""
    special: str = ""  # text shown at the minimum (e.g. "auto"); the minimum then means None
    scale: float = 1.0  # shown value = stored value × scale (ε in 8-bit levels)


#: Every numeric control of the Advanced section: key → (label, tooltip, range).
NUMERIC: dict[str, tuple[str, str, Range]] = {
    "beta1": (
        "β₁",
        "Weight of L₁, the mean perturbation beyond J (Xue et al. 2023, eq. 5)",
        Range(0.01, 5000.0, 1.0, 2, log=True),
    ),
    "beta2": ("β₂", "Weight of L₂, the squared perturbation beyond J", Range(0.01, 5000.0, 1.0, 2, log=True)),
    "beta3": ("β₃", "Weight of G, the Sobel-gradient change beyond J", Range(0.01, 5000.0, 1.0, 2, log=True)),
    "delta": (
        "δ",
        "Change of every β after a budget without success (β ← β + δ)",
        Range(-500.0, 0.0, 1.0, 2),
    ),
    "m_r": ("M(r)", "Penalty multiplier of the red channel beyond J", Range(0.0, 10.0, 0.1, 2)),
    "m_g": ("M(g)", "Penalty multiplier of the green channel beyond J", Range(0.0, 10.0, 0.1, 2)),
    "m_b": ("M(b)", "Penalty multiplier of the blue channel beyond J", Range(0.0, 10.0, 0.1, 2)),
    "jnd_strength": (
        "JND strength",
        "Global factor on the JND map (1 = the model's threshold)",
        Range(0.25, 3.0, 0.05, 2, suffix=" ×"),
    ),
    "max_iterations": (
        "Iterations",
        "Iteration budget per face (per β attempt)",
        Range(1, 2000, 1, 0, log=True),
    ),
    "step_size": (
        "Step size",
        "Optimiser step in [0, 1] units (auto: the method's default)",
        Range(0.0, 0.05, 0.0005, 4, special="auto"),
    ),
    "epsilon": (
        "ε (anchors)",
        "L∞ budget of BIM/PGD/MI-FGSM/DI²-FGSM in 8-bit levels",
        Range(0.5, 32.0, 0.5, 1, suffix=" levels", scale=255.0),
    ),
    "margin": (
        "Face margin",
        "Box margin around each face for the optimised region",
        Range(0.0, 1.0, 0.05, 2),
    ),
    "safety_margin": (
        "Safety margin κ",
        "Similarity margin below the threshold to call a face protected",
        Range(0.0, 0.3, 0.01, 2),
    ),
    "jitter_samples": (
        "Crop jitter",
        "Random face-box shifts per step (survives re-detection)",
        Range(1, 16, 1, 0),
    ),
    "max_rounds": (
        "Rounds",
        "Extra warm-started rounds for faces still recognised after re-detection",
        Range(1, 10, 1, 0),
    ),
    "seed": ("Seed", "Random seed (same seed, same result)", Range(0, 99999, 1, 0)),
}
VARIANTS = {v: v for v in ABLATIONS}

#: Everyday strength choices. Each sets a few advanced fields; touching one of those makes
#: the choice "custom".
STRENGTHS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "light": (
        "Light",
        "Invisible first: plain JND budget, stops at the threshold",
        {"jnd_strength": 1.0, "robust": False, "safety_margin": 0.0, "max_iterations": 100},
    ),
    "standard": (
        "Standard",
        "Recommended: a small safety margin below the threshold",
        {"jnd_strength": 1.0, "robust": False, "safety_margin": 0.05, "max_iterations": 200},
    ),
    "strong": (
        "Strong",
        "Survives JPEG and resizing (robust mode); may be slightly visible",
        {"jnd_strength": 1.25, "robust": True, "safety_margin": 0.1, "max_iterations": 300},
    ),
}
CUSTOM = "custom"


def default_settings() -> ProtectionSettings:
    """The settings of a first start: the recommended method and the standard strength."""
    return apply_strength(ProtectionSettings(method=RECOMMENDED_METHOD), "standard")


def apply_strength(settings: ProtectionSettings, strength: str) -> ProtectionSettings:
    """The settings with the fields of an everyday strength choice."""
    if strength not in STRENGTHS:
        return settings
    return replace(settings, **STRENGTHS[strength][2])


def strength_of(settings: ProtectionSettings) -> str:
    """Which everyday strength the settings match, or ``"custom"``."""
    for key, (_, _, values) in STRENGTHS.items():
        if all(getattr(settings, k) == v for k, v in values.items()):
            return key
    return CUSTOM


def paper_settings(current: ProtectionSettings) -> ProtectionSettings:
    """The paper's settings for ``current``'s method and goal.

    The target, device, recogniser and seed of ``current`` are kept (the paper does not fix
    them); everything else comes from :func:`paper_defaults`.
    """
    paper = paper_defaults(current.method, current.goal)
    return replace(
        paper,
        method=current.method,
        goal=current.goal,
        target=current.target,
        device=current.device,
        model=current.model,
        seed=current.seed,
    )


def to_flat(settings: ProtectionSettings) -> dict[str, Any]:
    """Flat key → value form (tuples split into ``beta1..3`` and ``m_r/g/b``)."""
    out: dict[str, Any] = {}
    for f in fields(settings):
        v = getattr(settings, f.name)
        if f.name == "beta":
            out["beta_custom"] = v is not None
            for i, b in enumerate(v or (None, None, None), start=1):
                out[f"beta{i}"] = b
        elif f.name == "m_rgb":
            out["m_r"], out["m_g"], out["m_b"] = v
        else:
            out[f.name] = v
    return out


def from_flat(values: dict[str, Any], base: ProtectionSettings | None = None) -> ProtectionSettings:
    """Inverse of :func:`to_flat`; missing or malformed values keep ``base``'s."""
    base = base or default_settings()
    kw: dict[str, Any] = {}
    for f in fields(base):
        name = f.name
        cur = getattr(base, name)
        try:
            if name == "beta":
                custom = values.get("beta_custom")
                if custom is None:
                    continue
                if not custom:
                    kw["beta"] = None
                    continue
                kw["beta"] = tuple(float(values[f"beta{i}"]) for i in (1, 2, 3))
            elif name == "m_rgb":
                if all(k in values for k in ("m_r", "m_g", "m_b")):
                    kw["m_rgb"] = tuple(float(values[k]) for k in ("m_r", "m_g", "m_b"))
            elif name in values:
                kw[name] = _coerce(values[name], cur, name)
        except (TypeError, ValueError, KeyError):
            continue
    try:
        return replace(base, **kw)
    except (TypeError, ValueError):
        # an inconsistent combination (e.g. impersonation without a target): keep what is
        # valid field by field
        out = base
        for k, v in kw.items():
            try:
                out = replace(out, **{k: v})
            except (TypeError, ValueError):
                continue
        return out


_OPTIONAL_FLOATS = ("delta", "step_size")
_OPTIONAL_STR = ("target", "model")


def _coerce(value: Any, current: Any, name: str) -> Any:
    if value is None or value == "" or value == "None":
        if name in _OPTIONAL_FLOATS or name in _OPTIONAL_STR:
            return None
        raise ValueError(name)
    if name in _OPTIONAL_FLOATS:
        return float(value)
    if name in _OPTIONAL_STR:
        return str(value)
    if isinstance(current, bool):
        if isinstance(value, str):
            return value.lower() in ("1", "true", "yes")
        return bool(value)
    if isinstance(current, int):
        return int(float(value))
    if isinstance(current, float):
        return float(value)
    return str(value)


def describe(settings: ProtectionSettings) -> str:
    """One line for status bars and tooltips."""
    goal = settings.goal if settings.goal == "dodge" else f"impersonate {settings.target or '?'}"
    return (
        f"{METHODS.get(settings.method, settings.method)}, {goal}, "
        f"{settings.max_iterations} iterations, JND ×{settings.jnd_strength:g}"
    )


def as_dict(settings: ProtectionSettings) -> dict[str, Any]:
    return dataclasses.asdict(settings)
