"""The controller: owns the window's state and every background worker.

Widgets send intents (add these files, protect, cancel, change a setting) and observe the
state through signals; they never start work or compute anything themselves. Every long
operation runs in a :class:`~jndguard.gui.workers.GeneratorWorker`; results come back on the
GUI thread through queued signals, are stored here, and are announced to the views.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QThreadPool, QTimer, Signal

from jndguard.gui import params, tasks
from jndguard.gui.errors import ErrorHub
from jndguard.gui.params import ProtectionSettings
from jndguard.gui.settings import SettingsStore
from jndguard.gui.state import MethodResult, PhotoItem, QueueModel, Status
from jndguard.gui.tasks import DisplayOptions, JndParams
from jndguard.gui.workers import GeneratorWorker

logger = logging.getLogger(__name__)


@dataclass
class RunState:
    """What the progress panel shows about the protection run in progress."""

    label: str
    item_ids: list[int]
    previous: dict[int, Status]
    total: int
    started: float = field(default_factory=time.perf_counter)
    done: int = 0
    index: int = 0
    current: int | None = None
    step: tasks.StepView | None = None
    face_index: int = 0
    n_faces: int = 0
    history: list[tuple[int, dict[str, float], float | None]] = field(default_factory=list)
    threshold: float | None = None
    budget: int = 0  # iterations per attempt (the settings'); the pipeline's maximum is larger
    cancelling: bool = False
    protected: int = 0
    not_protected: int = 0
    failed: int = 0
    steps_received: int = 0

    @property
    def photo_fraction(self) -> float:
        """Progress of the photo being protected (faces × iterations; rounds not counted)."""
        s = self.step
        if s is None:
            return 0.0
        if s.stage == "done":
            return 1.0
        if s.stage in ("detect", "jnd"):
            return 0.02
        n = max(self.n_faces, 1)
        budget = self.budget or s.max_iterations
        it = min(0.95, s.iteration / budget) if budget else 0.0
        if s.stage == "verify":
            it = 1.0
        return min(0.99, (s.face_index + it) / n)

    @property
    def fraction(self) -> float:
        return min(1.0, (self.done + self.photo_fraction) / max(self.total, 1))

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started


class Controller(QObject):
    """State and workers of the main window (see module docstring)."""

    selectionChanged = Signal(object)  # PhotoItem | None
    itemUpdated = Signal(int)  # item id: status, faces or results changed
    viewsRendered = Signal(object)  # tasks.RenderedViews of the current photo
    compareRendered = Signal(object)  # dict method → tasks.RenderedViews
    analysisReady = Signal(object)  # tasks.AnalysisViews of the current photo's shown result
    gradCamReady = Signal(object)  # tasks.GradCamViews of the current photo (every result)
    settingsChanged = Signal(object)  # ProtectionSettings
    displayChanged = Signal(object)  # DisplayOptions
    runStarted = Signal(object)  # RunState
    runProgress = Signal(object)  # RunState (after each step)
    livePreview = Signal(int, object)  # item id, StepView with a preview
    runFinished = Signal(object)  # RunState (cancelled or complete)
    busyChanged = Signal(bool)
    loadingChanged = Signal(bool)
    modelStatusChanged = Signal(object)  # tasks.ModelStatus
    fetchProgress = Signal(object)  # FetchProgress
    fetchFinished = Signal(bool, str)
    exportProgress = Signal(object)  # tasks.ExportEvent
    exportFinished = Signal(object)  # tasks.ExportSummary
    message = Signal(str)  # transient status-bar text

    def __init__(self, store: SettingsStore | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = store or SettingsStore()
        self.errors = ErrorHub(self)
        self.queue = QueueModel(self)
        self.settings: ProtectionSettings = self.store.protection_settings()
        self.display: DisplayOptions = self.store.display_options()
        self.verify_after_run: bool = self.store.verify_after_run
        self.use_dlib: bool = self.store.use_dlib
        self.gallery_folder: str = self.store.gallery_folder
        self.verify_exports: bool = self.store.verify_exports
        self.model_status: tasks.ModelStatus | None = None
        self.current_id: int | None = None
        self.shown_method: str | None = None  # None: the latest result
        self.compare_methods: tuple[str, str] | None = None
        self.run: RunState | None = None
        #: the pipeline's ``protect_steps``; tests may swap in a fake
        self.steps_fn: Callable[..., Any] | None = None
        #: Grad-CAM (``jndguard.gui.helper.grad_cams``' signature); tests may swap in their own
        self.grad_cam_fn: Callable[..., Any] | None = None
        #: face detection of added photos (``tasks.DetectFn``): in the helper process, whose
        #: Python-heavy MTCNN stages then never hold this process's GIL
        self.detect_fn: tasks.DetectFn = detect_in_helper
        self._workers: set[GeneratorWorker] = set()
        self._run_worker: GeneratorWorker | None = None
        self._fetch_worker: GeneratorWorker | None = None
        self._loading = 0
        self._render_token = 0
        #: photos whose protected version arrived but is not drawn yet: its quality figures are
        #: held back until it is (they never show before the photo they describe)
        self._undrawn: set[int] = set()
        self._compare_token = 0
        # analysis cache: key → (the MethodResults it was computed from, the views)
        self._analysis_cache: dict[tuple, tuple[tuple, Any]] = {}
        self._analysis_wanted: dict[str, tuple | None] = {"diff": None, "cam": None}
        self._analysis_workers: dict[str, tuple[tuple, GeneratorWorker] | None] = {"diff": None, "cam": None}
        self.short_pool = QThreadPool(self)
        self.short_pool.setMaxThreadCount(2)
        self.long_pool = QThreadPool(self)
        self.long_pool.setMaxThreadCount(2)
        self._flush_timer = QTimer(self, singleShot=True, interval=1500)
        self._flush_timer.timeout.connect(self._flush_settings)
        self.store.on_change = self._flush_timer.start
        self._render_timer = QTimer(self, singleShot=True, interval=30)
        self._render_timer.timeout.connect(self._start_render)

    # ------------------------------------------------------------------ workers
    def _start(self, worker: GeneratorWorker, pool: QThreadPool | None = None) -> GeneratorWorker:
        self._workers.add(worker)
        worker.signals.finished.connect(lambda w=worker: self._workers.discard(w))
        worker.start(pool or self.short_pool)
        return worker

    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Stop every worker (between steps) and wait for them."""
        for w in list(self._workers):
            w.quit()
        deadline = time.monotonic() + timeout_ms / 1000
        for w in list(self._workers):
            w.done.wait(max(0.0, deadline - time.monotonic()))
        self.short_pool.waitForDone(max(0, int((deadline - time.monotonic()) * 1000)))
        self.long_pool.waitForDone(max(0, int((deadline - time.monotonic()) * 1000)))
        self.store.set_protection_settings(self.settings)
        self.store.set_display_options(self.display)
        self.store.sync()

    def _flush_settings(self) -> None:
        """Write changed settings to disk, but not while a run is going (see SettingsStore.set)."""
        if self.run is not None:
            return  # flushed when the run ends
        self.store.flush()

    @property
    def busy(self) -> bool:
        return self.run is not None

    # ------------------------------------------------------------------ queue
    def add_paths(self, paths: Iterable[str | Path]) -> None:
        """Add files and folders (folders are searched for photos); loading runs in a worker."""
        paths = [Path(p) for p in paths]
        if not paths:
            return
        exclude = frozenset(tasks._key(it.path) for it in self.queue.items())
        worker = GeneratorWorker(
            tasks.load_paths, paths, exclude, self.settings.min_face_size, "cpu", self.detect_fn
        )
        worker.signals.yielded.connect(self._on_load_event)
        worker.signals.errored.connect(lambda e: self.errors.report_exception("Adding photos failed", e))
        worker.signals.finished.connect(self._on_load_finished)
        self._set_loading(+1)
        self._start(worker)
        folder = paths[0] if paths[0].is_dir() else paths[0].parent
        self.store.add_folder = str(folder)

    def _set_loading(self, delta: int) -> None:
        was = self._loading > 0
        self._loading += delta
        if (self._loading > 0) != was:
            self.loadingChanged.emit(self._loading > 0)

    def _on_load_finished(self) -> None:
        self._set_loading(-1)

    def _on_load_event(self, ev: Any) -> None:
        if isinstance(ev, tasks.PhotosFound):
            if not ev.items:
                self.message.emit("No new photos found")
                return
            self.queue.add([PhotoItem(item_id, path) for item_id, path in ev.items])
            self.message.emit(f"Adding {len(ev.items)} photo{'s' if len(ev.items) != 1 else ''}…")
            return
        item = self.queue.item(ev.item_id)
        if item is None:  # removed meanwhile
            return
        if isinstance(ev, tasks.PhotoThumbnail):
            self.queue.set_thumbnail(item, ev.thumbnail)
            return
        if isinstance(ev, tasks.PhotoDecoded):  # the views can be drawn while faces are found
            item.image, item.picture = ev.image, ev.picture
            self._trim_pictures()
            if self.current_id is None:
                self.select(item.id)
            elif item.id == self.current_id:
                self.selectionChanged.emit(item)
                self.request_views()
            return
        drawn = False
        if isinstance(ev, tasks.PhotoFailed):
            item.status, item.reason, item.details = Status.FAILED, ev.reason, ev.details
            self.errors.report(f"Cannot read {item.name}", ev.reason, ev.details)
        else:
            drawn = item.image is ev.image  # its views were requested when it was decoded
            item.image, item.faces, item.status = ev.image, ev.faces, Status.WAITING
            item.faces_min_size = ev.min_face_size
            self.queue.set_thumbnail(item, ev.thumbnail)
        self.queue.changed(item.id)
        self.itemUpdated.emit(item.id)
        if self.current_id is None and item.status != Status.FAILED:
            self.select(item.id)
        elif item.id == self.current_id:
            self.selectionChanged.emit(item)
            if not drawn:
                self.request_views()

    def remove(self, item_ids: Iterable[int]) -> None:
        ids = {i for i in item_ids if not self._in_run(i)}
        if not ids:
            return
        self.queue.remove(ids)
        if self.current_id in ids:
            items = self.queue.items()
            self.select(items[0].id if items else None)

    def clear(self) -> None:
        """Remove every photo that is not being protected."""
        self.remove([it.id for it in self.queue.items()])

    def _in_run(self, item_id: int) -> bool:
        return (
            self.run is not None
            and item_id in self.run.item_ids
            and (
                self.queue.item(item_id) is not None
                and self.queue.item(item_id).status in (Status.RUNNING, Status.QUEUED)
            )
        )

    @property
    def current(self) -> PhotoItem | None:
        return None if self.current_id is None else self.queue.item(self.current_id)

    #: how many photos keep the QImage of their pixels (the current one and the last shown;
    #: a 12 MP picture is 48 MB); the others get theirs again from a worker when selected
    PICTURES_KEPT = 3

    def _trim_pictures(self) -> None:
        held = [it for it in self.queue.items() if it.picture is not None and it.id != self.current_id]
        for it in held[: max(0, len(held) - (self.PICTURES_KEPT - 1))]:
            it.picture = None

    def _ensure_picture(self, item: PhotoItem | None) -> None:
        """Make the current photo's QImage in a worker when it was dropped (see PICTURES_KEPT)."""
        if item is None or item.image is None or item.picture is not None:
            return
        from jndguard.gui.imaging import to_qimage

        worker = GeneratorWorker(to_qimage, item.image.pixels)

        def done(picture, item_id=item.id) -> None:
            it = self.queue.item(item_id)
            if it is not None and it.picture is None:
                it.picture = picture
                self._trim_pictures()
                self.itemUpdated.emit(item_id)
                if item_id == self.current_id:  # the views drawn meanwhile are drawn again over it
                    self.request_views()

        worker.signals.returned.connect(done)
        worker.signals.errored.connect(lambda e: self.errors.report_exception("Drawing the photo failed", e))
        self._start(worker)

    def select(self, item_id: int | None) -> None:
        if item_id == self.current_id:
            return
        self.current_id = item_id
        self.shown_method = None
        for other in list(self._undrawn):  # not shown any more: nothing to wait for
            self._release_figures(other)
        self._ensure_picture(self.current)
        self.selectionChanged.emit(self.current)
        self.request_views()
        self.request_compare()

    # ------------------------------------------------------------------ settings & views
    def set_settings(self, settings: ProtectionSettings) -> None:
        if settings == self.settings:
            return
        old, self.settings = self.settings, settings
        self.store.set_protection_settings(settings)
        self.settingsChanged.emit(settings)
        if any(getattr(old, f) != getattr(settings, f) for f in params.JND_FIELDS):
            self.request_views()

    def set_display(self, options: DisplayOptions) -> None:
        if options == self.display:
            return
        self.display = options
        self.store.set_display_options(options)
        self.displayChanged.emit(options)
        self.request_views()
        self.request_compare()

    def show_method(self, method: str | None) -> None:
        """Which result of the current photo the views show (None: the latest)."""
        self.shown_method = method
        self.request_views()

    def shown_result(self, item: PhotoItem | None = None) -> MethodResult | None:
        item = item or self.current
        if item is None:
            return None
        if self.shown_method and self.shown_method in item.results:
            return item.results[self.shown_method]
        return item.latest

    def jnd_params(self) -> JndParams:
        s = self.settings
        return JndParams(s.jnd_model, s.jnd_color, float(s.jnd_strength))

    def request_views(self) -> None:
        """Re-render the JND and perturbation views of the current photo (coalesced)."""
        self._render_token += 1
        self._render_timer.start()

    def _start_render(self) -> None:
        item = self.current
        if item is None or item.image is None:
            return
        p = self.jnd_params()
        mr = self.shown_result(item)
        token = self._render_token
        worker = GeneratorWorker(
            tasks.render_views,
            item.id,
            token,
            item.image.pixels,
            p,
            self.display,
            item.jnd_cache.get(p),
            None if mr is None else mr.delta_levels,
            protected=None if mr is None else mr.result.protected,
        )
        worker.signals.returned.connect(self._on_rendered)
        worker.signals.errored.connect(lambda e: self.errors.report_exception("Drawing the views failed", e))
        worker.signals.errored.connect(lambda _e, i=item.id: self._release_figures(i))
        self._start(worker)

    def _on_rendered(self, views: tasks.RenderedViews) -> None:
        item = self.queue.item(views.item_id)
        if item is not None and views.jnd_levels is not None:
            if len(item.jnd_cache) > 4:
                item.jnd_cache.clear()
            item.jnd_cache[views.jnd_params] = views.jnd_levels
        if views.token != self._render_token or views.item_id != self.current_id:
            return  # stale
        self.viewsRendered.emit(views)
        if views.protected_image is not None and views.item_id in self._undrawn:
            self._release_figures(views.item_id)

    def _release_figures(self, item_id: int) -> None:
        """The protected photo of ``item_id`` is drawn (or no longer shown): its quality
        figures, held back until then, join its results."""
        self._undrawn.discard(item_id)
        item = self.queue.item(item_id)
        if item is None:
            return
        for mr in item.results.values():
            if mr.held is not None:
                mr.result, mr.held = mr.held, None
                self.itemUpdated.emit(item_id)

    def set_compare(self, methods: tuple[str, str] | None) -> None:
        self.compare_methods = methods
        self.request_compare()

    def request_compare(self) -> None:
        item = self.current
        self._compare_token += 1
        if item is None or not self.compare_methods:
            self.compareRendered.emit({})
            return
        token = self._compare_token
        chosen = {m: item.results[m] for m in self.compare_methods if m in item.results}
        if not chosen:
            self.compareRendered.emit({})
            return
        # one amplification for both, so the two perturbations are comparable
        options = self.display
        if not options.amplification:
            from jndguard.gui.imaging import suggested_amplification

            amp = min(suggested_amplification(mr.delta_levels) for mr in chosen.values())
            options = dataclasses.replace(options, amplification=amp)
        worker = GeneratorWorker(
            _render_compare,
            item.id,
            token,
            item.image.pixels,
            self.jnd_params(),
            options,
            {m: mr.delta_levels for m, mr in chosen.items()},
            {m: mr.result.protected for m, mr in chosen.items()},
        )
        worker.signals.returned.connect(lambda out, t=token: self._on_compare(t, out))
        self._start(worker)

    def _on_compare(self, token: int, out: dict) -> None:
        if token == self._compare_token:
            self.compareRendered.emit(out)

    # ------------------------------------------------------------------ analysis
    def request_analysis(self, face_index: int = 0) -> None:
        """Analyse one face of the current photo (the Analysis tab asks only while visible).

        Emits :attr:`analysisReady` (difference maps and ``|change| / J`` histogram of the
        shown result) and :attr:`gradCamReady` (Grad-CAM of the clean face and of every result
        of the photo), each from a cache keyed by photo, face and results, else from a worker.
        Grad-CAM needs the helper process, which a protection run occupies: while one runs it
        waits (the window asks again when the run ends).
        """
        item = self.current
        mr = self.shown_result(item)
        if item is None or mr is None or item.image is None or not mr.result.faces:
            self._analysis_wanted = {"diff": None, "cam": None}
            return
        face_index = max(0, min(face_index, len(mr.result.faces) - 1))
        face = mr.result.faces[face_index]
        pixels = item.image.pixels
        key = ("diff", item.id, face_index, id(mr))
        self._analysis_wanted["diff"] = key
        cached = self._cached_analysis(key, (mr,))
        if cached is not None:
            self.analysisReady.emit(cached)
        elif not self._analysis_running("diff", key):
            r = mr.result
            worker = GeneratorWorker(
                tasks.analysis_views,
                item.id,
                face_index,
                mr.method,
                pixels,
                r.protected,
                r.jnd,
                face,
                float(getattr(r.settings, "margin", 0.2)),
            )
            self._start_analysis("diff", key, (mr,), worker, "The analysis failed", self.analysisReady)

        results = tuple(item.results.values())
        key = ("cam", item.id, face_index, tuple(id(r) for r in results))
        self._analysis_wanted["cam"] = key
        cached = self._cached_analysis(key, results)
        if cached is not None:
            self.gradCamReady.emit(cached)
            return
        if self._analysis_running("cam", key):
            return
        labels = ["clean", *(r.method for r in results)]
        if self.run is not None:
            note = "Grad-CAM waits for the protection run to finish"
            self.gradCamReady.emit(tasks.GradCamViews(item.id, face_index, labels, message=note))
            return
        s = mr.result.settings
        worker = GeneratorWorker(
            tasks.grad_cam_views,
            item.id,
            face_index,
            pixels,
            {r.method: r.result.protected for r in results},
            face.box,
            s.model,
            s.device,
            pass_stop=True,
            cam_fn=self.grad_cam_fn,
        )
        self._start_analysis(
            "cam", key, results, worker, "Grad-CAM failed", self.gradCamReady, self.long_pool
        )

    def _cached_analysis(self, key: tuple, refs: tuple) -> Any:
        hit = self._analysis_cache.get(key)
        if hit is None or len(hit[0]) != len(refs) or any(a is not b for a, b in zip(hit[0], refs)):
            return None  # (ids of results that are gone may be reused: compare the objects)
        return hit[1]

    def _analysis_running(self, kind: str, key: tuple) -> bool:
        running = self._analysis_workers[kind]
        if running is None:
            return False
        if running[0] == key:
            return True
        running[1].quit()  # stale: the user moved on
        self._analysis_workers[kind] = None
        return False

    def _start_analysis(
        self,
        kind: str,
        key: tuple,
        refs: tuple,
        worker: GeneratorWorker,
        failure: str,
        signal: Any,
        pool: QThreadPool | None = None,
    ) -> None:
        def returned(views: Any) -> None:
            if views is None:
                return
            if getattr(views, "message", None) is None:
                self._analysis_cache[key] = (refs, views)
                while len(self._analysis_cache) > 24:
                    self._analysis_cache.pop(next(iter(self._analysis_cache)))
            if self._analysis_wanted[kind] == key:
                signal.emit(views)

        def finished() -> None:
            running = self._analysis_workers[kind]
            if running is not None and running[1] is worker:
                self._analysis_workers[kind] = None

        worker.signals.returned.connect(returned)
        worker.signals.errored.connect(lambda e: self.errors.report_exception(failure, e))
        worker.signals.finished.connect(finished)
        self._analysis_workers[kind] = (key, worker)
        self._start(worker, pool)

    # ------------------------------------------------------------------ protection
    def protectable(self, item_ids: Iterable[int] | None = None) -> list[PhotoItem]:
        items = (
            self.queue.items()
            if item_ids is None
            else [it for it in (self.queue.item(i) for i in item_ids) if it is not None]
        )
        return [it for it in items if it.ready]

    def protect(
        self,
        item_ids: Iterable[int] | None = None,
        settings_list: list[ProtectionSettings] | None = None,
        label: str = "",
    ) -> bool:
        """Protect photos (default: every ready photo) in one background run.

        With ``settings_list`` each photo is protected once per settings (method comparison).
        Returns False (and says why) when nothing can start.
        """
        if self.run is not None:
            self.message.emit("A protection run is already in progress")
            return False
        items = self.protectable(item_ids)
        if not items:
            self.message.emit("No photo ready to protect: add photos first")
            return False
        if self.model_status is not None and not self.model_status.fetched and self.steps_fn is None:
            self.errors.report(
                "Models missing",
                "The face models are not fetched yet. Use "
                "Models ▸ Fetch models, or run `jndguard models fetch`.",
            )
            return False
        settings_list = settings_list or [self.settings]
        self.store.set_protection_settings(self.settings)
        # the faces found when the photo was added are reused (detected once per photo)
        jobs = [tasks.RunJob(it.id, it.image, s, it.faces if it.faces_min_size == s.min_face_size else None)
                for it in items for s in settings_list]
        ids = [it.id for it in items]
        n = len(jobs)
        budget = max(s.max_iterations for s in settings_list)
        self.run = RunState(
            label or f"Protecting {len(items)} photo{'s' if len(items) != 1 else ''}",
            ids,
            {it.id: it.status for it in items},
            n,
            budget=budget,
        )
        for it in items:
            it.status, it.progress, it.progress_text = Status.QUEUED, None, ""
            self.queue.changed(it.id)
        worker = GeneratorWorker(
            tasks.protection_run,
            jobs,
            self.settings,
            pass_stop=True,
            steps_fn=self.steps_fn,
            verify=self.verify_after_run,
            use_dlib=self.use_dlib,
            amplification=self.display.amplification,
            gallery=self.gallery_folder or None,
        )
        worker.signals.yielded.connect(self._on_run_event)
        worker.signals.returned.connect(self._on_run_returned)
        worker.signals.errored.connect(self._on_run_error)
        worker.signals.finished.connect(self._on_run_finished)
        self._run_worker = worker
        self.busyChanged.emit(True)
        self.runStarted.emit(self.run)
        self._start(worker, self.long_pool)
        return True

    def protect_current(self) -> bool:
        return self.current_id is not None and self.protect([self.current_id])

    def compare_current(self, methods: tuple[str, str]) -> bool:
        """Protect the current photo with two methods, then show them side by side."""
        if self.current_id is None:
            return False
        lst = [dataclasses.replace(self.settings, method=m) for m in methods]
        names = " vs ".join(params.METHODS.get(m, m) for m in methods)
        self.compare_methods = methods
        return self.protect([self.current_id], lst, label=f"Comparing {names}")

    def cancel(self) -> None:
        """Stop the run within one step; the photo being protected stays as it was."""
        if self.run is None or self._run_worker is None:
            return
        self.run.cancelling = True
        self._run_worker.quit()
        self.message.emit("Cancelling…")
        self.runProgress.emit(self.run)

    def _on_run_event(self, ev: tasks.RunEvent) -> None:
        run = self.run
        if run is None:
            return
        item = self.queue.item(ev.item_id)
        if ev.kind == "start":
            run.index, run.current, run.step = ev.index, ev.item_id, None
            run.history, run.face_index, run.n_faces = [], 0, 0
            if item is not None:
                item.status, item.progress, item.progress_text = Status.RUNNING, 0.0, "starting"
        elif ev.kind == "step" and ev.step is not None:
            s = ev.step
            run.steps_received += 1
            if s.face_index != run.face_index or (
                s.stage == "attack" and s.points and run.history and s.points[0][0] < run.history[-1][0]
            ):
                run.history = []  # a new face, or a new round/attempt of the same one
            run.face_index, run.n_faces = s.face_index, max(s.n_faces, run.n_faces)
            run.step = s
            if s.threshold is not None:
                run.threshold = s.threshold
            run.history.extend(s.points)
            if item is not None:
                item.progress = run.photo_fraction
                item.progress_text = _step_text(s)
            if s.preview_rgb is not None:
                self.livePreview.emit(ev.item_id, s)
        elif ev.kind == "result":  # the protected photo: shown now, measured and verified next
            if item is not None:
                self._store_result(item, ev)
                if item.id == self.current_id:
                    self._undrawn.add(item.id)
                    self.shown_method = None
                    self.request_views()
                    self.request_compare()
        elif ev.kind == "done":
            run.done += 1
            if item is not None:
                mr = item.results.get(ev.result.settings.method)
                shown = mr is not None and not mr.measured and mr.result.protected is ev.result.protected
                if not shown:
                    mr = self._store_result(item, ev)
                mr.verification, mr.seconds, mr.measured = ev.verification, ev.seconds, True
                if item.id in self._undrawn:  # its figures wait until the photo is drawn
                    mr.held = ev.result
                else:
                    mr.result = ev.result
                ok = mr.success
                item.status = Status.PROTECTED if ok else Status.NOT_PROTECTED
                item.reason = "" if ok else _failure_reason(ev.result)
                item.progress, item.progress_text = None, ""
                run.protected += ok
                run.not_protected += not ok
                run.previous[item.id] = item.status
                if item.id == self.current_id and not shown:
                    self.shown_method = None
                    self.request_views()
                    self.request_compare()
        elif ev.kind == "failed":
            run.done += 1
            run.failed += 1
            if item is not None:
                item.status, item.reason, item.details = Status.FAILED, ev.error or "", ev.details or ""
                item.progress = None
                run.previous[item.id] = item.status
                self.errors.report(f"Protecting {item.name} failed", ev.error or "", ev.details or "")
        if item is not None:
            self.queue.changed(item.id)
            if ev.kind != "step":
                self.itemUpdated.emit(item.id)
        self.runProgress.emit(run)

    def _store_result(self, item: PhotoItem, ev: tasks.RunEvent) -> MethodResult:
        """A protected version of ``item`` (its metrics and verification may follow)."""
        mr = MethodResult(ev.result, ev.delta_levels, ev.verification, ev.seconds, measured=False)
        item.results.pop(mr.method, None)
        item.results[mr.method] = mr
        item.faces = list(ev.result.faces)
        jnd = getattr(ev.result, "jnd", None)
        if (  # the run's full-resolution map replaces the display copy
            isinstance(jnd, np.ndarray) and item.image is not None and jnd.shape == item.image.pixels.shape
        ):
            rs = ev.result.settings
            item.jnd_cache[JndParams(rs.jnd_model, rs.jnd_color, float(rs.jnd_strength))] = jnd
        return mr

    def _on_run_returned(self, summary: tasks.RunSummary) -> None:
        if self.run is not None and not self.run.cancelling:
            self.message.emit(
                f"Done in {summary.seconds:.1f} s: {summary.protected} protected, "
                f"{summary.not_protected} not protected, {summary.failed} failed"
            )

    def _on_run_error(self, exc: BaseException) -> None:
        self.errors.report_exception("The protection run failed", exc)

    def _on_run_finished(self) -> None:
        run, self.run, self._run_worker = self.run, None, None
        if run is None:
            return
        for item_id in run.item_ids:  # whatever did not finish goes back to how it was
            item = self.queue.item(item_id)
            if item is not None and item.status in (Status.RUNNING, Status.QUEUED):
                item.status = run.previous.get(item_id, Status.WAITING)
                item.progress, item.progress_text = None, ""
                self.queue.changed(item_id)
                self.itemUpdated.emit(item_id)
        if run.cancelling:
            self.message.emit("Cancelled; the unfinished photo was left as it was")
        self._flush_timer.start()
        self.busyChanged.emit(False)
        self.runFinished.emit(run)

    # ------------------------------------------------------------------ export
    def exportable(self, item_ids: Iterable[int] | None = None) -> list[PhotoItem]:
        items = (
            self.queue.items()
            if item_ids is None
            else [it for it in (self.queue.item(i) for i in item_ids) if it is not None]
        )
        return [it for it in items if it.latest is not None]

    def export(self, out_dir: str | Path, options: Any, item_ids: Iterable[int] | None = None) -> bool:
        """Export the protected photos (latest result of each) with reports, in a worker."""
        items = self.exportable(item_ids)
        if not items:
            self.message.emit("Nothing to export: protect a photo first")
            return False
        jobs = []
        for it in items:
            mr = self.shown_result(it) if it.id == self.current_id else it.latest
            icc = it.image.icc_profile if getattr(options, "keep_icc", False) else None
            jobs.append(tasks.ExportJob(it.id, it.path, mr.result, mr.verification, icc))
        self.store.export_folder = str(out_dir)
        worker = GeneratorWorker(
            tasks.export_run, jobs, Path(out_dir), options, self.verify_exports, self.use_dlib,
            pass_stop=True, gallery=self.gallery_folder or None
        )
        worker.signals.yielded.connect(self._on_export_event)
        worker.signals.returned.connect(self.exportFinished.emit)
        worker.signals.errored.connect(lambda e: self.errors.report_exception("Export failed", e))
        self._start(worker)
        self.message.emit(f"Exporting {len(jobs)} photo{'s' if len(jobs) != 1 else ''} to {out_dir}…")
        return True

    def _on_export_event(self, ev: tasks.ExportEvent) -> None:
        item = self.queue.item(ev.item_id)
        if ev.error:
            name = item.name if item is not None else "a photo"
            self.errors.report(f"Exporting {name} failed", ev.error, ev.details or "")
        elif item is not None:
            item.exported = ev.image
            self.itemUpdated.emit(item.id)
        self.exportProgress.emit(ev)

    # ------------------------------------------------------------------ models
    def check_models(self) -> None:
        worker = GeneratorWorker(tasks.check_models, self.settings.device)
        worker.signals.returned.connect(self._on_model_status)
        worker.signals.errored.connect(
            lambda e: self.errors.report_exception("Checking the models failed", e)
        )
        self._start(worker)

    def _on_model_status(self, status: tasks.ModelStatus) -> None:
        self.model_status = status
        self.modelStatusChanged.emit(status)
        if status.fetched:
            self.preload()

    def preload(self) -> None:
        """Start the helper process (imports, recogniser) while the window is idle, so the
        first run starts at once."""
        worker = GeneratorWorker(tasks.preload, self.settings.model, self.settings.device)
        worker.signals.errored.connect(lambda e: logger.warning("preloading failed: %s", e))
        self._start(worker, self.long_pool)

    def fetch_models(self) -> None:
        if self._fetch_worker is not None:
            return
        worker = GeneratorWorker(tasks.fetch_models)
        worker.signals.yielded.connect(self.fetchProgress.emit)
        worker.signals.returned.connect(lambda _m: self.fetchFinished.emit(True, "Models ready"))
        worker.signals.errored.connect(self._on_fetch_error)
        worker.signals.aborted.connect(lambda: self.fetchFinished.emit(False, "Fetch cancelled"))
        worker.signals.finished.connect(self._on_fetch_done)
        self._fetch_worker = worker
        self._start(worker, self.long_pool)

    def cancel_fetch(self) -> None:
        if self._fetch_worker is not None:
            self._fetch_worker.quit()

    @property
    def fetching(self) -> bool:
        return self._fetch_worker is not None

    def _on_fetch_error(self, exc: BaseException) -> None:
        self.errors.report_exception("Fetching the models failed", exc)
        self.fetchFinished.emit(False, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    def _on_fetch_done(self) -> None:
        self._fetch_worker = None
        self.check_models()


def detect_in_helper(path: Path, image: Any, min_face_size: int, device: str) -> list:
    """``tasks.DetectFn`` in the helper process (in this one when the helper cannot start)."""
    from jndguard.gui import helper

    try:
        return list(helper.detect_file(path, min_face_size, device) or [])
    except helper.HelperError as exc:
        logger.warning("detecting faces in the helper failed (%s): detecting here", exc)
        return tasks.detect_here(path, image, min_face_size, device)


def _render_compare(
    item_id: int, token: int, pixels, jnd: JndParams, options: DisplayOptions, deltas: dict,
    protected: dict,
) -> dict:
    return {
        m: tasks.render_views(item_id, token, pixels, jnd, options, None, d, with_jnd=False,
                              protected=protected.get(m))
        for m, d in deltas.items()
    }


def _step_text(s: tasks.StepView) -> str:
    if s.stage == "attack":
        face = f"face {s.face_index + 1}/{s.n_faces} · " if s.n_faces > 1 else ""
        return f"{face}iteration {s.iteration}"
    return s.message or s.stage


def _failure_reason(result: Any) -> str:
    if not getattr(result, "faces", None):
        return "no face found"
    bad = [i for i, f in enumerate(result.per_face) if not f.get("success")]
    if not bad:
        return ""
    return "still recognised: face " + ", ".join(str(i + 1) for i in bad)
