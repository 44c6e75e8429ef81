"""The main window: queue, synchronised views, controls, progress, results.

Layout: the photo queue docks on the left, the controls on the right, progress (with live
plots) and results (metrics, verdict badges) at the bottom; the centre shows the views of
the selected photo, two methods side by side (Compare tab), or the analysis of a protected
photo: Grad-CAM, difference maps, the |change| / J histogram (Analysis tab, computed only
while it is shown). Drop photos or folders anywhere on the window.

The window only wires widgets to the :class:`~jndguard.gui.controller.Controller`, which
owns the state and runs every long task in a background worker.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QProgressBar,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from jndguard.core.photos import photo_filter
from jndguard.gui import presenters
from jndguard.gui.controller import Controller
from jndguard.gui.settings import SettingsStore
from jndguard.gui.widgets.analysis import AnalysisPanel
from jndguard.gui.widgets.compare import ComparePanel
from jndguard.gui.widgets.controls import ControlsPanel
from jndguard.gui.widgets.dialogs import (
    AboutDialog,
    Banner,
    ErrorDetailsDialog,
    ExportDialog,
    ModelsDialog,
    open_folder,
)
from jndguard.gui.widgets.progress import ProgressPanel
from jndguard.gui.widgets.queue import QueuePanel
from jndguard.gui.widgets.results import ResultsPanel
from jndguard.gui.widgets.views import PANES, ViewsPanel
from jndguard.resources import SAMPLE_PHOTO, resource_path

PHOTO_FILTER = photo_filter(all_files=True)
DEFAULT_SIZE = (1440, 900)


class MainWindow(QMainWindow):
    """JNDGuard's window (see module docstring).

    Args:
        settings: the settings store (default: the user's).
        load_sample: add the bundled sample photo (first start, demos).
        check_models: look at the model store on start and explain when it is empty.
    """

    def __init__(
        self, settings: SettingsStore | None = None, load_sample: bool = False, check_models: bool = True
    ) -> None:
        # The compute stack (torch, torchvision, the pipeline) is imported here, on the GUI
        # thread before the window is shown: imported later by a worker it held the
        # interpreter lock for seconds and left the event loop 140 ms late after the first
        # photo was dropped (measured with py-spy --gil, `jndguard bench gui --drop-only`).
        import jndguard.core.pipeline  # noqa: F401

        super().__init__()
        self.setObjectName("MainWindow")
        self.setWindowTitle("JNDGuard — protect faces below the visibility threshold")
        self.store = settings or SettingsStore()
        self.controller = Controller(self.store, self)
        c = self.controller
        self.models_dialog: ModelsDialog | None = None
        self.errors_dialog: ErrorDetailsDialog | None = None
        self.about_dialog: AboutDialog | None = None
        self.export_dialog: ExportDialog | None = None
        self._models_prompted = False
        self._open_after_export = False
        self._refresh_pending = False
        self._actions_pending = False
        self._progress_pending = False
        self._live_pending: tuple | None = None
        self._closed = False

        # --- widgets ----------------------------------------------------------
        self.banner = Banner(self)
        self.views = ViewsPanel(self)
        self.views.set_options(c.display)
        self.compare = ComparePanel(self)
        self.analysis = AnalysisPanel(self)
        self.tabs = QTabWidget(self)
        self.tabs.addTab(self.views, "Views")
        self.tabs.addTab(self.compare, "Compare methods")
        self.tabs.addTab(self.analysis, "Analysis")
        self.tabs.setTabToolTip(
            2, "Grad-CAM, per-channel difference maps and the |change| / J histogram of a protected photo"
        )
        central = QWidget(self)
        lay = QVBoxLayout(central)
        lay.setContentsMargins(4, 4, 4, 0)
        lay.addWidget(self.banner)
        lay.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        self.queue_panel = QueuePanel(c.queue, self)
        self.controls = ControlsPanel(c.settings, self)
        self.progress = ProgressPanel(self)
        self.results = ResultsPanel(self)
        self.queue_dock = self._dock(
            "queue", "Photos", self.queue_panel, Qt.DockWidgetArea.LeftDockWidgetArea
        )
        self.controls_dock = self._dock(
            "controls", "Protection", self.controls, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.progress_dock = self._dock(
            "progress", "Progress", self.progress, Qt.DockWidgetArea.BottomDockWidgetArea
        )
        self.results_dock = self._dock(
            "results", "Results", self.results, Qt.DockWidgetArea.BottomDockWidgetArea
        )
        self.splitDockWidget(self.progress_dock, self.results_dock, Qt.Orientation.Horizontal)

        # --- status bar -------------------------------------------------------
        self.status_progress = QProgressBar()
        self.status_progress.setMaximumWidth(160)
        self.status_progress.setRange(0, 100)
        self.status_progress.hide()
        self.device_label = QLabel("Device: …")
        self.model_label = QLabel("Model: checking…")
        for w in (self.status_progress, self.device_label, self.model_label):
            self.statusBar().addPermanentWidget(w)

        self._build_actions()
        self._connect()
        self._restore()
        self._install_drop_filter()
        self._update_actions()
        if check_models:
            c.check_models()
        if load_sample:
            c.add_paths([resource_path(SAMPLE_PHOTO)])

    # ------------------------------------------------------------------ construction
    def _dock(self, name: str, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        d = QDockWidget(title, self)
        d.setObjectName(f"dock_{name}")
        d.setWidget(widget)
        d.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        self.addDockWidget(area, d)
        return d

    def _action(self, text: str, slot, shortcut=None, tip: str = "", checkable: bool = False) -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            a.setShortcut(QKeySequence(shortcut))
        a.setToolTip(tip or text.replace("&", "").replace("…", ""))
        a.setStatusTip(a.toolTip())
        a.setCheckable(checkable)
        if checkable:
            a.toggled.connect(slot)
        else:
            a.triggered.connect(lambda _c=False: slot())
        self.addAction(a)
        return a

    def _build_actions(self) -> None:
        c = self.controller
        K = QKeySequence.StandardKey
        self.act_add = self._action("&Add photos…", self.add_files_dialog, K.Open, "Add photos (Ctrl+O)")
        self.act_add_folder = self._action("Add &folder…", self.add_folder_dialog, "Ctrl+Shift+O")
        self.act_sample = self._action(
            "Add the &sample photo", lambda: c.add_paths([resource_path(SAMPLE_PHOTO)])
        )
        self.act_export = self._action(
            "&Export…", self.export_dialog_open, "Ctrl+E", "Export protected photos with reports (Ctrl+E)"
        )
        self.act_quit = self._action("&Quit", self.close, K.Quit)
        self.act_remove = self._action("&Remove selected", lambda: c.remove(self.queue_panel.selected_ids()))
        self.act_clear = self._action("&Clear queue", c.clear, "Ctrl+Shift+Del")
        self.act_protect = self._action(
            "&Protect selected", self.protect_selected, "Ctrl+R", "Protect the selected photos (Ctrl+R)"
        )
        self.act_protect_all = self._action(
            "Protect &all",
            lambda: c.protect(None),
            "Ctrl+Shift+R",
            "Protect every photo in the queue (Ctrl+Shift+R)",
        )
        self.act_cancel = self._action("&Cancel", c.cancel, "Esc", "Stop after the current step (Esc)")
        self.act_compare = self._action(
            "Co&mpare two methods",
            self.compare_selected,
            "Ctrl+M",
            "Protect the selected photo with both methods of the Compare tab",
        )
        self.act_fit = self._action("&Fit to window", self.views.sync.fit, "Ctrl+0")
        self.act_zoom_in = self._action("Zoom &in", lambda: self.views.sync.zoom(1.25), K.ZoomIn)
        self.act_zoom_out = self._action("Zoom &out", lambda: self.views.sync.zoom(0.8), K.ZoomOut)
        self.act_actual = self._action("&Actual pixels", self.views.sync.actual_size, "Ctrl+1")
        self.act_faces = self._action("Face &boxes", self._set_faces, "B", checkable=True)
        self.act_magnifier = self._action(
            "&Magnifier",
            self._set_magnifier,
            "M",
            checkable=True,
            tip="Red-box detail of the same spot in every view (M; right-click pins it)",
        )
        self.act_advanced = self._action(
            "Ad&vanced parameters", self.controls.set_advanced_open, "Ctrl+Shift+A", checkable=True
        )
        self.act_models = self._action("Face &models…", self.show_models_dialog)
        self.act_about = self._action("&About JNDGuard", self.show_about, K.HelpContents)
        self.act_errors = self._action("&Errors and details…", self.show_errors, "Ctrl+Shift+E")
        self.pane_actions: dict[str, QAction] = {}
        for i, (key, title) in enumerate(PANES.items(), start=1):
            a = self._action(f"{title}", lambda _on, k=key: self._pane_toggled(), f"Alt+{i}", checkable=True)
            self.pane_actions[key] = a

        m = self.menuBar()
        f = m.addMenu("&File")
        for a in (
            self.act_add,
            self.act_add_folder,
            self.act_sample,
            None,
            self.act_export,
            None,
            self.act_quit,
        ):
            f.addSeparator() if a is None else f.addAction(a)
        e = m.addMenu("&Queue")
        for a in (self.act_remove, self.act_clear):
            e.addAction(a)
        p = m.addMenu("&Protect")
        for a in (self.act_protect, self.act_protect_all, self.act_compare, None, self.act_cancel):
            p.addSeparator() if a is None else p.addAction(a)
        p.addSeparator()
        c = self.controller
        self.act_verify = self._action(
            "Check the saved file after protecting",
            self._set_verify,
            checkable=True,
            tip="Re-load the protected photo and test it after JPEG and resizing, as a viewer would",
        )
        self.act_dlib = self._action(
            "Include dlib's independent recogniser",
            self._set_dlib,
            checkable=True,
            tip="A second, black-box recogniser in every check (when installed)",
        )
        for a, on in ((self.act_verify, c.verify_after_run), (self.act_dlib, c.use_dlib)):
            a.blockSignals(True)
            a.setChecked(on)
            a.blockSignals(False)
            p.addAction(a)
        self.act_gallery = self._action(
            "My other photos…",
            self.choose_gallery,
            tip="A folder of other photos of the same person: the check counts a face as "
            "recognised when it matches any of them (as a face search engine would)",
        )
        self.act_gallery_clear = self._action(
            "Forget my other photos", lambda: self.set_gallery(""),
            tip="Check against the original photo only",
        )
        p.addAction(self.act_gallery)
        p.addAction(self.act_gallery_clear)
        self._show_gallery()
        v = m.addMenu("&View")
        for a in self.pane_actions.values():
            v.addAction(a)
        v.addSeparator()
        for a in (
            self.act_faces,
            self.act_magnifier,
            None,
            self.act_zoom_in,
            self.act_zoom_out,
            self.act_fit,
            self.act_actual,
            None,
            self.act_advanced,
        ):
            v.addSeparator() if a is None else v.addAction(a)
        theme = v.addMenu("&Theme")
        self.theme_group = QActionGroup(self)
        self.theme_actions: dict[str, QAction] = {}
        for key, label in (("system", "Follow the system"), ("light", "Light"), ("dark", "Dark")):
            a = QAction(label, self, checkable=True)
            a.triggered.connect(lambda _c=False, k=key: self.set_theme(k))
            self.theme_group.addAction(a)
            theme.addAction(a)
            self.theme_actions[key] = a
        docks = v.addMenu("&Panels")
        for d in (self.queue_dock, self.controls_dock, self.progress_dock, self.results_dock):
            docks.addAction(d.toggleViewAction())
        v.addAction(self._action("&Reset layout", self.reset_layout))
        modes = m.addMenu("&Modes")
        self.act_presentation = self._action("&Presentation mode", self.open_presentation, "F11",
                                             tip="Full screen live demo for an audience (Esc leaves)")
        self.act_study = self._action("Run a viewing &study…", self.open_study,
                                      tip="Pairwise subjective test (ITU-R BT.500) from a study file")
        modes.addAction(self.act_presentation)
        modes.addAction(self.act_study)
        mm = m.addMenu("&Models")
        mm.addAction(self.act_models)
        h = m.addMenu("&Help")
        h.addAction(self.act_errors)
        h.addAction(self.act_about)

        tb = QToolBar("Main", self)
        tb.setObjectName("toolbar_main")
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for a in (
            self.act_add,
            self.act_add_folder,
            None,
            self.act_protect,
            self.act_protect_all,
            self.act_cancel,
            None,
            self.act_export,
            None,
            self.act_fit,
            self.act_faces,
            self.act_magnifier,
        ):
            tb.addSeparator() if a is None else tb.addAction(a)
        self.addToolBar(tb)
        self.toolbar = tb

    def _connect(self) -> None:
        c = self.controller
        self.queue_panel.addFilesRequested.connect(self.add_files_dialog)
        self.queue_panel.addFolderRequested.connect(self.add_folder_dialog)
        self.queue_panel.removeRequested.connect(c.remove)
        self.queue_panel.clearRequested.connect(c.clear)
        self.queue_panel.currentChanged.connect(c.select)
        self.controls.settingsEdited.connect(c.set_settings)
        self.controls.advancedToggled.connect(self._advanced_toggled)
        self.views.displayOptionsChanged.connect(c.set_display)
        self.views.panesChanged.connect(lambda keys: setattr(self.store, "panes", ",".join(keys)))
        self.progress.cancelRequested.connect(c.cancel)
        self.results.showMethodRequested.connect(c.show_method)
        self.results.exportRequested.connect(self.export_dialog_open)
        self.compare.methodsChanged.connect(c.set_compare)
        self.compare.runRequested.connect(self.compare_selected)
        self.analysis.faceChanged.connect(lambda _i: self._refresh_analysis())
        self.tabs.currentChanged.connect(lambda _i: self._refresh_analysis())
        self.banner.detailsRequested.connect(self.show_errors)

        c.selectionChanged.connect(self._on_selection)
        c.itemUpdated.connect(self._on_item_updated)
        c.viewsRendered.connect(self._on_views)
        c.compareRendered.connect(self.compare.show_rendered)
        c.analysisReady.connect(self.analysis.show_analysis)
        c.gradCamReady.connect(self.analysis.show_grad_cam)
        c.settingsChanged.connect(self._on_settings)
        c.runStarted.connect(self._on_run_started)
        c.runProgress.connect(self._on_run_progress)
        c.livePreview.connect(self._on_live_preview)
        c.runFinished.connect(self._on_run_finished)
        c.busyChanged.connect(lambda _b: self._update_actions())
        c.loadingChanged.connect(self._on_loading)
        c.modelStatusChanged.connect(self._on_model_status)
        c.exportFinished.connect(self._on_export_finished)
        c.errors.reported.connect(lambda r: self.banner.show_error(r.title, r.message))
        c.message.connect(lambda text: self.statusBar().showMessage(text, 6000))
        c.queue.rowsInserted.connect(lambda *_: self._update_actions())
        c.queue.rowsRemoved.connect(lambda *_: self._update_actions())
        c.queue.modelReset.connect(lambda *_: self._update_actions())
        c.set_compare(self.compare.methods())

    def _restore(self) -> None:
        s = self.store
        self.resize(*DEFAULT_SIZE)
        geometry, state = s.geometry, s.window_state
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        self.resizeDocks([self.queue_dock, self.controls_dock], [300, 330], Qt.Orientation.Horizontal)
        self.resizeDocks([self.progress_dock], [250], Qt.Orientation.Vertical)
        self._default_state = self.saveState()
        if isinstance(state, QByteArray) and not state.isEmpty():
            self.restoreState(state)
        panes = [p for p in s.panes.split(",") if p in PANES]
        self.views.set_visible_panes(panes or list(PANES)[:4])
        for key, a in self.pane_actions.items():
            a.blockSignals(True)
            a.setChecked(key in self.views.visible_panes)
            a.blockSignals(False)
        self.act_faces.setChecked(s.show_faces)
        self.views.set_faces_visible(s.show_faces)
        self.views.set_magnifier_zoom(s.magnifier_zoom)
        self.act_magnifier.setChecked(s.magnifier)
        self.act_advanced.setChecked(s.advanced_open)
        self.controls.set_advanced_open(s.advanced_open)
        self.theme_actions.get(s.theme, self.theme_actions["system"]).setChecked(True)
        self.set_theme(s.theme, persist=False)

    def _install_drop_filter(self) -> None:
        """Photos and folders may be dropped on any part of the window: no child accepts
        drops itself, so Qt hands every drag to the window (cheaper than filtering every
        event of every widget)."""
        self.setAcceptDrops(True)
        for w in self.findChildren(QWidget):
            w.setAcceptDrops(False)

    # ------------------------------------------------------------------ drag & drop
    @staticmethod
    def _dropped_paths(event) -> list[Path]:
        md = event.mimeData()
        if not md.hasUrls():
            return []
        return [Path(u.toLocalFile()) for u in md.urls() if u.isLocalFile()]

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._dropped_paths(event):
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        if self._dropped_paths(event):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = self._dropped_paths(event)
        if paths:
            event.acceptProposedAction()
            self.add_paths(paths)

    # ------------------------------------------------------------------ intents
    def add_paths(self, paths) -> None:
        self.controller.add_paths(paths)

    def add_files_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Add photos", self.store.add_folder, PHOTO_FILTER)
        if files:
            self.add_paths(files)

    def add_folder_dialog(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Add every photo in a folder", self.store.add_folder)
        if d:
            self.add_paths([d])

    def protect_selected(self) -> None:
        ids = self.queue_panel.selected_ids() or (
            [self.controller.current_id] if self.controller.current_id else []
        )
        self.controller.protect(ids)

    def compare_selected(self, methods: tuple[str, str] | None = None) -> None:
        methods = methods or self.compare.methods()
        self.tabs.setCurrentWidget(self.compare)
        self.controller.compare_current(tuple(methods))

    def export_dialog_open(self) -> None:
        items = self.controller.exportable()
        if not items:
            self.statusBar().showMessage("Nothing to export yet: protect a photo first", 6000)
            return
        s = self.store
        folder = s.export_folder or str(items[0].path.parent / "protected")
        dlg = ExportDialog(
            folder, s.export_format, s.jpeg_quality, s.open_folder_after_export, len(items), self
        )
        dlg.accepted.connect(lambda: self._export_accepted(dlg))
        self.export_dialog = dlg
        dlg.open()

    def _export_accepted(self, dlg: ExportDialog) -> None:
        folder = dlg.folder.text().strip()
        if not folder:
            self.controller.errors.report("Export", "Choose an output folder")
            return
        opts = dlg.options()
        self.store.export_format = opts.format
        self.store.jpeg_quality = opts.jpeg_quality
        self.store.open_folder_after_export = dlg.open_after.isChecked()
        self._open_after_export = dlg.open_after.isChecked()
        self.export_to(folder, opts)

    def export_to(self, folder: str | Path, options=None) -> bool:
        """Export every protected photo to ``folder`` (PNG unless ``options`` say otherwise)."""
        if options is None:
            from jndguard.core.export import ExportOptions

            options = ExportOptions(format=self.store.export_format, jpeg_quality=self.store.jpeg_quality)
        return self.controller.export(folder, options)

    def show_models_dialog(self) -> ModelsDialog:
        if self.models_dialog is None:
            dlg = ModelsDialog(self)
            dlg.fetchRequested.connect(self.controller.fetch_models)
            dlg.cancelRequested.connect(self.controller.cancel_fetch)
            self.controller.fetchProgress.connect(dlg.on_progress)
            self.controller.fetchFinished.connect(dlg.on_finished)
            self.models_dialog = dlg
        if self.controller.model_status is not None:
            self.models_dialog.set_status(self.controller.model_status)
        self.models_dialog.show()
        self.models_dialog.raise_()
        return self.models_dialog

    def open_presentation(self) -> None:
        """Full-screen presentation mode (its own window; Esc returns here)."""
        from jndguard.gui.presentation import open_presentation

        self._presentation = open_presentation(self)

    def open_study(self) -> None:
        """Pick a study file (``jndguard study build``) and run it."""
        from PySide6.QtWidgets import QFileDialog

        path, _ = QFileDialog.getOpenFileName(self, "Open a study", "", "Study (*.json)")
        if path:
            from jndguard.gui.study_window import open_study

            self._study = open_study(path, self)

    def show_about(self) -> None:
        if self.about_dialog is None:
            self.about_dialog = AboutDialog(self)
        self.about_dialog.show()
        self.about_dialog.raise_()

    def show_errors(self) -> None:
        if self.errors_dialog is None:
            self.errors_dialog = ErrorDetailsDialog(self.controller.errors, self)
        self.errors_dialog.refresh()
        self.errors_dialog.show()
        self.errors_dialog.raise_()

    def set_theme(self, key: str, persist: bool = True) -> None:
        from jndguard.gui.qtapp import apply_theme

        apply_theme(key)
        if persist:
            self.store.theme = key

    def reset_layout(self) -> None:
        self.restoreState(self._default_state)
        for d in (self.queue_dock, self.controls_dock, self.progress_dock, self.results_dock):
            d.show()

    # ------------------------------------------------------------------ observers
    def _on_selection(self, item) -> None:
        c = self.controller
        self.queue_panel.select_id(None if item is None else item.id)
        self.views.show_photo(item)
        self.results.show_item(item, c.shown_result(item) if item is not None else None)
        self.compare.show_item(item)
        self._refresh_analysis()
        self._update_actions()

    def _on_item_updated(self, item_id: int) -> None:
        # coalesced, and split into separate short events (views, then results), so a burst
        # of updates never blocks the event loop for long
        if item_id == self.controller.current_id and not self._refresh_pending:
            self._refresh_pending = True
            QTimer.singleShot(0, self._refresh_views)
        if not self._actions_pending:
            self._actions_pending = True
            QTimer.singleShot(0, self._update_actions)

    def _refresh_views(self) -> None:
        self._refresh_pending = False
        item = self.controller.current
        self.views.show_photo(item)
        self.compare.show_item(item)
        QTimer.singleShot(0, self._refresh_results)

    def _refresh_results(self) -> None:
        c = self.controller
        item = c.current
        self.results.show_item(item, c.shown_result(item) if item is not None else None)
        self._refresh_analysis()

    def _refresh_analysis(self) -> None:
        """Bring the Analysis tab up to date: only while it is shown (the rest is lazy)."""
        if self._closed or self.tabs.currentWidget() is not self.analysis:
            return  # (a refresh queued before the window closed may arrive after it)
        c = self.controller
        item = c.current
        shown = c.shown_result(item) if item is not None else None
        if self.analysis.show_item(item, shown) and self.analysis.needs_data:
            c.request_analysis(self.analysis.face_index())

    def _on_views(self, views) -> None:
        c = self.controller
        mr = c.shown_result()
        label = presenters.method_label(mr.method) if mr is not None else ""
        protected = None if mr is None else (
            views.protected_image if views.protected_image is not None else mr.result.protected)
        self.views.show_views(views, protected, label)
        if mr is not None:
            QTimer.singleShot(0, self._refresh_results)

    def _on_settings(self, settings) -> None:
        if self.controls.settings() != settings:
            self.controls.set_settings(settings)

    def _on_run_started(self, run) -> None:
        self.progress.on_started(run)
        self.progress_dock.show()
        self.status_progress.show()
        self.status_progress.setValue(0)
        self._update_actions()

    def _on_run_progress(self, run) -> None:
        # redrawn in an event of its own, once per burst of progress events
        if not self._progress_pending:
            self._progress_pending = True
            QTimer.singleShot(0, self._redraw_progress)

    def _redraw_progress(self) -> None:
        self._progress_pending = False
        run = self.controller.run
        if run is not None:
            self.progress.show_run(run)
            self.status_progress.setValue(round(run.fraction * 100))

    def _on_live_preview(self, item_id: int, step) -> None:
        first = self._live_pending is None
        self._live_pending = (item_id, step)  # only the newest preview is drawn
        if first:
            QTimer.singleShot(0, self._draw_live_preview)

    def _draw_live_preview(self) -> None:
        pending, self._live_pending = self._live_pending, None
        if pending is not None and self.controller.run is not None:
            self.views.show_live(*pending)

    def _on_run_finished(self, run) -> None:
        self.progress.on_finished(run)
        self.views.end_live()
        self.status_progress.hide()
        self._refresh_analysis()  # Grad-CAM waited for the helper process
        self._update_actions()

    def _on_loading(self, loading: bool) -> None:
        if loading:
            self.statusBar().showMessage("Reading photos and finding faces…")

    def _on_model_status(self, status) -> None:
        self.device_label.setText(f"Device: {status.device}")
        self.device_label.setToolTip("Where the optimisation runs (Advanced ▸ Device)")
        if status.fetched:
            thr = f" (τ = {status.threshold:.3f})" if status.threshold is not None else ""
            self.model_label.setText(f"Model: {status.default}{thr}")
            self.model_label.setToolTip(f"Model store: {status.home}")
            self.controls.set_persons(status.persons)
            self.controls.set_models(status.models, status.devices)
        else:
            self.model_label.setText("Model: missing — Models ▸ Face models…")
            self.model_label.setToolTip(status.error or f"No models in {status.home}")
            if status.devices:
                self.controls.set_models([], status.devices)
            if not self._models_prompted:
                self._models_prompted = True
                QTimer.singleShot(0, self.show_models_dialog)
        if self.models_dialog is not None:
            self.models_dialog.set_status(status)
        self._update_actions()

    def _on_export_finished(self, summary) -> None:
        n = len(summary.written)
        failed = f", {len(summary.failed)} failed" if summary.failed else ""
        folder = summary.out_dir
        self.banner.show_info(
            f"Exported {n} photo{'s' if n != 1 else ''} with report{'s' if n != 1 else ''} to "
            f"<code>{folder}</code>{failed}",
            "Open folder",
            lambda: open_folder(folder),
        )
        item = self.controller.current
        if item is not None:
            self.results.show_item(item, self.controller.shown_result(item))
        if self._open_after_export and n:
            open_folder(folder)
        self._open_after_export = False

    def _update_actions(self) -> None:
        self._actions_pending = False
        c = self.controller
        busy = c.busy
        has_items = c.queue.rowCount() > 0
        ready = bool(c.protectable())
        self.act_protect.setEnabled(not busy and c.current is not None and c.current.ready)
        self.act_protect_all.setEnabled(not busy and ready)
        self.act_compare.setEnabled(not busy and c.current is not None and c.current.ready)
        self.compare.run_button.setEnabled(not busy and c.current is not None and c.current.ready)
        self.act_cancel.setEnabled(busy)
        self.act_export.setEnabled(bool(c.exportable()))
        self.act_clear.setEnabled(has_items)
        self.act_remove.setEnabled(has_items)

    def _set_verify(self, on: bool) -> None:
        self.controller.verify_after_run = on
        self.store.verify_after_run = on

    def _set_dlib(self, on: bool) -> None:
        self.controller.use_dlib = on
        self.store.use_dlib = on

    def choose_gallery(self) -> None:
        d = QFileDialog.getExistingDirectory(
            self, "My other photos (the check matches against every photo in it)",
            self.controller.gallery_folder or self.store.add_folder)
        if d:
            self.set_gallery(d)

    def set_gallery(self, folder: str) -> None:
        """Remember the "my other photos" folder (empty: none) for the next checks."""
        self.controller.gallery_folder = folder
        self.store.gallery_folder = folder
        self._show_gallery()

    def _show_gallery(self) -> None:
        folder = self.controller.gallery_folder
        self.act_gallery.setText(f"My other photos: {Path(folder).name}…" if folder
                                 else "My other photos…")
        self.act_gallery_clear.setEnabled(bool(folder))

    def _set_faces(self, on: bool) -> None:
        self.views.set_faces_visible(on)
        self.store.show_faces = on

    def _set_magnifier(self, on: bool) -> None:
        self.views.set_magnifier_enabled(on)
        self.store.magnifier = on

    def _advanced_toggled(self, on: bool) -> None:
        self.store.advanced_open = on
        if self.act_advanced.isChecked() != on:
            self.act_advanced.setChecked(on)

    def _pane_toggled(self) -> None:
        keys = [k for k, a in self.pane_actions.items() if a.isChecked()]
        if not keys:
            self.pane_actions["original"].setChecked(True)
            return
        self.views.set_visible_panes(keys)

    # ------------------------------------------------------------------ closing
    def save_layout(self) -> None:
        self.store.geometry = self.saveGeometry()
        self.store.window_state = self.saveState()
        self.store.panes = ",".join(self.views.visible_panes)
        self.store.set_protection_settings(self.controller.settings)
        self.store.set_display_options(self.controller.display)
        self.store.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        self._closed = True
        self.save_layout()
        self.controller.shutdown()
        for d in (self.models_dialog, self.errors_dialog, self.about_dialog, self.export_dialog):
            if d is not None:
                d.close()
        super().closeEvent(event)
