"""HVS-JND: the product's method (Xue et al. 2023), in ``post`` (default), ``lossless`` and ``paper`` modes.

``L = α·L_adv + β₁·L₁ + β₂·L₂ + β₃·G`` minimised over Z by gradient descent on the
perturbation ``P`` (``Z = clip(X + P)``; steps normalised to an RMS of 0.002 ≈ 0.5 grey levels
per pixel-channel; measured better than Adam: 45.5 vs 42.1 dB at equal success on 5 faces);
stop at the first quantised iterate that succeeds;
when the iteration budget of an attempt ends without success, ``β_i ← β_i + δ`` and try again,
until success or β reaches its floor (then the failure is reported, never hidden).

- ``paper``: the paper's adversarial loss (the MND cross-entropy variant through the identity
  head), the paper's β and δ (dodge 1500/−50, impersonate 30/−1), and each attempt restarts
  from the clean image, as the paper describes.
- ``post`` (default): the ``lossless`` optimiser run on a whole threat distribution — one
  perturbation of the face box + 35 %, optimised jointly against every white-box recogniser,
  each through its own batched, differentiable views (crop conventions, landmark alignment,
  both resize kernels, JPEG, downscaling, photometric shifts) with a *paired* loss against the
  clean photo seen through the same view (:mod:`jndguard.core.attacks.post_eot`). It stops only
  when every cell of the quick threat matrix passes on real encodes with the stopping margin,
  and never shrinks the result toward one crop's decision boundary (docs/design.md §4–5).
- ``lossless`` (formerly ``fast``, still accepted): warm start (an attempt continues from the
  last iterate with the smaller β), the
  cosine-margin adversarial loss aligned with the success test (see
  :mod:`jndguard.core.losses.adversarial`), β chosen by measurement on this recogniser, and a
  final *shrink* step: the successful perturbation is scaled toward zero while the quantised
  result still succeeds on every check box — nothing else in the loss pulls sub-JND changes
  back toward the clean image.

References: Xue et al. 2023 eqs. 1–8 and Algorithm 1; MND (Sun, Jin & Lin 2023) eq. 6 for ``L_adv``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator
from dataclasses import dataclass, field, replace

import torch

from jndguard.core.attacks.base import AttackResult, Goal, Step, grad_of
from jndguard.core.attacks.loop import IterationLog
from jndguard.core.attacks.perceptual_guard import PerceptualGuard
from jndguard.core.attacks.problem import AttackProblem
from jndguard.core.losses.adversarial import cosine_margin_loss, paper_adversarial_loss
from jndguard.core.losses.hvs_jnd import ABLATIONS, hvs_perceptual_loss, sobel

# the β, δ and M of every mode live in the method registry (one place)
from jndguard.core.methods import (
    FAST_BETA,
    FAST_DELTA,
    PAPER_BETA,
    PAPER_DELTA,
    PAPER_M_RGB,
    POST_BETA,
    POST_DELTA,
)
from jndguard.core.settings import HvsMode, Variant

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HVSJNDConfig:
    """Settings of the HVS-JND method.

    Attributes:
        mode: ``post`` (default), ``lossless`` (alias ``fast``) or ``paper``.
        variant: the perceptual loss ablation (see :data:`ABLATIONS`).
        beta: ``(β₁, β₂, β₃)``; None = the mode's default for the goal.
        delta: β adjuster δ; None = the mode's default.
        m_rgb: channel weights ``M(r, g, b)``.
        alpha: weight of the adversarial loss.
        max_iterations: iteration budget per attempt.
        max_attempts: cap on β adjustments.
        step_size: RMS step per pixel-channel (``gd``) or learning rate (``adam``), [0, 1] units.
        adv_loss: ``paper`` or ``cosine``; None = by mode.
        adv_margin: cosine margin past τ for the ``cosine`` loss.
        stop_margin: extra margin the quantised check boxes must clear before stopping.
        power: ``r`` of the paper's adversarial loss.
        shrink: scale the successful perturbation toward zero while it still succeeds (fast).
        optimizer: ``adam`` (Adam on P), or ``gd``: plain gradient descent with the step
            normalised to an RMS of ``step_size`` per pixel-channel (the paper's "gradient
            descent"; it moves the pixels that matter most instead of every pixel equally).
        preview_every: attach a perturbation preview to every n-th step (0 = never).
        check_every: post mode: fewest iterations between two stopping checks on real encodes.
        momentum: post mode: momentum of the normalised gradient steps (Dong et al., "Boosting
            Adversarial Attacks with Momentum", CVPR 2018): the sampled views change every
            iteration, momentum averages their gradients over iterations.
        guard: post mode: the projection after every step (:mod:`.perceptual_guard`): the JND
            clip ``|P| ≤ jnd_clip·J`` in whole 8-bit levels (measured without it, the
            adversarial pull of two recognisers left 5 % of pixel-channels over J), and bounds
            on the perturbation's chroma and local mean, which the per-pixel JND does not see.
        precision: post mode: ``auto``, ``fp32`` or ``bf16``, the precision of the optimiser's
            recogniser passes (:func:`jndguard.core.models.inference.gradient_autocast`; the
            stopping check is always float32).
        check_share: post mode: share of every recogniser's sampled views past the stopping
            line that triggers a check (the sample holds random hard views, e.g. a strong
            downscale then JPEG q60, that the quick matrix does not).
    """

    mode: str = "post"
    variant: str = "L1+L2+G"
    beta: tuple[float, float, float] | None = None
    delta: float | None = None
    m_rgb: tuple[float, float, float] = PAPER_M_RGB
    alpha: float = 1.0
    max_iterations: int = 100
    max_attempts: int = 40
    step_size: float = 0.002
    adv_loss: str | None = None
    adv_margin: float = 0.1
    stop_margin: float = 0.03
    power: float = 1.0
    shrink: bool = True
    preview_every: int = 5
    optimizer: str = "gd"
    check_every: int = 3
    check_share: float = 0.85
    momentum: float = 0.8
    guard: PerceptualGuard = field(default_factory=PerceptualGuard)
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.mode not in HvsMode.accepted():
            raise ValueError(f"mode must be one of {', '.join(HvsMode.choices())} ('fast' = 'lossless')")
        object.__setattr__(self, "mode", HvsMode(self.mode).value)
        if self.variant not in Variant.accepted():
            raise ValueError(f"variant must be one of {ABLATIONS}")
        if self.max_iterations < 1:
            raise ValueError("max_iterations must be ≥ 1")

    def resolved(self, goal: Goal) -> HVSJNDConfig:
        """Fill the None fields with the mode's defaults for ``goal``."""
        paper = self.mode == "paper"
        betas, deltas = {"paper": (PAPER_BETA, PAPER_DELTA), "post": (POST_BETA, POST_DELTA)}.get(
            self.mode, (FAST_BETA, FAST_DELTA))
        b = betas[goal]
        return replace(
            self,
            beta=self.beta if self.beta is not None else (b, b, b),
            delta=self.delta if self.delta is not None else deltas[goal],
            adv_loss=self.adv_loss or ("paper" if paper else "cosine"),
            shrink=self.shrink and self.mode == "lossless",
        )


def _space_transform(space: str):
    """Identity for RGB budgets; the (linear) BT.601 YCbCr transform for the strict mode, so
    the loss bounds ``Δ = M₆₀₁·δ`` by the Y/Cb/Cr thresholds (docs/jnd.md "Colour")."""
    if space == "rgb":
        return lambda t: t
    if space == "ycbcr":
        from jndguard.core.jnd import rgb_to_ycbcr

        return lambda t: rgb_to_ycbcr(t, offset=False)
    raise ValueError(f"unknown JND space {space!r}")


class HVSJND:
    """The HVS-JND method (see module docstring)."""

    name = "hvs-jnd"

    def __init__(self, config: HVSJNDConfig | None = None) -> None:
        self.config = config or HVSJNDConfig()

    def run(self, problem: AttackProblem, init: torch.Tensor | None = None) -> AttackResult:
        from jndguard.core.progress import drive

        return drive(self.iterate(problem, init))

    def _adv_loss(self, cfg: HVSJNDConfig, problem: AttackProblem, crops: torch.Tensor):
        emb = problem.recogniser(crops)
        s_self, s_t = problem.similarities(emb)
        if cfg.adv_loss == "paper":
            head_g = torch.cat([problem.clean_embedding[None], problem.gallery], 0)
            logits = problem.logit_scale * emb @ head_g.T
            loss = paper_adversarial_loss(logits, problem.true_label, problem.target_label, cfg.power)
        else:
            others = None
            if problem.goal is Goal.IMPERSONATE:
                all_g = torch.cat([problem.clean_embedding[None], problem.gallery], 0)
                sims = emb @ all_g.T
                keep = [k for k in range(all_g.shape[0]) if k != problem.target_label]
                others = sims[:, keep]
            loss = cosine_margin_loss(s_self, problem.threshold, cfg.adv_margin + problem.safety_margin,
                                      s_t, others)
        return loss, s_self.detach(), None if s_t is None else s_t.detach()

    def _passes(self, problem: AttackProblem, s_self: torch.Tensor, s_t) -> bool:
        """Whether the (unquantised) training crops already look successful."""
        stop = problem.safety_margin + self.config.stop_margin
        if problem.goal is Goal.DODGE:
            return float(s_self.max()) < problem.threshold - stop
        return float(s_t.min()) >= problem.threshold + stop

    def iterate(self, problem: AttackProblem,
                init: torch.Tensor | None = None) -> Generator[Step, None, AttackResult]:
        """Optimise; yield a Step per iteration; return the quantised result.

        Args:
            problem: the face region to protect.
            init: optional starting perturbation ``(1, 3, h, w)`` (continuing earlier work).
        """
        cfg = self.config.resolved(problem.goal)
        if cfg.mode == "post":
            return (yield from self._iterate_post(cfg, problem, init))
        x, j = problem.clean, problem.jnd
        to_space = _space_transform(problem.jnd_space)
        xs = to_space(x)
        j_grad = sobel(j).abs()
        beta = tuple(float(b) for b in cfg.beta)
        floor = 0.0
        p = (init.detach().clone() if init is not None else torch.zeros_like(x)).requires_grad_(True)
        total = 0
        log = IterationLog(problem, cfg.max_iterations * cfg.max_attempts, cfg.stop_margin,
                           cfg.preview_every, with_attempt=True)
        history = log.history
        judged = (False, 1.0, None)
        best_p = p.detach().clone()
        for attempt in range(1, cfg.max_attempts + 1):
            if attempt > 1 and cfg.mode == "paper":
                p = torch.zeros_like(x).requires_grad_(True)
            opt = torch.optim.Adam([p], lr=cfg.step_size) if cfg.optimizer == "adam" else None
            for it in range(1, cfg.max_iterations + 1):
                total += 1
                z = (x + p).clamp(0, 1)
                adv, s_self, s_t = self._adv_loss(cfg, problem, problem.crops(z))
                per, terms = hvs_perceptual_loss(to_space(z), xs, j, beta, cfg.m_rgb, cfg.variant, j_grad)
                loss = cfg.alpha * adv + per
                g = grad_of(loss, p)
                if opt is not None:
                    p.grad = g
                    opt.step()
                else:
                    with torch.no_grad():
                        rms = g.pow(2).mean().sqrt().clamp_min(1e-12)
                        p.sub_(cfg.step_size * g / rms)
                with torch.no_grad():  # keep Z = X + P inside [0, 1]
                    p.copy_((x + p).clamp(0, 1) - x)
                losses = {"total": float(loss.detach()), "adv": float(adv.detach()), **terms}
                done = log.record(total, losses, s_self, s_t, x + p.detach(), lambda p=p: p, attempt,
                                  preview_index=it, beta=beta)
                yield done
                if done.success:
                    judged = (True, done.similarity, done.target_similarity)
                    best_p = p.detach().clone()
                    break
            if judged[0]:
                break
            if attempt == cfg.max_attempts or all(b <= floor for b in beta):
                break
            beta = tuple(max(floor, b + cfg.delta) if b > 0 else 0.0 for b in beta)
            if all(b <= floor for b in beta) and cfg.mode == "paper":
                beta = (floor, floor, floor)
        notes = []
        if judged[0] and cfg.shrink:
            best_p, judged = self._shrink(problem, best_p, judged, cfg.stop_margin)
            notes.append("perturbation shrunk toward zero while it still succeeded")
        final_p = best_p if judged[0] else p.detach()
        adv_img = (x + final_p).clamp(0, 1).mul(255).round().div(255)
        ok, worst, worst_t = problem.judge(adv_img)
        return AttackResult(adv_img, ok, total, worst, worst_t, beta, attempt, history, notes)

    def _iterate_post(self, cfg: HVSJNDConfig, problem,
                      init: torch.Tensor | None) -> Generator[Step, None, AttackResult]:
        """Post mode (module docstring): EOT over the threat distribution for every white-box
        recogniser, paired hinge loss, HVS-JND perceptual terms on the changing region, and a
        stopping check on real encodes whenever the sampled views of the last iterations all
        passed the training margin. No shrink: the margin is what makes it hold elsewhere."""
        import torch.nn.functional as F

        from jndguard.core.attacks.post_eot import encode, paired_loss, sample_encodings, sample_views
        from jndguard.core.models.inference import gradient_autocast

        x_ctx, (cx0, cy0, cx1, cy1) = problem.context, problem.change
        hh, ww = x_ctx.shape[-2:]
        pad = (cx0, ww - cx1, cy0, hh - cy1)
        x, j = problem.clean, problem.jnd
        to_space = _space_transform(problem.jnd_space)
        xs = to_space(x)
        j_grad = sobel(j).abs()
        beta = tuple(float(b) for b in cfg.beta)
        p = (init.detach().clone() if init is not None else torch.zeros_like(x)).requires_grad_(True)
        gen, eot = problem.generator, problem.eot
        total, last_check, check_seconds = 0, -cfg.check_every, 0.0
        velocity = None
        # the perturbation stays within J per pixel-channel in whole 8-bit levels, so the rounded
        # result does too (RGB budgets; the Y/Cb/Cr budget is a linear mix, left to the loss),
        # and within the guard's chroma and local-mean bounds
        guard_cfg = cfg.guard if problem.jnd_space == "rgb" else replace(cfg.guard, jnd_clip=None)
        cx0, cy0 = problem.change[:2]  # landmarks in the changing region's coordinates
        guard = guard_cfg.prepare(j, problem.face_side,
                                  problem.geometry.landmarks - (cx0, cy0) if problem.geometry else None)
        history: list[dict] = []
        verdict = None
        best_p = None
        attempt = 0
        # the iteration budget is the whole run's: β steps down (warm start) every quarter of it
        per_attempt = max(1, cfg.max_iterations // 4)
        for attempt in range(1, cfg.max_attempts + 1):
            for it in range(1, per_attempt + 1):
                total += 1
                z = (x + p).clamp(0, 1)
                z_ctx = x_ctx + F.pad(z - x, pad)
                encs = sample_encodings(eot, gen, problem.long_edge, problem.face_side)
                encoded = [encode(z_ctx, e.downscale, e.quality, e.codec) for e in encs]
                adv = z.new_zeros(())
                worst = -2.0  # largest (decisive similarity − stopping line) over the sampled views
                per_rec, worst_view, passing = {}, "", 1.0
                for rv in problem.views:
                    vb = sample_views(rv, encoded, encs, problem.geometry, eot, gen)
                    with gradient_autocast(cfg.precision, rv.recogniser.device):
                        emb = rv.recogniser(vb.crops.to(rv.recogniser.device))
                    emb = emb.float()
                    loss_r, s = paired_loss(rv, emb, vb.spec_index, rv.margin(problem.train_margin))
                    adv = adv + loss_r.to(z.device)
                    kappa = rv.margin(problem.stop_margin)
                    gap = (s - (rv.threshold - kappa) if rv.target is None
                           else (rv.threshold + kappa) - s)
                    rv.update_hardness(vb.spec_index, gap)
                    passing = min(passing, float((gap < 0).float().mean()))
                    if float(gap.max()) > worst:
                        worst, worst_view = float(gap.max()), f"{rv.name} {vb.labels[int(gap.argmax())]}"
                    per_rec[rv.name] = float(s.max() if rv.target is None else s.min())
                per, terms = hvs_perceptual_loss(to_space(z), xs, j, beta, cfg.m_rgb, cfg.variant, j_grad)
                loss = cfg.alpha * adv + per
                g = grad_of(loss, p)
                with torch.no_grad():  # RMS-normalised steps with momentum (the views are random)
                    g = g / g.pow(2).mean().sqrt().clamp_min(1e-12)
                    velocity = g if velocity is None else cfg.momentum * velocity + g
                    p.sub_(cfg.step_size * velocity / velocity.pow(2).mean().sqrt().clamp_min(1e-12))
                    p.copy_(guard.project(p))  # inside the JND budget and the guard (§5)
                    p.copy_((x + p).clamp(0, 1) - x)
                success = False
                judged = None
                # (nearly) every sampled view past the stopping line: worth a check on real encodes
                if passing >= cfg.check_share and total - last_check >= cfg.check_every:
                    last_check = total
                    tc = time.perf_counter()
                    judged = problem.judge((x + p.detach()).clamp(0, 1).mul(255).round().div(255))
                    check_seconds += time.perf_counter() - tc
                    logger.info("post check at iteration %d: %d/%d cells failed, worst %+.3f %s", total,
                                judged.failed, judged.cells, judged.worst, "; ".join(judged.details[:3]))
                    verdict = judged
                    if judged.success:
                        success, best_p = True, p.detach().clone()
                sim = next(iter(per_rec.values()))
                losses = {"total": float(loss.detach()), "adv": float(adv.detach()), **terms,
                          **{f"cos[{k}]": v for k, v in per_rec.items()}}
                history.append({"iteration": total, "attempt": attempt, **losses, "similarity": sim,
                                "worst_view": worst_view, "check_seconds": check_seconds,
                                "check": None if judged is None else judged.worst})
                preview = None
                if cfg.preview_every and (it % cfg.preview_every == 0 or success):
                    preview = p.detach()[0].clone()
                yield Step(total, per_attempt * min(cfg.max_attempts, 4), losses, sim, None, beta,
                           success, attempt, preview)
                if success:
                    break
            if best_p is not None or attempt == cfg.max_attempts or all(b <= 0 for b in beta) \
                    or total >= cfg.max_iterations:
                break
            beta = tuple(max(0.0, b + cfg.delta) if b > 0 else 0.0 for b in beta)
        notes: list[str] = []
        if best_p is None:  # budget spent: judge the last iterate and say so
            best_p = p.detach()
            verdict = problem.judge((x + best_p).clamp(0, 1).mul(255).round().div(255))
            if not verdict.success:
                notes.append(f"not protected in every quick-matrix cell when the budget ended: "
                             f"{verdict.failed} of {verdict.cells} cells failed; worst: "
                             + "; ".join(verdict.details[:3]))
        adv_img = (x + best_p).clamp(0, 1).mul(255).round().div(255)
        return AttackResult(adv_img, bool(verdict.success), total, float(verdict.worst_similarity), None,
                            beta, attempt, history, notes, verdict)

    def _shrink(self, problem: AttackProblem, p: torch.Tensor, judged, stop_margin: float,
                steps: int = 5):
        """Bisect for the smallest scale ``f`` in [0.25, 1] with ``X + f·P`` still successful
        on every check box (5 judge passes; success is not monotone in f in general, so the
        result is always one that was checked)."""
        lo, hi, best = 0.25, 1.0, (p, judged)
        for _ in range(steps):
            f = (lo + hi) / 2
            res = problem.judge(problem.clean + f * p, stop_margin)
            if res[0]:
                hi, best = f, (f * p, res)
            else:
                lo = f
        return best
