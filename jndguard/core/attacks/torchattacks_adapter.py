"""BIM, PGD, MI-FGSM and DI²-FGSM from ``torchattacks`` (the MND paper's anchors), unchanged.

The attacks run on the identity head (docs/design.md §4) through :class:`RegionClassifier`, a small
``nn.Module`` whose input is the face region ``(1, 3, h, w)`` in [0, 1] and whose output is
the identity-head logits of ``problem.crops(region)`` averaged over the crop-jitter samples,
``(1, K+1)`` — expectation over crop jitter, the default for every method (docs/design.md §5). Label
0 is the person: dodging is the library's untargeted mode with label 0; impersonation is its
targeted mode (``set_mode_targeted_by_label``) with ``problem.target_label``.

Defaults are the library's: ε = 8/255, α = 2/255, 10 steps; PGD with its random start;
MI-FGSM decay 1.0; DI²-FGSM resize rate 0.9, diversity probability 0.5, decay 0.0. Like the
library, the attacks run all their steps (no early stop); the result is the last iterate,
quantised, judged with ``problem.judge``.

Live progress: torchattacks runs its whole loop inside ``forward()``. The attack runs in a
worker thread in lock-step with :meth:`TorchattacksAnchor.iterate`: on every model call the
classifier reports to the generator and waits; the generator yields one Step per iteration
and resumes the worker only when asked for the next step. Closing the generator makes the
waiting model call raise a private exception that ends the worker, so nothing runs after
``close()``. Because the two threads never run at the same time, ``problem.generator`` and
torch's global RNG are never used concurrently.

Determinism: PGD's random start and DI²-FGSM's input diversity draw from torch's *global*
RNG. The attack gets its own global RNG state, seeded from ``problem.generator``; the
caller's state is swapped back in whenever the generator yields and after the run, so the
result depends only on the problem's seed and the caller's RNG is left untouched.

DI²-FGSM's ``input_diversity`` assumes square images (it uses the width for both sides), so
for it the region is padded (replicate) to a square canvas; the classifier reads the region
back from the canvas's top-left corner, so the padding never reaches the recogniser except
where the library's random resize-and-pad moves it there, as it does for any input.

References: torchattacks 3.5.1 (H. Kim, arXiv:2010.01950); BIM: Kurakin et al. 2017;
PGD: Madry et al. 2018; MI-FGSM: Dong et al. 2018; DI²-FGSM: Xie et al. 2019;
MND paper (Sun, Jin & Lin 2023) Section IV-A1 for the choice of anchors.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from jndguard.core.attacks.anchors import AnchorMethod, head_gallery, preserved_modes, quantise
from jndguard.core.attacks.base import AttackResult, Goal, Step
from jndguard.core.attacks.problem import AttackProblem

DEFAULT_EPS = 8 / 255
DEFAULT_ALPHA = 2 / 255
DEFAULT_STEPS = 10
NAMES = {"bim": "BIM", "pgd": "PGD", "mifgsm": "MIFGSM", "difgsm": "DIFGSM"}
_JOIN_TIMEOUT_S = 60.0


class _Stopped(Exception):
    """Raised inside the worker's model call when the generator was closed."""


@dataclass(frozen=True)
class TorchattacksConfig:
    """Settings of a torchattacks anchor (the library's defaults).

    Attributes:
        eps: L∞ budget ε in [0, 1] units.
        alpha: step size α in [0, 1] units.
        steps: number of iterations.
        preview_every: attach a perturbation preview to every n-th step (0 = never).
    """

    eps: float = DEFAULT_EPS
    alpha: float = DEFAULT_ALPHA
    steps: int = DEFAULT_STEPS
    preview_every: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.eps <= 1:
            raise ValueError("eps must be in (0, 1]")
        if self.alpha <= 0:
            raise ValueError("alpha must be > 0")
        if self.steps < 1:
            raise ValueError("steps must be ≥ 1")


class _Link:
    """Lock-step hand-over between the generator (main) and the attack (worker)."""

    def __init__(self) -> None:
        self.to_main: queue.Queue = queue.Queue()
        self.to_worker: queue.Queue = queue.Queue()

    def report(self, payload: dict) -> None:
        """Worker side: hand a progress report over and wait to be resumed.

        Raises:
            _Stopped: the generator was closed.
        """
        self.to_main.put(("step", payload))
        if self.to_worker.get() == "stop":
            raise _Stopped


class RegionClassifier(nn.Module):
    """Identity-head logits of a face region, averaged over crop jitter.

    Args:
        problem: the face region (its box, jitter, recogniser and gallery).
        link: where to report each call (None: plain classifier, no reports).

    Shape:
        input ``(N, 3, H, W)`` in [0, 1] with ``H ≥ h``, ``W ≥ w`` (the region is read from
        the top-left ``h × w``); output ``(N, K+1)``.
    """

    def __init__(self, problem: AttackProblem, link: _Link | None = None) -> None:
        super().__init__()
        self.problem = problem
        self.recogniser = problem.recogniser  # a submodule: torchattacks reads the device from it
        self.register_buffer("gallery", head_gallery(problem).detach())
        self.link = link
        self.calls = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h, w = self.problem.clean.shape[-2:]
        if images.ndim != 4 or images.shape[-2] < h or images.shape[-1] < w:
            raise ValueError(f"expected (N, 3, ≥{h}, ≥{w}) images, got {tuple(images.shape)}")
        out = []
        for region in images[..., :h, :w].split(1):
            emb = self.recogniser(self.problem.crops(region))
            logits = self.problem.logit_scale * emb @ self.gallery.T
            out.append((logits.mean(0, keepdim=True), emb.detach()))
        mean_logits = torch.cat([o[0] for o in out])
        self.calls += 1
        if self.link is not None:
            self.link.report({"call": self.calls, "input": images.detach()[..., :h, :w],
                              "logits": mean_logits.detach(), "emb": out[0][1]})
        return mean_logits


class _RngSwap:
    """Give the attack its own global RNG state (CPU, and CUDA when the region is on CUDA)."""

    def __init__(self, seed: int, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.device = device
        self.attack_state = self._seeded(seed)
        self.caller_state = None
        self.inside = False

    def _get(self):
        cpu = torch.get_rng_state()
        return (cpu, torch.cuda.get_rng_state(self.device)) if self.cuda else (cpu, None)

    def _set(self, state) -> None:
        torch.set_rng_state(state[0])
        if self.cuda:
            torch.cuda.set_rng_state(state[1], self.device)

    def _seeded(self, seed: int):
        cpu = torch.Generator().manual_seed(seed).get_state()
        if not self.cuda:
            return cpu, None
        saved = torch.cuda.get_rng_state(self.device)
        with torch.cuda.device(self.device):
            torch.cuda.manual_seed(seed)  # this device only; restored just below
        state = torch.cuda.get_rng_state(self.device)
        torch.cuda.set_rng_state(saved, self.device)
        return cpu, state

    def enter_attack(self) -> None:
        self.caller_state = self._get()
        self._set(self.attack_state)
        self.inside = True

    def leave_attack(self) -> None:
        self.attack_state = self._get()
        self._set(self.caller_state)
        self.inside = False


class TorchattacksAnchor(AnchorMethod):
    """BIM / PGD / MI-FGSM / DI²-FGSM via torchattacks (see module docstring).

    Args:
        method: ``bim``, ``pgd``, ``mifgsm`` or ``difgsm``.
        config: ε, α and steps.

    Raises:
        ValueError: unknown method.
    """

    def __init__(self, method: str, config: TorchattacksConfig | None = None) -> None:
        if method not in NAMES:
            raise ValueError(f"unknown torchattacks anchor {method!r}; choose from {', '.join(NAMES)}")
        self.method = method
        self.name = method
        self.config = config or TorchattacksConfig()

    def _attack(self, model: nn.Module):
        import torchattacks

        cfg = self.config
        return getattr(torchattacks, NAMES[self.method])(model, eps=cfg.eps, alpha=cfg.alpha,
                                                         steps=cfg.steps)

    def iterate(self, problem: AttackProblem,
                init: torch.Tensor | None = None) -> Generator[Step, None, AttackResult]:
        """Run the attack; yield a Step per iteration; return the quantised result.

        Step ``k`` describes the iterate after ``k`` updates (similarity of the nominal crop,
        unquantised — for DI²-FGSM, of the model's diversity-transformed input); the last
        one is the judged, quantised result.

        Args:
            problem: the face region to protect.
            init: must be None: the library's attacks start from the clean image (PGD: its
                random start) and bound the perturbation around it.

        Raises:
            ValueError: ``init`` was given.
        """
        if init is not None:
            raise ValueError(f"{self.name} starts from the clean image; a warm start is not supported")
        cfg = self.config
        x = problem.clean
        link = _Link()
        model = RegionClassifier(problem, link)
        model.training = False  # the wrapper only: torchattacks sets (and we restore) the rest
        attack = self._attack(model)
        if problem.goal is Goal.IMPERSONATE:
            attack.set_mode_targeted_by_label(quiet=True)
            label = problem.target_label
        else:
            label = problem.true_label
        labels = torch.tensor([label], device=x.device)
        images = x
        if self.method == "difgsm":
            h, w = x.shape[-2:]
            side = max(h, w)
            images = F.pad(x, (0, side - w, 0, side - h), mode="replicate")
        seed = int(torch.randint(0, 2**62, (1,), generator=problem.generator))
        rng = _RngSwap(seed, x.device)
        threads = torch.get_num_threads()

        def work() -> None:
            try:
                torch.set_num_threads(threads)  # OpenMP's thread count is per calling thread
                with torch.enable_grad():
                    adv = attack(images, labels)
                link.to_main.put(("done", adv.detach()))
            except _Stopped:
                link.to_main.put(("stopped", None))
            except BaseException as exc:  # handed to the generator, re-raised there
                link.to_main.put(("error", exc))

        history: list[dict] = []
        thread = threading.Thread(target=work, name=f"jndguard-{self.name}", daemon=True)
        finished = False
        with preserved_modes(problem.recogniser):
            try:
                rng.enter_attack()
                thread.start()
                while True:
                    kind, payload = link.to_main.get()
                    rng.leave_attack()
                    if kind == "done":
                        finished = True
                        adv = payload
                        break
                    if kind == "error":
                        finished = True
                        raise payload
                    if kind == "stopped":  # cannot happen before a stop was sent
                        finished = True
                        raise RuntimeError(f"{self.name} stopped unexpectedly")
                    call = payload["call"]
                    if call >= 2:  # the call after update k reports iterate k
                        yield self._step(problem, payload, call - 1, label, history)
                    rng.enter_attack()
                    link.to_worker.put("go")
            finally:
                if not finished:
                    link.to_worker.put("stop")
                if thread.ident is not None:  # started
                    thread.join(_JOIN_TIMEOUT_S)
                if rng.inside:  # interrupted while the attack ran (e.g. KeyboardInterrupt)
                    rng.leave_attack()
        h, w = x.shape[-2:]
        adv_img = quantise(adv[..., :h, :w])
        ok, worst, worst_t = problem.judge(adv_img)
        preview = (adv_img - x)[0].clone() if cfg.preview_every else None
        yield Step(cfg.steps, cfg.steps, {}, worst, worst_t, None, ok, 1, preview)
        notes = [f"torchattacks {NAMES[self.method]}: eps={cfg.eps:.4g}, alpha={cfg.alpha:.4g}, "
                 f"steps={cfg.steps}, {'targeted' if problem.goal is Goal.IMPERSONATE else 'untargeted'}"]
        return AttackResult(adv_img, ok, cfg.steps, worst, worst_t, None, 1, history, notes)

    def _step(self, problem: AttackProblem, payload: dict, iteration: int, label: int,
              history: list[dict]) -> Step:
        cfg = self.config
        logits = payload["logits"]
        ce = float(F.cross_entropy(logits, torch.tensor([label], device=logits.device)))
        s_self, s_t = problem.similarities(payload["emb"])
        sim, tsim = float(s_self[0]), None if s_t is None else float(s_t[0])
        losses = {"ce": ce}
        history.append({"iteration": iteration, **losses, "similarity": sim})
        preview = None
        # DI²-FGSM's model input is the diversity-transformed canvas, not the iterate
        if cfg.preview_every and iteration % cfg.preview_every == 0 and self.method != "difgsm":
            preview = (quantise(payload["input"]) - problem.clean)[0].clone()
        return Step(iteration, cfg.steps, losses, sim, tsim, None, False, 1, preview)


__all__ = ["DEFAULT_ALPHA", "DEFAULT_EPS", "DEFAULT_STEPS", "NAMES", "RegionClassifier",
           "TorchattacksAnchor", "TorchattacksConfig"]
