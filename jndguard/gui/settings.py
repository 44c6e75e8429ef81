"""Typed facade over QSettings: every persisted value has one key, one type, one default.

Keys follow ``"<group>/<name>"`` (``"attack/beta1"``, ``"jnd/strength"``, ``"folders/add"``,
``"window/geometry"``). The store is an INI file in the user's config folder (the same on
every platform, readable, and easy to isolate in tests with :meth:`SettingsStore.at`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QByteArray, QSettings

from jndguard.gui import params
from jndguard.gui.params import ProtectionSettings
from jndguard.gui.tasks import DisplayOptions

T = TypeVar("T")

#: Where each field of ProtectionSettings is stored (flat form of :func:`params.to_flat`).
PARAM_KEYS: dict[str, str] = {
    "method": "attack/method",
    "goal": "attack/goal",
    "target": "attack/target",
    "mode": "attack/mode",
    "beta_custom": "attack/beta_custom",
    "beta1": "attack/beta1",
    "beta2": "attack/beta2",
    "beta3": "attack/beta3",
    "delta": "attack/delta",
    "m_r": "attack/m_r",
    "m_g": "attack/m_g",
    "m_b": "attack/m_b",
    "max_iterations": "attack/max_iterations",
    "step_size": "attack/step_size",
    "epsilon": "attack/epsilon",
    "margin": "attack/margin",
    "robust": "attack/robust",
    "jnd_model": "jnd/model",
    "jnd_color": "jnd/color",
    "jnd_strength": "jnd/strength",
    "device": "attack/device",
    "seed": "attack/seed",
    "model": "attack/model",
    "min_face_size": "faces/min_size",
    "safety_margin": "attack/safety_margin",
}


class _Key(Generic[T]):
    """A typed settings value: ``store.add_folder`` reads, ``store.add_folder = x`` writes."""

    def __init__(self, key: str, default: T) -> None:
        self.key = key
        self.default = default

    def __get__(self, obj: SettingsStore | None, owner: type) -> T:
        if obj is None:
            return self  # type: ignore[return-value]
        return obj.get(self.key, self.default)

    def __set__(self, obj: SettingsStore, value: T) -> None:
        obj.set(self.key, value)


class SettingsStore:
    """Everything JNDGuard remembers between sessions."""

    add_folder = _Key("folders/add", "")
    export_folder = _Key("folders/export", "")
    export_format = _Key("export/format", "png")
    jpeg_quality = _Key("export/jpeg_quality", 95)
    open_folder_after_export = _Key("export/open_folder", False)
    strength = _Key("attack/strength", "standard")
    verify_after_run = _Key("general/verify", True)
    verify_exports = _Key("export/verify", True)
    use_dlib = _Key("general/dlib", True)
    gallery_folder = _Key("verify/gallery", "")  # "my other photos": the gallery threat
    theme = _Key("view/theme", "system")
    panes = _Key("view/panes", "original,jnd,perturbation,protected")
    show_faces = _Key("view/faces", True)
    magnifier = _Key("view/magnifier", False)
    magnifier_zoom = _Key("view/magnifier_zoom", 4)
    jnd_channel = _Key("view/jnd_channel", "luma")
    perturbation_channel = _Key("view/perturbation_channel", "rgb")
    amplification = _Key("view/amplification", 0)
    advanced_open = _Key("view/advanced", False)
    geometry = _Key("window/geometry", QByteArray())
    window_state = _Key("window/state", QByteArray())

    def __init__(self, qsettings: QSettings | None = None) -> None:
        #: values set but not yet handed to QSettings (see :meth:`flush`)
        self._pending: dict[str, Any] = {}
        #: called after the first change since the last flush (the controller schedules one)
        self.on_change = None
        self._qs = qsettings or QSettings(
            QSettings.Format.IniFormat, QSettings.Scope.UserScope, "JNDGuard", "JNDGuard"
        )

    @classmethod
    def at(cls, path: str | Path) -> SettingsStore:
        """A store in an explicit INI file (tests, portable installs)."""
        return cls(QSettings(str(path), QSettings.Format.IniFormat))

    @property
    def path(self) -> str:
        return self._qs.fileName()

    # -- typed access ------------------------------------------------------------
    def get(self, key: str, default: Any) -> Any:
        value = self._pending[key] if key in self._pending else self._qs.value(key, None)
        if value is None:
            return default
        try:
            if isinstance(default, bool):
                return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
            if isinstance(default, int):
                return int(float(value))
            if isinstance(default, float):
                return float(value)
            if isinstance(default, QByteArray):
                return value if isinstance(value, QByteArray) else QByteArray(value)
            if isinstance(default, str):
                return str(value)
        except (TypeError, ValueError):
            return default
        return value

    def set(self, key: str, value: Any) -> None:
        """Remember a value; it reaches the file at the next :meth:`flush`.

        QSettings writes its file on the GUI thread soon after any change, which can take
        tens of milliseconds on a busy disk; the controller flushes when no run is active.
        """
        first = not self._pending
        self._pending[key] = value
        if first and self.on_change is not None:
            self.on_change()

    def flush(self) -> None:
        for key, value in self._pending.items():
            self._qs.setValue(key, value)
        self._pending = {}

    def sync(self) -> None:
        self.flush()
        self._qs.sync()

    def clear(self) -> None:
        self._pending = {}
        self._qs.clear()

    # -- composite values --------------------------------------------------------
    def protection_settings(self) -> ProtectionSettings:
        """The parameters of the last session (defaults where nothing is stored)."""
        flat: dict[str, Any] = {}
        for name, key in PARAM_KEYS.items():
            value = self._pending[key] if key in self._pending else self._qs.value(key, None)
            if value is not None:
                flat[name] = value
        if "beta_custom" in flat:
            flat["beta_custom"] = str(flat["beta_custom"]).lower() in ("1", "true", "yes")
        return params.from_flat(flat, params.default_settings())

    def set_protection_settings(self, settings: ProtectionSettings) -> None:
        for name, value in params.to_flat(settings).items():
            key = PARAM_KEYS.get(name)
            if key is None:
                continue
            self.set(key, "" if value is None else value)

    def display_options(self) -> DisplayOptions:
        return DisplayOptions(self.jnd_channel, self.perturbation_channel, self.amplification)

    def set_display_options(self, options: DisplayOptions) -> None:
        self.jnd_channel = options.jnd_channel
        self.perturbation_channel = options.perturbation_channel
        self.amplification = options.amplification
