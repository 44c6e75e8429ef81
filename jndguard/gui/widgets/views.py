"""Side-by-side image views with synchronised zoom and pan, face boxes and a magnifier.

Panes: original, JND map (with its colour bar in 8-bit levels), perturbation (signed,
amplified by a visible factor), protected result and a before/after wipe. They all show the
same pixel grid, so zooming or panning one moves every other; the magnifier draws a red box
at the same spot in every pane and an enlarged inset of it (the papers' red-box detail).

The panes show pictures that arrive ready (8-bit RGB from the workers); they compute nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QPointF, QRect, QRectF, QSize, QSizeF, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QImage,
    QMouseEvent,
    QPainter,
    QPalette,
    QPen,
    QPixmap,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QGraphicsItem,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from jndguard.gui import imaging
from jndguard.gui.tasks import DisplayOptions, RenderedViews, StepView

PANES = {
    "original": "Original",
    "jnd": "JND map",
    "perturbation": "Perturbation",
    "protected": "Protected",
    "wipe": "Before / after",
}
MAGNIFIER_INSET = 168  # px on screen
PROTECTED_COLOUR = QColor(46, 180, 90)
FAILED_COLOUR = QColor(225, 60, 50)
FACE_COLOUR = QColor(0, 200, 230)
MAGNIFIER_COLOUR = QColor(255, 30, 30)


class WipeItem(QGraphicsItem):
    """Before (left of the divider) and after (right), one picture."""

    def __init__(self) -> None:
        super().__init__()
        self.before: QPixmap | None = None
        self.after: QPixmap | None = None
        self.position = 0.5

    def set_pixmaps(self, before: QPixmap | None, after: QPixmap | None) -> None:
        self.prepareGeometryChange()
        self.before, self.after = before, after
        self.update()

    def set_position(self, fraction: float) -> None:
        self.position = min(1.0, max(0.0, fraction))
        self.update()

    def boundingRect(self) -> QRectF:
        pm = self.before or self.after
        return QRectF(0, 0, pm.width(), pm.height()) if pm is not None else QRectF()

    def paint(self, painter: QPainter, option, widget=None) -> None:
        pm = self.before or self.after
        if pm is None:
            return
        w, h = pm.width(), pm.height()
        x = round(w * self.position)
        if self.before is not None and x > 0:
            painter.drawPixmap(QRectF(0, 0, x, h), self.before, QRectF(0, 0, x, h))
        if self.after is not None and x < w:
            painter.drawPixmap(QRectF(x, 0, w - x, h), self.after, QRectF(x, 0, w - x, h))
        elif self.after is None and x < w:
            painter.fillRect(QRectF(x, 0, w - x, h), QColor(128, 128, 128, 160))
        pen = QPen(QColor(255, 255, 255), 2)
        pen.setCosmetic(True)
        painter.setPen(pen)
        painter.drawLine(QPointF(x, 0), QPointF(x, h))


class ImagePane(QGraphicsView):
    """One zoomable, pannable picture with optional overlays."""

    viewChanged = Signal(object)  # self
    hovered = Signal(object)  # QPointF in image coordinates, or None when the mouse left
    clicked = Signal(object)  # QPointF

    def __init__(self, key: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.key = key
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setMouseTracking(True)
        self.setMinimumSize(160, 120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.pixmap_item = QGraphicsPixmapItem()
        self.pixmap_item.setTransformationMode(Qt.TransformationMode.FastTransformation)
        self.scene().addItem(self.pixmap_item)
        self.wipe_item: WipeItem | None = None
        self.overlay_item = QGraphicsPixmapItem()
        self.overlay_item.setZValue(1)
        self.scene().addItem(self.overlay_item)
        self._face_items: list[QGraphicsItem] = []
        self.placeholder = "No photo selected"
        self.fitted = True
        self.magnifier: QPointF | None = None
        self.magnifier_zoom = 4
        self._image_size = QSize()
        self._smooth = False
        self._content_version = 0  # bumped whenever what the pane shows changes
        self._inset: tuple | None = None
        self.faces_shown = 0
        self.viewport().setBackgroundRole(QPalette.ColorRole.Base)
        self.horizontalScrollBar().valueChanged.connect(lambda _v: self._changed())
        self.verticalScrollBar().valueChanged.connect(lambda _v: self._changed())

    # -- content -----------------------------------------------------------------
    def has_image(self) -> bool:
        return not self._image_size.isEmpty()

    def set_image(
        self, image: QImage | QPixmap | None, placeholder: str = "", extent: QSize | None = None
    ) -> None:
        """Show a picture (or nothing, with a short explanation in its place).

        ``extent``: the photo's size when the picture is a smaller display copy of it (a JND
        map computed on a downscaled photo): it is stretched over the photo's pixel grid, so
        zoom, pan, face boxes and the magnifier stay aligned with the other panes.
        """
        self._content_version += 1
        if image is None:
            self.pixmap_item.setPixmap(QPixmap())
            self.pixmap_item.setTransform(QTransform())
            self.overlay_item.setPixmap(QPixmap())
            self.placeholder = placeholder
            if self.wipe_item is None:
                self._set_size(QSize())
            self.viewport().update()
            return
        pm = image if isinstance(image, QPixmap) else QPixmap.fromImage(image)
        self.pixmap_item.setPixmap(pm)
        size = pm.size() if extent is None or extent.isEmpty() else QSize(extent)
        self.pixmap_item.setTransform(
            QTransform.fromScale(size.width() / max(pm.width(), 1), size.height() / max(pm.height(), 1))
        )
        self.placeholder = placeholder
        self._set_size(size)
        self.viewport().update()

    def set_wipe(self, before: QPixmap | None, after: QPixmap | None, placeholder: str = "") -> None:
        self._content_version += 1
        if self.wipe_item is None:
            self.wipe_item = WipeItem()
            self.scene().addItem(self.wipe_item)
        self.wipe_item.set_pixmaps(before, after)
        self.placeholder = placeholder
        pm = before or after
        self._set_size(pm.size() if pm is not None else QSize())
        self.viewport().update()

    def _set_size(self, size: QSize) -> None:
        new = size != self._image_size
        self._image_size = QSize(size)
        self.scene().setSceneRect(QRectF(0, 0, size.width(), size.height()))
        if new:
            self.fitted = True
        if self.fitted:
            self.fit()

    def set_overlay(self, image: QImage | None, pos: tuple[int, int] = (0, 0),
                    width: int | None = None) -> None:
        """A picture drawn over part of the main one (the live perturbation preview), stretched
        to ``width`` pixels of the main picture when given (a face optimised at a working scale)."""
        self._content_version += 1
        if image is None:
            self.overlay_item.setPixmap(QPixmap())
            return
        self.overlay_item.setPixmap(QPixmap.fromImage(image))
        self.overlay_item.setPos(pos[0], pos[1])
        self.overlay_item.setScale(width / image.width() if width and image.width() else 1.0)

    def set_faces(
        self,
        boxes: Sequence[tuple[float, float, float, float]],
        colours: Sequence[QColor] | None = None,
        visible: bool = True,
    ) -> None:
        for it in self._face_items:
            self.scene().removeItem(it)
        self._face_items = []
        self._content_version += 1
        self.faces_shown = len(boxes) if visible else 0
        if not visible:
            return
        for i, box in enumerate(boxes):
            x1, y1, x2, y2 = box
            colour = colours[i] if colours and i < len(colours) else FACE_COLOUR
            pen = QPen(colour, 2)
            pen.setCosmetic(True)
            rect = QGraphicsRectItem(QRectF(x1, y1, x2 - x1, y2 - y1))
            rect.setPen(pen)
            rect.setZValue(2)
            self.scene().addItem(rect)
            label = QGraphicsSimpleTextItem(str(i + 1))
            label.setBrush(QBrush(colour))
            f = QFont()
            f.setBold(True)
            label.setFont(f)
            label.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
            label.setPos(x1 + 1, y1 + 1)
            label.setZValue(2)
            self.scene().addItem(label)
            self._face_items += [rect, label]

    # -- zoom and pan ------------------------------------------------------------
    def zoom_factor(self) -> float:
        return self.transform().m11()

    def fit(self) -> None:
        if self._image_size.isEmpty():
            return
        self.fitInView(self.scene().sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)
        self.fitted = True
        self._changed()

    def zoom(self, factor: float, anchor_under_mouse: bool = False) -> None:
        if self._image_size.isEmpty():
            return
        current = self.zoom_factor()
        target = min(64.0, max(0.02, current * factor))
        if not anchor_under_mouse:
            self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.scale(target / current, target / current)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.fitted = False
        self._changed()

    def actual_size(self) -> None:
        self.zoom(1.0 / self.zoom_factor())

    def wheelEvent(self, event: QWheelEvent) -> None:
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom(1.25**steps, anchor_under_mouse=True)
        event.accept()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.fitted:
            self.fit()

    def center(self) -> QPointF:
        return self.mapToScene(self.viewport().rect().center())

    def apply_view(self, zoom: float, center: QPointF, fitted: bool) -> None:
        """Match another pane (called by :class:`ViewSync`)."""
        if self._image_size.isEmpty():
            return
        if fitted:
            self.fit()
            return
        self.fitted = False
        current = self.zoom_factor()
        if current > 0 and abs(current - zoom) > 1e-9:
            self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
            self.scale(zoom / current, zoom / current)
            self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.centerOn(center)
        self._changed()  # smoothing follows the zoom (the sync guard stops the echo)

    def _changed(self) -> None:
        smooth = self.zoom_factor() < 2.0  # below 2× smooth; above, show the real pixels
        if smooth != self._smooth:
            self._smooth = smooth
            mode = (
                Qt.TransformationMode.SmoothTransformation
                if smooth
                else Qt.TransformationMode.FastTransformation
            )
            self.pixmap_item.setTransformationMode(mode)
            self.overlay_item.setTransformationMode(mode)
            self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
        self.viewChanged.emit(self)

    # -- mouse -------------------------------------------------------------------
    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        super().mouseMoveEvent(event)
        if self.has_image():
            self.hovered.emit(self.mapToScene(event.position().toPoint()))

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        self.fit()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        super().mousePressEvent(event)
        if self.has_image() and event.button() == Qt.MouseButton.RightButton:
            self.clicked.emit(self.mapToScene(event.position().toPoint()))

    def leaveEvent(self, event) -> None:
        super().leaveEvent(event)
        self.hovered.emit(None)

    # -- magnifier and placeholder -------------------------------------------------
    def set_magnifier(self, point: QPointF | None, zoom: int | None = None) -> None:
        self.magnifier = point
        if zoom:
            self.magnifier_zoom = zoom
        self.viewport().update()

    def magnifier_rect(self) -> QRectF | None:
        if self.magnifier is None or self._image_size.isEmpty():
            return None
        side = max(4.0, MAGNIFIER_INSET / self.magnifier_zoom)
        r = QRectF(0, 0, side, side)
        r.moveCenter(self.magnifier)
        return r

    def detail(self, rect: QRectF, size: int) -> QPixmap:
        """The picture inside ``rect`` (in image pixels) enlarged to ``size`` px, unsmoothed
        (each image pixel stays a visible square, as in the papers' detail boxes)."""
        out = QPixmap(size, size)
        out.fill(self.palette().color(QPalette.ColorRole.Base))
        p = QPainter(out)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        target = QRectF(0, 0, size, size)
        if self.wipe_item is not None:
            self.scene().render(p, target, rect, Qt.AspectRatioMode.IgnoreAspectRatio)
        else:  # straight from the pixmaps: much cheaper than rendering the scene
            pm = self.pixmap_item.pixmap()
            sx = pm.width() / max(self._image_size.width(), 1)  # a stretched display copy
            sy = pm.height() / max(self._image_size.height(), 1)
            src = rect if sx == sy == 1 else QRectF(rect.x() * sx, rect.y() * sy, rect.width() * sx,
                                                    rect.height() * sy)
            p.drawPixmap(target, pm, src)
            over = self.overlay_item.pixmap()
            if not over.isNull():
                orect = QRectF(self.overlay_item.pos(), QSizeF(over.size()))
                part = rect.intersected(orect)
                if not part.isEmpty():
                    sx, sy = size / rect.width(), size / rect.height()
                    dst = QRectF(
                        (part.x() - rect.x()) * sx,
                        (part.y() - rect.y()) * sy,
                        part.width() * sx,
                        part.height() * sy,
                    )
                    p.drawPixmap(dst, over, part.translated(-orect.x(), -orect.y()))
        p.end()
        return out

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:
        super().drawForeground(painter, rect)
        if not self.has_image() or (self.wipe_item is None and self.pixmap_item.pixmap().isNull()):
            painter.save()
            painter.resetTransform()
            painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            vr = self.viewport().rect().adjusted(12, 12, -12, -12)
            painter.drawText(vr, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.placeholder)
            painter.restore()
            return
        mr = self.magnifier_rect()
        if mr is None:
            return
        pen = QPen(MAGNIFIER_COLOUR, 2)
        pen.setCosmetic(True)
        painter.save()
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(mr)
        painter.resetTransform()
        key = (
            mr.x(),
            mr.y(),
            mr.width(),
            self._content_version,
            None if self.wipe_item is None else self.wipe_item.position,
            self.faces_shown,
        )
        if self._inset is None or self._inset[0] != key:
            self._inset = (key, self.detail(mr, MAGNIFIER_INSET))
        inset = self._inset[1]
        vr = self.viewport().rect()
        side = min(MAGNIFIER_INSET, vr.width() // 2, vr.height() // 2)
        target = QRect(vr.right() - side - 6, vr.bottom() - side - 6, side, side)
        painter.drawPixmap(target, inset)
        painter.setPen(QPen(MAGNIFIER_COLOUR, 2))
        painter.drawRect(target)
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(
            target.adjusted(4, 2, -4, -2),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop,
            f"{self.magnifier_zoom}× detail",
        )
        painter.restore()


class ViewSync:
    """Keeps a set of panes at the same zoom and centre."""

    def __init__(self) -> None:
        self.panes: list[ImagePane] = []
        self._busy = False

    def add(self, pane: ImagePane) -> None:
        self.panes.append(pane)
        pane.viewChanged.connect(self._sync)

    def _sync(self, source: ImagePane) -> None:
        if self._busy or not source.isVisible():
            return
        self._busy = True
        try:
            zoom, center, fitted = source.zoom_factor(), source.center(), source.fitted
            for p in self.panes:
                if p is not source and p.isVisible():
                    p.apply_view(zoom, center, fitted)
        finally:
            self._busy = False

    def fit(self) -> None:
        for p in self.panes:
            p.fit()

    def zoom(self, factor: float) -> None:
        for p in self.panes:
            if p.isVisible() and p.has_image():
                p.zoom(factor)
                return

    def actual_size(self) -> None:
        for p in self.panes:
            if p.isVisible() and p.has_image():
                p.actual_size()
                return


class ColourBar(QWidget):
    """A vertical colour scale with labelled ticks (values in 8-bit levels)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._bar: QImage | None = None
        self.lo, self.hi = 0.0, 1.0
        self.unit = "levels"
        self.setFixedWidth(66)
        self.setToolTip("Colour scale in 8-bit grey levels (0–255)")

    def set_scale(self, lut: np.ndarray, lo: float, hi: float, unit: str = "levels") -> None:
        self._bar = imaging.to_qimage(imaging.colour_bar(lut, 256))
        self.lo, self.hi, self.unit = float(lo), float(hi), unit
        self.update()

    def paintEvent(self, event) -> None:
        if self._bar is None:
            return
        p = QPainter(self)
        fm = p.fontMetrics()
        top, bottom = fm.height() + 4, self.height() - fm.height() // 2 - 4
        bar = QRect(4, top, 14, max(10, bottom - top))
        p.drawImage(bar, self._bar)
        p.setPen(self.palette().color(QPalette.ColorRole.WindowText))
        p.drawRect(bar.adjusted(0, 0, -1, -1))
        p.drawText(QRect(0, 0, self.width(), fm.height() + 2), Qt.AlignmentFlag.AlignLeft, self.unit)
        for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
            v = self.lo + (self.hi - self.lo) * frac
            y = bar.bottom() - round(frac * bar.height())
            p.drawLine(bar.right() + 1, y, bar.right() + 4, y)
            text = (f"{v:+.3g}" if self.lo < 0 and abs(v) > 1e-9 else f"{v:.3g}") if abs(v) > 1e-9 else "0"
            p.drawText(
                QRect(bar.right() + 6, y - fm.height() // 2, self.width() - bar.right() - 6, fm.height()),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                text,
            )
        p.end()


class PaneFrame(QFrame):
    """A pane with its title row (and options) above and an optional colour bar beside."""

    def __init__(self, key: str, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.key = key
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.title = QLabel(f"<b>{title}</b>")
        self.info = QLabel("")
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.info.setMinimumWidth(10)
        self.info.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.pane = ImagePane(key, self)
        self.bar: ColourBar | None = None
        self.header = QHBoxLayout()
        self.header.setContentsMargins(6, 3, 6, 0)
        self.header.addWidget(self.title)
        self.header.addWidget(self.info, 1)
        body = QHBoxLayout()
        body.setContentsMargins(0, 0, 0, 0)
        body.addWidget(self.pane, 1)
        self.body = body
        lay = QVBoxLayout(self)
        lay.setContentsMargins(1, 1, 1, 1)
        lay.setSpacing(2)
        lay.addLayout(self.header)
        lay.addLayout(body, 1)
        self.footer = QHBoxLayout()
        self.footer.setContentsMargins(6, 0, 6, 3)
        lay.addLayout(self.footer)

    def add_option(self, widget: QWidget) -> None:
        self.header.addWidget(widget)

    def add_bar(self) -> ColourBar:
        self.bar = ColourBar(self)
        self.body.addWidget(self.bar)
        return self.bar


class ViewsPanel(QWidget):
    """The grid of synchronised panes for the selected photo."""

    displayOptionsChanged = Signal(object)  # DisplayOptions
    panesChanged = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.sync = ViewSync()
        self.frames: dict[str, PaneFrame] = {}
        for key, title in PANES.items():
            frame = PaneFrame(key, title, self)
            self.frames[key] = frame
            self.sync.add(frame.pane)
            frame.pane.hovered.connect(self._on_hover)
            frame.pane.clicked.connect(self._on_pin)
        # JND options
        self.jnd_channel = QComboBox()
        for k, v in imaging.JND_CHANNELS.items():
            self.jnd_channel.addItem(v, k)
        self.jnd_channel.setToolTip("Which channel of the JND map to show")
        self.frames["jnd"].add_option(self.jnd_channel)
        self.jnd_bar = self.frames["jnd"].add_bar()
        # perturbation options
        self.pert_channel = QComboBox()
        for k, v in imaging.PERTURBATION_CHANNELS.items():
            self.pert_channel.addItem(v, k)
        self.pert_channel.setToolTip("Which channel of the perturbation Z − X to show")
        self.amplification = QComboBox()
        self.amplification.addItem("auto ×", 0)
        for a in imaging.AMPLIFICATIONS:
            self.amplification.addItem(f"×{a}", a)
        self.amplification.setToolTip("Amplification of the perturbation for display")
        self.frames["perturbation"].add_option(self.pert_channel)
        self.frames["perturbation"].add_option(self.amplification)
        self.pert_bar = self.frames["perturbation"].add_bar()
        # wipe slider
        self.wipe_slider = QSlider(Qt.Orientation.Horizontal)
        self.wipe_slider.setRange(0, 1000)
        self.wipe_slider.setValue(500)
        self.wipe_slider.setToolTip("Drag: original on the left, protected on the right")
        self.frames["wipe"].footer.addWidget(QLabel("before"))
        self.frames["wipe"].footer.addWidget(self.wipe_slider, 1)
        self.frames["wipe"].footer.addWidget(QLabel("after"))
        self.wipe_slider.valueChanged.connect(self._on_wipe)
        self.frames["wipe"].pane.set_wipe(None, None, "Protect the photo to compare before and after")

        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(4)
        self.visible_panes: list[str] = ["original", "jnd", "perturbation", "protected"]
        self.faces_visible = True
        self.magnifier_enabled = False
        self.magnifier_pinned = False
        self.magnifier_zoom = 4
        self._boxes: list = []
        self._colours: list[QColor] = []
        self._original: QPixmap | None = None
        self._protected: QPixmap | None = None
        self._has_result = False
        self._live_item: int | None = None
        self._item_id: int | None = None
        self._updating = False
        for w in (self.jnd_channel, self.pert_channel, self.amplification):
            w.currentIndexChanged.connect(self._emit_options)
        self._layout()
        self.clear()

    # -- layout ------------------------------------------------------------------
    def set_visible_panes(self, keys: Sequence[str]) -> None:
        keys = [k for k in PANES if k in keys] or ["original"]
        if keys == self.visible_panes:
            return
        self.visible_panes = keys
        self._layout()
        self.panesChanged.emit(list(keys))

    def _layout(self) -> None:
        for f in self.frames.values():
            self.grid.removeWidget(f)
            f.hide()
        n = len(self.visible_panes)
        cols = {1: 1, 2: 2, 3: 3, 4: 2}.get(n, 3)
        for i, key in enumerate(self.visible_panes):
            f = self.frames[key]
            self.grid.addWidget(f, i // cols, i % cols)
            f.show()
        for r in range(3):
            self.grid.setRowStretch(r, 1 if r < (n + cols - 1) // cols else 0)
        for c in range(3):
            self.grid.setColumnStretch(c, 1 if c < cols else 0)
        self.sync.fit()

    # -- options -----------------------------------------------------------------
    def options(self) -> DisplayOptions:
        return DisplayOptions(
            self.jnd_channel.currentData(),
            self.pert_channel.currentData(),
            int(self.amplification.currentData()),
        )

    def set_options(self, options: DisplayOptions) -> None:
        self._updating = True
        try:
            for combo, value in (
                (self.jnd_channel, options.jnd_channel),
                (self.pert_channel, options.perturbation_channel),
                (self.amplification, options.amplification),
            ):
                i = combo.findData(value)
                if i >= 0:
                    combo.setCurrentIndex(i)
        finally:
            self._updating = False

    def _emit_options(self) -> None:
        if not self._updating:
            self.displayOptionsChanged.emit(self.options())

    # -- content -----------------------------------------------------------------
    def clear(
        self, placeholder: str = "Drop photos or folders anywhere on the window, or use Add photos"
    ) -> None:
        self._item_id = None
        self._original = self._protected = None
        self._has_result = False
        for key, f in self.frames.items():
            if key == "wipe":
                f.pane.set_wipe(None, None, placeholder)
            else:
                f.pane.set_image(None, placeholder)
            f.info.setText("")
            f.pane.set_faces([])
        self.jnd_bar.hide()
        self.pert_bar.hide()

    def show_photo(self, item) -> None:
        """The selected photo changed (or its faces/status did): original, faces, placeholders."""
        if item is None:
            self.clear()
            return
        if item.image is None:
            self.clear("Failed: " + item.reason if item.reason else "Reading the photo…")
            self._item_id = item.id
            return
        same = item.id == self._item_id
        self._item_id = item.id
        # the face count may arrive after the pixels (a large photo is drawn before its faces)
        faces = f"{item.n_faces} face{'s' if item.n_faces != 1 else ''}"
        self.frames["original"].info.setText(f"{item.image.width}×{item.image.height} · {faces}")
        if not same or self._original is None:
            picture = _picture(item)
            if picture is None:  # a worker is drawing it (the controller asked)
                self.clear("Drawing the photo…")
                self._item_id = item.id
                return
            self._original = QPixmap.fromImage(picture)
            self.frames["original"].pane.set_image(self._original)
            for key in ("jnd",):
                if not self.frames[key].pane.has_image():
                    self.frames[key].pane.set_image(None, "Computing the JND map…")
            self._has_result = False
            self._protected = None
            self.frames["protected"].pane.set_image(None, "Not protected yet: press Protect")
            self.frames["protected"].info.setText("")
            self._show_perturbation_placeholder("Not protected yet: press Protect to see the perturbation")
            self.frames["wipe"].pane.set_wipe(self._original, None)
            self.frames["wipe"].info.setText("")
        self._set_faces(item)

    def _show_perturbation_placeholder(self, text: str) -> None:
        f = self.frames["perturbation"]
        f.pane.set_image(None, text)
        f.info.setText("")
        self.pert_bar.hide()

    def _set_faces(self, item) -> None:
        boxes = [f.box for f in item.faces]
        colours = [FACE_COLOUR] * len(boxes)
        mr = item.latest
        if mr is not None:
            per = mr.result.per_face
            colours = [
                PROTECTED_COLOUR if i < len(per) and per[i].get("success") else FAILED_COLOUR
                for i in range(len(boxes))
            ]
        self._boxes, self._colours = boxes, colours
        self._apply_faces()

    def _apply_faces(self) -> None:
        for key, f in self.frames.items():
            if key != "jnd":
                f.pane.set_faces(self._boxes, self._colours, self.faces_visible)
            else:
                f.pane.set_faces(self._boxes, [QColor(255, 255, 255)] * len(self._boxes), self.faces_visible)

    def set_faces_visible(self, visible: bool) -> None:
        self.faces_visible = visible
        self._apply_faces()

    def show_views(
        self, views: RenderedViews, protected: QImage | np.ndarray | None, method_label: str = ""
    ) -> None:
        """Rendered JND and perturbation (from a worker) plus the protected picture (or pixels)."""
        if views.item_id != self._item_id:
            return
        jf = self.frames["jnd"]
        if views.jnd_rgb is not None:
            extent = None if views.extent is None else QSize(*views.extent)
            jf.pane.set_image(_qimage(views.jnd_image, views.jnd_rgb), extent=extent)
            p = views.jnd_params
            size = views.jnd_size
            note = ("" if size is None or views.extent is None or tuple(size) == tuple(views.extent)
                    else f" · preview at {size[0]}×{size[1]}")
            jf.info.setText(
                f"{p.model}, {p.color}, ×{p.strength:g} · mean {views.jnd_mean:.1f} levels{note}"
            )
            self.jnd_bar.set_scale(imaging.VIRIDIS, *views.jnd_range)
            self.jnd_bar.show()
        else:
            jf.pane.set_image(None, views.jnd_error or "JND engine not available")
            jf.info.setText("")
            self.jnd_bar.hide()
        pf = self.frames["perturbation"]
        if views.perturbation_rgb is not None:
            pf.pane.set_image(_qimage(views.perturbation_image, views.perturbation_rgb))
            pf.pane.set_overlay(None)
            pf.info.setText(f"×{views.amplification} · max {views.perturbation_max:.0f} levels")
            pf.info.setToolTip(
                f"{method_label}: Z − X amplified ×{views.amplification} for display; "
                f"largest change {views.perturbation_max:.0f} levels"
            )
            lut = imaging.DIVERGING if views.perturbation_channel != "rgb" else imaging.GREY
            self.pert_bar.set_scale(lut, *views.perturbation_range, unit="Z−X")
            self.pert_bar.show()
            self._has_result = True
        elif self._live_item != self._item_id:
            self._show_perturbation_placeholder("Not protected yet: press Protect to see the perturbation")
            self._has_result = False
        if protected is not None:
            self._protected = QPixmap.fromImage(_qimage(protected, protected))
            self.frames["protected"].pane.set_image(self._protected)
            self.frames["protected"].info.setText(method_label)
            self.frames["wipe"].pane.set_wipe(self._original, self._protected)
            self.frames["wipe"].info.setText(f"original | {method_label}")

    def show_live(self, item_id: int, step: StepView) -> None:
        """A live preview of the perturbation being optimised (every few steps)."""
        if item_id != self._item_id or step.preview_rgb is None or step.preview_box is None:
            return
        pf = self.frames["perturbation"]
        if self._live_item != item_id or not pf.pane.has_image():
            self._live_item = item_id
            if self._original is not None:  # one grey pixel stretched over the photo
                grey = QPixmap(1, 1)
                grey.fill(QColor(128, 128, 128))
                pf.pane.set_image(grey, extent=self._original.size())
        x0, y0, x1 = step.preview_box[0], step.preview_box[1], step.preview_box[2]
        pf.pane.set_overlay(_qimage(step.preview_image, step.preview_rgb), (x0, y0), x1 - x0)
        pf.info.setText(f"live · it. {step.iteration} · ×{step.amplification}")

    def end_live(self) -> None:
        self._live_item = None
        if not self._has_result:
            self._show_perturbation_placeholder("Not protected yet: press Protect to see the perturbation")
        self.frames["perturbation"].pane.set_overlay(None)

    # -- magnifier ---------------------------------------------------------------
    def set_magnifier_enabled(self, on: bool) -> None:
        self.magnifier_enabled = on
        self.magnifier_pinned = False
        if not on:
            self._broadcast(None)

    def set_magnifier_zoom(self, zoom: int) -> None:
        self.magnifier_zoom = zoom
        for f in self.frames.values():
            f.pane.magnifier_zoom = zoom
            f.pane.viewport().update()

    def set_magnifier_point(self, point: QPointF | None, pinned: bool = True) -> None:
        self.magnifier_enabled = point is not None or self.magnifier_enabled
        self.magnifier_pinned = pinned and point is not None
        self._broadcast(point)

    def _on_hover(self, point) -> None:
        if self.magnifier_enabled and not self.magnifier_pinned and point is not None:
            self._broadcast(point)

    def _on_pin(self, point) -> None:
        if self.magnifier_enabled:
            self.magnifier_pinned = not self.magnifier_pinned
            self._broadcast(point)

    def _broadcast(self, point) -> None:
        for f in self.frames.values():
            f.pane.set_magnifier(point, self.magnifier_zoom)

    def _on_wipe(self, value: int) -> None:
        w = self.frames["wipe"].pane.wipe_item
        if w is not None:
            w.set_position(value / 1000)


#: pictures up to this many pixels are converted on the GUI thread when no worker made them
INLINE_PICTURE_PIXELS = 250_000


def _qimage(image: QImage | None, pixels: QImage | np.ndarray | None) -> QImage:
    """The worker's QImage, else one made here of (small) pixels."""
    if isinstance(image, QImage):
        return image
    if isinstance(pixels, QImage):
        return pixels
    return imaging.to_qimage(pixels)


def _picture(item) -> QImage | None:
    """The photo's QImage: the worker's, or made here for a small photo; None while a worker
    makes it (a large photo would block the window for tens of milliseconds)."""
    if item.picture is not None:
        return item.picture
    pixels = item.image.pixels
    if pixels.shape[0] * pixels.shape[1] <= INLINE_PICTURE_PIXELS:
        return imaging.to_qimage(pixels)
    return None
