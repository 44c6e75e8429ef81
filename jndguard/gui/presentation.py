"""Presentation mode: a full-screen live demo for an audience.

Pick the bundled sample, drop a photo (or take a camera snapshot where a camera and
QtMultimedia are present; otherwise that option is hidden), press **Protect**, and watch the
recogniser's similarity between the photo being protected and the original fall below the
verification threshold, in large type, while the photo itself visibly stays the same. When it
is done, **Flash** alternates original and protected so the audience can look for a
difference. ``Esc`` leaves.

Keys: ``Space``/``Enter`` protect, ``F`` flash on/off, ``S`` the sample photo, ``O`` open a
photo, ``C`` camera snapshot, ``Esc`` leave.

The protection is :func:`jndguard.core.pipeline.protect_steps` with a small iteration budget,
run in the GUI's helper process like the main window's runs (:mod:`jndguard.gui.helper`) and
turned into live frames by :func:`live_protection` in a
:class:`~jndguard.gui.workers.GeneratorWorker`: the worker composes the frames (original +
current perturbation) and the window only shows them. When the run ends, the gauge shows the
worst cell of the quick threat matrix (docs/design.md §4: other crop conventions and
re-encodings), not the optimiser's own crop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QDragEnterEvent,
    QDropEvent,
    QFont,
    QImage,
    QKeyEvent,
    QPainter,
    QPalette,
    QPen,
)
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from jndguard.core.photos import photo_filter
from jndguard.gui.workers import GeneratorWorker
from jndguard.resources import SAMPLE_PHOTO, resource_path

logger = logging.getLogger(__name__)

#: Iteration budget of a live run (HVS-JND's fast defaults succeed in 10–30 iterations).
LIVE_ITERATIONS = 40
FLASH_MS = 700
PHOTO_FILTER = photo_filter()
GOOD, BAD, FG, BG = "#38c172", "#e3342f", "#f2f2f2", "#121316"


def presentation_settings(**overrides: Any):
    """The settings of a live run: HVS-JND, post mode (the default), a small budget (overridable)."""
    from jndguard.core.pipeline import ProtectionSettings

    base = {"max_iterations": LIVE_ITERATIONS, "max_rounds": 2}
    return ProtectionSettings(**{**base, **overrides})


# ----------------------------------------------------------------------------- work (no widgets)


@dataclass
class LiveUpdate:
    """One step of a live run, ready to show (crosses threads as a signal payload)."""

    stage: str
    message: str
    similarity: float | None = None
    threshold: float | None = None
    iteration: int = 0
    max_iterations: int = 0
    face_index: int = 0
    n_faces: int = 0
    frame: np.ndarray | None = None  # (H, W, 3) uint8: the photo as it is now
    success: bool | None = None  # stage "matrix": protected in every cell


def compose_frame(
    original: np.ndarray, current: np.ndarray, perturbation: np.ndarray, box: tuple[int, int, int, int]
) -> np.ndarray:
    """``current`` with the region ``box`` replaced by ``original`` + the region's current
    perturbation (8-bit levels), as uint8 (earlier faces keep what they had). A perturbation
    of another size (a face optimised at a working scale) is resized to the region."""
    x0, y0, x1, y1 = box
    if perturbation.shape[:2] != (y1 - y0, x1 - x0):
        import cv2

        perturbation = cv2.resize(np.ascontiguousarray(perturbation, dtype=np.float32), (x1 - x0, y1 - y0),
                                  interpolation=cv2.INTER_LINEAR)
    out = current.copy()
    region = original[y0:y1, x0:x1].astype(np.float32) + perturbation[: y1 - y0, : x1 - x0]
    out[y0:y1, x0:x1] = np.clip(np.rint(region), 0, 255).astype(np.uint8)
    return out


def live_protection(
    image: Any,
    settings: Any,
    steps_fn: Callable[..., Generator] | None = None,
    recogniser: Any = None,
    stop: Callable[[], bool] | None = None,
) -> Generator[LiveUpdate, None, Any]:
    """Run the protection pipeline and turn its steps into :class:`LiveUpdate` s.

    Without ``steps_fn`` and ``recogniser`` the pipeline runs in the GUI's helper process, as
    the main window's runs do (:func:`jndguard.gui.helper.protect_steps`: one recogniser cache
    for the whole app, and a busy optimisation never stalls the window). With a loaded
    ``recogniser`` it runs here, in this worker thread.

    Returns the pipeline's :class:`~jndguard.core.pipeline.ProtectionResult`.
    """
    real = steps_fn is None
    if steps_fn is None:
        if recogniser is None:
            from jndguard.gui.helper import protect_steps as steps_fn

            yield LiveUpdate("load", "loading the face model")
        else:
            from jndguard.core.pipeline import protect_steps as steps_fn
    gen = steps_fn(image, settings, recogniser=recogniser, stop=stop)
    frame = image.pixels
    while True:
        try:
            step = next(gen)
        except StopIteration as done:
            result = done.value
            if real and getattr(result, "faces", None) and getattr(result, "protected", None) is not None:
                yield LiveUpdate("verify", "checking how face-search pipelines see it (quick matrix)")
                yield matrix_update(image.pixels, result, recogniser, settings)
            return result
        new = None
        if step.preview is not None and step.preview_box is not None:
            frame = compose_frame(image.pixels, frame, step.preview, step.preview_box)
            new = frame
        yield LiveUpdate(
            step.stage,
            step.message,
            step.similarity,
            step.threshold,
            step.iteration,
            step.max_iterations,
            step.face_index,
            step.n_faces,
            new,
        )


def matrix_update(original: np.ndarray, result: Any, recogniser: Any = None,
                  settings: Any = None) -> LiveUpdate:
    """The worst cell of the quick threat matrix (docs/design.md §4) as a gauge update:
    stage ``"matrix"``, the highest similarity of the first recogniser over every crop
    convention and re-encoding, ``success`` = protected in every cell. Computed here with a
    loaded ``recogniser``, else in the helper process (on temporary lossless files)."""
    from jndguard.gui.presenters import worst_cell

    if recogniser is not None:
        from jndguard.core.threat.matrix import evaluate_matrix

        rep = evaluate_matrix(original, result.protected, faces=result.faces,
                              recognisers=[recogniser], size="quick").to_dict()
    else:
        import tempfile

        from PIL import Image

        from jndguard.gui import helper

        with tempfile.TemporaryDirectory(prefix="jndguard-live-") as tmp:
            a, b = Path(tmp) / "original.png", Path(tmp) / "protected.png"
            Image.fromarray(np.ascontiguousarray(original)).save(a)
            Image.fromarray(np.ascontiguousarray(result.protected)).save(b)
            rep = helper.verify_file(a, b, getattr(settings, "model", None),
                                     getattr(settings, "device", "auto"), use_dlib=False) or {}
    worst = worst_cell(rep)
    ok = bool(rep.get("protected"))
    msg = "protected in every cell" if ok else (f"recognised: {worst[2]}" if worst else "recognised")
    up = LiveUpdate("matrix", msg, None if worst is None else worst[0],
                    None if worst is None else worst[1])
    up.success = ok
    return up


def camera_available() -> bool:
    """True when QtMultimedia is installed and lists at least one camera."""
    try:
        from PySide6.QtMultimedia import QMediaDevices
    except ImportError:
        return False
    try:
        return bool(QMediaDevices.videoInputs())
    except Exception:  # a broken multimedia backend counts as no camera
        logger.debug("camera enumeration failed", exc_info=True)
        return False


def _load_photo(source: str | Path | bytes) -> Any:
    from jndguard.core.imageio import load_image

    return load_image(source)


def _photo_from_pixels(pixels: np.ndarray) -> Any:
    from jndguard.core.imageio import LoadedImage

    return LoadedImage(None, np.ascontiguousarray(pixels), "RGB", None, notes=["camera snapshot"])


# ----------------------------------------------------------------------------- widgets


def to_qimage(rgb: np.ndarray) -> QImage:
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def qimage_to_rgb(img: QImage) -> np.ndarray:
    img = img.convertToFormat(QImage.Format.Format_RGB888)
    w, h, bpl = img.width(), img.height(), img.bytesPerLine()
    arr = np.frombuffer(img.constBits(), np.uint8, count=bpl * h).reshape(h, bpl)
    return arr[:, : 3 * w].reshape(h, w, 3).copy()


class PhotoStage(QWidget):
    """The photo, as large as fits, with a caption on top (ORIGINAL / PROTECTED / …)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image: QImage | None = None
        self.caption = ""
        self.placeholder = "Pick the sample, drop a photo here, or open one"
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(QSize(320, 240))

    def set_image(self, img: QImage | None, caption: str = "") -> None:
        self._image = img
        self.caption = caption
        self.update()

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        r = self.rect()
        if self._image is None:
            p.setPen(QPen(QColor("#5a5d66"), 3, Qt.PenStyle.DashLine))
            p.drawRoundedRect(r.adjusted(8, 8, -8, -8), 18, 18)
            f = QFont(self.font())
            f.setPixelSize(max(14, r.height() // 22))
            p.setFont(f)
            p.setPen(QColor("#9a9da6"))
            p.drawText(r, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.placeholder)
            return
        size = self._image.size().scaled(r.size(), Qt.AspectRatioMode.KeepAspectRatio)
        target = QRectF(
            (r.width() - size.width()) / 2, (r.height() - size.height()) / 2, size.width(), size.height()
        )
        p.drawImage(target, self._image)
        if self.caption:
            f = QFont(self.font())
            f.setPixelSize(max(16, r.height() // 16))
            f.setBold(True)
            p.setFont(f)
            box = QRectF(target.left(), target.top() + 12, target.width(), f.pixelSize() * 1.6)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(0, 0, 0, 140))
            tw = p.fontMetrics().horizontalAdvance(self.caption) + f.pixelSize()
            p.drawRoundedRect(QRectF(box.center().x() - tw / 2, box.top(), tw, box.height()), 10, 10)
            p.setPen(QColor(FG))
            p.drawText(box, Qt.AlignmentFlag.AlignCenter, self.caption)


class SimilarityGauge(QWidget):
    """A bar from 0 to 1 for the cosine similarity, with the threshold marked."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.similarity: float | None = None
        self.threshold: float | None = None
        self.setMinimumHeight(36)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_values(self, similarity: float | None, threshold: float | None) -> None:
        self.similarity, self.threshold = similarity, threshold
        self.update()

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = QRectF(self.rect()).adjusted(2, 6, -2, -6)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor("#2a2c31"))
        p.drawRoundedRect(r, 8, 8)
        if self.similarity is not None:
            frac = min(1.0, max(0.0, self.similarity))
            above = self.threshold is not None and self.similarity >= self.threshold
            p.setBrush(QColor(BAD if above else GOOD))
            p.drawRoundedRect(QRectF(r.left(), r.top(), max(8.0, r.width() * frac), r.height()), 8, 8)
        if self.threshold is not None:
            x = r.left() + r.width() * min(1.0, max(0.0, self.threshold))
            p.setPen(QPen(QColor(FG), 4))
            p.drawLine(int(x), int(r.top()) - 6, int(x), int(r.bottom()) + 6)


class SimilarityTrace(QWidget):
    """The similarity of every iteration so far, against the dashed threshold line."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.values: list[float] = []
        self.threshold: float | None = None
        self.setMinimumHeight(120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def set_values(self, values: list[float], threshold: float | None) -> None:
        self.values, self.threshold = list(values), threshold
        self.update()

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = QRectF(self.rect()).adjusted(2, 8, -2, -8)

        def y(v: float) -> float:
            return r.bottom() - r.height() * min(1.0, max(0.0, v))

        p.setPen(QPen(QColor("#2a2c31"), 1))
        for v in (0.0, 0.5, 1.0):
            p.drawLine(int(r.left()), int(y(v)), int(r.right()), int(y(v)))
        if self.threshold is not None:
            p.setPen(QPen(QColor(FG), 2, Qt.PenStyle.DashLine))
            p.drawLine(int(r.left()), int(y(self.threshold)), int(r.right()), int(y(self.threshold)))
        if not self.values:
            return
        n = max(len(self.values) - 1, 1)
        pts = [(r.left() + r.width() * i / n, y(v)) for i, v in enumerate(self.values)]
        for (x0, y0), (x1, y1), v in zip(pts, pts[1:], self.values[1:]):
            bad = self.threshold is not None and v >= self.threshold
            p.setPen(QPen(QColor(BAD if bad else GOOD), 4))
            p.drawLine(int(x0), int(y0), int(x1), int(y1))
        x, yy = pts[-1]
        bad = self.threshold is not None and self.values[-1] >= self.threshold
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(BAD if bad else GOOD))
        p.drawEllipse(QRectF(x - 7, yy - 7, 14, 14))


class PresentationWindow(QWidget):
    """The presentation window (see module docstring).

    Args:
        parent: owner (e.g. the main window); the presentation is its own top-level window.
        settings: protection settings of the live run (default: :func:`presentation_settings`).
        steps_fn: the pipeline generator (default ``protect_steps``; tests may pass a fake).
        recogniser: an already loaded recogniser to run with in this process (default: the
            helper process's, shared with the main window).
    """

    similarityChanged = Signal(float)
    closed = Signal()
    photoLoaded = Signal(object)  # LoadedImage
    protectionFinished = Signal(object)  # ProtectionResult
    failed = Signal(str)

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        settings: Any = None,
        steps_fn: Callable[..., Generator] | None = None,
        recogniser: Any = None,
    ) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.settings = settings if settings is not None else presentation_settings()
        self.steps_fn = steps_fn
        self.recogniser = recogniser
        self.photo: Any = None  # LoadedImage
        self.result: Any = None  # ProtectionResult
        self.showing = "original"  # original | protected | live
        self.history: list[float] = []  # similarities of the current run
        self._worker: GeneratorWorker | None = None
        self._load_worker: GeneratorWorker | None = None
        self._original_qimage: QImage | None = None
        self._protected_qimage: QImage | None = None
        self._camera: Any = None
        self._verdict_colour = FG
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(2)
        self.setWindowTitle("JNDGuard — presentation")
        self.setAcceptDrops(True)
        self.setAutoFillBackground(True)
        pal = self.palette()
        pal.setColor(QPalette.ColorRole.Window, QColor(BG))
        pal.setColor(QPalette.ColorRole.WindowText, QColor(FG))
        self.setPalette(pal)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._build()
        self._flash_timer = QTimer(self, interval=FLASH_MS)
        self._flash_timer.timeout.connect(self._flash_tick)
        self._update_buttons()
        self._apply_sizes()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(36, 24, 36, 24)
        root.setSpacing(18)
        top = QHBoxLayout()
        self.title = QLabel("JNDGuard <span style='color:#8a8d96'>· invisible protection, live</span>")
        self.title.setTextFormat(Qt.TextFormat.RichText)
        top.addWidget(self.title)
        top.addStretch(1)
        self.esc_hint = QLabel("Esc leaves")
        self.esc_hint.setStyleSheet("color: #8a8d96;")
        top.addWidget(self.esc_hint)
        root.addLayout(top)

        sources = QHBoxLayout()
        self.sample_button = QPushButton("Sample photo  (S)")
        self.sample_button.clicked.connect(self.load_sample)
        self.open_button = QPushButton("Open a photo…  (O)")
        self.open_button.clicked.connect(self.open_photo)
        self.camera_button = QPushButton("Camera snapshot  (C)")
        self.camera_button.clicked.connect(self.camera_snapshot)
        self.camera_button.setVisible(camera_available())
        for b in (self.sample_button, self.open_button, self.camera_button):
            sources.addWidget(b)
        sources.addStretch(1)
        self.drop_hint = QLabel("…or drop a photo anywhere")
        self.drop_hint.setStyleSheet("color: #8a8d96;")
        sources.addWidget(self.drop_hint)
        root.addLayout(sources)

        middle = QHBoxLayout()
        middle.setSpacing(36)
        self.stage = PhotoStage()
        middle.addWidget(self.stage, 3)
        side_panel = QWidget()
        side_panel.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        side = QVBoxLayout(side_panel)
        side.setContentsMargins(0, 0, 0, 0)
        side.setSpacing(10)
        self.match_caption = QLabel("Face match with the original")
        self.match_caption.setStyleSheet("color: #b8bbc4;")
        self.similarity_label = QLabel("—")
        self.similarity_label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.gauge = SimilarityGauge()
        self.threshold_label = QLabel("")
        self.threshold_label.setStyleSheet("color: #b8bbc4;")
        self.trace = SimilarityTrace()
        self.verdict_label = QLabel("Press Protect to start")
        self.verdict_label.setWordWrap(True)
        self.progress_label = QLabel("")
        self.progress_label.setWordWrap(True)
        self.progress_label.setStyleSheet("color: #8a8d96;")
        side.addStretch(1)
        for w in (
            self.match_caption,
            self.similarity_label,
            self.gauge,
            self.threshold_label,
            self.trace,
            self.verdict_label,
            self.progress_label,
        ):
            side.addWidget(w)
        side.addStretch(2)
        middle.addWidget(side_panel, 2)
        root.addLayout(middle, 1)

        bottom = QHBoxLayout()
        bottom.addStretch(1)
        self.protect_button = QPushButton("Protect")
        self.protect_button.clicked.connect(self.protect)
        self.protect_button.setDefault(True)
        self.flash_button = QPushButton("Flash original ⇄ protected  (F)")
        self.flash_button.setCheckable(True)
        self.flash_button.toggled.connect(self.set_flash)
        bottom.addWidget(self.protect_button)
        bottom.addWidget(self.flash_button)
        bottom.addStretch(1)
        root.addLayout(bottom)
        for w in self.findChildren(QPushButton):
            w.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            w.setCursor(Qt.CursorShape.PointingHandCursor)

    def _apply_sizes(self) -> None:
        """Large type, scaled to the window height."""
        h = max(480, self.height())
        base = max(16, h // 40)
        self.setStyleSheet(
            f"QWidget {{ color: {FG}; font-size: {base}px; }}"
            f"QPushButton {{ background: #2a2c31; border: 2px solid #44474f; border-radius: 12px;"
            f" padding: {base // 2}px {base}px; }}"
            "QPushButton:hover { background: #34373d; }"
            "QPushButton:checked { background: #3d7bd9; border-color: #3d7bd9; }"
            "QPushButton:disabled { color: #6b6e76; border-color: #2f3137; }"
        )
        self.title.setStyleSheet(f"font-size: {int(base * 1.8)}px; font-weight: bold;")
        self.protect_button.setStyleSheet(
            f"QPushButton {{ font-size: {int(base * 1.6)}px; font-weight: bold; background: #2f6fc0;"
            f" border-color: #2f6fc0; padding: {base // 2}px {base * 3}px; }}"
            "QPushButton:disabled { background: #2a2c31; border-color: #2f3137; }"
        )
        self._colour_similarity()
        self.gauge.setMinimumHeight(int(base * 1.8))
        self.trace.setMinimumHeight(int(base * 6))
        self._style_verdict()

    def _style_verdict(self) -> None:
        base = max(16, max(480, self.height()) // 40)
        self.verdict_label.setStyleSheet(
            f"color: {self._verdict_colour}; font-size: {int(base * 1.5)}px; font-weight: bold;"
        )

    def _colour_similarity(self) -> None:
        h = max(480, self.height())
        sim = self.history[-1] if self.history else None
        thr = self._threshold()
        colour = FG if sim is None or thr is None else (BAD if sim >= thr else GOOD)
        self.similarity_label.setStyleSheet(f"color: {colour}; font-size: {h // 6}px; font-weight: bold;")

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._apply_sizes()

    # ------------------------------------------------------------------ photos
    @property
    def busy(self) -> bool:
        return self._worker is not None

    def load_sample(self) -> None:
        """Show the bundled sample portrait."""
        self.load_path(resource_path(SAMPLE_PHOTO))

    def open_photo(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a photo", "", PHOTO_FILTER)
        if path:
            self.load_path(path)

    def load_path(self, path: str | Path) -> None:
        """Load a photo (in a worker) and show it."""
        if self.busy:
            return
        self._start_load(_load_photo, Path(path))

    def _start_load(self, fn: Callable, arg: Any) -> None:
        worker = GeneratorWorker(fn, arg)
        worker.signals.returned.connect(self._set_photo)
        worker.signals.errored.connect(lambda exc: self._show_error(f"Cannot open the photo: {exc}"))
        self._load_worker = worker
        worker.start(self.pool)

    def set_pixels(self, pixels: np.ndarray) -> None:
        """Use an (H, W, 3) uint8 RGB array as the photo (camera snapshots)."""
        self._set_photo(_photo_from_pixels(pixels))

    def _set_photo(self, photo: Any) -> None:
        if self.busy:
            return
        self.photo = photo
        self.result = None
        self.history = []
        self.flash_button.setChecked(False)
        self._original_qimage = to_qimage(photo.pixels)
        self._protected_qimage = None
        self.showing = "original"
        self.stage.set_image(self._original_qimage, "ORIGINAL")
        self.similarity_label.setText("—")
        self.gauge.set_values(None, None)
        self.trace.set_values([], None)
        self.threshold_label.setText("")
        self._set_verdict("Press Protect to start", FG)
        self.progress_label.setText("")
        self._colour_similarity()
        self._update_buttons()
        self.photoLoaded.emit(photo)

    # ------------------------------------------------------------------ camera
    def camera_snapshot(self) -> None:
        """Take one picture from the default camera (only offered when one is present)."""
        if self.busy or not camera_available():
            return
        from PySide6.QtMultimedia import QCamera, QImageCapture, QMediaCaptureSession, QMediaDevices

        cam = QCamera(QMediaDevices.defaultVideoInput(), self)
        session = QMediaCaptureSession(self)
        capture = QImageCapture(self)
        session.setCamera(cam)
        session.setImageCapture(capture)
        self._camera = (cam, session, capture)
        self._set_verdict("Smile… taking a snapshot", FG)

        def ready(ok: bool) -> None:
            if ok and self._camera is not None:
                capture.capture()

        def captured(_id: int, img: QImage) -> None:
            self._stop_camera()
            self.set_pixels(qimage_to_rgb(img))

        def failed(_id: int, _err: Any, text: str) -> None:
            self._stop_camera()
            self._show_error(f"Camera: {text}")

        capture.readyForCaptureChanged.connect(ready)
        capture.imageCaptured.connect(captured)
        capture.errorOccurred.connect(failed)
        cam.errorOccurred.connect(lambda _e, text: (self._stop_camera(), self._show_error(f"Camera: {text}")))
        cam.start()

    def _stop_camera(self) -> None:
        if self._camera is not None:
            cam = self._camera[0]
            self._camera = None
            cam.stop()

    # ------------------------------------------------------------------ protection
    def _threshold(self) -> float | None:
        return self.gauge.threshold

    def protect(self) -> bool:
        """Start the live protection of the current photo; False when nothing can start."""
        if self.busy or self.photo is None:
            return False
        self.flash_button.setChecked(False)
        self.result = None
        self.history = []
        self._protected_qimage = None
        self.showing = "live"
        self.trace.set_values([], self.gauge.threshold)
        self.similarity_label.setText("—")
        self.stage.set_image(self._original_qimage, "PROTECTING…")
        self._set_verdict("Starting…", FG)
        worker = GeneratorWorker(
            live_protection,
            self.photo,
            self.settings,
            pass_stop=True,
            steps_fn=self.steps_fn,
            recogniser=self.recogniser,
        )
        worker.signals.yielded.connect(self._on_update)
        worker.signals.returned.connect(self._on_done)
        worker.signals.errored.connect(self._on_error)
        worker.signals.finished.connect(self._on_finished)
        self._worker = worker
        self._update_buttons()
        worker.start(self.pool)
        return True

    def _show_similarity(self, sim: float, thr: float | None) -> None:
        self.history.append(sim)
        self.similarity_label.setText(f"{sim:.2f}")
        self.gauge.set_values(sim, thr)
        self.trace.set_values(self.history, thr)
        if thr is not None:
            self.threshold_label.setText(f"Recognition threshold {thr:.2f}")
        self._colour_similarity()
        self.similarityChanged.emit(sim)

    def _on_update(self, u: LiveUpdate) -> None:
        if u.frame is not None:
            self.stage.set_image(to_qimage(u.frame), "PROTECTING…")
        if u.stage == "attack" and u.similarity is not None:
            self._show_similarity(u.similarity, u.threshold)
            recognised = u.threshold is None or u.similarity >= u.threshold
            self._set_verdict(
                "Recognised" if recognised else "Not recognised any more", BAD if recognised else GOOD
            )
            face = f"face {u.face_index + 1} of {u.n_faces} · " if u.n_faces > 1 else ""
            self.progress_label.setText(f"{face}iteration {u.iteration}")
        elif u.stage == "matrix":
            self._matrix = u
        elif u.stage == "load":
            self.progress_label.setText("Loading the face recogniser…")
        elif u.stage in ("detect", "jnd", "verify"):
            self.progress_label.setText(u.message[:1].upper() + u.message[1:])

    def _on_done(self, result: Any) -> None:
        self.result = result
        if not result.faces:
            self._show_error("No face found in this photo: try another one")
            self.stage.set_image(self._original_qimage, "ORIGINAL")
            self.showing = "original"
            return
        self._protected_qimage = to_qimage(result.protected)
        sims = [f.get("similarity") for f in result.per_face if f.get("similarity") is not None]
        thr = result.model.get("threshold", self._threshold())
        matrix, self._matrix = getattr(self, "_matrix", None), None
        if matrix is not None and matrix.similarity is not None:  # the worst cell, not own crop
            self._show_similarity(float(matrix.similarity), matrix.threshold)
        elif sims:
            self._show_similarity(float(max(sims)), thr)
        self.showing = "protected"
        self.stage.set_image(self._protected_qimage, "PROTECTED")
        psnr = result.metrics.get("psnr")
        quality = f" · PSNR {psnr:.1f} dB" if isinstance(psnr, (int, float)) else ""
        if matrix is not None:
            self.progress_label.setText(f"Worst of the quick threat matrix: {matrix.message}{quality}")
            if matrix.success:
                self._set_verdict("Protected in every crop and re-encoding checked", GOOD)
            else:
                self._set_verdict("Still recognised when cropped or re-encoded another way", BAD)
            self.protectionFinished.emit(result)
            return
        self.progress_label.setText(f"Checked on the 8-bit result, faces re-detected{quality}")
        if result.success:
            self._set_verdict("Protected: the recogniser no longer matches this face", GOOD)
        else:
            self._set_verdict("Not protected yet: the recogniser still matches", BAD)
        self.protectionFinished.emit(result)

    def _on_error(self, exc: BaseException) -> None:
        from jndguard.core.pipeline import Cancelled

        if isinstance(exc, Cancelled):
            return
        self._show_error(str(exc).strip() or type(exc).__name__)

    def _on_finished(self) -> None:
        self._worker = None
        self._update_buttons()

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.quit()

    def _show_error(self, text: str) -> None:
        self._set_verdict(text, BAD)
        self.failed.emit(text)

    def _set_verdict(self, text: str, colour: str) -> None:
        self.verdict_label.setText(text)
        self._verdict_colour = colour
        self._style_verdict()

    def _update_buttons(self) -> None:
        busy = self.busy
        self.protect_button.setEnabled(not busy and self.photo is not None)
        self.flash_button.setEnabled(not busy and self._protected_qimage is not None)
        for b in (self.sample_button, self.open_button, self.camera_button):
            b.setEnabled(not busy)

    # ------------------------------------------------------------------ flash
    def set_flash(self, on: bool) -> None:
        """Alternate original and protected every :data:`FLASH_MS` ms (after a run)."""
        if on and self._protected_qimage is None:
            self.flash_button.setChecked(False)
            return
        if self.flash_button.isChecked() != on:
            self.flash_button.setChecked(on)  # re-enters through the toggled signal
            return
        if on:
            self._flash_tick()
            self._flash_timer.start()
        else:
            self._flash_timer.stop()
            if self._protected_qimage is not None:
                self.showing = "protected"
                self.stage.set_image(self._protected_qimage, "PROTECTED")

    def _flash_tick(self) -> None:
        if self._protected_qimage is None or self._original_qimage is None:
            return
        if self.showing == "original":
            self.showing = "protected"
            self.stage.set_image(self._protected_qimage, "PROTECTED")
        else:
            self.showing = "original"
            self.stage.set_image(self._original_qimage, "ORIGINAL")

    # ------------------------------------------------------------------ events
    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key == Qt.Key.Key_Escape:
            self.close()
        elif key in (Qt.Key.Key_Space, Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.protect()
        elif key == Qt.Key.Key_F:
            self.set_flash(not self.flash_button.isChecked())
        elif key == Qt.Key.Key_S:
            self.load_sample()
        elif key == Qt.Key.Key_O:
            self.open_photo()
        elif key == Qt.Key.Key_C and self.camera_button.isVisible():
            self.camera_snapshot()
        else:
            super().keyPressEvent(event)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and not self.busy:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        from jndguard.core.imageio import is_supported

        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        photos = [p for p in paths if p.is_file() and is_supported(p)]
        if photos:
            self.load_path(photos[0])
            event.acceptProposedAction()

    def closeEvent(self, event) -> None:
        self._flash_timer.stop()
        self._stop_camera()
        for w in (self._worker, self._load_worker):
            if w is not None:
                w.quit()
        self.pool.waitForDone(15000)
        super().closeEvent(event)
        self.closed.emit()


def open_presentation(
    parent: QWidget | None = None,
    *,
    settings: Any = None,
    fullscreen: bool = True,
    load_sample: bool = True,
    recogniser: Any = None,
) -> PresentationWindow:
    """Open presentation mode (full screen by default) and return its window.

    Args:
        parent: owning widget (e.g. the main window); the presentation is its own window.
        settings: :class:`~jndguard.core.pipeline.ProtectionSettings` of the live run
            (default: :func:`presentation_settings`, HVS-JND with a 40-iteration budget).
        fullscreen: full screen (default) or a normal window.
        load_sample: start with the bundled sample photo on stage.
        recogniser: a loaded recogniser to run with in this process (default: the helper
            process's, shared with the main window).
    """
    from jndguard.gui.qtapp import show_window

    w = show_window(lambda: PresentationWindow(parent, settings=settings, recogniser=recogniser),
                    fullscreen, (1600, 1000))
    w.setFocus()
    if load_sample:
        w.load_sample()
    return w


__all__ = [
    "LiveUpdate",
    "PresentationWindow",
    "camera_available",
    "compose_frame",
    "live_protection",
    "open_presentation",
    "presentation_settings",
]
