"""Protect one photo: detect → JND → optimise every face region → quantise → re-check.

:func:`protect_steps` is a generator of :class:`PipelineStep` and returns a
:class:`ProtectionResult`; the GUI runs it in a worker, the CLI with a progress bar. Success is
judged on what the user gets (docs/design.md §4): the 8-bit photo, with faces re-detected by MTCNN,
matched to the original faces and compared with the recogniser. A face whose re-detected crop
still matches gets further rounds (warm-started) before it is reported as not protected.

Speed (what a user waits for is mostly the optimisation): faces are detected once per photo
(a caller that already has them passes ``faces``); the re-check re-detects each face in a
window around it, at most at the recogniser's input scale (only the face regions changed, so
the rest of the photo holds the same detections as the original); the metrics are computed once,
on the face regions and, for the whole photo, from the changed windows
(:func:`jndguard.core.metrics.photo_report_windows`; the multi-scale ones on request). Each
stage's seconds are in :attr:`ProtectionResult.timings`.

Memory (docs/design.md §11): apart from the 8-bit photo and its protected copy, everything is
per face region — the float tensors, the JND map (:func:`jndguard.core.jnd.regions.jnd_regions`),
the clean embeddings, the re-check and the metrics; :attr:`ProtectionResult.jnd` holds J on the
regions only (:class:`~jndguard.core.jnd.regions.RegionMaps`).
"""

from __future__ import annotations

import gc
import logging
import math
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from jndguard.core.attacks.problem import AttackProblem, JitterConfig
from jndguard.core.device import resolve_device
from jndguard.core.faces import Face, detect_faces, expand_box
from jndguard.core.faces.detect import split_possible
from jndguard.core.imageio import LoadedImage, to_tensor, to_uint8
from jndguard.core.jnd.regions import RegionMaps

# re-exported: the settings and the method registry have their own modules
from jndguard.core.methods import METHODS, build_method, method_spec, paper_defaults
from jndguard.core.results import FaceResult
from jndguard.core.settings import Goal, JndColor, ProtectionSettings
from jndguard.errors import JNDGuardError

logger = logging.getLogger(__name__)



#: MS-SSIM, FSIM, GMSD, HaarPSI and VIF of a face region are computed on an area-downscaled
#: copy whose long side is at most this (a face is seen at about this size; PSNR and SSIM stay
#: at full resolution); ``full_metrics`` computes them at full resolution
REGION_METRICS_SIDE = 512


class Cancelled(JNDGuardError):
    """The user stopped the run; nothing was changed."""


@dataclass
class PipelineStep:
    """Progress of a protection run, safe to send across threads."""

    stage: str  # detect | jnd | attack | verify | done
    message: str
    face_index: int = 0
    n_faces: int = 0
    iteration: int = 0
    max_iterations: int = 0
    losses: dict[str, float] = field(default_factory=dict)
    similarity: float | None = None
    threshold: float | None = None
    success: bool = False
    preview: np.ndarray | None = None  # (h, w, 3) float32 signed perturbation, 8-bit levels
    preview_box: tuple[int, int, int, int] | None = None


@dataclass
class ProtectionResult:
    """The protected photo and everything measured on it."""

    protected: np.ndarray  # (H, W, 3) uint8
    jnd: RegionMaps | np.ndarray  # (H, W, 3) float32, 8-bit levels; known on the face regions
    faces: list[Face]
    per_face: list[FaceResult]
    metrics: dict
    settings: ProtectionSettings
    success: bool
    seconds: float = 0.0
    device: str = "cpu"
    model: dict = field(default_factory=dict)
    #: seconds per stage: detect, jnd, optimisation, recheck, metrics
    timings: dict[str, float] = field(default_factory=dict)
    possible_faces: list[Face] = field(default_factory=list)  # below min_probability, untouched
    notes: list[str] = field(default_factory=list)  # loader notes and anything skipped


class DeferredMetrics:
    """Pass as ``protect_steps(metrics=...)`` to have the result before its quality figures:
    the pipeline leaves ``metrics`` empty and the faces without ``quality``, and keeps here
    exactly what it would have measured; :meth:`measure` measures it later (the desktop app
    shows the protected photo first). Same tensors, same figures as measuring in place."""

    def __init__(self) -> None:
        self._args: tuple | None = None
        self.result: ProtectionResult | None = None

    @property
    def pending(self) -> bool:
        return self._args is not None

    def measure(self) -> dict:
        """Measure now: fills the faces' ``quality`` (their dicts, shared with the result)
        and returns the photo's ``metrics`` (also set on the result, with its ``metrics``
        timing)."""
        if self._args is None:
            raise RuntimeError("nothing to measure: the pipeline has not reached its metrics")
        t0 = time.perf_counter()
        args, self._args = self._args, None
        metrics = _measure(*args)
        if self.result is not None:
            self.result.metrics = metrics
            self.result.timings["metrics"] = round(self.result.timings.get("metrics", 0.0)
                                                   + time.perf_counter() - t0, 4)
        return metrics


def face_region(face: Face, margin: float, width: int, height: int,
                footprint: tuple[float, float, float, float] | None = None) -> tuple[int, int, int, int]:
    """The rectangle a face's perturbation lives in: box + margin, clipped, 16-aligned origin
    (so JPEG blocks of the photo and of the region coincide in robust mode). ``footprint``:
    the area the recogniser's view reads (dlib's aligned chip), included in the region."""
    x1, y1, x2, y2 = expand_box(face.box, margin)
    if footprint is not None:
        x1, y1 = min(x1, footprint[0]), min(y1, footprint[1])
        x2, y2 = max(x2, footprint[2]), max(y2, footprint[3])
    x0 = max(0, math.floor(x1) // 16 * 16)
    y0 = max(0, math.floor(y1) // 16 * 16)
    return x0, y0, min(width, math.ceil(x2)), min(height, math.ceil(y2))


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_faces(original: list[Face], found: list[Face], min_iou: float = 0.3) -> list[Face | None]:
    """For each original face, the re-detected face that overlaps it most (or None)."""
    out = []
    for f in original:
        best = max(found, key=lambda g: _iou(f.box, g.box), default=None)
        out.append(best if best is not None and _iou(f.box, best.box) >= min_iou else None)
    return out


#: the re-check looks for each face in its box plus this fraction of its size on every side
RECHECK_CONTEXT = 0.5
#: ... on a copy where the face is at most this many pixels (the recogniser's input size)
RECHECK_FACE_PIXELS = 160


def redetect_near(pixels: np.ndarray, original_faces: list[Face], min_face_size: int = 20,
                  context: float = RECHECK_CONTEXT,
                  face_pixels: int = RECHECK_FACE_PIXELS) -> list[Face | None]:
    """Re-detect each original face in a window around it; the match (box overlap) or None.

    The window is the face's box plus ``context`` of its size on every side, downscaled (area)
    so that the face is at most ``face_pixels`` wide: a protected photo differs from the
    original only in its face regions, so a full-photo detection finds nothing new elsewhere,
    and MTCNN needs no more than this to place a box for a 160 px recogniser crop.
    """
    from PIL import Image

    h, w = pixels.shape[:2]
    out: list[Face | None] = []
    for face in original_faces:
        x1, y1, x2, y2 = face.box
        cw, ch = (x2 - x1) * context, (y2 - y1) * context
        wx0, wy0 = max(0, math.floor(x1 - cw)), max(0, math.floor(y1 - ch))
        wx1, wy1 = min(w, math.ceil(x2 + cw)), min(h, math.ceil(y2 + ch))
        window = pixels[wy0:wy1, wx0:wx1]
        k = min(1.0, face_pixels / max(1.0, face.size))
        if k < 1.0:
            size = (max(1, round((wx1 - wx0) * k)), max(1, round((wy1 - wy0) * k)))
            window = np.asarray(Image.fromarray(np.ascontiguousarray(window)).resize(size, Image.BOX))
        kx, ky = window.shape[1] / (wx1 - wx0), window.shape[0] / (wy1 - wy0)
        found = [
            Face((f.box[0] / kx + wx0, f.box[1] / ky + wy0, f.box[2] / kx + wx0, f.box[3] / ky + wy0),
                 f.probability, tuple((x / kx + wx0, y / ky + wy0) for x, y in f.landmarks))
            for f in detect_faces(np.ascontiguousarray(window), "cpu", min_face_size=12)
        ]
        found = [f for f in found if f.size >= max(12, min_face_size // 2)]
        out.append(match_faces([face], found)[0])
    return out


def crop_window(face, width: int, height: int, view=None) -> tuple[int, int, int, int]:
    """A window of the photo that holds everything a recogniser reads of a face: the box plus
    its longer side on every side (and a landmark-aligned view's footprint), clipped."""
    from jndguard.core.threat.window import face_window

    x0, y0, x1, y1 = face_window(getattr(face, "box", face), width, height)
    if view is not None:
        l, t, r, b = view.footprint()
        x0, y0 = max(0, min(x0, math.floor(l))), max(0, min(y0, math.floor(t)))
        x1, y1 = min(width, max(x1, math.ceil(r))), min(height, max(y1, math.ceil(b)))
    return x0, y0, x1, y1


def face_crops(recogniser, pixels: np.ndarray, faces: list[Face]) -> torch.Tensor:
    """The recogniser's inputs of ``faces`` of an ``(H, W, 3)`` uint8 photo, each read from a
    window around the face (:func:`crop_window`; the same pixels as from the whole photo)."""
    h, w = pixels.shape[:2]
    out = []
    for f in faces:
        view = recogniser.face_view(pixels, f) if recogniser.info.alignment != "box" else None
        x0, y0, x1, y1 = crop_window(f, w, h, view)
        win = np.ascontiguousarray(pixels[y0:y1, x0:x1])
        out.append(recogniser.crops(to_tensor(win, recogniser.device), [f.shifted(x0, y0)], pixels=win))
    if not out:
        return torch.empty(0, 3, recogniser.info.input_size, recogniser.info.input_size)
    return torch.cat(out)


@torch.no_grad()
def judge_redetected(recogniser, protected: np.ndarray, original_faces: list[Face],
                     clean_embeddings: torch.Tensor, goal: Goal, threshold: float,
                     safety_margin: float = 0.0, target_embedding: torch.Tensor | None = None,
                     min_face_size: int = 20) -> list[dict]:
    """Re-detect faces on the 8-bit photo ``(H, W, 3)`` uint8 and judge each original face
    (docs/design.md §4).

    Faces are re-detected near where they were (:func:`redetect_near`). A face that is no
    longer detected at all counts as protected for dodging (no crop, no match) and as failed
    for impersonation.
    """
    pixels = protected
    matched = redetect_near(pixels, original_faces, min_face_size)
    out = []
    for i, m in enumerate(matched):
        if m is None:
            out.append({"redetected": False, "similarity": None, "target_similarity": None,
                        "success": goal is Goal.DODGE})
            continue
        emb = recogniser(face_crops(recogniser, pixels, [m]))[0]
        sim = float(emb @ clean_embeddings[i])
        tsim = float(emb @ target_embedding) if target_embedding is not None else None
        ok = (sim < threshold - safety_margin if goal is Goal.DODGE
              else tsim is not None and tsim >= threshold + safety_margin)
        out.append({"redetected": True, "similarity": sim, "target_similarity": tsim,
                    "success": bool(ok), "box": list(m.box)})
    return out


def _attack_step(step, i: int, n: int, threshold: float, region) -> PipelineStep:
    """A method's Step of face ``i`` as the pipeline's (the preview in 8-bit levels, with the
    region it covers)."""
    preview = None
    if step.preview is not None:
        preview = (step.preview.permute(1, 2, 0).float() * 255).cpu().numpy()
    return PipelineStep("attack", f"face {i + 1}/{n}: iteration {step.iteration}", i, n, step.iteration,
                        step.max_iterations, step.losses, step.similarity, threshold, step.success,
                        preview, region if preview is not None else None)


def _attack_face(method, settings, recogniser, x, jnd, faces, regions, clean_embs, names,
                 centroids, goal, samples, round_, i, init, check_stop, view=None):
    """Optimise face ``i`` (``x`` and ``jnd``: its region of the photo and of J); re-yield the
    method's steps as PipelineSteps; return ``(AttackResult, AttackProblem)``."""
    from jndguard.core.models.gallery import gallery_for

    x0, y0 = regions[i][:2]
    face, n = faces[i], len(faces)
    gnames, gcents = gallery_for(clean_embs[i], names, centroids, recogniser.threshold,
                                 keep=settings.target)
    problem = AttackProblem(
        clean=x, jnd=jnd,
        box=(face.box[0] - x0, face.box[1] - y0, face.box[2] - x0, face.box[3] - y0),
        recogniser=recogniser, clean_embedding=clean_embs[i], gallery=gcents,
        gallery_labels=gnames, goal=goal,
        target=gnames.index(settings.target) if goal is Goal.IMPERSONATE else None,
        safety_margin=settings.safety_margin,
        jitter=JitterConfig(samples=samples, robust=settings.robust),
        generator=torch.Generator().manual_seed(settings.seed * 1000 + i * 10 + round_),
        jnd_space="ycbcr" if settings.jnd_color is JndColor.YCBCR else "rgb",
        view=None if view is None else view.translate(-x0, -y0),
    )
    gen = method.iterate(problem, init)
    try:
        while True:
            try:
                step = next(gen)
            except StopIteration as done:
                return done.value, problem
            check_stop()
            yield _attack_step(step, i, n, recogniser.threshold, regions[i])
    finally:
        gen.close()  # a cancelled run ends the method's generator (and its worker thread) now


def protect_steps(image: LoadedImage, settings: ProtectionSettings, recogniser=None,
                  stop: Callable[[], bool] | None = None, *, faces: list[Face] | None = None,
                  full_metrics: bool = False, metrics: DeferredMetrics | None = None,
                  ) -> Generator[PipelineStep, None, ProtectionResult]:
    """Protect every face of a photo (see module docstring).

    Args:
        image: the photo from :func:`jndguard.core.imageio.load_image`.
        settings: method, goal and parameters.
        recogniser: a loaded recogniser (default: load ``settings.model``).
        stop: polled between steps; when it returns True the run raises :class:`Cancelled`
            and nothing is returned (the original is untouched either way).
        faces: the photo's faces when the caller has detected them already (with
            ``settings.min_face_size``); detected here otherwise.
        full_metrics: also the whole-photo MS-SSIM, FSIM, GMSD, HaarPSI and VIF (slow on
            large photos; the face regions always have them).
        metrics: a :class:`DeferredMetrics` to measure the quality later (the result comes
            back unmeasured); measured in place when None.

    Raises:
        Cancelled: the stop callback fired.
    """
    from jndguard.core.models import load_recogniser
    from jndguard.core.models.gallery import celebrity_gallery

    t0 = time.perf_counter()
    if metrics is not None:  # _measure hands its arguments over instead of measuring
        full_metrics = _Deferral(metrics, full_metrics)
    device = resolve_device(settings.device)
    if recogniser is None:
        recogniser = load_recogniser(settings.model, device)
    else:
        device = recogniser.device

    def check_stop():
        if stop is not None and stop():
            raise Cancelled("protection cancelled")

    timings: dict[str, float] = {}
    tick = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal tick
        now = time.perf_counter()
        timings[stage] = timings.get(stage, 0.0) + now - tick
        tick = now

    from jndguard.core.memory import check_protect_memory

    check_protect_memory(image.width, image.height, str(image.path or "this photo"))
    yield PipelineStep("detect", "detecting faces")
    tick = time.perf_counter()
    if faces is None:
        faces = detect_faces(image.pixels, "cpu", min_face_size=settings.min_face_size)
    faces, possible = split_possible(list(faces), settings.min_probability)
    n = len(faces)
    lap("detect")
    notes = list(image.notes)
    if possible:
        notes.append(f"{len(possible)} possible face(s) below probability {settings.min_probability:g} "
                     "left unprotected (" + ", ".join(f"p={f.probability:.2f}" for f in possible)
                     + "); include them with --include-possible-faces")
    check_stop()
    if not faces:  # nothing to protect: no JND map, no attack, the photo is returned as it was
        yield PipelineStep("done", "no face found", success=False)
        return ProtectionResult(
            protected=image.pixels.copy(), jnd=RegionMaps(image.height, image.width, [], []), faces=[],
            per_face=[], metrics={}, settings=settings, success=False,
            seconds=time.perf_counter() - t0, device=str(device),
            model={"name": recogniser.name, "sha256": recogniser.info.sha256,
                   "threshold": recogniser.threshold},
            timings={k: round(v, 4) for k, v in timings.items()}, possible_faces=possible, notes=notes)
    # every float tensor from here on is a face's region, never the photo (docs/design.md §11)
    pixels = image.pixels
    height, width = pixels.shape[:2]
    post = settings.method == "hvs-jnd" and settings.mode == "post"
    # landmark-aligned recognisers (dlib) see their own view of each face, fixed on the clean
    # photo; box recognisers (FaceNet) the box crop inside the attack problem
    views = ([recogniser.face_view(pixels, f) for f in faces]
             if recogniser.info.alignment != "box" else [None] * n)
    if post:  # what the optimiser reads (context) and what it changes (docs/design.md §5)
        from jndguard.core.attacks.post_problem import CHANGE_MARGIN, CONTEXT_MARGIN, region_of

        work = [region_of(f.box, CONTEXT_MARGIN, width, height) for f in faces]
        regions = [region_of(f.box, CHANGE_MARGIN, width, height) for f in faces]
    else:
        regions = [face_region(f, settings.margin, width, height, None if v is None else v.footprint())
                   for f, v in zip(faces, views)]
        work = list(regions)
    from jndguard.core.memory import (
        LOSSLESS_REGION_BYTES_PER_PIXEL,
        REGION_BYTES_PER_PIXEL,
        check_region_memory,
    )

    lossless = settings.method == "hvs-jnd" and settings.mode == "lossless"
    from jndguard.core.attacks import post_scale

    check_region_memory(width, height, work, str(image.path or "this photo"), region_bytes=(
        LOSSLESS_REGION_BYTES_PER_PIXEL if lossless else REGION_BYTES_PER_PIXEL),
        work_max_pixels=post_scale.WORK_MAX_PIXELS if post else None)
    yield PipelineStep("jnd", f"computing the JND map ({image.width}×{image.height})", n_faces=n)
    tick = time.perf_counter()
    from jndguard.core.jnd.regions import jnd_regions

    jnd, mean_jnd = jnd_regions(pixels, work, settings.jnd_model, settings.jnd_color,
                                settings.jnd_strength, device)
    lap("jnd")
    check_stop()
    goal = Goal(settings.goal)
    names, centroids = celebrity_gallery(recogniser)
    target_emb = None
    if goal is Goal.IMPERSONATE:
        if settings.target not in names:
            raise JNDGuardError(f"unknown target {settings.target!r}; choose from {', '.join(names)}")
        target_emb = centroids[names.index(settings.target)].to(device)
    clean_embs = recogniser(face_crops(recogniser, pixels, faces)).detach()
    if post:  # a face optimised at a working scale reads its own downscale (post_scale)
        from jndguard.core.attacks.post_scale import work_scale

        x = [to_tensor(pixels[y0:y1, x0:x1], device) if work_scale((x0, y0, x1, y1)) == 1.0 else None
             for x0, y0, x1, y1 in work]
    else:
        x = [to_tensor(pixels[y0:y1, x0:x1], device) for x0, y0, x1, y1 in work]
    method = build_method(settings)
    if post:
        result = yield from _post_steps(image, settings, method, recogniser, x, jnd, work, faces, goal,
                                        clean_embs, target_emb, check_stop, t0, device, timings, lap,
                                        full_metrics, notes, mean_jnd)
        result.possible_faces, result.notes = possible, notes
        if metrics is not None:
            metrics.result = result
        return result
    protected = pixels.copy()
    per_face: list[FaceResult] = [{} for _ in faces]
    inits: list[torch.Tensor | None] = [None] * n
    pending = list(range(n))
    verdicts: list[dict] = []
    samples = settings.jitter_samples
    for round_ in range(1, settings.max_rounds + 1):
        lap("optimisation")
        for i in pending:
            x0, y0, x1, y1 = regions[i]
            face = faces[i]
            tf = time.perf_counter()
            while True:  # CUDA out of memory: halve the batch of jitter samples, then use the CPU
                try:
                    result, problem = yield from _attack_face(
                        method, settings, recogniser, x[i], jnd[i], faces, regions, clean_embs, names,
                        centroids, goal, samples, round_, i, inits[i], check_stop, views[i])
                    break
                except torch.cuda.OutOfMemoryError:
                    if device.type == "cpu":
                        raise JNDGuardError("out of memory on the CPU: try a smaller photo") from None
                    torch.cuda.empty_cache()
                    if samples > 1:
                        samples //= 2
                        msg = f"GPU out of memory: retrying with {samples} crop samples per step"
                    else:
                        device = torch.device("cpu")
                        recogniser.to(device)
                        x, jnd = [t.to(device) for t in x], [t.to(device) for t in jnd]
                        clean_embs = clean_embs.to(device)
                        target_emb = None if target_emb is None else target_emb.to(device)
                        inits = [None if t is None else t.to(device) for t in inits]
                        samples = settings.jitter_samples
                        msg = "GPU out of memory: continuing on the CPU (slower)"
                    logger.warning(msg)
                    yield PipelineStep("attack", msg, i, n)
            protected[y0:y1, x0:x1] = to_uint8(result.adversarial)
            inits[i] = (result.adversarial - problem.clean).detach()
            prev = per_face[i]
            per_face[i] = {
                "face": i, "box": list(face.box), "region": list(regions[i]),
                "iterations": prev.get("iterations", 0) + result.iterations,
                "seconds": prev.get("seconds", 0.0) + time.perf_counter() - tf,
                "rounds": round_, "beta": result.beta, "attempts": result.attempts,
                "optimiser_success": result.success, "notes": result.notes,
            }
        lap("optimisation")
        yield PipelineStep("verify", "re-detecting faces on the 8-bit result", n_faces=n)
        tick = time.perf_counter()
        verdicts = judge_redetected(recogniser, protected, faces, clean_embs, goal,
                                    recogniser.threshold, settings.safety_margin, target_emb,
                                    settings.min_face_size)
        lap("recheck")
        pending = [i for i, v in enumerate(verdicts) if not v["success"]]
        if not pending or not method_spec(settings.method).rounds:
            break
        logger.info("round %d: %d face(s) still recognised after re-detection", round_, len(pending))
    # the metrics, once: each face region, and the whole photo from the windows that changed
    # (only the regions were written, so the rest is the original)
    tick = time.perf_counter()
    for i, v in enumerate(verdicts):
        per_face[i].update(v)
        per_face[i]["threshold"] = recogniser.threshold
    del x, inits
    figures = _measure(pixels, protected, work, jnd, mean_jnd, regions, per_face, notes, full_metrics)
    lap("metrics")
    success = bool(faces) and all(v["success"] for v in verdicts)
    yield PipelineStep("done", "protected" if success else "not protected", n_faces=n, success=success)
    result = ProtectionResult(
        protected=protected, jnd=RegionMaps(height, width, work, jnd),
        faces=faces, per_face=per_face, metrics=figures, settings=settings, success=success,
        seconds=time.perf_counter() - t0, device=str(device),
        model={"name": recogniser.name, "sha256": recogniser.info.sha256,
               "threshold": recogniser.threshold},
        timings={k: round(v, 4) for k, v in timings.items()}, possible_faces=possible, notes=notes)
    if metrics is not None:
        metrics.result = result
    return result


def is_out_of_memory(exc: BaseException) -> bool:
    """True for Python's MemoryError and PyTorch's CPU or GPU allocation failures."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and (
        "can't allocate memory" in str(exc) or "out of memory" in str(exc).lower())


def _window_jnd(window, work, jnd) -> torch.Tensor:
    """J on a metrics window, pasted from the face regions' maps. Only pixels that changed
    count in any figure (over J, excess: ``|ΔX| > J`` is false where ``ΔX = 0``), and they all
    lie inside the regions, so the rest of the window keeps 0."""
    x0, y0, x1, y1 = window
    for (a0, b0, a1, b1), j in zip(work, jnd):  # inside one region's map: a view of it
        if a0 <= x0 and b0 <= y0 and x1 <= a1 and y1 <= b1 and j.device.type == "cpu":
            return j[:, :, y0 - b0:y1 - b0, x0 - a0:x1 - a0]
    out = torch.zeros((1, 3, y1 - y0, x1 - x0), dtype=torch.float32)
    for (a0, b0, a1, b1), j in zip(work, jnd):
        ix0, iy0, ix1, iy1 = max(x0, a0), max(y0, b0), min(x1, a1), min(y1, b1)
        if ix0 < ix1 and iy0 < iy1:
            part = j[:, :, iy0 - b0:iy1 - b0, ix0 - a0:ix1 - a0]
            out[:, :, iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = part.cpu()
    return out


def _region_quality(pieces, work, jnd, region, max_side) -> dict:
    """:func:`~jndguard.core.metrics.region_report` of a face region from the metrics window
    holding it (its J from the region's own map), in photo coordinates."""
    from jndguard.core.metrics import region_report

    x0, y0, x1, y1 = region
    wx0, wy0, xo, zo, _ = next(p for p in pieces if p[0] <= x0 and p[1] <= y0
                               and x1 <= p[0] + p[2].shape[-1] and y1 <= p[1] + p[2].shape[-2])
    jo = _window_jnd((x0, y0, x1, y1), work, jnd)
    crop = (..., slice(y0 - wy0, y1 - wy0), slice(x0 - wx0, x1 - wx0))
    q = region_report(xo[crop], zo[crop], jo, (0, 0, x1 - x0, y1 - y0), max_side=max_side)
    q["box"] = {"x0": x0, "y0": y0, "x1": x1, "y1": y1}
    b = q["changed"]["bbox"]
    if b is not None:
        q["changed"]["bbox"] = {"x0": b["x0"] + x0, "y0": b["y0"] + y0,
                                "x1": b["x1"] + x0, "y1": b["y1"] + y0}
    return q


class _Deferral:
    """``full_metrics`` while a :class:`DeferredMetrics` waits: :func:`_measure` stores its
    arguments there and measures nothing."""

    def __init__(self, target: DeferredMetrics, full: bool) -> None:
        self.target, self.full = target, bool(full)


def _measure(original: np.ndarray, final: np.ndarray, work, jnd, mean_jnd: float, regions, per_face,
             notes, full_metrics) -> dict:
    """The quality figures of the finished photo (8-bit ``original`` and ``final``): each face
    region, and the whole photo from the windows that changed, each read from the 8-bit
    pixels (:func:`~jndguard.core.metrics.photo_report_windows`; the whole photo only for
    ``full_metrics``). Out of memory here must not throw the finished protection away:
    the figures are retried on the face regions alone at the cheap setting, and left out with
    a note if even that fails. (Deferred, see :class:`DeferredMetrics`: nothing yet.)"""
    from jndguard.core.metrics import change_windows, photo_report_windows

    if isinstance(full_metrics, _Deferral):
        full_metrics.target._args = (original, final, work, jnd, mean_jnd, regions, per_face, notes,
                                     full_metrics.full)
        return {}
    h, w = original.shape[:2]
    pieces = []
    try:
        for x0, y0, x1, y1 in change_windows(regions, h, w):
            pieces.append((x0, y0, to_tensor(original[y0:y1, x0:x1]), to_tensor(final[y0:y1, x0:x1]),
                           _window_jnd((x0, y0, x1, y1), work, jnd)))
        for i, region in enumerate(regions):
            per_face[i]["quality"] = _region_quality(pieces, work, jnd, region,
                                                     None if full_metrics else REGION_METRICS_SIDE)
            per_face[i]["psnr"] = per_face[i]["quality"]["psnr"]
            per_face[i]["ssim"] = per_face[i]["quality"]["ssim"]
        whole = (to_tensor(original), to_tensor(final)) if full_metrics else None
        return photo_report_windows(pieces, h, w, mean_jnd, whole)
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        logger.warning("out of memory measuring the photo: face regions only (%s)", exc)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    notes.append("out of memory measuring the whole photo: quality measured on the face regions only")
    for i, region in enumerate(regions):
        try:
            if not any(p[0] <= region[0] and p[1] <= region[1] and region[2] <= p[0] + p[2].shape[-1]
                       and region[3] <= p[1] + p[2].shape[-2] for p in pieces):
                x0, y0, x1, y1 = region
                pieces.append((x0, y0, to_tensor(original[y0:y1, x0:x1]),
                               to_tensor(final[y0:y1, x0:x1]), None))
            q = _region_quality(pieces, work, jnd, region, REGION_METRICS_SIDE)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            q = None
            notes.append(f"face {i}: out of memory measuring its region; no quality figures")
        per_face[i]["quality"] = q
        per_face[i]["psnr"] = None if q is None else q["psnr"]
        per_face[i]["ssim"] = None if q is None else q["ssim"]
    return {"unavailable": {"whole photo": "out of memory; see the face regions"}}


def white_box_recognisers(settings: ProtectionSettings, recogniser) -> list:
    """The recognisers post mode optimises against: ``recogniser`` and ``settings.white_box``
    (loaded from the same store; a missing one is an error that names the fetch command)."""
    from jndguard.core.models import load_recogniser

    out = [recogniser]
    home = getattr(recogniser, "home", None)
    for name in settings.white_box:
        if name and name != recogniser.name:
            key = (name, str(recogniser.device), str(home))
            if key not in _WHITE_BOX:  # loaded once per process (dlib's port parses its .dat file)
                _WHITE_BOX[key] = load_recogniser(name, recogniser.device, home=home)
            out.append(_WHITE_BOX[key])
    return out


_WHITE_BOX: dict[tuple[str, str, str], object] = {}


def _impersonation_refs(recognisers, target: str):
    """Per recogniser: the target's centroid and the other identities' centroids."""
    from jndguard.core.models.gallery import celebrity_gallery

    targets, others = [], []
    for rec in recognisers:
        names, cents = celebrity_gallery(rec)
        if target not in names:
            raise JNDGuardError(f"unknown target {target!r}; choose from {', '.join(names)}")
        k = names.index(target)
        targets.append(cents[k].to(rec.device))
        others.append(torch.cat([cents[:k], cents[k + 1:]]).to(rec.device))
    return targets, others


def _work_copy(pixels, settings, context, face, x, jnd, device):
    """``(WorkScale, x, J)`` of a face for post mode: its
    :class:`~jndguard.core.attacks.post_scale.WorkScale`, working copy and the copy's J when its
    context region is too large to optimise at full resolution; else ``(None, x, jnd)``."""
    from jndguard.core.attacks.post_problem import CHANGE_MARGIN, region_of
    from jndguard.core.attacks.post_scale import WorkScale, work_scale
    from jndguard.core.jnd.regions import jnd_regions

    if work_scale(context) == 1.0:
        return None, x, jnd
    h, w = pixels.shape[:2]
    rgb = settings.jnd_color != "ycbcr"  # the Y/Cb/Cr budget is left to the loss (hvs_jnd)
    ws = WorkScale.build(pixels, context, region_of(face.box, CHANGE_MARGIN, w, h), jnd,
                         settings.budget if rgb else 255.0)
    small_jnd, _ = jnd_regions(ws.small, [(0, 0, ws.small.shape[1], ws.small.shape[0])], settings.jnd_model,
                               settings.jnd_color, settings.jnd_strength, device)
    return ws, to_tensor(ws.small, device), small_jnd[0]


def _post_steps(image, settings, method, recogniser, x, jnd, work, faces, goal, clean_embs, target_emb,
                check_stop, t0, device, timings, lap, full_metrics, notes, mean_jnd
                ) -> Generator[PipelineStep, None, ProtectionResult]:
    """Post mode: every face optimised against every white-box recogniser over the threat
    distribution; success = every quick-matrix cell passes on real encodes (docs/design.md §4–5).
    ``x`` and ``jnd``: each face's context region ``work`` of the photo and of J."""
    from jndguard.core.attacks import post_scale
    from jndguard.core.attacks.post_eot import PostEOT
    from jndguard.core.attacks.post_problem import make_post_problem, quick_matrix
    from jndguard.core.methods import POST_TRAIN_EXTRA

    n = len(faces)
    recognisers = white_box_recognisers(settings, recogniser)
    targets = others = None
    if goal is Goal.IMPERSONATE:
        targets, others = _impersonation_refs(recognisers, settings.target)
    eot = PostEOT(samples=settings.eot_samples)
    decoys = None
    if goal is Goal.DODGE and settings.decoy:
        from jndguard.core.models.gallery import celebrity_gallery

        decoys = [celebrity_gallery(rec)[1].to(rec.device) for rec in recognisers]
    target_photos = None
    if goal is Goal.IMPERSONATE:
        from jndguard.core.models.store import dataset_dir

        target_photos = dataset_dir(getattr(recogniser, "home", None)) / "train" / settings.target
    matrix = quick_matrix(image.pixels, faces, recognisers, target_photos) if n else None
    # faces too large for full resolution: their working copy, its J (post_scale)
    scaled, work_x, work_jnd = [None] * n, list(x), list(jnd)
    for i in range(n):
        scaled[i], work_x[i], work_jnd[i] = _work_copy(image.pixels, settings, work[i], faces[i], x[i],
                                                       jnd[i], device)
        if scaled[i] is not None:
            x0, y0, x1, y1 = work[i]
            notes.append(f"face {i + 1}: optimised at {min(scaled[i].factors):.0%} of full resolution "
                         f"(its surroundings are {(x1 - x0) * (y1 - y0) / 1e6:.1f} MP; post mode works on "
                         f"at most {post_scale.WORK_MAX_PIXELS / 1e6:g} MP per face), then carried back "
                         "within the full-resolution JND budget")
    current = {"pixels": image.pixels.copy()}
    lap("setup")  # the other recognisers, impersonation references, the quick matrix's clean side
    per_face: list[dict] = [{} for _ in faces]
    regions: list = [None] * n
    inits: list = [None] * n
    verdicts: list = [None] * n
    pending = list(range(n))
    for round_ in range(1, settings.max_rounds + 1):
        for i in pending:
            tf = time.perf_counter()
            problem, region = make_post_problem(
                work_x[i], work_jnd[i], image.pixels, faces[i], recognisers, goal, eot,
                lambda: current["pixels"],
                settings.stop_margin, settings.stop_margin + POST_TRAIN_EXTRA,
                torch.Generator().manual_seed(settings.seed * 1000 + i * 10 + round_), targets, others,
                "ycbcr" if settings.jnd_color == "ycbcr" else "rgb", matrix, i, decoys,
                origin=work[i][:2], scaled=scaled[i])
            regions[i] = region
            setup = time.perf_counter() - tf
            gen = method.iterate(problem, inits[i])
            try:
                while True:
                    try:
                        step = next(gen)
                    except StopIteration as done:
                        result = done.value
                        break
                    except torch.cuda.OutOfMemoryError:
                        raise JNDGuardError(
                            f"out of memory on {device.type}: try fewer views per step "
                            f"(eot_samples, now {settings.eot_samples}) or a smaller photo") from None
                    check_stop()
                    yield _attack_step(step, i, n, recogniser.threshold, region)
            finally:
                gen.close()
            x0, y0, x1, y1 = region
            current["pixels"][y0:y1, x0:x1] = problem.judge.lift(result.adversarial)  # as it was judged
            inits[i] = (result.adversarial - problem.clean).detach()
            verdicts[i] = result.verdict
            prev = per_face[i]
            per_face[i] = {
                "face": i, "box": list(faces[i].box), "region": list(region),
                "iterations": prev.get("iterations", 0) + result.iterations,
                "seconds": prev.get("seconds", 0.0) + time.perf_counter() - tf,
                "setup_seconds": prev.get("setup_seconds", 0.0) + setup,
                "check_seconds": prev.get("check_seconds", 0.0) + (
                    result.history[-1].get("check_seconds", 0.0) if result.history else 0.0),
                "rounds": round_, "beta": result.beta, "attempts": result.attempts,
                "optimiser_success": result.success, "notes": result.notes,
                "recognisers": [r.name for r in recognisers],
                "work_scale": 1.0 if scaled[i] is None else round(min(scaled[i].factors), 4),
                "quick_matrix": {"success": result.verdict.success, "cells": result.verdict.cells,
                                 "failed": result.verdict.failed, "worst": result.verdict.worst,
                                 "worst_cells": result.verdict.details[:5]},
            }
        pending = [i for i in range(n) if not verdicts[i].success]
        if not pending or n == 1:  # another round helps only when other faces changed since
            break
        logger.info("round %d: %d face(s) not protected in every quick-matrix cell", round_, len(pending))
    lap("optimisation")
    yield PipelineStep("verify", "re-detecting faces on the 8-bit result", n_faces=n)
    redetected = judge_redetected(recogniser, current["pixels"], faces, clean_embs, goal,
                                  recogniser.threshold, settings.safety_margin, target_emb,
                                  settings.min_face_size)
    lap("recheck")
    del matrix, inits
    for i, v in enumerate(redetected):
        per_face[i].update(v)
        per_face[i]["success"] = bool(v["success"] and verdicts[i].success)
        per_face[i]["threshold"] = recogniser.threshold
    metrics = _measure(image.pixels, current["pixels"], work, jnd, mean_jnd, regions, per_face, notes,
                       full_metrics)
    lap("metrics")
    timings["checks"] = round(sum(f.get("check_seconds", 0.0) for f in per_face), 4)
    success = bool(faces) and all(f["success"] for f in per_face)
    yield PipelineStep("done", "protected" if success else "not protected", n_faces=n, success=success)
    return ProtectionResult(
        protected=current["pixels"], jnd=RegionMaps(image.height, image.width, work, jnd),
        faces=faces, per_face=per_face, metrics=metrics, settings=settings, success=success,
        seconds=time.perf_counter() - t0, device=str(device),
        model={"name": recogniser.name, "sha256": recogniser.info.sha256,
               "threshold": recogniser.threshold, "white_box": [r.name for r in recognisers]},
        timings={k: round(v, 4) for k, v in timings.items()})


def protect(image: LoadedImage, settings: ProtectionSettings | None = None,
            recogniser=None, **kwargs) -> ProtectionResult:
    """Run :func:`protect_steps` to the end (keyword arguments: see there)."""
    from jndguard.core.progress import drive

    return drive(protect_steps(image, settings or ProtectionSettings(), recogniser, **kwargs))


__all__ = ["METHODS", "Cancelled", "PipelineStep", "ProtectionResult", "ProtectionSettings",
           "build_method", "paper_defaults", "protect", "protect_steps", "replace"]
