"""Protection runs in the background: progress then result, Cancel, export, compare."""

from __future__ import annotations

import csv
import json
import time

import pytest
from PIL import Image
from PySide6.QtCore import Qt

from jndguard.gui.state import Status

pytestmark = pytest.mark.gui


@pytest.fixture
def celeb_photo(celeb_dir, tmp_path):
    import shutil

    src = sorted((celeb_dir / "val" / "ben_afflek").glob("*.jpg"))[0]
    dst = tmp_path / "photos" / "ben.jpg"
    dst.parent.mkdir(exist_ok=True)
    shutil.copy(src, dst)
    return dst


@pytest.fixture
def real_models(model_home, monkeypatch):
    monkeypatch.setenv("JNDGUARD_HOME", str(model_home))
    return model_home


@pytest.mark.models
def test_real_run_emits_progress_then_result_and_exports(
    qtbot, make_window, wait_loaded, set_iterations, real_models, celeb_photo, tmp_path
):
    w = make_window(check_models=True)
    w.controller.use_dlib = False  # dlib's own check is the core tests' business (and slow)
    qtbot.waitUntil(lambda: w.controller.model_status is not None, timeout=30000)
    assert w.controller.model_status.fetched
    from jndguard.core.device import describe_device, resolve_device

    assert "facenet" in w.model_label.text()
    assert w.device_label.text() == f"Device: {describe_device(resolve_device(w.controller.settings.device))}"
    w.add_paths([celeb_photo])
    wait_loaded(w, 1)
    set_iterations(w, 10)
    c = w.controller
    order: list[str] = []
    stages: list[str] = []
    c.runStarted.connect(lambda _r: order.append("started"))
    c.runProgress.connect(
        lambda r: (order.append("progress"), stages.append(r.step.stage if r.step else "-"))
    )
    c.itemUpdated.connect(lambda _i: order.append("result") if c.current.results else None)
    c.runFinished.connect(lambda _r: order.append("finished"))
    # the expensive quality figures come after the protected photo is drawn, never before
    drawn: list[dict] = []  # the shown result's metrics when its protected photo was drawn

    def on_views(views) -> None:  # connected after the window's own slot: the photo is drawn
        mr = c.shown_result()
        if views.protected_image is not None and mr is not None and not drawn:
            assert w.views.frames["protected"].pane.has_image()
            drawn.append(dict(mr.result.metrics))
            order.append("drawn")

    def on_item(_i) -> None:
        mr = c.current.latest if c.current is not None else None
        if mr is not None and mr.result.metrics and "metrics" not in order:
            order.append("metrics")

    c.viewsRendered.connect(on_views)
    c.itemUpdated.connect(on_item)
    with qtbot.waitSignal(c.runFinished, timeout=300000):
        qtbot.mouseClick(
            w.queue_panel.view.viewport(),
            Qt.MouseButton.LeftButton,
            pos=w.queue_panel.view.visualRect(c.queue.index(0)).center(),
        )
        w.act_protect.trigger()
        assert not w.act_protect.isEnabled() and w.act_cancel.isEnabled()
    qtbot.waitUntil(lambda: "metrics" in order and "drawn" in order, timeout=10000)
    assert drawn == [{}]  # drawn while its figures were still being measured
    assert order.index("drawn") < order.index("metrics")
    assert order[0] == "started" and "finished" in order
    first_result = order.index("result")
    assert "progress" in order[:first_result]
    assert [s for s in ("detect", "jnd", "attack", "done") if s in stages] == [
        "detect",
        "jnd",
        "attack",
        "done",
    ]
    assert stages.index("detect") < stages.index("jnd") < stages.index("attack") < stages.index("done")
    item = c.current
    assert item.status in (Status.PROTECTED, Status.NOT_PROTECTED)
    mr = item.latest
    assert mr.result.protected.shape == item.image.pixels.shape
    assert mr.result.per_face[0]["iterations"] >= 1
    # results: badge per face, metrics table, views
    qtbot.waitUntil(lambda: w.views.frames["protected"].pane.has_image(), timeout=10000)
    assert w.views.frames["perturbation"].pane.has_image()
    def row_labels() -> list[str]:
        t = w.results.table
        return [t.verticalHeaderItem(i).text() for i in range(t.rowCount())]

    # the table fills in as the figures and the verification arrive
    qtbot.waitUntil(lambda: "Threat matrix" in row_labels(), timeout=10000)
    labels = row_labels()
    for needed in ("PSNR", "SSIM", "MS-SSIM", "Over J", "Similarity", "Verdict"):
        assert needed in labels
    badges = [w.results.badges.itemAt(i).widget() for i in range(w.results.badges.count())]
    assert any(b is not None and "Face 1" in b.text() for b in badges)
    assert "Finished" in w.progress.title.text()
    # verified on the saved file in the threat matrix: its rows, its grid, the badge's count
    assert mr.verification is not None and mr.verification["matrix"]
    assert "Threat matrix" in labels
    assert any("matrix cells" in b.text() for b in badges if b is not None)
    assert w.results.grid.isVisibleTo(w.results) and w.results.grid.rowCount() > 1
    assert item.status == (Status.PROTECTED if mr.success else Status.NOT_PROTECTED)
    assert mr.success == (mr.result.success and mr.verification["protected"])
    # export: image, JSON report, CSV summary; no EXIF; banner offers to open the folder
    out = tmp_path / "out"
    with qtbot.waitSignal(c.exportFinished, timeout=60000) as blocker:
        assert w.export_to(out)
    summary = blocker.args[0]
    assert [p.name for p in summary.written] == ["ben.protected.png"]
    img = out / "ben.protected.png"
    report = json.loads((out / "ben.protected.json").read_text())
    assert report["source"] == "ben.jpg" and report["method"] == "hvs-jnd"
    assert report["faces"][0]["iterations"] >= 1 and "similarity" in report["faces"][0]
    assert report["settings"]["max_iterations"] == 10
    ver = report["verification"]  # the threat matrix, checked on the written file
    assert ver["axes"]["encodings"][0] == "file" and ver["matrix"]
    assert {e["encoding"] for e in ver["matrix"]} >= {"file"}
    rows = list(csv.DictReader((out / "jndguard-summary.csv").open(encoding="utf-8-sig")))
    assert rows and rows[0]["output"] == "ben.protected.png"
    with Image.open(img) as im:
        assert not im.getexif() and "exif" not in im.info
    assert w.banner.isVisible() and w.banner.action.text() == "Open folder"
    assert item.exported == img


@pytest.mark.models
def test_cancel_stops_within_a_step_and_leaves_the_photo(
    qtbot, make_window, wait_loaded, set_iterations, real_models, celeb_photo
):
    w = make_window()
    w.controller.use_dlib = False
    w.add_paths([celeb_photo])
    wait_loaded(w, 1)
    set_iterations(w, 2000)
    c = w.controller
    with qtbot.waitSignal(c.runStarted, timeout=5000):
        assert c.protect(None)
    qtbot.waitUntil(
        lambda: (
            c.run is not None
            and c.run.step is not None
            and c.run.step.stage == "attack"
            and c.run.step.iteration >= 2
        ),
        timeout=120000,
    )
    t0 = time.perf_counter()
    with qtbot.waitSignal(c.runFinished, timeout=30000) as blocker:
        qtbot.keyClick(w, Qt.Key.Key_Escape)
    stopped_after = time.perf_counter() - t0
    run = blocker.args[0]
    assert run.cancelling
    assert stopped_after < 5.0, f"cancel took {stopped_after:.1f} s"
    item = c.current
    assert item.status == Status.WAITING and not item.results and item.progress is None
    assert not w.views.frames["protected"].pane.has_image()
    assert "Cancelled" in w.progress.title.text()
    assert w.act_protect.isEnabled() and not w.act_cancel.isEnabled()


def test_fake_run_preview_compare_and_export(
    qtbot, make_window, wait_loaded, sample_photo, fake_pipeline, tmp_path
):
    """Compare two methods on one photo (pipeline stubbed: this is about the window)."""
    w = make_window(steps_fn=fake_pipeline)
    w.add_paths([sample_photo])
    wait_loaded(w, 1)
    c = w.controller
    previews = []
    c.livePreview.connect(lambda i, s: previews.append(s))
    w.compare.set_methods(("hvs-jnd", "pgd"))
    with qtbot.waitSignal(c.runFinished, timeout=60000):
        w.compare_selected(("hvs-jnd", "pgd"))
    assert [s.method for s in fake_pipeline.received] == ["hvs-jnd", "pgd"]
    assert previews and previews[0].preview_rgb is not None
    item = c.current
    assert list(item.results) == ["hvs-jnd", "pgd"]
    qtbot.waitUntil(lambda: w.results.table.columnCount() == 2, timeout=5000)
    assert [w.results.table.horizontalHeaderItem(i).text() for i in range(2)] == ["HVS-JND", "PGD"]
    qtbot.waitUntil(lambda: w.compare.frames["perturbation_b"].pane.has_image(), timeout=10000)
    assert w.compare.frames["protected_a"].pane.has_image()
    # which result the views show
    w.results.method.setCurrentIndex(w.results.method.findData("hvs-jnd"))
    assert c.shown_result().method == "hvs-jnd"
    # the export writes the shown result with its report
    out = tmp_path / "exported"
    with qtbot.waitSignal(c.exportFinished, timeout=30000):
        w.export_to(out)
    report = json.loads((out / "portrait.protected.json").read_text())
    assert report["method"] == "hvs-jnd"
    assert (out / "jndguard-summary.csv").is_file()


def test_failed_run_marks_photo_and_continues(qtbot, make_window, wait_loaded, sample_photo, small_photo):
    def broken(image, settings, recogniser=None, stop=None):
        if image.width == 96:
            raise RuntimeError("boom on the small one")
        yield from ()
        raise RuntimeError("second failure")

    w = make_window(steps_fn=broken)
    w.add_paths([small_photo, sample_photo])
    wait_loaded(w, 2)
    with qtbot.waitSignal(w.controller.runFinished, timeout=30000) as blocker:
        w.controller.protect(None)
    assert blocker.args[0].failed == 2
    assert all(it.status == Status.FAILED for it in w.controller.queue.items())
    assert any("boom" in it.reason for it in w.controller.queue.items())
    assert w.banner.isVisible()
