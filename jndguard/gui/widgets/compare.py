"""Two methods on the same photo, side by side: protected results and perturbations at one
common amplification, synchronised zoom and pan."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QGridLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from jndguard.gui import imaging, presenters
from jndguard.gui.params import METHODS
from jndguard.gui.widgets.views import PaneFrame, ViewSync


class ComparePanel(QWidget):
    """Pick two methods, run both on the selected photo, compare."""

    methodsChanged = Signal(tuple)
    runRequested = Signal(tuple)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.a = QComboBox()
        self.b = QComboBox()
        for k in METHODS:
            self.a.addItem(presenters.method_label(k), k)
            self.b.addItem(presenters.method_label(k), k)
        self.a.setCurrentIndex(self.a.findData("hvs-jnd"))
        self.b.setCurrentIndex(max(0, self.b.findData("pgd")))
        self.run_button = QPushButton("Protect with both")
        self.run_button.setToolTip("Protect the selected photo with both methods (current parameters)")
        self.run_button.clicked.connect(lambda: self.runRequested.emit(self.methods()))
        self.a.currentIndexChanged.connect(lambda _i: self.methodsChanged.emit(self.methods()))
        self.b.currentIndexChanged.connect(lambda _i: self.methodsChanged.emit(self.methods()))
        top = QHBoxLayout()
        top.addWidget(QLabel("Compare"))
        top.addWidget(self.a)
        top.addWidget(QLabel("with"))
        top.addWidget(self.b)
        top.addWidget(self.run_button)
        top.addStretch(1)
        self.note = QLabel("")
        self.sync = ViewSync()
        self.frames: dict[str, PaneFrame] = {}
        grid = QGridLayout()
        grid.setSpacing(4)
        for col, side in enumerate(("a", "b")):
            for row, kind in enumerate(("protected", "perturbation")):
                key = f"{kind}_{side}"
                f = PaneFrame(key, kind.capitalize(), self)
                if kind == "perturbation":
                    f.add_bar()
                self.frames[key] = f
                self.sync.add(f.pane)
                grid.addWidget(f, row, col)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 4, 0, 0)
        lay.addLayout(top)
        lay.addWidget(self.note)
        lay.addLayout(grid, 1)
        self._item = None
        self.clear()

    def methods(self) -> tuple[str, str]:
        return (self.a.currentData(), self.b.currentData())

    def set_methods(self, methods: tuple[str, str]) -> None:
        for combo, m in zip((self.a, self.b), methods):
            i = combo.findData(m)
            if i >= 0:
                combo.blockSignals(True)
                combo.setCurrentIndex(i)
                combo.blockSignals(False)

    def clear(self, text: str = "Protect the photo with both methods to compare them") -> None:
        for f in self.frames.values():
            f.pane.set_image(None, text)
            f.info.setText("")
            if f.bar is not None:
                f.bar.hide()

    def show_item(self, item) -> None:
        self._item = item
        self.run_button.setEnabled(item is not None and item.image is not None)
        if item is None:
            self.clear("No photo selected")
            self.note.setText("")

    def show_rendered(self, rendered: dict) -> None:
        """``rendered``: method → RenderedViews (perturbations at one amplification)."""
        item = self._item
        if item is None:
            return
        ran = [presenters.method_label(m) for m in item.results]
        self.note.setText("Methods run on this photo: " + (", ".join(ran) if ran else "none yet"))
        for side, method in zip(("a", "b"), self.methods()):
            pf, pp = self.frames[f"perturbation_{side}"], self.frames[f"protected_{side}"]
            mr = item.results.get(method)
            label = presenters.method_label(method)
            pp.title.setText(f"<b>{label}</b>")
            pf.title.setText(f"<b>{label}</b> — perturbation")
            views = rendered.get(method)
            if mr is None or views is None or views.perturbation_rgb is None:
                msg = f"{label} has not been run on this photo yet"
                pp.pane.set_image(None, msg)
                pf.pane.set_image(None, msg)
                pp.info.setText("")
                pf.info.setText("")
                if pf.bar is not None:
                    pf.bar.hide()
                continue
            pp.pane.set_image(views.protected_image if views.protected_image is not None
                              else imaging.to_qimage(mr.result.protected))
            psnr = (mr.result.metrics or {}).get("psnr")
            verdict = "protected ✓" if mr.success else "not protected ✗"
            pp.info.setText(f"{verdict} · PSNR {psnr:.2f} dB" if isinstance(psnr, (int, float)) else verdict)
            pf.pane.set_image(views.perturbation_image if views.perturbation_image is not None
                              else imaging.to_qimage(views.perturbation_rgb))
            pf.info.setText(f"×{views.amplification} · max {views.perturbation_max:.0f} levels")
            if pf.bar is not None:
                lut = imaging.GREY if views.perturbation_channel == "rgb" else imaging.DIVERGING
                pf.bar.set_scale(lut, *views.perturbation_range, unit="Z−X")
                pf.bar.show()
