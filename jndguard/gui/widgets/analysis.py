"""The Analysis tab: where a protection changed a face and where the recogniser looks.

For one face of the selected photo: Grad-CAM overlays of the clean face and of every
protected version of it (the MND paper's Fig. 3), the per-channel ``|difference|`` maps
normalised to 0–255 with the share of changed pixels (its Fig. 4), and the histogram of
``|change| / J``. The pictures and numbers arrive ready from the controller's workers
(``tasks.AnalysisViews``, ``tasks.GradCamViews``); this panel only draws them.
"""

from __future__ import annotations

import html
import math

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from jndguard.gui import imaging, presenters
from jndguard.gui.tasks import AnalysisViews, GradCamViews
from jndguard.gui.widgets.plot import nice_ticks

EMPTY_TEXT = "Protect a photo to see its analysis"
NO_FACE_TEXT = "No face was found in this photo, so the protection changed nothing"
BAR_COLOUR = QColor("#4e79a7")
J_COLOUR = QColor(220, 50, 50)


class Picture(QWidget):
    """One picture, scaled to fit (aspect kept, centred), or a placeholder text.

    Enlarged pictures are drawn with square pixels unless ``smooth``, so single changed
    pixels of a difference map stay visible.
    """

    def __init__(self, smooth: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.smooth = smooth
        self.image: QImage | None = None
        self.placeholder = ""
        self._scaled: QPixmap | None = None  # the picture at its drawn size (repaints are cheap)
        self.setMinimumSize(72, 72)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:
        return QSize(200, 200)

    def set_image(self, image: QImage | None, placeholder: str = "") -> None:
        self.image, self.placeholder = image, placeholder
        self._scaled = None
        self.update()

    def has_image(self) -> bool:
        return self.image is not None

    def target_rect(self) -> QRectF:
        """Where the picture is drawn (widget pixels)."""
        if self.image is None or self.image.isNull():
            return QRectF()
        iw, ih = self.image.width(), self.image.height()
        s = min(self.width() / iw, self.height() / ih)
        w, h = iw * s, ih * s
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        if self.image is None:
            p.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            p.drawText(
                self.rect().adjusted(4, 4, -4, -4),
                Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                self.placeholder,
            )
        else:
            r = self.target_rect()
            size = r.size().toSize()
            if self._scaled is None or self._scaled.size() != size:
                enlarged = r.width() > self.image.width()
                mode = (
                    Qt.TransformationMode.SmoothTransformation
                    if self.smooth or not enlarged
                    else Qt.TransformationMode.FastTransformation
                )
                self._scaled = QPixmap.fromImage(
                    self.image.scaled(size, Qt.AspectRatioMode.IgnoreAspectRatio, mode)
                )
            p.drawPixmap(r.topLeft(), self._scaled)
        p.end()


class ImageTile(QFrame):
    """A titled picture with a caption underneath."""

    def __init__(self, title: str = "", smooth: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.title = QLabel(title)
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture = Picture(smooth, self)
        self.caption = QLabel("")
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.caption.setWordWrap(True)
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(3, 3, 3, 3)
        lay.setSpacing(2)
        lay.addWidget(self.title)
        lay.addWidget(self.picture, 1)
        lay.addWidget(self.caption)

    def set_image(self, pixels: np.ndarray | None, placeholder: str = "") -> None:
        self.picture.set_image(None if pixels is None else imaging.to_qimage(pixels), placeholder)

    def has_image(self) -> bool:
        return self.picture.has_image()


class HistogramPlot(QWidget):
    """Bars of a ``jnd_ratio_histogram``: share of the changed pixel-channels per bin of
    ``|change| / J``; a dashed line marks J (ratio 1), the last bar collects everything
    from the last edge up."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.hist: dict | None = None
        self.placeholder = ""
        self.setMinimumSize(240, 150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:
        return QSize(360, 220)

    def set_histogram(self, hist: dict | None, placeholder: str = "") -> None:
        self.hist, self.placeholder = hist, placeholder
        self.update()

    def shares(self) -> list[float]:
        """The bars' heights: percent of the changed pixel-channels."""
        if not self.hist or not self.hist["changed"]:
            return []
        return [100.0 * c / self.hist["changed"] for c in self.hist["counts"]]

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        pal = self.palette()
        fg = pal.color(QPalette.ColorRole.WindowText)
        p.fillRect(self.rect(), pal.color(QPalette.ColorRole.Base))
        shares = self.shares()
        if not shares:
            p.setPen(pal.color(QPalette.ColorRole.PlaceholderText))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.placeholder or "No pixel changed")
            p.end()
            return
        fm = p.fontMetrics()
        edges = self.hist["edges"]
        n = len(shares)
        y_hi = imaging.nice_ceiling(max(shares) * 1.05)
        top = nice_ticks(0.0, y_hi, 4)
        left = fm.horizontalAdvance("100 %") + 10
        plot = QRectF(left, fm.height() + 6, self.width() - left - 10, self.height() - 3 * fm.height() - 14)
        bw = plot.width() / n

        def y_px(v: float) -> float:
            return plot.bottom() - v / y_hi * plot.height()

        grid = pal.color(QPalette.ColorRole.Mid)
        for t in top:
            yp = y_px(t)
            p.setPen(QPen(grid, 1, Qt.PenStyle.DotLine))
            p.drawLine(QPointF(plot.left(), yp), QPointF(plot.right(), yp))
            p.setPen(fg)
            p.drawText(
                QRectF(0, yp - fm.height() / 2, left - 6, fm.height()),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                f"{t:g} %",
            )
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(BAR_COLOUR)
        for i, v in enumerate(shares):
            if v > 0:
                h = max(1.0, plot.bottom() - y_px(v))
                p.drawRect(QRectF(plot.left() + i * bw + 0.5, plot.bottom() - h, max(1.0, bw - 1), h))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(fg)
        p.drawRect(plot)
        # x ticks on the bin edges (every 0.5), the overflow bin labelled "≥ last edge"
        last = edges[n - 1]
        for i, e in enumerate(edges[: n - 1]):
            if abs(e * 2 - round(e * 2)) > 1e-6:
                continue
            xp = plot.left() + i * bw
            p.drawLine(QPointF(xp, plot.bottom()), QPointF(xp, plot.bottom() + 3))
            p.drawText(
                QRectF(xp - 20, plot.bottom() + 3, 40, fm.height()), Qt.AlignmentFlag.AlignHCenter, f"{e:g}"
            )
        xp = plot.left() + (n - 0.5) * bw
        p.drawText(
            QRectF(xp - 20, plot.bottom() + 3 + fm.height(), 40, fm.height()),
            Qt.AlignmentFlag.AlignHCenter,
            f"≥{last:g}",
        )
        p.drawText(
            QRectF(plot.left(), plot.bottom() + 3 + fm.height(), plot.width() - 2 * bw, fm.height()),
            Qt.AlignmentFlag.AlignHCenter,
            "|change| / J",
        )
        one = next((i for i, e in enumerate(edges) if e >= 1.0 - 1e-9), None)
        if one is not None and one < n:
            xp = plot.left() + one * bw
            p.setPen(QPen(J_COLOUR, 1.5, Qt.PenStyle.DashLine))
            p.drawLine(QPointF(xp, plot.top()), QPointF(xp, plot.bottom()))
            p.drawText(QRectF(xp + 4, plot.top() + 2, 60, fm.height()), Qt.AlignmentFlag.AlignLeft, "J")
        p.end()


def _pct(v: float) -> str:
    return f"{100.0 * v:.1f}\u00a0%" if math.isfinite(v) else "—"  # never wrapped before the %


class AnalysisPanel(QWidget):
    """Grad-CAM, difference maps and the ``|change| / J`` histogram of one face."""

    faceChanged = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.header = QLabel("")
        self.header.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.face = QComboBox()
        self.face.setToolTip("Which face to analyse")
        self.face.currentIndexChanged.connect(self._on_face)
        self.face_label = QLabel("Face")
        top = QHBoxLayout()
        top.addWidget(self.header, 1)
        top.addWidget(self.face_label)
        top.addWidget(self.face)

        # Grad-CAM: the clean face, then one tile per protected version
        self.cam_box = QGroupBox("Where the recogniser looks (Grad-CAM)")
        self.cam_box.setToolTip(
            "Grad-CAM of the recogniser's last block for the clean face's identity logit (the "
            "projection of each crop's embedding on the clean one), relative to the average "
            "location. Red: where the crop carries most of that identity."
        )
        self.cam_row = QHBoxLayout()
        self.cam_row.setSpacing(4)
        self.cam_note = QLabel("")
        self.cam_note.setWordWrap(True)
        cam_lay = QVBoxLayout(self.cam_box)
        cam_lay.setContentsMargins(6, 4, 6, 4)
        cam_lay.addLayout(self.cam_row, 1)
        cam_lay.addWidget(self.cam_note)
        self.cam_tiles: list[ImageTile] = []

        # per-channel |difference|
        self.diff_box = QGroupBox("Per-channel |difference|, normalised to 0–255")
        self.diff_box.setToolTip(
            "|protected − original| of each channel in the face region, scaled so that the "
            "channel's largest change is white"
        )
        self.diff_tiles = {c: ImageTile(f"<b>{c}</b>") for c in ("R", "G", "B")}
        self.diff_text = QLabel("")
        self.diff_text.setWordWrap(True)
        self.diff_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        tiles = QHBoxLayout()
        tiles.setSpacing(4)
        for t in self.diff_tiles.values():
            tiles.addWidget(t, 1)
        diff_lay = QVBoxLayout(self.diff_box)
        diff_lay.setContentsMargins(6, 4, 6, 4)
        diff_lay.addLayout(tiles, 1)
        diff_lay.addWidget(self.diff_text)

        # |change| / J
        self.hist_box = QGroupBox("How large the changes are: |change| / J")
        self.hist_box.setToolTip(
            "Histogram over the changed pixel-channels of the face region; beyond the dashed "
            "line (ratio 1) a change exceeds its just noticeable difference"
        )
        self.hist = HistogramPlot()
        self.hist_text = QLabel("")
        self.hist_text.setWordWrap(True)
        self.hist_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        hist_lay = QVBoxLayout(self.hist_box)
        hist_lay.setContentsMargins(6, 4, 6, 4)
        hist_lay.addWidget(self.hist, 1)
        hist_lay.addWidget(self.hist_text)

        content = QWidget()
        grid = QGridLayout(content)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(6)
        grid.addWidget(self.cam_box, 0, 0)
        grid.addWidget(self.hist_box, 0, 1)
        grid.addWidget(self.diff_box, 1, 0, 1, 2)
        grid.setColumnStretch(0, 3)
        grid.setColumnStretch(1, 2)
        grid.setRowStretch(0, 1)
        grid.setRowStretch(1, 1)

        self.empty = QLabel(EMPTY_TEXT)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.empty.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        font = self.empty.font()
        font.setPointSizeF(font.pointSizeF() * 1.3)
        self.empty.setFont(font)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        self.stack.addWidget(content)
        self.content = content

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 4, 0, 0)
        lay.addLayout(top)
        lay.addWidget(self.stack, 1)

        self._key: tuple | None = ()
        self._item_id: int | None = None
        self._method: str | None = None
        self._labels: list[str] = []
        self._have_diff = self._have_cam = False
        self.show_item(None, None)

    # ------------------------------------------------------------------ state
    @property
    def showing_empty(self) -> bool:
        return self.stack.currentWidget() is self.empty

    def face_index(self) -> int:
        return max(0, self.face.currentIndex())

    def show_item(self, item, shown) -> bool:
        """Show what is known of a photo (``shown``: the MethodResult the views show) and
        clear the pictures that now need computing. Nothing changes when the same results
        are already on display.

        Returns:
            True when the photo has something to analyse (a result with faces).
        """
        results = tuple(item.results.values()) if item is not None else ()
        key = (
            None if item is None else item.id,
            None if shown is None else id(shown),
            tuple(id(r) for r in results),
        )
        has_faces = shown is not None and bool(shown.result.faces)
        if key == self._key:
            return has_faces
        same_item = self._key is not None and bool(self._key) and self._key[0] == key[0]
        self._key = key
        self.face.setVisible(False)
        self.face_label.setVisible(False)
        if item is None or shown is None:
            self._item_id = self._method = None
            self._labels = []
            name = "" if item is None else f"<b>{html.escape(item.name)}</b> — not protected yet"
            self.header.setText(name)
            self.empty.setText(EMPTY_TEXT)
            self.stack.setCurrentWidget(self.empty)
            return False
        self.header.setText(
            f"<b>{html.escape(item.name)}</b> — differences of "
            f"<b>{html.escape(presenters.method_label(shown.method))}</b>, Grad-CAM of "
            f"{'every method run' if len(results) > 1 else 'the result'}"
        )
        if not has_faces:
            self._item_id = self._method = None
            self.empty.setText(NO_FACE_TEXT)
            self.stack.setCurrentWidget(self.empty)
            return False
        self.stack.setCurrentWidget(self.content)
        self._item_id, self._method = item.id, shown.method
        n = len(shown.result.faces)
        keep = self.face_index() if same_item else 0
        self.face.blockSignals(True)
        self.face.clear()
        for i in range(n):
            self.face.addItem(f"Face {i + 1} of {n}", i)
        self.face.setCurrentIndex(min(keep, n - 1))
        self.face.blockSignals(False)
        self.face.setVisible(n > 1)
        self.face_label.setVisible(n > 1)
        self._set_cam_tiles(["clean", *(r.method for r in results)])
        self._clear_pictures()
        return True

    def _set_cam_tiles(self, labels: list[str]) -> None:
        self._labels = labels
        while len(self.cam_tiles) > len(labels):
            t = self.cam_tiles.pop()
            self.cam_row.removeWidget(t)
            t.deleteLater()
        while len(self.cam_tiles) < len(labels):
            t = ImageTile(smooth=True)
            # two caption lines in every tile, so a wrapped one does not shrink its picture
            t.caption.setMinimumHeight(2 * t.caption.fontMetrics().lineSpacing())
            self.cam_tiles.append(t)
            self.cam_row.addWidget(t, 1)
        for t, key in zip(self.cam_tiles, labels):
            title = "Clean" if key == "clean" else html.escape(presenters.method_label(key))
            t.title.setText(f"<b>{title}</b>")

    @property
    def needs_data(self) -> bool:
        """A photo with faces is shown whose pictures are not all drawn yet."""
        return not self.showing_empty and not (self._have_diff and self._have_cam)

    def _clear_pictures(self) -> None:
        self._have_diff = self._have_cam = False
        for t in self.cam_tiles:
            t.set_image(None, "Computing Grad-CAM…")
            t.caption.setText("")
        self.cam_note.setText("")
        for t in self.diff_tiles.values():
            t.set_image(None, "Computing…")
            t.caption.setText("")
        self.diff_text.setText("")
        self.hist.set_histogram(None, "Computing…")
        self.hist_text.setText("")

    def _on_face(self, index: int) -> None:
        if index < 0:
            return
        self._clear_pictures()
        self.faceChanged.emit(index)

    # ------------------------------------------------------------------ results
    def show_analysis(self, views: AnalysisViews) -> bool:
        """Draw the difference maps and the histogram (False: they belong to something else)."""
        if (
            self.showing_empty
            or views.item_id != self._item_id
            or views.method != self._method
            or views.face_index != self.face_index()
        ):
            return False
        s = views.stats
        for i, (c, tile) in enumerate(self.diff_tiles.items()):
            m = s[f"max_abs_{c}"]
            tile.set_image(views.diff_rgb[i])
            tile.caption.setText(
                f"{_pct(s[f'changed_ratio_{c}'])} changed · white = {m} level{'s' if m != 1 else ''}"
                if m
                else "unchanged"
            )
        x0, y0, x1, y1 = views.region
        per = ", ".join(f"{c} {_pct(s[f'changed_ratio_{c}'])}" for c in self.diff_tiles)
        self.diff_text.setText(
            f"Changed pixels: <b>{_pct(s['changed_ratio'])}</b> of the face region "
            f"({x1 - x0}×{y1 - y0} px at {x0}, {y0}) — per channel {per}; "
            f"{_pct(views.photo_changed_ratio)} of the whole photo."
        )
        h = views.hist
        self.hist.set_histogram(h, "No pixel changed")
        if h["changed"]:
            self.hist_text.setText(
                f"{h['changed']:,} changed pixel-channels in the face region; "
                f"<b>{_pct(h['over_one'])}</b> of them change by more than J."
            )
        else:
            self.hist_text.setText("No pixel-channel of the face region changed.")
        self._have_diff = True
        return True

    def show_grad_cam(self, views: GradCamViews) -> bool:
        """Draw the Grad-CAM overlays (False: they belong to something else)."""
        if (
            self.showing_empty
            or views.item_id != self._item_id
            or views.face_index != self.face_index()
            or views.labels != self._labels
        ):
            return False
        if views.message is not None:
            for t in self.cam_tiles:
                t.set_image(None, views.message)
                t.caption.setText("")
            self.cam_note.setText("")
            self._have_cam = False
            return True
        tau = views.threshold
        for i, t in enumerate(self.cam_tiles):
            t.set_image(views.overlays[i])
            if i == 0:
                t.caption.setText("the reference")
                continue
            sim = views.similarities[i]
            below = "" if tau is None else (" < τ" if sim < tau else " ≥ τ")
            blank = i < len(views.blank) and views.blank[i]
            t.caption.setText(f"similarity {sim:.3f}{below}" + (" · empty map" if blank else ""))
            t.caption.setToolTip("No location adds to the clean face's identity logit" if blank else "")
        self.cam_note.setText(
            "Target: the clean face's identity logit; red marks where a crop carries most of it. "
            "Similarity: cosine to the clean crop"
            + ("" if tau is None else f" (threshold τ = {tau:.3f})")
            + "."
        )
        self._have_cam = True
        return True
