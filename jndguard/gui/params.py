"""What the controls edit, without Qt: the protection settings, their ranges and presets.

The GUI builds a :class:`ProtectionSettings` (:mod:`jndguard.core.settings`) from its
controls and hands it to the worker unchanged. The methods, choices and the ranges of every
advanced control come from the method registry (:mod:`jndguard.core.methods`); this module
adds the everyday strength presets and the conversion to and from the flat key/value form
the settings facade persists. It imports no Qt and computes nothing.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from jndguard.core.methods import (
    METHODS,
    NUMERIC_OPTIONS,
    OPTIONS,
    RECOMMENDED_METHOD,
    Range,
    paper_defaults,
)
from jndguard.core.settings import DEVICES, FLAT, Choice, ProtectionSettings

# The choices and ranges below are views of the method registry (jndguard.core.methods).
GOALS = OPTIONS["goal"].choice_labels()
MODES = OPTIONS["mode"].choice_labels()
VARIANTS = OPTIONS["variant"].choice_labels()
JND_MODELS = OPTIONS["jnd_model"].choice_labels()
JND_COLORS = OPTIONS["jnd_color"].choice_labels()
JND_FIELDS = ("jnd_model", "jnd_color", "jnd_strength")

#: Every numeric control of the Advanced section: key → (label, tooltip, range).
NUMERIC: dict[str, tuple[str, str, Range]] = {
    k: (OPTIONS[k].label, OPTIONS[k].help, OPTIONS[k].range) for k in NUMERIC_OPTIONS}

#: Everyday strength choices. Each sets a few advanced fields; touching one of those makes
#: the choice "custom".
STRENGTHS: dict[str, tuple[str, str, dict[str, Any]]] = {
    # post mode's JND budget and stopping margin (a fraction of 1 − τ per recogniser) are the
    # strength: the measured protection-vs-PSNR points are in README "Post mode"
    "light": (
        "Light",
        "Least visible: 60 % of the JND budget, 5 % past the threshold "
        "(measured: rarely holds in the threat matrix)",
        {"mode": "post", "stop_margin": 0.05, "budget": 0.6, "jnd_strength": 1.0, "robust": False,
         "max_iterations": 100},
    ),
    "standard": (
        "Standard",
        "Recommended: 80 % of the JND budget, every quick threat-matrix cell 10 % past the threshold",
        {"mode": "post", "stop_margin": 0.1, "budget": 0.8, "jnd_strength": 1.0, "robust": False,
         "max_iterations": 100},
    ),
    "strong": (
        "Strong",
        "The whole JND budget, 15 % past the threshold: holds in more of the threat matrix; can be visible",
        {"mode": "post", "stop_margin": 0.15, "budget": 1.0, "jnd_strength": 1.0, "robust": False,
         "max_iterations": 160},
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
    """Flat key → value form (tuples split into ``beta1..3`` and ``m_r/g/b``; plain values)."""
    out: dict[str, Any] = {}
    for name, v in settings.to_dict().items():
        if name == "beta":
            out["beta_custom"] = v is not None
            for i, b in enumerate(v or (None, None, None), start=1):
                out[f"beta{i}"] = b
        elif name == "m_rgb":
            out["m_r"], out["m_g"], out["m_b"] = v
        else:
            out[name] = v
    return out


def from_flat(values: dict[str, Any], base: ProtectionSettings | None = None) -> ProtectionSettings:
    """Inverse of :func:`to_flat`; missing or malformed values keep ``base``'s."""
    base = base or default_settings()
    kw: dict[str, Any] = {}
    for name in FLAT:
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
    if isinstance(current, Choice):
        return type(current)(str(value))  # raises ValueError for an unknown value
    if isinstance(current, tuple):  # a list of names: a sequence, or text as QSettings may give
        items = value.strip("()[] ").split(",") if isinstance(value, str) else value
        return tuple(str(v).strip().strip("'\"") for v in items if str(v).strip().strip("'\""))
    if isinstance(current, bool):
        if isinstance(value, str):
            return value.lower() in ("1", "true", "yes")
        return bool(value)
    if isinstance(current, int):
        return int(float(value))
    if isinstance(current, float):
        return float(value)
    if isinstance(current, tuple):  # names (post mode's white-box recognisers): a list or "a, b"
        if isinstance(value, str):
            value = [v.strip(" '\"") for v in value.strip("()[]").split(",")]
        return tuple(str(v) for v in value if str(v).strip())
    return str(value)


def describe(settings: ProtectionSettings) -> str:
    """One line for status bars and tooltips."""
    goal = settings.goal if settings.goal == "dodge" else f"impersonate {settings.target or '?'}"
    return (
        f"{METHODS.get(settings.method, settings.method)}, {goal}, "
        f"{settings.max_iterations} iterations, JND ×{settings.jnd_strength:g}"
    )


def as_dict(settings: ProtectionSettings) -> dict[str, Any]:
    return settings.to_dict()


__all__ = ["CUSTOM", "DEVICES", "GOALS", "JND_COLORS", "JND_FIELDS", "JND_MODELS", "METHODS", "MODES",
           "NUMERIC", "OPTIONS", "RECOMMENDED_METHOD", "STRENGTHS", "VARIANTS", "ProtectionSettings",
           "Range", "apply_strength", "as_dict", "default_settings", "describe", "from_flat",
           "paper_settings", "strength_of", "to_flat"]
