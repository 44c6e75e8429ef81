"""Presentation mode: a real live protection of the bundled sample, offscreen."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PySide6.QtCore import Qt

from jndguard.gui import presentation
from jndguard.gui.presentation import (
    FLASH_MS,
    PresentationWindow,
    compose_frame,
    open_presentation,
    presentation_settings,
)

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("one_torch_thread")]


def test_live_protection_of_the_sample(qtbot, model_home, recogniser, monkeypatch, request):
    monkeypatch.setenv("JNDGUARD_HOME", str(model_home))
    # lossless mode: the live plumbing in a few seconds (post mode needs minutes on 2 CPU cores)
    settings = presentation_settings(device="cpu", mode="lossless", max_iterations=5, max_rounds=1,
                                     jitter_samples=2)
    w = open_presentation(settings=settings, recogniser=recogniser, load_sample=False)
    closed = []
    w.closed.connect(lambda: closed.append(True))
    request.addfinalizer(lambda: closed or w.close())
    assert w.isFullScreen()
    assert w.camera_button.isHidden() == (not presentation.camera_available())
    with qtbot.waitSignal(w.photoLoaded, timeout=20000):
        qtbot.keyClick(w, Qt.Key.Key_S)  # the bundled sample
    assert w.stage.caption == "ORIGINAL" and w.protect_button.isEnabled()

    seen: list[float] = []
    w.similarityChanged.connect(seen.append)
    with qtbot.waitSignal(w.protectionFinished, timeout=300000) as done:
        qtbot.keyClick(w, Qt.Key.Key_Space)
        assert w.busy and not w.protect_button.isEnabled()
    result = done.args[0]
    thr = recogniser.threshold
    # the similarity was shown live, starting above the threshold and going below it on the
    # optimiser's own crop; the gauge ends on the worst cell of the quick threat matrix
    assert len(seen) >= 3 and seen[0] > thr
    assert result.success and min(seen) < thr
    worst = seen[-1]
    assert w.similarity_label.text() == f"{worst:.2f}"
    assert w.gauge.threshold == pytest.approx(thr, abs=1e-4) and w.trace.values == seen  # report: 4 decimals
    assert ("Protected in every" in w.verdict_label.text()) == (worst < thr)
    assert "threat matrix" in w.progress_label.text()
    assert w.stage.caption == "PROTECTED"
    # the protected photo changed, but invisibly: high PSNR, almost nothing over the JND
    diff = np.abs(result.protected.astype(int) - w.photo.pixels.astype(int))
    assert diff.max() > 0
    assert result.metrics["psnr"] > 40
    assert result.metrics["jnd"]["over_fraction"] < 0.05
    qtbot.waitUntil(lambda: not w.busy, timeout=10000)

    # the toggle flashes original / protected
    qtbot.keyClick(w, Qt.Key.Key_F)
    assert w.flash_button.isChecked()
    shown = set()
    qtbot.waitUntil(lambda: (shown.add(w.showing), len(shown) == 2)[1], timeout=4 * FLASH_MS)
    qtbot.keyClick(w, Qt.Key.Key_F)
    assert not w.flash_button.isChecked() and w.showing == "protected"

    with qtbot.waitSignal(w.closed, timeout=10000):
        qtbot.keyClick(w, Qt.Key.Key_Escape)
    assert closed


def test_camera_option_follows_the_hardware(qtbot, monkeypatch):
    monkeypatch.setattr(presentation, "camera_available", lambda: False)
    a = PresentationWindow(settings=presentation_settings(device="cpu"))
    qtbot.addWidget(a)
    a.show()
    assert not a.camera_button.isVisible()
    monkeypatch.setattr(presentation, "camera_available", lambda: True)
    b = PresentationWindow(settings=presentation_settings(device="cpu"))
    qtbot.addWidget(b)
    b.show()
    assert b.camera_button.isVisible()


def test_fake_pipeline_frames_and_errors(qtbot, fake_pipeline, sample_photo, corrupt_photo):
    w = PresentationWindow(
        settings=presentation_settings(device="cpu"), steps_fn=fake_pipeline, recogniser=object()
    )
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    assert not w.protect_button.isEnabled()  # nothing on stage yet
    with qtbot.waitSignal(w.failed, timeout=20000):
        w.load_path(corrupt_photo)
    assert w.photo is None and "Cannot open" in w.verdict_label.text()
    with qtbot.waitSignal(w.photoLoaded, timeout=20000):
        w.load_path(sample_photo)
    frames = []
    w.stage.set_image = lambda img, caption="", f=w.stage.set_image: (frames.append(caption), f(img, caption))
    with qtbot.waitSignal(w.protectionFinished, timeout=30000):
        assert w.protect()
    assert "PROTECTING…" in frames and frames[-1] == "PROTECTED"
    assert w.history[:3] == pytest.approx([0.8, 0.7, 0.6])


def test_compose_frame_adds_the_region_perturbation():
    original = np.full((6, 8, 3), 100, np.uint8)
    current = original.copy()
    current[0, 0] = 7  # earlier faces keep what they had
    pert = np.full((2, 3, 3), 2.6, np.float32)
    out = compose_frame(original, current, pert, (1, 2, 4, 4))
    assert out[2:4, 1:4].min() == out[2:4, 1:4].max() == 103
    assert out[0, 0, 0] == 7 and out[5, 7, 0] == 100
    # a face optimised at a working scale previews a smaller perturbation: stretched to the box
    out = compose_frame(original, current, np.full((1, 2, 3), 2.6, np.float32), (1, 2, 5, 4))
    assert out[2:4, 1:5].min() == out[2:4, 1:5].max() == 103


def test_live_runs_go_through_the_helper_process_like_the_main_window(monkeypatch):
    """Without a recogniser of its own, presentation mode runs the pipeline in the helper
    process (one recogniser cache for the app); with one, in this process."""
    from jndguard.core import pipeline
    from jndguard.gui import helper

    calls = []

    def fake(name):
        def steps(image, settings, recogniser=None, stop=None):
            calls.append((name, recogniser))
            return f"{name} result"
            yield  # a generator

        return steps

    monkeypatch.setattr(helper, "protect_steps", fake("helper"))
    monkeypatch.setattr(pipeline, "protect_steps", fake("in-process"))
    settings = presentation_settings(device="cpu")
    photo = SimpleNamespace(pixels=np.zeros((4, 4, 3), np.uint8))
    gen = presentation.live_protection(photo, settings)
    first = next(gen)
    assert first.stage == "load"
    with pytest.raises(StopIteration) as done:
        next(gen)
    assert done.value.value == "helper result" and calls == [("helper", None)]
    calls.clear()
    gen = presentation.live_protection(photo, settings, recogniser="loaded")
    with pytest.raises(StopIteration) as done:
        next(gen)
    assert done.value.value == "in-process result" and calls == [("in-process", "loaded")]
