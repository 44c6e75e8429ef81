"""Every control reaches the worker; JND settings redraw the JND view at once; presets."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from jndguard.gui import params

pytestmark = pytest.mark.gui

#: control key → ProtectionSettings field (and how to read it)
FIELD = {
    "beta1": lambda s: s.beta[0],
    "beta2": lambda s: s.beta[1],
    "beta3": lambda s: s.beta[2],
    "delta": lambda s: s.delta,
    "m_r": lambda s: s.m_rgb[0],
    "m_g": lambda s: s.m_rgb[1],
    "m_b": lambda s: s.m_rgb[2],
    "jnd_strength": lambda s: s.jnd_strength,
    "max_iterations": lambda s: s.max_iterations,
    "step_size": lambda s: s.step_size,
    "epsilon": lambda s: s.epsilon,
    "margin": lambda s: s.margin,
    "safety_margin": lambda s: s.safety_margin,
    "jitter_samples": lambda s: s.jitter_samples,
    "max_rounds": lambda s: s.max_rounds,
    "seed": lambda s: s.seed,
    "stop_margin": lambda s: s.stop_margin,
    "budget": lambda s: s.budget,
    "eot_samples": lambda s: s.eot_samples,
}


def test_every_slider_changes_what_the_worker_receives(
    qtbot, make_window, wait_loaded, sample_photo, fake_pipeline
):
    w = make_window(steps_fn=fake_pipeline)
    w.add_paths([sample_photo])
    wait_loaded(w, 1)
    panel = w.controls
    panel.set_advanced_open(True)
    assert set(FIELD) == set(panel.spins), "a slider without a test (or a test without a slider)"
    # β and δ sliders are live once "custom" is ticked; ε once an anchor method is chosen
    qtbot.mouseClick(panel.beta_custom, Qt.MouseButton.LeftButton)
    assert w.controller.settings.beta is not None
    expected = {}
    for key, spin in panel.spins.items():
        if key == "epsilon":
            panel.method.setCurrentIndex(panel.method.findData("pgd"))
        assert spin.slider.isEnabled(), key
        before = FIELD[key](w.controller.settings)
        pos = spin.slider.value()
        spin.slider.setValue(800 if pos < 500 else 150)
        after = FIELD[key](w.controller.settings)
        assert after != before, f"moving the {key} slider did not change the settings"
        assert spin.spin.value() == pytest.approx(after * spin.rng.scale, abs=10**-spin.rng.decimals)
        expected[key] = after
        if key == "epsilon":
            panel.method.setCurrentIndex(panel.method.findData("hvs-jnd"))
    # checkboxes and combos too
    qtbot.mouseClick(panel.robust, Qt.MouseButton.LeftButton)
    panel.decoy.setChecked(True)  # (a click at its centre can land past its text in this layout)
    panel.mode.setCurrentIndex(panel.mode.findData("paper"))
    panel.variant.setCurrentIndex(panel.variant.findData("L1"))
    panel.jnd_model.setCurrentIndex(panel.jnd_model.findData("chou"))
    panel.jnd_color.setCurrentIndex(panel.jnd_color.findData("gray"))
    # the worker receives exactly these settings
    with qtbot.waitSignal(w.controller.runFinished, timeout=60000):
        assert w.controller.protect(None)
    got = fake_pipeline.received[-1]
    assert got == w.controller.settings
    for key, value in expected.items():
        assert FIELD[key](got) == pytest.approx(value), key
    assert got.robust is True and got.decoy is True and got.mode == "paper" and got.variant == "L1"
    assert got.jnd_model == "chou" and got.jnd_color == "gray"
    assert params.strength_of(got) == params.CUSTOM
    assert panel.strength_note.text().startswith("Custom")


def test_jnd_setting_updates_jnd_view_immediately(qtbot, make_window, wait_loaded, sample_photo):
    w = make_window()
    w.add_paths([sample_photo])
    wait_loaded(w, 1)
    qtbot.waitUntil(lambda: w.views.frames["jnd"].pane.has_image(), timeout=15000)
    spin = w.controls.spins["jnd_strength"]
    with qtbot.waitSignal(
        w.controller.viewsRendered,
        timeout=10000,
        check_params_cb=lambda v: v.jnd_params.strength == pytest.approx(2.0),
    ) as blocker:
        spin.spin.setValue(2.0)
    views = blocker.args[0]
    assert "×2" in w.views.frames["jnd"].info.text()
    assert views.jnd_range[1] >= 10
    # changing the channel shown recolours without recomputing the map
    with qtbot.waitSignal(w.controller.viewsRendered, timeout=10000):
        w.views.jnd_channel.setCurrentIndex(w.views.jnd_channel.findData("b"))
    assert w.controller.display.jnd_channel == "b"


def test_strength_presets_and_paper_defaults(qtbot, make_window):
    w = make_window()
    panel = w.controls
    qtbot.mouseClick(panel.strength_buttons["strong"], Qt.MouseButton.LeftButton)
    s = w.controller.settings
    assert s.mode == "post" and s.stop_margin == 0.15 and s.budget == 1.0
    assert params.strength_of(s) == "strong"
    assert panel.strength_buttons["strong"].isChecked()
    qtbot.mouseClick(panel.strength_buttons["light"], Qt.MouseButton.LeftButton)
    assert params.strength_of(w.controller.settings) == "light"
    panel.set_advanced_open(True)
    qtbot.mouseClick(panel.reset_button, Qt.MouseButton.LeftButton)
    s = w.controller.settings
    assert s.mode == "paper" and s.beta == (1500.0, 1500.0, 1500.0) and s.delta == -50.0
    assert panel.spins["beta1"].value() == pytest.approx(1500.0)
    # impersonation needs a target: choosing the goal picks one
    panel.set_persons(["ben_afflek", "madonna"])
    panel.goal.setCurrentIndex(panel.goal.findData("impersonate"))
    s = w.controller.settings
    assert s.goal == "impersonate" and s.target in ("ben_afflek", "madonna")
    assert panel.target.isEnabled()
    assert set(s.to_dict()) >= {"method", "goal", "target", "beta", "m_rgb"}
