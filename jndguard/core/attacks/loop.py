"""One optimisation loop for the gradient methods (docs/design.md §5 "first successful iterate").

MND, JNDMGA and HVS-JND differ in their loss and their step; everything around the step is the
same and lives here once. :class:`IterationLog` is the tail of an iteration: if every jittered training
crop already passes (a cheap check on the crops the gradient came from), judge the quantised
iterate on the fixed check boxes with an extra margin; record the losses and the similarity;
attach a perturbation preview every n-th iteration (and on success); make the
:class:`~jndguard.core.attacks.base.Step`. :class:`GradientAnchor` is the whole loop: start at
``X + init`` inside the recogniser's mode guard, take the method's step, log it, stop at the
first success or at the budget, quantise, judge, and return the
:class:`~jndguard.core.attacks.base.AttackResult`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from types import SimpleNamespace

import torch

from jndguard.core.attacks.anchors import AnchorMethod, check_init, crops_pass, preserved_modes, quantise
from jndguard.core.attacks.base import AttackResult, Step
from jndguard.core.attacks.problem import AttackProblem


class IterationLog:
    """Judges, records and reports the iterations of one optimisation (see module docstring).

    Args:
        problem: the face region.
        max_iterations: the budget a Step reports.
        stop_margin: extra margin the check boxes must clear before the method stops.
        preview_every: attach a preview to every n-th iteration (0 = never).
        beta: the loss weights a Step reports (None: the method has none).
        with_attempt: record the attempt number in the history (methods that restart).
    """

    def __init__(self, problem: AttackProblem, max_iterations: int, stop_margin: float,
                 preview_every: int, beta: tuple[float, float, float] | None = None,
                 with_attempt: bool = False) -> None:
        self.problem = problem
        self.max_iterations = max_iterations
        self.stop_margin = stop_margin
        self.preview_every = preview_every
        self.beta = beta
        self.with_attempt = with_attempt
        self.history: list[dict] = []

    def record(self, iteration: int, losses: dict[str, float], s_self: torch.Tensor,
               s_t: torch.Tensor | None, candidate: torch.Tensor,
               perturbation: Callable[[], torch.Tensor], attempt: int = 1,
               preview_index: int | None = None,
               beta: tuple[float, float, float] | None = None) -> Step:
        """The Step of one iteration.

        Args:
            iteration: the iteration number the Step and the history report.
            losses: the loss terms (plain floats).
            s_self, s_t: the training crops' similarities (before the step).
            candidate: the iterate after the step (judged quantised when the crops pass).
            perturbation: ``() -> (1, 3, h, w)`` preview of the perturbation, called only when
                a preview is due.
            attempt: the attempt (β schedule) the iteration belongs to.
            preview_index: the counter the preview cadence follows (default: ``iteration``).
            beta: the loss weights of this iteration (default: the log's).
        """
        sim, tsim = float(s_self[0]), None if s_t is None else float(s_t[0])
        success = False
        if crops_pass(self.problem, s_self, s_t, self.stop_margin):
            success, sim, tsim = self.problem.judge(candidate, self.stop_margin)
        entry = {"iteration": iteration, **({"attempt": attempt} if self.with_attempt else {}),
                 **losses, "similarity": sim}
        self.history.append(entry)
        n = iteration if preview_index is None else preview_index
        preview = None
        if self.preview_every and (n % self.preview_every == 0 or success):
            preview = perturbation().detach()[0].clone()
        return Step(iteration, self.max_iterations, losses, sim, tsim,
                    self.beta if beta is None else beta, success, attempt, preview)


class GradientAnchor(AnchorMethod):
    """Base of the gradient anchors: the loop of the module docstring.

    A subclass sets ``config`` (with ``max_iterations``, ``stop_margin``, ``preview_every``) and
    implements :meth:`setup` (what the method computes once), :meth:`step` (one iteration) and
    :meth:`notes`.
    """

    def setup(self, problem: AttackProblem, z: torch.Tensor) -> SimpleNamespace:
        """The method's state for this problem, computed inside the mode guard; ``z`` is the
        starting iterate (an optimiser may hold it). ``state.beta`` (if set) goes into Steps."""
        raise NotImplementedError

    def step(self, problem: AttackProblem, state: SimpleNamespace, z: torch.Tensor
             ) -> tuple[torch.Tensor, dict[str, float], torch.Tensor, torch.Tensor | None]:
        """One iteration: ``(next iterate, losses, s_self, s_t)``, the similarities being those
        of the training crops the gradient was taken on."""
        raise NotImplementedError

    def notes(self, problem: AttackProblem, state: SimpleNamespace) -> list[str]:
        """What the report says about the run (the method's parameters)."""
        return []

    def iterate(self, problem: AttackProblem,
                init: torch.Tensor | None = None) -> Generator[Step, None, AttackResult]:
        """Optimise from ``X + init``; yield a Step per iteration; return the quantised result.

        Raises:
            ValueError: ``init`` does not match the region.
        """
        cfg = self.config
        check_init(problem, init)
        x0 = problem.clean
        with preserved_modes(problem.recogniser):
            z = x0.clone() if init is None else (x0 + init.detach()).clamp(0, 1)
            state = self.setup(problem, z)
            beta = getattr(state, "beta", None)
            log = IterationLog(problem, cfg.max_iterations, cfg.stop_margin, cfg.preview_every, beta)
            it = 0
            for it in range(1, cfg.max_iterations + 1):
                z, losses, s_self, s_t = self.step(problem, state, z)
                done = log.record(it, losses, s_self, s_t, z, lambda z=z: quantise(z) - x0)
                yield done
                if done.success:
                    break
            adv_img = quantise(z)
            ok, worst, worst_t = problem.judge(adv_img)
        return AttackResult(adv_img, ok, it, worst, worst_t, beta, 1, log.history, self.notes(problem, state))


__all__ = ["GradientAnchor", "IterationLog", "crops_pass"]
