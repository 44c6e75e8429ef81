"""The tail every gradient method shares at each iteration: the stop check, history, preview.

MND, JNDMGA and HVS-JND differ in their loss and their step; after the step each one does the
same thing (docs/design.md §5 "first successful iterate"): if every jittered training crop
already passes (a cheap check on the crops the gradient came from), judge the quantised
iterate on the fixed check boxes with an extra margin; record the losses and the similarity;
attach a perturbation preview every n-th iteration (and on success); and yield a
:class:`~jndguard.core.attacks.base.Step`. :class:`IterationLog` is that tail, once.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from jndguard.core.attacks.base import Goal, Step
from jndguard.core.attacks.problem import AttackProblem


def crops_pass(problem: AttackProblem, s_self: torch.Tensor, s_t: torch.Tensor | None,
               margin: float) -> bool:
    """Whether every training crop already looks successful, ``margin`` past ``τ ∓ κ``.

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
               preview_index: int | None = None) -> Step:
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
        return Step(iteration, self.max_iterations, losses, sim, tsim, self.beta, success, attempt,
                    preview)


__all__ = ["IterationLog", "crops_pass"]
