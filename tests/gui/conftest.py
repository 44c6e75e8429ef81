"""GUI test fixtures: isolated QSettings, a window factory, a fake pipeline, small photos."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PIL import Image
from PySide6.QtCore import QSettings

from jndguard.gui.settings import SettingsStore
from jndguard.resources import SAMPLE_PHOTO, resource_path


@pytest.fixture(autouse=True)
def _isolated_qsettings(tmp_path, monkeypatch):
    """Every QSettings the app opens (user scope, INI) lives in the test's temp folder."""
    folder = tmp_path / "qsettings"
    folder.mkdir()
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))
    yield folder


@pytest.fixture
def settings_path(tmp_path) -> Path:
    return tmp_path / "jndguard-test.ini"


@pytest.fixture
def make_window(qtbot, settings_path):
    """Factory for real main windows; closes (and waits for the workers of) each at the end."""
    from jndguard.gui.main_window import MainWindow
    from jndguard.gui.qtapp import create_app

    create_app()
    made = []

    def make(
        check_models: bool = False,
        load_sample: bool = False,
        path: Path | None = None,
        steps_fn=None,
        resize: bool = True,
    ):
        w = MainWindow(
            SettingsStore.at(path or settings_path), load_sample=load_sample, check_models=check_models
        )
        if not check_models:  # faces found in this process: a cold helper process (its imports)
            from jndguard.gui import tasks  # would eat the waits; the helper's detection is tested

            w.controller.detect_fn = tasks.detect_here  # on its own (test_large_photos)
        if steps_fn is not None:  # a stub pipeline: no real models to verify with
            w.controller.steps_fn = steps_fn
            w.controller.verify_after_run = w.controller.verify_exports = False
        qtbot.addWidget(w)
        if resize:
            w.resize(1280, 820)
        w.show()
        made.append(w)
        return w

    yield make
    for w in made:
        if w.isVisible():
            w.close()
        w.controller.shutdown()


@pytest.fixture
def sample_photo(tmp_path) -> Path:
    dst = tmp_path / "photos" / "portrait.png"
    dst.parent.mkdir(exist_ok=True)
    shutil.copy(resource_path(SAMPLE_PHOTO), dst)
    return dst


@pytest.fixture
def small_photo(tmp_path) -> Path:
    """A 96×64 face-less picture (fast to load)."""
    rng = np.random.default_rng(0)
    arr = (rng.random((64, 96, 3)) * 255).astype(np.uint8)
    p = tmp_path / "photos" / "noise.png"
    p.parent.mkdir(exist_ok=True)
    Image.fromarray(arr).save(p)
    return p


@pytest.fixture
def corrupt_photo(tmp_path) -> Path:
    p = tmp_path / "photos" / "broken.jpg"
    p.parent.mkdir(exist_ok=True)
    p.write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG" + bytes(range(256)) * 4)
    return p


class FakePipeline:
    """Stands in for ``protect_steps``: records the settings it receives, yields a few steps
    (with a preview), returns a ProtectionResult built from the real metrics."""

    def __init__(self, iterations: int = 6, delay: float = 0.0, success: bool = True) -> None:
        self.received: list = []
        self.iterations = iterations
        self.delay = delay
        self.success = success

    def __call__(self, image, settings, recogniser=None, stop=None):
        import time

        from jndguard.core.faces import detect_faces
        from jndguard.core.pipeline import Cancelled, PipelineStep, ProtectionResult

        self.received.append(settings)
        yield PipelineStep("detect", "detecting faces")
        faces = detect_faces(image.pixels, "cpu")
        n = len(faces)
        h, w = image.pixels.shape[:2]
        jnd = np.full((h, w, 3), 4.0, np.float32)
        yield PipelineStep("jnd", "computing the JND map", n_faces=n)
        rng = np.random.default_rng(settings.seed)
        delta = rng.integers(-3, 4, size=image.pixels.shape).astype(np.int16)
        box = (0, 0, min(w, 64), min(h, 64))
        for it in range(1, self.iterations + 1):
            if stop is not None and stop():
                raise Cancelled("cancelled")
            if self.delay:
                time.sleep(self.delay)
            prev = delta[box[1] : box[3], box[0] : box[2]].astype(np.float32)
            yield PipelineStep(
                "attack",
                f"iteration {it}",
                0,
                n,
                it,
                self.iterations,
                {"total": 1.0 / it, "adv": 0.5 / it},
                0.9 - 0.1 * it,
                0.25,
                False,
                prev,
                box,
            )
        protected = np.clip(image.pixels.astype(np.int16) + delta, 0, 255).astype(np.uint8)
        metrics = {
            "psnr": 41.5,
            "ssim": 0.991,
            "ms_ssim": 0.997,
            "max_abs_change": 3,
            "jnd": {"over_fraction": 0.0, "mean_jnd": 4.0},
        }
        per_face = [
            {
                "face": i,
                "success": self.success,
                "similarity": 0.1 if self.success else 0.6,
                "threshold": 0.25,
                "iterations": self.iterations,
                "seconds": 0.1,
                "psnr": 40.0,
                "ssim": 0.99,
                "redetected": True,
            }
            for i in range(n)
        ]
        yield PipelineStep("done", "protected", n_faces=n, success=self.success)
        return ProtectionResult(
            protected,
            jnd,
            faces,
            per_face,
            metrics,
            settings,
            bool(faces) and self.success,
            0.2,
            "cpu",
            {"name": "fake"},
        )


@pytest.fixture
def fake_pipeline() -> FakePipeline:
    return FakePipeline()


@pytest.fixture
def wait_loaded(qtbot):
    """``wait_loaded(window, n)``: wait until ``n`` photos are queued and none is still read."""
    from jndguard.gui.state import Status

    def wait(window, n: int, timeout: int = 30000) -> None:
        def done():
            items = window.controller.queue.items()
            assert len(items) == n
            assert all(it.status != Status.LOADING for it in items)

        qtbot.waitUntil(done, timeout=timeout)

    return wait


@pytest.fixture
def set_iterations():
    """``set_iterations(window, n)``: the iteration budget of the next run."""

    def set_(window, n: int) -> None:
        c = window.controller
        c.set_settings(replace(c.settings, max_iterations=n))

    return set_
