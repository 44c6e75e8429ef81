"""The protection controls: method, goal, everyday strength, and the Advanced section.

The panel edits a :class:`ProtectionSettings` and emits it whole (``settingsEdited``); the
controller decides what follows (a new JND view, persisting). ``set_settings`` shows settings
without echoing them back.
"""

from __future__ import annotations

import math
from dataclasses import replace

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from jndguard.core.methods import (
    FAST_BETA,
    FAST_DELTA,
    PAPER_BETA,
    PAPER_DELTA,
    POST_BETA,
    POST_DELTA,
    method_spec,
)
from jndguard.core.settings import Choice
from jndguard.gui import params
from jndguard.gui.params import NUMERIC, STRENGTHS, ProtectionSettings, Range

SLIDER_STEPS = 1000


class SliderSpin(QWidget):
    """A slider and a spin box showing one number (linear or logarithmic slider)."""

    valueChanged = Signal(float)

    def __init__(self, rng: Range, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rng = rng
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setRange(0, SLIDER_STEPS)
        self.slider.setMinimumWidth(90)
        self.spin = QDoubleSpinBox(self)
        self.spin.setDecimals(rng.decimals)
        self.spin.setRange(rng.minimum, rng.maximum)
        self.spin.setSingleStep(rng.step)
        self.spin.setSuffix(rng.suffix)
        self.spin.setKeyboardTracking(False)
        self.spin.setMinimumWidth(92)
        self.spin.setAlignment(Qt.AlignmentFlag.AlignRight)
        if rng.special:
            self.spin.setSpecialValueText(rng.special)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.slider, 1)
        lay.addWidget(self.spin)
        self._guard = False
        self.slider.valueChanged.connect(self._from_slider)
        self.spin.valueChanged.connect(self._from_spin)

    def _to_pos(self, v: float) -> int:
        lo, hi = self.rng.minimum, self.rng.maximum
        if self.rng.log and lo > 0:
            t = (math.log(max(v, lo)) - math.log(lo)) / (math.log(hi) - math.log(lo))
        else:
            t = (v - lo) / (hi - lo) if hi > lo else 0.0
        return round(min(1.0, max(0.0, t)) * SLIDER_STEPS)

    def _from_pos(self, pos: int) -> float:
        lo, hi = self.rng.minimum, self.rng.maximum
        t = pos / SLIDER_STEPS
        if self.rng.log and lo > 0:
            v = math.exp(math.log(lo) + t * (math.log(hi) - math.log(lo)))
        else:
            v = lo + t * (hi - lo)
        step = self.rng.step
        if step:
            v = lo + round((v - lo) / step) * step
        return round(min(hi, max(lo, v)), self.rng.decimals)

    def _from_slider(self, pos: int) -> None:
        if self._guard:
            return
        self._guard = True
        try:
            self.spin.setValue(self._from_pos(pos))
        finally:
            self._guard = False
        self.valueChanged.emit(self.spin.value())

    def _from_spin(self, v: float) -> None:
        if self._guard:
            return
        self._guard = True
        try:
            self.slider.setValue(self._to_pos(v))
        finally:
            self._guard = False
        self.valueChanged.emit(v)

    def value(self) -> float:
        return self.spin.value()

    def setValue(self, v: float) -> None:
        self._guard = True
        try:
            self.spin.setValue(v)
            self.slider.setValue(self._to_pos(v))
        finally:
            self._guard = False


def _combo(items: dict[str, str], tip: str = "") -> QComboBox:
    c = QComboBox()
    for k, v in items.items():
        c.addItem(v, k)
    c.setToolTip(tip)
    c.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    c.setMinimumContentsLength(12)
    return c


def _set_combo(c: QComboBox, value) -> None:
    if isinstance(value, Choice):
        value = value.value  # the combo's data are plain strings
    i = c.findData(value)
    if i < 0 and value is not None:
        c.addItem(str(value), value)
        i = c.count() - 1
    if i >= 0:
        c.setCurrentIndex(i)


class ControlsPanel(QScrollArea):
    """Method, goal, strength and every advanced parameter."""

    settingsEdited = Signal(object)  # ProtectionSettings
    advancedToggled = Signal(bool)

    def __init__(self, settings: ProtectionSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._settings = settings
        self._updating = False
        body = QWidget()
        self.setWidget(body)
        outer = QVBoxLayout(body)
        outer.setContentsMargins(6, 6, 6, 6)

        # --- everyday --------------------------------------------------------
        basic = QGroupBox("Protection")
        form = QFormLayout(basic)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        opts = params.OPTIONS
        self.method = _combo(params.METHODS, opts["method"].help)
        self.goal = _combo(params.GOALS, opts["goal"].help)
        self.target = QComboBox()
        self.target.setToolTip(opts["target"].help)
        self.strength_group = QButtonGroup(self)
        strength_row = QHBoxLayout()
        strength_row.setSpacing(2)
        self.strength_buttons: dict[str, QToolButton] = {}
        for key, (label, tip, _) in STRENGTHS.items():
            b = QToolButton()
            b.setText(label)
            b.setToolTip(tip)
            b.setCheckable(True)
            b.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            self.strength_group.addButton(b)
            self.strength_buttons[key] = b
            strength_row.addWidget(b)
        self.strength_group.setExclusive(False)
        self.strength_note = QLabel("")
        self.strength_note.setWordWrap(True)
        self.strength_note.setForegroundRole(self.strength_note.foregroundRole())
        form.addRow("Method", self.method)
        form.addRow("Goal", self.goal)
        form.addRow("Target", self.target)
        form.addRow("Strength", strength_row)
        form.addRow("", self.strength_note)
        outer.addWidget(basic)

        # --- advanced ---------------------------------------------------------
        self.advanced_toggle = QToolButton()
        self.advanced_toggle.setText("Advanced")
        self.advanced_toggle.setCheckable(True)
        self.advanced_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_toggle.setStyleSheet("QToolButton { border: none; font-weight: bold; }")
        self.advanced_toggle.toggled.connect(self.set_advanced_open)
        outer.addWidget(self.advanced_toggle)
        self.advanced = QWidget()
        adv = QVBoxLayout(self.advanced)
        adv.setContentsMargins(0, 0, 0, 0)
        self.spins: dict[str, SliderSpin] = {}

        def spin(key: str, form: QFormLayout) -> SliderSpin:
            label, tip, rng = NUMERIC[key]
            w = SliderSpin(rng)
            w.setToolTip(tip)
            w.valueChanged.connect(self._edited)
            self.spins[key] = w
            lab = QLabel(label)
            lab.setToolTip(tip)
            form.addRow(lab, w)
            return w

        g_method = QGroupBox("Method")
        f = QFormLayout(g_method)
        self.mode = _combo(params.MODES, opts["mode"].help)
        self.variant = _combo(params.VARIANTS, opts["variant"].help)
        f.addRow(opts["mode"].label, self.mode)
        f.addRow(opts["variant"].label, self.variant)
        self.beta_custom = QCheckBox("Custom β and δ (else the mode's defaults)")
        f.addRow(self.beta_custom)
        for k in ("beta1", "beta2", "beta3", "delta", "m_r", "m_g", "m_b"):
            spin(k, f)
        adv.addWidget(g_method)

        g_jnd = QGroupBox("JND map")
        f = QFormLayout(g_jnd)
        self.jnd_model = _combo(params.JND_MODELS, opts["jnd_model"].help)
        self.jnd_color = _combo(params.JND_COLORS, opts["jnd_color"].help)
        f.addRow(opts["jnd_model"].label, self.jnd_model)
        f.addRow(opts["jnd_color"].label, self.jnd_color)
        spin("jnd_strength", f)
        adv.addWidget(g_jnd)

        g_opt = QGroupBox("Optimisation")
        f = QFormLayout(g_opt)
        for k in (
            "max_iterations",
            "step_size",
            "epsilon",
            "margin",
            "safety_margin",
            "jitter_samples",
            "max_rounds",
            "seed",
            "stop_margin",
            "budget",
            "eot_samples",
        ):
            spin(k, f)
        self.robust = QCheckBox(opts["robust"].label)
        self.robust.setToolTip(opts["robust"].help)
        f.addRow(self.robust)
        self.decoy = QCheckBox(opts["decoy"].label)
        self.decoy.setToolTip(opts["decoy"].help)
        f.addRow(self.decoy)
        adv.addWidget(g_opt)

        g_dev = QGroupBox("Device and model")
        f = QFormLayout(g_dev)
        self.device = _combo({d: d for d in params.DEVICES}, opts["device"].help)
        self.model = QComboBox()
        self.model.addItem("default", None)
        self.model.setToolTip(opts["model"].help)
        f.addRow(opts["device"].label, self.device)
        f.addRow(opts["model"].label, self.model)
        adv.addWidget(g_dev)

        self.reset_button = QPushButton("Reset to paper defaults")
        self.reset_button.setToolTip("The values the method's paper fixes for this goal")
        self.reset_button.clicked.connect(self.reset_to_paper)
        adv.addWidget(self.reset_button)
        outer.addWidget(self.advanced)
        outer.addStretch(1)
        self.advanced.setVisible(False)

        for c in (
            self.method,
            self.goal,
            self.target,
            self.mode,
            self.variant,
            self.jnd_model,
            self.jnd_color,
            self.device,
            self.model,
        ):
            c.currentIndexChanged.connect(self._edited)
        for cb in (self.beta_custom, self.robust, self.decoy):
            cb.toggled.connect(self._edited)
        for key, b in self.strength_buttons.items():
            b.clicked.connect(lambda _c=False, k=key: self._strength_clicked(k))
        self.set_settings(settings)

    # -- public ------------------------------------------------------------------
    def settings(self) -> ProtectionSettings:
        return self._settings

    def set_advanced_open(self, on: bool) -> None:
        self.advanced.setVisible(on)
        self.advanced_toggle.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)
        if self.advanced_toggle.isChecked() != on:
            self.advanced_toggle.setChecked(on)
        self.advancedToggled.emit(on)

    def set_persons(self, names: list[str]) -> None:
        self._updating = True
        try:
            cur = self.target.currentData()
            self.target.clear()
            for n in names:
                self.target.addItem(n.replace("_", " ").title(), n)
            if cur:
                _set_combo(self.target, cur)
        finally:
            self._updating = False
        self.set_settings(self._settings)

    def set_models(self, models: list[dict], devices: list[str]) -> None:
        self._updating = True
        try:
            self.model.clear()
            self.model.addItem("default", None)
            for m in models:
                self.model.addItem(f"{m['name']} (τ={m.get('threshold') or 0:.2f})", m["name"])
            self.device.clear()
            for d in devices or params.DEVICES:
                self.device.addItem(d, d)
        finally:
            self._updating = False
        self.set_settings(self._settings)

    def set_settings(self, s: ProtectionSettings) -> None:
        """Show settings (no ``settingsEdited`` echo)."""
        self._updating = True
        try:
            self._settings = s
            _set_combo(self.method, s.method)
            _set_combo(self.goal, s.goal)
            if s.target is not None:
                _set_combo(self.target, s.target)
            self.target.setEnabled(s.goal == "impersonate")
            _set_combo(self.mode, s.mode)
            _set_combo(self.variant, s.variant)
            _set_combo(self.jnd_model, s.jnd_model)
            _set_combo(self.jnd_color, s.jnd_color)
            _set_combo(self.device, s.device)
            _set_combo(self.model, s.model)
            self.beta_custom.setChecked(s.beta is not None)
            self.robust.setChecked(bool(s.robust))
            self.decoy.setChecked(bool(s.decoy))
            flat = params.to_flat(s)
            shown = self._default_beta(s) if s.beta is None else (s.beta, s.delta)
            for key, w in self.spins.items():
                rng = w.rng
                if key in ("beta1", "beta2", "beta3"):
                    v = shown[0][int(key[-1]) - 1]
                elif key == "delta":
                    v = shown[1] if s.delta is None or s.beta is None else s.delta
                else:
                    v = flat.get(key)
                if v is None:
                    v = rng.minimum  # "auto" (special value)
                w.setValue(float(v) * rng.scale)
            for k in ("beta1", "beta2", "beta3", "delta"):
                self.spins[k].setEnabled(s.beta is not None)
            used = method_spec(s.method).settings_used()
            for k in ("beta1", "beta2", "beta3", "delta", "m_r", "m_g", "m_b"):
                self.spins[k].setVisible(True)
            self.beta_custom.setEnabled("delta" in used)  # the custom β schedule of HVS-JND
            self.mode.setEnabled("mode" in used)
            self.variant.setEnabled("variant" in used)
            self.spins["epsilon"].setEnabled("epsilon" in used)
            strength = params.strength_of(s)
            for key, b in self.strength_buttons.items():
                b.setChecked(key == strength)
            self.strength_note.setText(
                STRENGTHS[strength][1] if strength in STRENGTHS else "Custom (set in Advanced)"
            )
        finally:
            self._updating = False

    def reset_to_paper(self) -> None:
        self._apply(params.paper_settings(self._settings))

    # -- internals ---------------------------------------------------------------
    @staticmethod
    def _default_beta(s: ProtectionSettings) -> tuple[tuple[float, float, float], float]:
        g = s.goal
        b, d = {"paper": (PAPER_BETA[g], PAPER_DELTA[g]), "post": (POST_BETA[g], POST_DELTA[g])}.get(
            s.mode, (FAST_BETA[g], FAST_DELTA[g]))
        return (b, b, b), d

    def _strength_clicked(self, key: str) -> None:
        self._apply(params.apply_strength(self._settings, key))

    def _apply(self, s: ProtectionSettings) -> None:
        self.set_settings(s)
        self.settingsEdited.emit(s)

    def _edited(self, *_args) -> None:
        if self._updating:
            return
        flat = params.to_flat(self._settings)
        flat.update(
            {
                "method": self.method.currentData(),
                "goal": self.goal.currentData(),
                "target": self.target.currentData(),
                "mode": self.mode.currentData(),
                "variant": self.variant.currentData(),
                "jnd_model": self.jnd_model.currentData(),
                "jnd_color": self.jnd_color.currentData(),
                "device": self.device.currentData(),
                "model": self.model.currentData(),
                "robust": self.robust.isChecked(),
                "decoy": self.decoy.isChecked(),
                "beta_custom": self.beta_custom.isChecked(),
            }
        )
        for key, w in self.spins.items():
            v = w.value() / w.rng.scale
            flat[key] = None if (w.rng.special and w.value() <= w.rng.minimum) else v
        for k in ("max_iterations", "jitter_samples", "max_rounds", "seed"):
            flat[k] = round(float(flat[k]))
        if not flat["beta_custom"]:
            flat["delta"] = None  # δ belongs to the custom schedule
        if flat["goal"] == "impersonate" and not flat["target"]:
            flat["target"] = self.target.itemData(0) if self.target.count() else self._settings.target
        new = params.from_flat(flat, self._settings)
        if flat["goal"] == "dodge" and new.target is not None and new.goal == "dodge":
            new = replace(new, target=None)
        self._apply(new)
