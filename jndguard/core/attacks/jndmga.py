"""JNDMGA: "Just Noticeable Difference for machine perception" adversarial images
(Akan, Akbas & Yarman Vural 2021).

``Cost(x) = λ₁·Loss(ŷ, y) + λ₂‖x − x₀‖₂² + λ₃·BR(x) + λ₄·TV(x)`` (eq. 2), updated by plain
gradient steps ``x(k+1) = x(k) − α·∂Cost/∂x(k)`` (eqs. 3–4) from ``x(0) = x₀`` until the first
iterate ``x(K)`` the model labels differently — the "just noticeably different" image.

- ``BR`` (eq. 5) penalises intensities outside the 8-bit range, ``−p`` below 0 and ``p − 255``
  above 255, on the 0–255 scale, divided by the number of pixel values; out-of-range values
  are also clamped after each step, as the paper does.
- ``TV`` (eq. 6) is the sum of squared horizontal and vertical neighbour differences divided
  by ``H·W·C``.
- ``λ = (100, 10, 10, 1)`` and ``α = 1e-4``: the paper's ImageNet values (Section 5.2). Its
  other sets are for 32 × 32 CIFAR10 images (λ = (10, 1, 1, 10), α = 0.05) and object
  detection (all λ = 1); faces at the recogniser's 160 × 160 input are ImageNet-scale
  images, so JNDGuard uses the ImageNet set (docs/design.md §5).
- ``Loss`` is the cross-entropy of the identity head. Impersonation minimises it towards
  the user's target. The paper's experiments are targeted and it makes a non-targeted attack
  "when given an incorrect label": dodging minimises the cross-entropy towards the clean
  face's runner-up identity (``dodge_label="runner-up"``, default; ``"least-likely"`` is the
  alternative). ``"negative-ce"`` (gradient ascent on the true label's cross-entropy, the
  loss of the paper's FGSM/FGV comparisons, eqs. 7–8) is selectable; on this recogniser it
  saturates (``ŷ_self ≈ 1`` at the start) and barely moves.

Decisions the paper leaves open (see also :mod:`jndguard.core.attacks.anchors`):

- Units: x in [0, 1] (``‖x − x₀‖²`` and TV in [0, 1] units, BR on the 0–255 scale as eq. 5
  writes it). α refers to [0, 1] units on the recogniser's 160 × 160 input: the region's
  gradient is multiplied by the crop area ratio so a step does not depend on face size.
- No iteration cap is given; JNDGuard stops after 1000 iterations (MND's budget) and reports
  failure honestly.

References: "Just Noticeable Difference for Machine Perception and Generation of Regularized
Adversarial Images with Minimal Perturbation" (Akan, Akbas & Yarman Vural 2021), eqs. 2–6, Section 5.2.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from jndguard.core.attacks.anchors import (
    STOP_MARGIN,
    crop_area_ratio,
    head_gallery,
)
from jndguard.core.attacks.base import Goal, grad_of
from jndguard.core.attacks.loop import GradientAnchor
from jndguard.core.attacks.problem import AttackProblem
from jndguard.errors import check_image_batch

PAPER_LAMBDAS = (100.0, 10.0, 10.0, 1.0)  # ImageNet, Section 5.2
PAPER_LR = 1e-4  # ImageNet, Section 5.2
DEFAULT_MAX_ITERATIONS = 1000
DODGE_LABELS = ("runner-up", "least-likely", "negative-ce")


# --- losses ---------------------------------------------------------------------------------


def bounded_range_loss(x: torch.Tensor) -> torch.Tensor:
    """Bounded range ``BR`` (Akan et al. 2021 eq. 5) on the 0–255 scale, divided by the number of values.

    Args:
        x: images in [0, 1] units (values outside are what is penalised).

    Returns:
        ``mean(relu(−p) + relu(p − 255))`` with ``p = 255·x``.
    """
    check_image_batch(x, "x")
    p = x * 255.0
    return (F.relu(-p) + F.relu(p - 255.0)).mean()


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Squared total variation ``TV`` (Akan et al. 2021 eq. 6), divided by ``H·W·C`` (and the batch).

    ``Σ [(x(v, u+1, k) − x(v, u, k))² + (x(v+1, u, k) − x(v, u, k))²] / (H·W·C)`` over the
    neighbour pairs inside the image.
    """
    check_image_batch(x, "x")
    dh = (x[..., :, 1:] - x[..., :, :-1]).pow(2).sum()
    dv = (x[..., 1:, :] - x[..., :-1, :]).pow(2).sum()
    return (dh + dv) / x.numel()


def jndmga_cost(loss: torch.Tensor, x: torch.Tensor, x0: torch.Tensor,
                lambdas=PAPER_LAMBDAS) -> tuple[torch.Tensor, dict[str, float]]:
    """``λ₁·Loss + λ₂‖x − x₀‖₂² + λ₃·BR(x) + λ₄·TV(x)`` (Akan et al. 2021 eq. 2).

    Args:
        loss: the model's loss ``Loss(ŷ, y)`` (a scalar).
        x: current images ``(B, 3, H, W)`` in [0, 1] units.
        x0: the original images.
        lambdas: ``(λ₁, λ₂, λ₃, λ₄)``.

    Returns:
        ``(cost, terms)`` with the unweighted terms ``loss``, ``L2``, ``BR``, ``TV`` as floats.
    """
    l1, l2, l3, l4 = (float(v) for v in lambdas)
    d2 = (x - x0).pow(2).sum()
    br = bounded_range_loss(x)
    tv = total_variation(x)
    cost = l1 * loss + l2 * d2 + l3 * br + l4 * tv
    return cost, {"loss": float(loss.detach()), "L2": float(d2.detach()),
                  "BR": float(br.detach()), "TV": float(tv.detach())}


# --- method ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class JNDMGAConfig:
    """Settings of the JNDMGA anchor (defaults: the paper's ImageNet values).

    Attributes:
        lambdas: ``(λ₁, λ₂, λ₃, λ₄)``.
        lr: α of eq. 4, [0, 1] units on the recogniser's input.
        max_iterations: iteration cap (the paper has none).
        dodge_label: the incorrect label a dodge is steered to (see module docstring).
        stop_margin: extra margin the check boxes must clear to stop (see anchors module).
        preview_every: attach a perturbation preview to every n-th step (0 = never).
    """

    lambdas: tuple[float, float, float, float] = PAPER_LAMBDAS
    lr: float = PAPER_LR
    max_iterations: int = DEFAULT_MAX_ITERATIONS
    dodge_label: str = "runner-up"
    stop_margin: float = STOP_MARGIN
    preview_every: int = 5

    def __post_init__(self) -> None:
        if len(self.lambdas) != 4 or any(v < 0 for v in self.lambdas):
            raise ValueError("lambdas must be four non-negative weights (λ₁, λ₂, λ₃, λ₄)")
        if self.lr <= 0:
            raise ValueError("lr must be > 0")
        if self.max_iterations < 1:
            raise ValueError("max_iterations must be ≥ 1")
        if self.dodge_label not in DODGE_LABELS:
            raise ValueError(f"dodge_label must be one of {DODGE_LABELS}")


class JNDMGA(GradientAnchor):
    """The JNDMGA anchor (see module docstring)."""

    name = "jndmga"

    def __init__(self, config: JNDMGAConfig | None = None) -> None:
        self.config = config or JNDMGAConfig()

    def _label(self, problem: AttackProblem, gal: torch.Tensor) -> tuple[int, int]:
        """``(label, sign)``: minimise ``sign · CE(logits, label)``."""
        if problem.goal is Goal.IMPERSONATE:
            return problem.target_label, 1
        if self.config.dodge_label == "negative-ce":
            return problem.true_label, -1
        with torch.no_grad():
            emb = problem.recogniser(problem.check_crops(problem.clean))
            p = F.softmax(problem.logit_scale * emb @ gal.T, dim=1).mean(0)
        p[problem.true_label] = -1.0 if self.config.dodge_label == "runner-up" else 2.0
        best = p.argmax() if self.config.dodge_label == "runner-up" else p.argmin()
        return int(best), 1

    def setup(self, problem: AttackProblem, z: torch.Tensor) -> SimpleNamespace:
        """The identity head, the region step (eq. 4's α in the recogniser input's units) and
        the loss label."""
        gal = head_gallery(problem)
        step = self.config.lr * crop_area_ratio(problem)
        label, sign = self._label(problem, gal)
        return SimpleNamespace(gal=gal, step=step, label=label, sign=sign, labels=None)

    def step(self, problem: AttackProblem, state: SimpleNamespace, x: torch.Tensor):
        """One gradient step on eq. 2 (eqs. 3–4), then the clamp of Section 4.2.1."""
        x0 = problem.clean
        x.requires_grad_(True)
        emb = problem.recogniser(problem.crops(x))
        logits = problem.logit_scale * emb @ state.gal.T
        if state.labels is None or state.labels.shape[0] != logits.shape[0]:
            state.labels = torch.full((logits.shape[0],), state.label, dtype=torch.long,
                                      device=logits.device)
        loss = state.sign * F.cross_entropy(logits, state.labels)
        cost, terms = jndmga_cost(loss, x, x0, self.config.lambdas)
        g = grad_of(cost, x)
        s_self, s_t = problem.similarities(emb.detach())
        with torch.no_grad():  # eqs. 3–4, then the clamp of Section 4.2.1
            x = (x.detach() - state.step * g).clamp(0, 1)
        return x, {"total": float(cost.detach()), **terms}, s_self, s_t

    def notes(self, problem: AttackProblem, state: SimpleNamespace) -> list[str]:
        cfg, step, label, sign = self.config, state.step, state.label, state.sign
        return [f"JNDMGA: lambdas={cfg.lambdas}, lr={cfg.lr} ([0,1] units on the recogniser "
                 f"input; region step {step:.3g}), loss label {label} (sign {sign:+d})"]


__all__ = ["DEFAULT_MAX_ITERATIONS", "DODGE_LABELS", "JNDMGA", "PAPER_LAMBDAS", "PAPER_LR",
           "JNDMGAConfig", "bounded_range_loss", "jndmga_cost", "total_variation"]
