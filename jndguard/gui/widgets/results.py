"""Results of the selected photo: a verdict badge per face and the metrics table (one column
per method run on the photo, so two methods compare side by side)."""

from __future__ import annotations

import html

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from jndguard.gui import presenters

GOOD = QColor(46, 160, 80)
BAD = QColor(210, 60, 50)
UNKNOWN = QColor(130, 130, 130)


class VerdictBadge(QLabel):
    """A coloured, rounded label: green protected, red still recognised, grey unknown."""

    def __init__(self, verdict: presenters.FaceVerdict, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.verdict = verdict
        colour = UNKNOWN if verdict.protected is None else (GOOD if verdict.protected else BAD)
        detail = html.escape(verdict.detail).replace("\n", "<br>")
        self.setText(f"<b>{html.escape(verdict.title)}</b><br><small>{detail}</small>")
        self.setToolTip(f"{verdict.title}: {verdict.detail}")
        self.setStyleSheet(
            f"QLabel {{ background: {colour.name()}; color: white; border-radius: 8px; padding: 5px 10px; }}"
        )
        self.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)


class MatrixGridView(QTableWidget):
    """The threat matrix of the shown result as coloured cells (green: not recognised, red:
    recognised, grey: no face found), a tooltip per cell with every reference's similarity.
    One block per face and recogniser: a title row, then rows detector · crop · resize and
    columns re-encodings."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, 1, parent)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 4)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.grids: list[presenters.MatrixGrid] = []

    def show_grids(self, grids: list[presenters.MatrixGrid]) -> None:
        self.grids = grids
        self.clearContents()
        cols = max((len(g.columns) for g in grids), default=1)
        n = sum(1 + len(g.rows) for g in grids)
        self.setColumnCount(cols)
        self.setRowCount(n)
        self.setHorizontalHeaderLabels(grids[0].columns if grids else ["—"])
        labels: list[str] = []
        bold = QFont()
        bold.setBold(True)
        white = QBrush(QColor(255, 255, 255))
        r = 0
        for g in grids:
            self.setSpan(r, 0, 1, cols)
            head = QTableWidgetItem(g.title)
            head.setFont(bold)
            head.setForeground(QBrush(GOOD if g.protected else BAD))
            self.setItem(r, 0, head)
            labels.append("")
            r += 1
            for label, row in zip(g.rows, g.cells):
                labels.append(label)
                for j, c in enumerate(row):
                    item = QTableWidgetItem(c.text)
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                    colour = UNKNOWN if c.ok is None else (GOOD if c.ok else BAD)
                    item.setBackground(QBrush(colour))
                    item.setForeground(white)
                    item.setToolTip(c.tooltip)
                    self.setItem(r, j, item)
                r += 1
        self.setVerticalHeaderLabels(labels)


class ResultsPanel(QWidget):
    """Verdict badges, the metrics table, and which result the views show."""

    showMethodRequested = Signal(object)  # method key or None
    exportRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.header = QLabel("<b>No results yet</b>")
        self.badges = QHBoxLayout()
        self.badges.setSpacing(6)
        self.method = QComboBox()
        self.method.setToolTip("Which result the views show")
        self.method.currentIndexChanged.connect(self._on_method)
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Export the protected photos with their reports (Ctrl+E)")
        self.export_button.clicked.connect(self.exportRequested.emit)
        self.table = QTableWidget(0, 1)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ContiguousSelection)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setAlternatingRowColors(True)
        top = QHBoxLayout()
        top.addWidget(self.header, 1)
        top.addWidget(QLabel("Show"))
        top.addWidget(self.method)
        top.addWidget(self.export_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 4, 6, 4)
        lay.addLayout(top)
        lay.addLayout(self.badges)
        self.placeholder = QLabel(
            "Protect the photo to see its PSNR, SSIM, MS-SSIM, share over the JND "
            "map, similarity and verdict per recogniser, and the threat matrix of the "
            "saved file (crop conventions × re-encodings × your photos)."
        )
        self.placeholder.setWordWrap(True)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        lay.addWidget(self.placeholder, 1)
        lay.addWidget(self.table, 1)
        self.grid_label = QLabel(
            "<b>Threat matrix of the saved file</b> — how real face-search pipelines see it "
            "(hover a cell for its similarities)")
        self.grid = MatrixGridView()
        lay.addWidget(self.grid_label)
        lay.addWidget(self.grid, 1)
        self._updating = False
        self._shown_key: tuple | None = ()
        self._last: tuple | None = None
        self._bold = QFont()
        self._bold.setBold(True)
        self.show_item(None, None)

    def show_item(self, item, shown) -> None:
        """Show the results of a photo (``shown``: the MethodResult the views show).

        Nothing is rebuilt when the same results are already on display.
        """
        self._last = (item, shown)
        results = list(item.results.values()) if item is not None else []
        key = (
            None if item is None else item.id,
            # a result's figures and verification arrive after its photo (same MethodResult)
            tuple((id(r), id(r.result), id(r.verification), r.measured) for r in results),
            None if shown is None else id(shown),
            None if item is None else item.exported,
        )
        if key == self._shown_key:
            return
        self._shown_key = key
        self.setUpdatesEnabled(False)
        try:
            self._fill(item, results, shown)
        finally:
            self.setUpdatesEnabled(True)

    def _fill(self, item, results, shown) -> None:
        self._clear_badges()
        self._updating = True
        try:
            self.method.clear()
            self.method.addItem("latest", None)
            for r in results:
                self.method.addItem(presenters.method_label(r.method), r.method)
            if shown is not None and len(results) > 1:
                i = self.method.findData(shown.method)
                self.method.setCurrentIndex(max(0, i))
        finally:
            self._updating = False
        self.method.setEnabled(len(results) > 1)
        self.export_button.setEnabled(bool(results))
        if item is None:
            self.header.setText("<b>No photo selected</b>")
        elif not results:
            self.header.setText(f"<b>{html.escape(item.name)}</b> — not protected yet")
        else:
            exported = f" — exported to {html.escape(str(item.exported))}" if item.exported else ""
            pending = (" — measuring the quality and verifying…"
                       if shown is not None and (not shown.measured or shown.held is not None) else "")
            self.header.setText(f"<b>{html.escape(item.name)}</b>{exported}{pending}")
        for v in presenters.face_verdicts(shown):
            self.badges.addWidget(VerdictBadge(v))
        self.badges.addStretch(1)
        self.placeholder.setVisible(not results)
        self.table.setVisible(bool(results))
        grids = presenters.matrix_grids(getattr(shown, "verification", None))
        self.grid.show_grids(grids)
        self.grid.setVisible(bool(grids))
        self.grid_label.setVisible(bool(grids))
        rows = presenters.metric_rows(results)
        table = self.table
        table.clearContents()
        table.setColumnCount(max(1, len(results)))
        table.setRowCount(len(rows))
        table.setHorizontalHeaderLabels(presenters.headers(results) or ["—"])
        table.setVerticalHeaderLabels([r.label for r in rows])
        section_brush = QBrush(self.palette().color(QPalette.ColorRole.Mid))
        good, bad = QBrush(GOOD), QBrush(BAD)
        centre = Qt.AlignmentFlag.AlignCenter
        for i, row in enumerate(rows):
            vh = table.verticalHeaderItem(i)
            if vh is not None:
                if row.tooltip:
                    vh.setToolTip(row.tooltip)
                if row.section:
                    vh.setFont(self._bold)
            for j, text in enumerate(row.cells):
                cell = QTableWidgetItem(text)
                cell.setTextAlignment(centre)
                if row.section:
                    cell.setBackground(section_brush)
                ok = row.verdicts[j] if j < len(row.verdicts) else None
                if ok is not None:
                    cell.setForeground(good if ok else bad)
                    cell.setFont(self._bold)
                if row.tooltip:
                    cell.setToolTip(row.tooltip)
                table.setItem(i, j, cell)

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and self._last is not None:
            self._shown_key = ()
            self.show_item(*self._last)  # section shading follows the theme

    def _clear_badges(self) -> None:
        while self.badges.count():
            it = self.badges.takeAt(0)
            w = it.widget()
            if w is not None:
                w.deleteLater()

    def _on_method(self) -> None:
        if not self._updating:
            self.showMethodRequested.emit(self.method.currentData())
