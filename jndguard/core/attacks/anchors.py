"""The anchor methods of the papers, behind JNDGuard's one method interface (docs/design.md §5).

Anchors are the methods JNDGuard is compared against: MND (Sun, Jin & Lin 2023), JNDMGA
(Akan, Akbas & Yarman Vural 2021) and
BIM, PGD, MI-FGSM, DI²-FGSM through ``torchattacks`` (the library the MND paper used). Each
is an :class:`AnchorMethod`: ``iterate(problem, init=None)`` yields a
:class:`~jndguard.core.attacks.base.Step` per iteration and returns an
:class:`~jndguard.core.attacks.base.AttackResult` whose ``adversarial`` is on the 8-bit grid
and whose ``success`` is ``problem.judge(adversarial)[0]``.

Anchors keep their papers' (or the library's) defaults; they are never tuned down. What the
papers leave open is decided once here and in each module's docstring:

- Pixel units: [0, 1]. A plain gradient step ``−α·∇`` (JNDMGA; MND with ``optimizer="gd"``)
  is in [0, 1] units *on the recogniser's 160 × 160 input*, the image the papers optimise: on
  the native-resolution region the gradient is multiplied by the crop's area ratio
  (:func:`crop_area_ratio`), so one step moves the recogniser's view as much as the paper's
  step on the crop, whatever the face size. MND's default Adam step is ≈ lr per pixel.
- Stopping ("first successful iterate"): MND and JNDMGA judge the quantised
  iterate with ``problem.judge`` (the fixed jittered check boxes) with the same extra margin
  as HVS-JND (:data:`STOP_MARGIN`), whenever the jittered training crops already pass.
  torchattacks anchors run their fixed number of steps, as the library does.

The method registry (:mod:`jndguard.core.methods`) names them; :func:`make_anchor` builds one
from :class:`~jndguard.core.settings.ProtectionSettings`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import ClassVar

import torch
from torch import nn

from jndguard.core.attacks.base import Attack, AttackResult, Goal, Step
from jndguard.core.attacks.problem import AttackProblem
from jndguard.core.imageio import quantise  # re-exported: the anchors' 8-bit grid
from jndguard.core.methods import ANCHOR_METHODS, method_spec
from jndguard.core.settings import ProtectionSettings

# Extra similarity margin the check boxes must clear before a gradient-descent anchor stops;
# the same value HVS-JND uses (HVSJNDConfig.stop_margin), so every method stops on one rule.
STOP_MARGIN = 0.03


def crop_area_ratio(problem: AttackProblem) -> float:
    """``(box_w / S) · (box_h / S)``: region pixels per recogniser-input pixel (S = 160).

    ``crop_resize`` averages (or interpolates) this many region pixels into one crop pixel,
    so the gradient a region pixel receives is the crop pixel's gradient divided by it.
    Multiplying a region gradient by this ratio gives steps in the recogniser input's units.
    """
    x1, y1, x2, y2 = problem.box
    s = float(problem.recogniser.info.input_size)
    return max((x2 - x1) / s, 1e-6) * max((y2 - y1) / s, 1e-6)


def head_gallery(problem: AttackProblem) -> torch.Tensor:
    """``(K+1, D)`` identity-head gallery: the clean face (label 0), then the other identities."""
    return torch.cat([problem.clean_embedding[None], problem.gallery], 0)


def training_crops_pass(problem: AttackProblem, emb: torch.Tensor, margin: float) -> bool:
    """Whether every jittered training crop already looks successful (cheap pre-check).

    Args:
        problem: the face region.
        emb: ``(S, D)`` embeddings of the crops of the current iterate.
        margin: extra margin past ``τ ∓ κ``.
    """
    return crops_pass(problem, *problem.similarities(emb.detach()), margin)


def crops_pass(problem: AttackProblem, s_self: torch.Tensor, s_t: torch.Tensor | None,
               margin: float) -> bool:
    """Whether every crop already looks successful, ``margin`` past ``τ ∓ κ``.

    Args:
        problem: the face region.
        s_self: ``(S,)`` similarities of the crops to the clean face.
        s_t: ``(S,)`` similarities to the target (impersonation), else None.
        margin: extra margin past the success line.
    """
    stop = problem.safety_margin + margin
    if problem.goal is Goal.DODGE:
        return float(s_self.max()) < problem.threshold - stop
    return float(s_t.min()) >= problem.threshold + stop


@contextmanager
def preserved_modes(module: nn.Module) -> Iterator[None]:
    """Restore the train/eval flag of every submodule on exit (torchattacks ``attack.py``)."""
    modes = [(m, m.training) for m in module.modules()]
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def check_init(problem: AttackProblem, init: torch.Tensor | None) -> None:
    """Raise ValueError unless ``init`` is None or a perturbation shaped like the region."""
    if init is not None and tuple(init.shape) != tuple(problem.clean.shape):
        raise ValueError(f"init must have the region's shape {tuple(problem.clean.shape)}, "
                         f"got {tuple(init.shape)}")


class AnchorMethod(Attack):
    """Base class of the anchors: ``run`` drains ``iterate`` (both accept ``init``)."""

    name: ClassVar[str] = "anchor"

    def iterate(self, problem: AttackProblem,
                init: torch.Tensor | None = None) -> Generator[Step, None, AttackResult]:
        """Yield a Step per iteration; return the quantised AttackResult."""
        raise NotImplementedError

    def run(self, problem: AttackProblem, init: torch.Tensor | None = None) -> AttackResult:
        """Drain :meth:`iterate` and return its result."""
        gen = self.iterate(problem, init)
        while True:
            try:
                next(gen)
            except StopIteration as stop:
                return stop.value


# --- registry ---------------------------------------------------------------------------------


def _anchor_factory(name: str) -> Callable[[ProtectionSettings], AnchorMethod]:
    return method_spec(name).build


#: anchor name → factory (a view of :data:`jndguard.core.methods.REGISTRY`).
ANCHORS: dict[str, Callable[[ProtectionSettings], AnchorMethod]] = {
    name: _anchor_factory(name) for name in ANCHOR_METHODS}


def make_anchor(settings: ProtectionSettings) -> AnchorMethod:
    """The anchor method named by ``settings.method`` (see :mod:`jndguard.core.attacks.factories`).

    Raises:
        ValueError: ``settings.method`` is not an anchor.
    """
    if settings.method not in ANCHORS:
        raise ValueError(f"{settings.method!r} is not an anchor method; "
                         f"choose from {', '.join(ANCHORS)}")
    return ANCHORS[settings.method](settings)


__all__ = ["ANCHORS", "STOP_MARGIN", "AnchorMethod", "check_init", "crop_area_ratio", "crops_pass",
           "head_gallery", "make_anchor", "preserved_modes", "quantise", "training_crops_pass"]
