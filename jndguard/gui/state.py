"""The window's state: the photo queue and what is known about each photo.

:class:`PhotoItem` is plain data; :class:`QueueModel` exposes the queue to the queue view
(Qt's model/view) and is changed only by the controller.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QPixmap

from jndguard.gui.imaging import to_qimage


class Status(str, enum.Enum):
    LOADING = "loading"
    WAITING = "waiting"
    QUEUED = "queued"
    RUNNING = "running"
    PROTECTED = "protected"
    NOT_PROTECTED = "not protected"
    FAILED = "failed"

    @property
    def label(self) -> str:
        return self.value.capitalize()


@dataclass
class MethodResult:
    """One protection of a photo: the pipeline's result plus what the GUI derives once."""

    result: Any  # ProtectionResult
    delta_levels: np.ndarray  # Z − X, float32 levels
    verification: dict | None = None
    seconds: float = 0.0
    #: False between the protected photo's arrival and its quality figures and verification
    measured: bool = True
    #: the measured result, while the window has not drawn the protected photo yet
    held: Any = field(default=None, repr=False)

    @property
    def method(self) -> str:
        return self.result.settings.method

    @property
    def success(self) -> bool:
        """Protected: the optimiser's own check and, when the saved file was checked, every
        cell of the threat matrix (docs/design.md §4)."""
        ver = self.verification
        if isinstance(ver, dict) and "matrix" in ver:
            return bool(self.result.success) and bool(ver.get("protected"))
        return bool(self.result.success)


@dataclass
class PhotoItem:
    """One photo of the queue."""

    id: int
    path: Path
    status: Status = Status.LOADING
    reason: str = ""
    details: str = ""
    image: Any = field(default=None, repr=False)  # LoadedImage
    picture: Any = field(default=None, repr=False)  # QImage of image.pixels (made by a worker)
    faces: list = field(default_factory=list, repr=False)
    faces_min_size: int | None = None  # the detection floor ``faces`` were found with
    thumbnail: QPixmap | None = None
    progress: float | None = None
    progress_text: str = ""
    results: dict[str, MethodResult] = field(default_factory=dict, repr=False)  # by method, latest last
    exported: Path | None = None
    jnd_cache: dict = field(default_factory=dict, repr=False)  # JndParams → levels

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def n_faces(self) -> int:
        return len(self.faces)

    @property
    def latest(self) -> MethodResult | None:
        return next(reversed(self.results.values())) if self.results else None

    @property
    def ready(self) -> bool:
        """Decoded and not busy: can be protected."""
        return self.image is not None and self.status not in (Status.RUNNING, Status.QUEUED, Status.LOADING)

    def summary(self) -> str:
        if self.status == Status.LOADING:
            return "Reading…"
        if self.status == Status.FAILED:
            return f"Failed: {self.reason}"
        faces = "no face" if self.n_faces == 0 else f"{self.n_faces} face{'s' if self.n_faces != 1 else ''}"
        if self.status == Status.RUNNING:
            return f"{faces} · {self.progress_text or 'running'}"
        if self.status == Status.NOT_PROTECTED and self.reason:
            return f"{faces} · not protected: {self.reason}"
        return f"{faces} · {self.status.value}"


class QueueModel(QAbstractListModel):
    """The photo queue as a Qt list model."""

    ItemRole = Qt.ItemDataRole.UserRole + 1
    StatusRole = Qt.ItemDataRole.UserRole + 2
    ProgressRole = Qt.ItemDataRole.UserRole + 3

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._items: list[PhotoItem] = []
        self._rows: dict[int, int] = {}

    # -- Qt model interface ------------------------------------------------------
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._items)

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._items):
            return None
        item = self._items[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return item.name
        if role == Qt.ItemDataRole.ToolTipRole:
            tip = f"{item.path}\n{item.summary()}"
            if item.image is not None:
                tip += f"\n{item.image.width}×{item.image.height}"
            return tip
        if role == Qt.ItemDataRole.DecorationRole:
            return item.thumbnail
        if role == self.ItemRole:
            return item
        if role == self.StatusRole:
            return item.status
        if role == self.ProgressRole:
            return item.progress
        return None

    # -- controller interface ----------------------------------------------------
    def items(self) -> list[PhotoItem]:
        return list(self._items)

    def item(self, item_id: int) -> PhotoItem | None:
        row = self._rows.get(item_id)
        return None if row is None else self._items[row]

    def row_of(self, item_id: int) -> int:
        return self._rows.get(item_id, -1)

    def add(self, items: list[PhotoItem]) -> None:
        if not items:
            return
        first = len(self._items)
        self.beginInsertRows(QModelIndex(), first, first + len(items) - 1)
        self._items.extend(items)
        self._reindex()
        self.endInsertRows()

    def remove(self, item_ids: set[int]) -> None:
        for row in sorted((self._rows[i] for i in item_ids if i in self._rows), reverse=True):
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._items[row]
            self._reindex()  # before endRemoveRows: its signal's slots may look items up
            self.endRemoveRows()

    def clear(self) -> None:
        self.beginResetModel()
        self._items = []
        self._rows = {}
        self.endResetModel()

    def changed(self, item_id: int) -> None:
        row = self._rows.get(item_id)
        if row is not None:
            idx = self.index(row)
            self.dataChanged.emit(idx, idx)

    def set_thumbnail(self, item: PhotoItem, pixels: np.ndarray) -> None:
        item.thumbnail = QPixmap.fromImage(to_qimage(pixels))
        self.changed(item.id)

    def _reindex(self) -> None:
        self._rows = {it.id: r for r, it in enumerate(self._items)}
