"""The work the window hands to background workers. No widgets here.

Every function is a generator (or plain function) run by
:class:`~jndguard.gui.workers.GeneratorWorker` on a pool thread. What they yield and return
are plain dataclasses holding numpy arrays and numbers, and the QImages of everything
photo-sized (built here, off the GUI thread, by :func:`jndguard.gui.imaging.to_qimage`: a
12 MP conversion would block the window for tens of milliseconds). JND maps are already
colour-mapped, perturbations already amplified, so no widget has to compute anything.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import tempfile
import time
import traceback
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from jndguard.core.results import build_report  # re-exported: one report builder for CLI and GUI
from jndguard.gui import imaging

logger = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- loading


@dataclass
class PhotoLoaded:
    """A photo decoded and searched for faces."""

    item_id: int
    image: Any  # LoadedImage
    faces: list
    thumbnail: np.ndarray
    seconds: float
    min_face_size: int = 20  # the detection floor ``faces`` were found with


@dataclass
class PhotoThumbnail:
    """A photo's thumbnail, from a reduced decode, before the photo itself is decoded."""

    item_id: int
    thumbnail: np.ndarray


@dataclass
class PhotoDecoded:
    """A photo decoded, before its faces are found (its views can be drawn already)."""

    item_id: int
    image: Any  # LoadedImage
    picture: Any = None  # QImage of the pixels, for the views


@dataclass
class PhotoFailed:
    """A photo that could not be read (the rest of the batch continues)."""

    item_id: int
    reason: str
    details: str


def _short_reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


@dataclass
class PhotosFound:
    """The files a drop or a dialog resolved to, with the ids of their queue entries."""

    items: list[tuple[int, Path]]


_ids = itertools.count(1)


def new_item_id() -> int:
    """A process-wide unique queue id (thread-safe: ``itertools.count`` is atomic in CPython)."""
    return next(_ids)


def load_paths(
    paths: Sequence[str | Path],
    exclude: frozenset[Path] = frozenset(),
    min_face_size: int = 20,
    device: str = "cpu",
    detect: DetectFn | None = None,
) -> Generator[PhotosFound | PhotoLoaded | PhotoFailed, None, int]:
    """Expand folders, then decode each photo, make its thumbnail and detect its faces.

    Yields one :class:`PhotosFound` first (files already in the queue, ``exclude``, are
    skipped), then one :class:`PhotoLoaded` or :class:`PhotoFailed` per file: a bad file
    fails with the loader's message and the others continue.

    Returns:
        The number of photos read successfully.
    """
    files = [p for p in expand_paths(paths) if _key(p) not in exclude]
    jobs = [(new_item_id(), p) for p in files]
    yield PhotosFound(jobs)
    ok = yield from load_photos(jobs, min_face_size, device, detect)
    return ok


def _key(p: Path) -> Path:
    try:
        return p.resolve()
    except OSError:
        return p


THUMBNAIL_SIZE = 112


def quick_thumbnail(path: str | Path, size: int = THUMBNAIL_SIZE) -> np.ndarray | None:
    """A thumbnail without decoding the whole photo: JPEG's reduced DCT decode
    (``Image.draft``) and Pillow's ``reduce``, in display orientation. None when the file
    cannot be read this way (the full load then says why)."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as img:
            img.draft("RGB", (2 * size, 2 * size))
            img = ImageOps.exif_transpose(img)
            img = img.convert("RGB")
            img.thumbnail((size, size), Image.Resampling.BOX, reducing_gap=2.0)
            return np.asarray(img, dtype=np.uint8).copy()
    except Exception:  # a bad file is reported by the full load
        return None


#: ``detect(path, image, min_face_size, device)`` → the faces of a decoded photo
DetectFn = Callable[[Path, Any, int, str], list]


def detect_here(path: Path, image: Any, min_face_size: int, device: str) -> list:
    """Face detection in this process (the app uses :func:`jndguard.gui.helper.detect_file`)."""
    from jndguard.core.faces import detect_faces

    return list(detect_faces(image.pixels, _detection_device(device), min_face_size=min_face_size))


def load_photos(
    jobs: Sequence[tuple[int, Path]], min_face_size: int = 20, device: str = "cpu",
    detect: DetectFn | None = None,
) -> Generator[PhotoThumbnail | PhotoDecoded | PhotoLoaded | PhotoFailed, None, int]:
    """Show each photo's thumbnail at once, then decode the photo and detect its faces
    (``detect``, default :func:`detect_here`).

    Yields :class:`PhotoThumbnail` first for every photo (a reduced decode takes
    milliseconds even for 12 MP), then per photo :class:`PhotoDecoded` (the views can be drawn)
    and :class:`PhotoLoaded` (with its faces). A bad file yields
    :class:`PhotoFailed` with the loader's message; the others continue.

    Returns:
        The number of photos read successfully.
    """
    ok = 0
    thumbs: dict[int, np.ndarray | None] = {}
    for item_id, path in jobs:
        thumbs[item_id] = quick_thumbnail(path)
        if thumbs[item_id] is not None:
            yield PhotoThumbnail(item_id, thumbs[item_id])
    from jndguard.core.imageio import load_image

    detect = detect or detect_here
    for item_id, path in jobs:
        t0 = time.perf_counter()
        try:
            image = load_image(path)
            yield PhotoDecoded(item_id, image, imaging.to_qimage(image.pixels))
            thumb = thumbs.get(item_id)
            if thumb is None or image.notes:  # converted modes: the decoded photo is the truth
                thumb = imaging.thumbnail(image.pixels, THUMBNAIL_SIZE)
            faces = detect(path, image, min_face_size, device)
        except Exception as exc:  # every failure is reported on its own item
            reason = _short_reason(exc)
            prefix = f"{path}: "
            if reason.startswith(prefix):  # the queue row already names the file
                reason = reason[len(prefix) :]
            yield PhotoFailed(item_id, reason[:1].upper() + reason[1:], traceback.format_exc())
            continue
        ok += 1
        yield PhotoLoaded(item_id, image, list(faces), thumb, time.perf_counter() - t0, min_face_size)
    return ok


def _detection_device(name: str):
    from jndguard.core.device import resolve_device

    try:
        return resolve_device(name)
    except ValueError:
        return resolve_device("cpu")


# ----------------------------------------------------------------------------- views


@dataclass(frozen=True)
class DisplayOptions:
    """How the JND and perturbation views are drawn (view state, persisted)."""

    jnd_channel: str = "luma"
    perturbation_channel: str = "rgb"
    amplification: int = 0  # 0 = automatic


@dataclass(frozen=True)
class JndParams:
    model: str = "yang"
    color: str = "scaled"
    strength: float = 1.0


@dataclass
class RenderedViews:
    """Everything the views of one photo show beyond the original pixels."""

    item_id: int
    token: int
    jnd_params: JndParams
    jnd_levels: np.ndarray | None = None  # (H, W, 3) float32, for the cache
    jnd_rgb: np.ndarray | None = None  # (h, w, 3) at the map's size (see ``jnd_size``)
    jnd_image: Any = None  # QImage of jnd_rgb, drawn over the photo's extent
    jnd_range: tuple[float, float] = (0.0, 1.0)
    jnd_mean: float | None = None
    jnd_error: str | None = None
    perturbation_rgb: np.ndarray | None = None
    perturbation_image: Any = None  # QImage of perturbation_rgb
    protected_image: Any = None  # QImage of the protected pixels, when given
    perturbation_range: tuple[float, float] = (-1.0, 1.0)
    amplification: int = 10
    perturbation_channel: str = "rgb"
    perturbation_max: float | None = None
    seconds: float = 0.0
    jnd_size: tuple[int, int] | None = None  # (w, h) the map was computed at (display copy)
    extent: tuple[int, int] | None = None  # (w, h) of the photo the pictures cover


#: the JND view of a larger photo is computed on an area-downscaled copy of about this many
#: pixels and drawn stretched over the photo's extent (the protection always uses the
#: full-resolution map, which replaces the view's once a run has produced it)
VIEW_JND_PIXELS = 1_000_000  # sharper than a fitted pane; the map's cost grows with its area


class JndUnavailable(RuntimeError):
    """The JND engine cannot be imported."""


def compute_jnd_levels(pixels: np.ndarray, params: JndParams, max_pixels: int | None = None) -> np.ndarray:
    """The JND map of one photo, (h, w, 3) float32 in 8-bit levels; with ``max_pixels``, of an
    area-downscaled copy of at most that many pixels (for display)."""
    try:
        from jndguard.core.jnd import jnd_map
    except ImportError as exc:
        raise JndUnavailable("JND engine not available") from exc
    from jndguard.core.imageio import to_tensor

    h, w = pixels.shape[:2]
    if max_pixels is not None and h * w > max_pixels:
        k = math.sqrt(max_pixels / (h * w))
        pixels = cv2.resize(pixels, (max(1, round(w * k)), max(1, round(h * k))),
                            interpolation=cv2.INTER_AREA)

    jnd = jnd_map(to_tensor(pixels), model=params.model, color=params.color, strength=params.strength)
    return (jnd[0].permute(1, 2, 0).float().cpu().numpy() * 255.0).astype(np.float32)


def render_views(
    item_id: int,
    token: int,
    pixels: np.ndarray,
    params: JndParams,
    options: DisplayOptions,
    jnd_levels: np.ndarray | None = None,
    delta_levels: np.ndarray | None = None,
    with_jnd: bool = True,
    protected: np.ndarray | None = None,
) -> RenderedViews:
    """Compute (unless cached) and colour-map the JND map; amplify the perturbation; make
    the QImages of both and of the ``protected`` pixels (when given)."""
    t0 = time.perf_counter()
    out = RenderedViews(item_id, token, params)
    h, w = pixels.shape[:2]
    out.extent = (w, h)
    try:
        if with_jnd and jnd_levels is None:
            jnd_levels = compute_jnd_levels(pixels, params, VIEW_JND_PIXELS)
        if jnd_levels is not None:
            out.jnd_levels = jnd_levels
            out.jnd_rgb, out.jnd_range = imaging.colour_jnd(jnd_levels, options.jnd_channel)
            out.jnd_mean = float(imaging.jnd_channel(jnd_levels, options.jnd_channel).mean())
            out.jnd_size = (jnd_levels.shape[1], jnd_levels.shape[0])
            out.jnd_image = imaging.to_qimage(out.jnd_rgb)  # a display copy is stretched by the view
    except JndUnavailable as exc:
        out.jnd_error = str(exc)
    except Exception as exc:
        logger.exception("JND map failed")
        out.jnd_error = f"JND map failed: {_short_reason(exc)}"
    if delta_levels is not None:
        amp = options.amplification or imaging.suggested_amplification(delta_levels)
        out.amplification = int(amp)
        out.perturbation_channel = options.perturbation_channel
        out.perturbation_rgb, out.perturbation_range = imaging.render_perturbation(
            delta_levels, options.perturbation_channel, amp
        )
        out.perturbation_max = float(np.abs(delta_levels).max()) if delta_levels.size else 0.0
        out.perturbation_image = imaging.to_qimage(out.perturbation_rgb)
    if protected is not None:
        out.protected_image = imaging.to_qimage(np.asarray(protected))
    out.seconds = time.perf_counter() - t0
    return out


def perturbation_levels(original: np.ndarray, protected: np.ndarray) -> np.ndarray:
    """Z − X in 8-bit levels, float32 (signed)."""
    return protected.astype(np.float32) - original.astype(np.float32)


# ----------------------------------------------------------------------------- analysis


@dataclass
class AnalysisViews:
    """Where one protected version of a photo changed, around one face (the Analysis tab).

    Everything is measured on the face's region (box + the run's margin: where the
    perturbation lives), except ``photo_changed_ratio``.
    """

    item_id: int
    face_index: int
    method: str
    region: tuple[int, int, int, int]  # x0, y0, x1, y1 in photo pixels
    diff_rgb: list[np.ndarray]  # |Δ| of R, G, B normalised to 0–255, as grey (h, w, 3) pictures
    stats: dict  # difference_maps' stats of the region
    hist: dict  # jnd_ratio_histogram of the region
    photo_changed_ratio: float  # pixels with any channel changed, whole photo
    seconds: float = 0.0


def analysis_views(
    item_id: int,
    face_index: int,
    method: str,
    original: np.ndarray,
    protected: np.ndarray,
    jnd_levels: Any,
    face: Any,
    margin: float,
) -> AnalysisViews:
    """Per-channel difference maps and the ``|change| / J`` histogram of one face region
    (``jndguard.core.research.analysis``), ready to draw."""
    from jndguard.core.pipeline import face_region
    from jndguard.core.research.analysis import difference_maps, jnd_ratio_histogram

    t0 = time.perf_counter()
    h, w = original.shape[:2]
    x0, y0, x1, y1 = face_region(face, margin, w, h)
    o, z = (np.asarray(a)[y0:y1, x0:x1] for a in (original, protected))
    j = np.asarray(jnd_levels[y0:y1, x0:x1])  # a protection's J is known on its face regions only
    maps, stats = difference_maps(o, z)
    hist = jnd_ratio_histogram(o, z, j)
    photo = float((np.asarray(original) != np.asarray(protected)).any(axis=2).mean())
    grey = [np.ascontiguousarray(np.repeat(m[..., None], 3, axis=2)) for m in maps]
    return AnalysisViews(
        item_id, face_index, method, (x0, y0, x1, y1), grey, stats, hist, photo, time.perf_counter() - t0
    )


@dataclass
class GradCamViews:
    """Grad-CAM overlays of one face: the clean crop first, then each protected version."""

    item_id: int
    face_index: int
    labels: list[str]  # "clean", then method keys
    overlays: list[np.ndarray] = field(default_factory=list)  # (S, S, 3) uint8 each
    similarities: list[float] = field(default_factory=list)  # cosine similarity to the clean crop
    blank: list[bool] = field(default_factory=list)  # no region carries the identity (map all 0)
    threshold: float | None = None
    message: str | None = None  # why there are no overlays (an error, or a wait)
    seconds: float = 0.0


def grad_cam_views(
    item_id: int,
    face_index: int,
    original: np.ndarray,
    protected: dict[str, np.ndarray],
    box: Sequence[float],
    model: str | None,
    device: str,
    *,
    stop: Callable[[], bool] | None = None,
    cam_fn: Callable[..., dict | None] | None = None,
) -> GradCamViews | None:
    """Grad-CAM of the clean face and of each protected version (method → pixels).

    ``cam_fn`` has :func:`jndguard.gui.helper.grad_cams`' signature (the default: the
    recogniser lives in the helper process, where protection runs). A failure is returned in
    ``message`` (the panel says why); None when stopped.
    """
    if cam_fn is None:
        from jndguard.gui.helper import grad_cams as cam_fn  # type: ignore[no-redef]
    t0 = time.perf_counter()
    labels = ["clean", *protected]
    # only the face travels to the helper (a 12 MP photo is 36 MB a copy): the crop samples
    # inside the box, so a window a few pixels larger (or the photo's edge) gives the same crop
    h, w = original.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    x0, y0 = max(0, math.floor(x1) - 4), max(0, math.floor(y1) - 4)
    xe, ye = min(w, math.ceil(x2) + 4), min(h, math.ceil(y2) + 4)
    local = (x1 - x0, y1 - y0, x2 - x0, y2 - y0)
    crops = [np.ascontiguousarray(a[y0:ye, x0:xe]) for a in (original, *protected.values())]
    try:
        out = cam_fn(crops[0], crops[1:], local, model, device, stop=stop)
    except Exception as exc:
        logger.exception("Grad-CAM failed")
        return GradCamViews(item_id, face_index, labels, message=f"Grad-CAM failed: {_short_reason(exc)}")
    if out is None:
        return None
    return GradCamViews(
        item_id,
        face_index,
        labels,
        [np.ascontiguousarray(o) for o in out["overlays"]],
        list(out["similarities"]),
        [not bool(np.any(c > 0)) for c in out["cams"]] if "cams" in out else [],
        out.get("threshold"),
        seconds=time.perf_counter() - t0,
    )


# ----------------------------------------------------------------------------- models


def preload(model: str | None, device: str) -> None:
    """Start the helper process and let it import the pipeline and load the recogniser, so
    the first run starts at once (and no first-time import ever runs in the GUI process)."""
    from jndguard.gui import helper

    helper.warm_up(model, device)


@dataclass
class ModelStatus:
    """What the status bar and the models dialog show."""

    fetched: bool
    home: str
    models: list[dict] = field(default_factory=list)
    default: str | None = None
    threshold: float | None = None
    persons: list[str] = field(default_factory=list)
    device: str = ""
    devices: list[str] = field(default_factory=list)
    error: str | None = None


def check_models(device: str = "auto") -> ModelStatus:
    """Cheap look at the model store (no hashing) plus the devices present."""
    import torch

    from jndguard.core.device import describe_device, resolve_device
    from jndguard.core.models.store import DEFAULT_MODEL, dataset_dir, is_fetched, list_models, models_home

    home = models_home()
    status = ModelStatus(fetched=is_fetched(home), home=str(home))
    devices = ["auto", "cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    status.devices = devices
    try:
        status.device = describe_device(resolve_device(device))
    except ValueError as exc:
        status.device = f"{device} (unavailable: {exc})"
    if not status.fetched:
        return status
    try:
        status.models = list_models(home)
    except Exception as exc:
        status.error = _short_reason(exc)
        status.fetched = False
        return status
    status.default = DEFAULT_MODEL
    for m in status.models:
        if m["name"] == DEFAULT_MODEL:
            status.threshold = m.get("threshold")
    train = dataset_dir(home) / "train"
    if train.is_dir():
        status.persons = sorted(p.name for p in train.iterdir() if p.is_dir())
    return status


def fetch_models() -> Generator[Any, None, dict]:
    """``jndguard models fetch`` as a generator of FetchProgress (for the models dialog)."""
    from jndguard.core.models import fetch_steps

    manifest = yield from fetch_steps()
    from jndguard.gui import helper

    helper.shutdown()  # a fresh helper loads the new models
    return manifest


# ----------------------------------------------------------------------------- protection


@dataclass
class RunJob:
    item_id: int
    image: Any  # LoadedImage
    settings: Any = None  # ProtectionSettings for this job (default: the run's)
    faces: list | None = None  # the photo's faces, when detected already with its settings


@dataclass
class StepView:
    """A pipeline step, thinned for the GUI: history points since the last one, and the live
    perturbation preview already amplified for display."""

    stage: str
    message: str
    face_index: int
    n_faces: int
    iteration: int
    max_iterations: int
    losses: dict[str, float]
    similarity: float | None
    threshold: float | None
    success: bool
    points: list[tuple[int, dict[str, float], float | None]] = field(default_factory=list)
    preview_rgb: np.ndarray | None = None
    preview_box: tuple[int, int, int, int] | None = None
    preview_image: Any = None  # QImage of preview_rgb
    amplification: int = 10


@dataclass
class RunEvent:
    """One event of a protection run, about one photo.

    Per photo: ``start``, ``step``s, ``result`` (the protected photo, shown at once; its
    quality figures may still be missing), more ``step``s (metrics, verification) and ``done``
    (the same result, measured and verified) — or ``failed``.
    """

    kind: str  # "start" | "step" | "result" | "done" | "failed"
    item_id: int
    index: int
    total: int
    step: StepView | None = None
    result: Any = None  # ProtectionResult
    delta_levels: np.ndarray | None = None
    verification: dict | None = None
    error: str | None = None
    details: str | None = None
    seconds: float = 0.0


@dataclass
class RunSummary:
    total: int
    protected: int
    not_protected: int
    failed: int
    seconds: float


def _step_fields(step: Any) -> dict[str, Any]:
    get = step.get if isinstance(step, dict) else (lambda k, d=None: getattr(step, k, d))
    return {
        "stage": get("stage", "attack"),
        "message": get("message", "") or "",
        "face_index": int(get("face_index", 0) or 0),
        "n_faces": int(get("n_faces", 0) or 0),
        "iteration": int(get("iteration", 0) or 0),
        "max_iterations": int(get("max_iterations", 0) or 0),
        "losses": {str(k): float(v) for k, v in (get("losses", {}) or {}).items()},
        "similarity": get("similarity"),
        "threshold": get("threshold"),
        "success": bool(get("success", False)),
        "preview": get("preview"),
        "preview_box": get("preview_box"),
    }


def protection_run(
    jobs: Sequence[RunJob],
    settings: Any,
    *,
    stop: Callable[[], bool] | None = None,
    steps_fn: Callable[..., Generator] | None = None,
    verify: bool = True,
    use_dlib: bool = True,
    amplification: int = 0,
    gallery: str | None = None,
    min_interval: float = 0.05,
    preview_interval: float = 0.3,
) -> Generator[RunEvent, None, RunSummary]:
    """Protect photos one after another with the pipeline, yielding thinned progress.

    Steps are forwarded at most every ``min_interval`` seconds (stage changes and successes
    always), carrying every history point in between, so a fast GPU cannot flood the GUI
    thread with signals. A stop request ends the run within one step; the photo being
    protected is left untouched (its partial result is dropped).

    Args:
        jobs: the photos (already decoded).
        settings: a ProtectionSettings.
        stop: returns True when the user cancelled.
        steps_fn: the pipeline's ``protect_steps`` (injectable for tests).
        verify: check each result on its saved file (``jndguard.core.verify``).
        use_dlib: include dlib's independent recogniser in that check (when installed).
        amplification: perturbation preview factor (0: automatic).
        gallery: the user's "my other photos" folder (the gallery threat), or None.
    """
    stop = stop or (lambda: False)
    t_run = time.perf_counter()
    real = steps_fn is None
    if real:  # the real pipeline, in the helper process (see jndguard.gui.helper)
        from jndguard.gui.helper import protect_steps as steps_fn  # type: ignore[no-redef]
    counts = {"protected": 0, "not_protected": 0, "failed": 0}
    total = len(jobs)
    for index, job in enumerate(jobs):
        if stop():
            break
        t0 = time.perf_counter()
        job_settings = job.settings or settings
        yield RunEvent("start", job.item_id, index, total)
        shown: dict[str, Any] = {}  # the "result" event sent before the metrics, if any
        try:
            # the real pipeline measures the quality after handing the protected photo over
            kw: dict[str, Any] = {"defer_metrics": True} if real else {}
            if real and job.faces is not None:
                kw["faces"] = job.faces
            gen = steps_fn(job.image, job_settings, recogniser=None, stop=stop, **kw)
            result = yield from _forward_steps(
                gen, job, index, total, amplification, min_interval, preview_interval, stop, shown
            )
        except Exception as exc:
            if stop():
                break
            counts["failed"] += 1
            yield RunEvent(
                "failed",
                job.item_id,
                index,
                total,
                error=_short_reason(exc),
                details=traceback.format_exc(),
                seconds=time.perf_counter() - t0,
            )
            continue
        if stop() or result is None:
            break  # cancelled: the photo stays as it was
        if "delta" in shown:
            delta = shown["delta"]
        else:  # measured in place (a stand-in pipeline): shown now, before the verification
            delta = perturbation_levels(job.image.pixels, np.asarray(result.protected))
            yield RunEvent("result", job.item_id, index, total, result=result, delta_levels=delta,
                           seconds=time.perf_counter() - t0)
        verification = None
        if verify:
            yield RunEvent(
                "step",
                job.item_id,
                index,
                total,
                step=StepView(
                    "verify",
                    "verifying the saved file (JPEG, resize, every recogniser)",
                    0,
                    len(result.faces),
                    0,
                    0,
                    {},
                    None,
                    None,
                    bool(result.success),
                ),
            )
            verification = verify_result(job.image, result, use_dlib, stop, gallery)
            if stop():
                break
        ok = bool(getattr(result, "success", False))
        counts["protected" if ok else "not_protected"] += 1
        yield RunEvent(
            "done",
            job.item_id,
            index,
            total,
            result=result,
            delta_levels=delta,
            verification=verification,
            seconds=time.perf_counter() - t0,
        )
    return RunSummary(
        total, counts["protected"], counts["not_protected"], counts["failed"], time.perf_counter() - t_run
    )


def _forward_steps(
    gen: Generator,
    job: RunJob,
    index: int,
    total: int,
    amplification: int,
    min_interval: float,
    preview_interval: float,
    stop: Callable[[], bool],
    shown: dict | None = None,
) -> Generator[RunEvent, None, Any]:
    from jndguard.gui.helper import Unmeasured

    last_emit = 0.0
    last_preview = 0.0
    last_stage = None
    points: list[tuple[int, dict[str, float], float | None]] = []
    pending = None
    try:
        while True:
            try:
                step = next(gen)
            except StopIteration as done:
                if pending is not None:
                    yield RunEvent("step", job.item_id, index, total, step=pending)
                return done.value
            if stop():
                return None
            if isinstance(step, Unmeasured):  # the protected photo, before its quality figures
                if pending is not None:
                    yield RunEvent("step", job.item_id, index, total, step=pending)
                    pending = None
                delta = perturbation_levels(job.image.pixels, np.asarray(step.result.protected))
                if shown is not None:
                    shown["delta"] = delta
                yield RunEvent("result", job.item_id, index, total, result=step.result, delta_levels=delta)
                continue
            f = _step_fields(step)
            if f["stage"] == "attack":
                points.append((f["iteration"], f["losses"], f["similarity"]))
            now = time.perf_counter()
            urgent = f["stage"] != last_stage or f["success"] or f["stage"] == "done"
            last_stage = f["stage"]
            view = StepView(
                f["stage"],
                f["message"],
                f["face_index"],
                f["n_faces"],
                f["iteration"],
                f["max_iterations"],
                f["losses"],
                f["similarity"],
                f["threshold"],
                f["success"],
            )
            want_preview = f["preview"] is not None and now - last_preview >= preview_interval
            if urgent or now - last_emit >= min_interval:
                if want_preview:
                    prev = np.asarray(f["preview"], dtype=np.float32)
                    amp = amplification or imaging.suggested_amplification(prev)
                    view.preview_rgb, _ = imaging.render_perturbation(prev, "rgb", amp)
                    view.preview_image = imaging.to_qimage(view.preview_rgb)
                    view.amplification = int(amp)
                    box = f["preview_box"]
                    view.preview_box = None if box is None else tuple(round(float(v)) for v in box)
                    last_preview = now
                view.points, points = points, []
                pending = None
                last_emit = now
                yield RunEvent("step", job.item_id, index, total, step=view)
            else:
                view.points = points
                pending = view
    finally:
        gen.close()


def _target(settings: Any) -> str | None:
    """The identity to verify impersonation of (None when dodging)."""
    return settings.target if getattr(settings, "goal", "dodge") == "impersonate" else None


def verify_result(
    image: Any, result: Any, use_dlib: bool = True, stop: Callable[[], bool] | None = None,
    gallery: str | None = None,
) -> dict | None:
    """Verification of a result on its saved 8-bit file (None when unavailable or stopped).

    The protected pixels are written to a temporary lossless PNG, which
    ``jndguard.core.verify.verify`` re-loads and re-detects as any viewer would (in the
    helper process of :mod:`jndguard.gui.helper`).
    """
    if image.path is None:
        return None
    from jndguard.core.export import export_image
    from jndguard.gui import helper

    s = result.settings
    try:
        with tempfile.TemporaryDirectory(prefix="jndguard-verify-") as tmp:
            out = export_image(np.asarray(result.protected), tmp, source=image.path)
            return helper.verify_file(image.path, out, s.model, s.device, use_dlib, _target(s), stop,
                                      gallery=gallery)
    except Exception as exc:
        logger.exception("verification failed")
        return {"error": _short_reason(exc)}


def _plain_dict(obj: Any) -> dict:
    if isinstance(obj, dict):
        return obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    to_dict = getattr(obj, "to_dict", None)
    return to_dict() if callable(to_dict) else {"result": obj}


# ----------------------------------------------------------------------------- export


@dataclass
class ExportJob:
    item_id: int
    source: Path
    result: Any  # ProtectionResult
    verification: dict | None = None
    icc_profile: bytes | None = None


@dataclass
class ExportEvent:
    item_id: int
    index: int
    total: int
    image: Path | None = None
    report: Path | None = None
    error: str | None = None
    details: str | None = None


@dataclass
class ExportSummary:
    out_dir: Path
    written: list[Path] = field(default_factory=list)
    reports: list[Path] = field(default_factory=list)
    summary: Path | None = None
    failed: list[tuple[str, str]] = field(default_factory=list)


def export_run(
    jobs: Sequence[ExportJob],
    out_dir: Path,
    options: Any,
    verify: bool = True,
    use_dlib: bool = True,
    stop: Callable[[], bool] | None = None,
    gallery: str | None = None,
) -> Generator[ExportEvent, None, ExportSummary]:
    """Export each protected photo with its JSON report and the batch CSV summary.

    With ``verify`` the written file itself is re-loaded and checked (JPEG, resize, every
    recogniser) before its report is written, so the report describes the real file.
    """
    from jndguard.core.export import SUMMARY_NAME, export_photo
    from jndguard.gui import helper

    out_dir = Path(out_dir)
    summary = ExportSummary(out_dir)
    for index, job in enumerate(jobs):
        if stop is not None and stop():
            break
        s = job.result.settings
        check = None
        if verify:

            def check(path, src=job.source, s=s):
                try:
                    return helper.verify_file(src, path, s.model, s.device, use_dlib, _target(s),
                                              gallery=gallery)
                except Exception as exc:  # the photo is still exported; the report says why
                    logger.exception("verification of %s failed", path)
                    return {"error": f"verification failed: {_short_reason(exc)}"}

        try:
            written = export_photo(
                np.asarray(job.result.protected),
                out_dir,
                source=job.source,
                report=build_report(job.result, None if verify else job.verification),
                options=options,
                icc_profile=job.icc_profile,
                verify=check,
            )
        except Exception as exc:
            summary.failed.append((job.source.name, _short_reason(exc)))
            yield ExportEvent(
                job.item_id, index, len(jobs), error=_short_reason(exc), details=traceback.format_exc()
            )
            continue
        summary.written.append(written.image)
        if written.report is not None:
            summary.reports.append(written.report)
        if written.summary is not None:
            summary.summary = written.summary
        yield ExportEvent(job.item_id, index, len(jobs), image=written.image, report=written.report)
    if summary.summary is None and (out_dir / SUMMARY_NAME).is_file():
        summary.summary = out_dir / SUMMARY_NAME
    return summary


def expand_paths(paths: Sequence[str | Path], recursive: bool = True) -> list[Path]:
    """Files as given plus the supported photos inside folders (sorted, no duplicates).

    Files given explicitly are kept even with an unknown suffix (the loader then says why
    it cannot read them); files found in folders are filtered by suffix.
    """
    from jndguard.core.photos import collect_photos

    return collect_photos(paths, recursive=recursive)
