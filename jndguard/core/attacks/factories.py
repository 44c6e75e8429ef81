"""Factories of the method registry (:mod:`jndguard.core.methods`): settings → method object.

Each factory maps the user-facing :class:`~jndguard.core.settings.ProtectionSettings` onto its
method's configuration dataclass. ``step_size`` None and ``anchor_iterations`` None keep the
method's own defaults (torchattacks α = 2/255 and 10 steps; MND and JNDMGA lr = 1e-4 and 1000
iterations); ``max_iterations`` is HVS-JND's budget per β attempt and is not read by anchors.
"""

from __future__ import annotations

from jndguard.core.settings import ProtectionSettings


def make_hvs_jnd(settings: ProtectionSettings):
    """HVS-JND (Xue et al. 2023) from the settings' ``hvs`` group, β and step size."""
    from jndguard.core.attacks.hvs_jnd import HVSJND, HVSJNDConfig

    h = settings.hvs
    kw = {} if settings.step_size is None else {"step_size": settings.step_size}
    if h.mode == "post":
        from jndguard.core.attacks.perceptual_guard import PerceptualGuard
        from jndguard.core.methods import POST_STEP

        kw.setdefault("step_size", POST_STEP)
        kw["guard"] = PerceptualGuard(jnd_clip=h.budget)
        kw["precision"] = h.precision
    return HVSJND(HVSJNDConfig(mode=h.mode, variant=h.variant, beta=settings.beta, delta=h.delta,
                               m_rgb=h.m_rgb, max_iterations=h.max_iterations, shrink=h.shrink, **kw))


def _anchor_kw(settings: ProtectionSettings) -> dict:
    kw: dict = {}
    if settings.step_size is not None:
        kw["lr"] = settings.step_size
    if settings.anchor.iterations:
        kw["max_iterations"] = settings.anchor.iterations
    return kw


def make_mnd(settings: ProtectionSettings):
    """MND (Sun, Jin & Lin 2023); ``beta`` None = the paper's values for the goal."""
    from jndguard.core.attacks.mnd import MND, MNDConfig

    return MND(MNDConfig(beta=settings.beta, **_anchor_kw(settings)))


def make_jndmga(settings: ProtectionSettings):
    """JNDMGA (Akan, Akbas & Yarman Vural 2021)."""
    from jndguard.core.attacks.jndmga import JNDMGA, JNDMGAConfig

    return JNDMGA(JNDMGAConfig(**_anchor_kw(settings)))


def make_torchattacks(name: str, settings: ProtectionSettings):
    """A torchattacks anchor (``bim``, ``pgd``, ``mifgsm``, ``difgsm``) with ε, α and steps."""
    from jndguard.core.attacks.torchattacks_adapter import (
        DEFAULT_ALPHA,
        DEFAULT_STEPS,
        TorchattacksAnchor,
        TorchattacksConfig,
    )

    return TorchattacksAnchor(name, TorchattacksConfig(
        eps=settings.anchor.epsilon,
        alpha=settings.step_size if settings.step_size is not None else DEFAULT_ALPHA,
        steps=settings.anchor.iterations or DEFAULT_STEPS))


def make_bim(settings: ProtectionSettings):
    return make_torchattacks("bim", settings)


def make_pgd(settings: ProtectionSettings):
    return make_torchattacks("pgd", settings)


def make_mifgsm(settings: ProtectionSettings):
    return make_torchattacks("mifgsm", settings)


def make_difgsm(settings: ProtectionSettings):
    return make_torchattacks("difgsm", settings)


__all__ = ["make_bim", "make_difgsm", "make_hvs_jnd", "make_jndmga", "make_mifgsm", "make_mnd",
           "make_pgd", "make_torchattacks"]
