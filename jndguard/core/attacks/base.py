"""The one method interface every protection method implements.

A method is configured by a frozen dataclass and works on an
:class:`~jndguard.core.attacks.problem.AttackProblem` (one face region of a photo at native
resolution, its JND budget, the recogniser and the goal).
``iterate(problem)`` is a generator: it yields a :class:`Step` per iteration — so the GUI and
CLI show live progress and can stop between steps — and returns an :class:`AttackResult`.
``run(problem)`` drains it. Randomness comes from ``problem.generator`` only (deterministic
with a seed); model parameters never receive ``.grad`` (``torch.autograd.grad``), and the
model's train/eval mode is left as it was (torchattacks ``attack.py`` conventions).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from jndguard.core.settings import Goal as Goal  # re-exported: the goal lives with the settings


@dataclass
class Step:
    """Progress of one iteration (all numbers plain Python, safe to send across threads).

    ``similarity`` is the cosine similarity of the current (quantised) iterate to the clean
    face, ``target_similarity`` to the impersonation target (None when dodging).
    """

    iteration: int
    max_iterations: int
    losses: dict[str, float]
    similarity: float
    target_similarity: float | None = None
    beta: tuple[float, float, float] | None = None
    success: bool = False
    attempt: int = 1
    preview: torch.Tensor | None = None  # (3, h, w) current perturbation P = Z − X, [0,1] units


@dataclass
class AttackResult:
    """What a method returns: the quantised adversarial region and how it got there."""

    adversarial: torch.Tensor  # (1, 3, h, w) in [0, 1], on the 8-bit grid
    success: bool
    iterations: int
    similarity: float
    target_similarity: float | None = None
    beta: tuple[float, float, float] | None = None
    attempts: int = 1
    history: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    verdict: object | None = None  # post mode: the PostVerdict of the stopping check


class Attack(ABC):
    """Base class of every method. Subclasses set ``name`` and implement ``iterate``."""

    name: ClassVar[str] = "attack"

    @abstractmethod
    def iterate(self, problem) -> Generator[Step, None, AttackResult]:
        """Yield a Step per iteration; return the AttackResult."""

    def run(self, problem) -> AttackResult:
        """Drain :meth:`iterate` and return its result."""
        from jndguard.core.progress import drive

        return drive(self.iterate(problem))


def grad_of(loss: torch.Tensor, variable: torch.Tensor) -> torch.Tensor:
    """d loss / d variable without touching any parameter's ``.grad``."""
    (g,) = torch.autograd.grad(loss, [variable])
    return g
