"""The Analysis tab: empty state, difference maps, the |change| / J histogram and Grad-CAM of
every protected version, computed lazily off the GUI thread (in the helper process for real)."""

from __future__ import annotations

import shutil
import threading
from dataclasses import replace

import numpy as np
import pytest

from jndguard.gui.widgets.analysis import EMPTY_TEXT, NO_FACE_TEXT

pytestmark = pytest.mark.gui


def _pixels(tile) -> np.ndarray:
    """The picture a tile shows, as (H, W, 3) uint8."""
    from PySide6.QtGui import QImage

    img = tile.picture.image.convertToFormat(QImage.Format.Format_RGB888)
    h, w = img.height(), img.width()
    rows = np.frombuffer(img.constBits(), np.uint8).reshape(h, img.bytesPerLine())
    return rows[:, : 3 * w].reshape(h, w, 3).copy()  # (the converted image goes with this frame)


def _pct(v: float) -> str:
    return f"{100 * v:.1f}\u00a0%"  # no break before the % sign


def _over_j_pipeline(fake):
    """The fake pipeline with J = 2 levels, so its ±3-level changes are partly over J."""

    def steps(image, settings, recogniser=None, stop=None):
        result = yield from fake(image, settings, recogniser, stop)
        return replace(result, jnd=np.full_like(result.jnd, 2.0))

    return steps


def _protect_twice(qtbot, w, item_id):
    """Two methods, two seeds: two different protected versions of one photo."""
    c = w.controller
    s = c.settings
    both = [replace(s, method="hvs-jnd", seed=1), replace(s, method="pgd", seed=2)]
    with qtbot.waitSignal(c.runFinished, timeout=60000):
        assert c.protect([item_id], both)
    item = c.current
    assert list(item.results) == ["hvs-jnd", "pgd"]
    return item


def _expected_region(item, mr, face_index=0):
    from jndguard.core.pipeline import face_region
    from jndguard.core.research.analysis import difference_maps, jnd_ratio_histogram

    r = mr.result
    h, w = item.image.pixels.shape[:2]
    x0, y0, x1, y1 = face_region(r.faces[face_index], r.settings.margin, w, h)
    o, z, j = (a[y0:y1, x0:x1] for a in (item.image.pixels, r.protected, r.jnd))
    maps, stats = difference_maps(o, z)
    return (x0, y0, x1, y1), maps, stats, jnd_ratio_histogram(o, z, j)


def _analysis_drawn(w, n_cams):
    a = w.analysis
    assert not a.showing_empty
    assert all(t.has_image() for t in a.diff_tiles.values())
    assert a.hist.hist is not None
    assert len(a.cam_tiles) == n_cams and all(t.has_image() for t in a.cam_tiles)


def test_analysis_tab_is_empty_until_a_photo_with_faces_is_protected(
    qtbot, make_window, wait_loaded, small_photo, fake_pipeline
):
    w = make_window(steps_fn=fake_pipeline)
    assert [w.tabs.tabText(i) for i in range(w.tabs.count())] == ["Views", "Compare methods", "Analysis"]
    w.tabs.setCurrentWidget(w.analysis)
    a = w.analysis
    assert a.showing_empty and a.empty.text() == EMPTY_TEXT
    w.add_paths([small_photo])  # no face in it
    wait_loaded(w, 1)
    qtbot.waitUntil(lambda: "not protected yet" in a.header.text(), timeout=5000)
    assert a.showing_empty and a.empty.text() == EMPTY_TEXT
    with qtbot.waitSignal(w.controller.runFinished, timeout=30000):
        w.controller.protect(None)
    qtbot.waitUntil(lambda: a.empty.text() == NO_FACE_TEXT, timeout=5000)
    assert a.showing_empty and not a.needs_data


@pytest.mark.models
def test_analysis_tab_shows_grad_cam_difference_maps_and_histogram(
    qtbot, make_window, wait_loaded, sample_photo, fake_pipeline, recogniser
):
    from jndguard.core.research.analysis import face_grad_cams

    calls: list[tuple[int, bool]] = []

    def cam_fn(original, protected, box, model, device, stop=None):
        calls.append((len(protected), threading.current_thread() is threading.main_thread()))
        return face_grad_cams(recogniser, original, protected, box)

    w = make_window(steps_fn=_over_j_pipeline(fake_pipeline))
    c = w.controller
    c.grad_cam_fn = cam_fn
    w.add_paths([sample_photo])
    wait_loaded(w, 1)
    item = _protect_twice(qtbot, w, c.current.id)
    a = w.analysis
    qtbot.wait(200)
    assert not calls and not a.diff_tiles["R"].has_image()  # lazy: the tab is not shown yet

    w.tabs.setCurrentWidget(a)
    qtbot.waitUntil(lambda: _analysis_drawn(w, 3), timeout=60000)
    assert calls == [(2, False)]  # one Grad-CAM request for both versions, off the GUI thread
    assert not a.face.isVisible()  # one face: no selector

    # difference maps and histogram of the shown result (the latest: PGD)
    shown = c.shown_result(item)
    assert shown.method == "pgd" and "PGD" in a.header.text()
    region, maps, stats, hist = _expected_region(item, shown)
    assert 0.5 < stats["changed_ratio"] < 1.0
    for i, ch in enumerate("RGB"):
        got = _pixels(a.diff_tiles[ch])
        assert got.shape == (region[3] - region[1], region[2] - region[0], 3)
        assert np.array_equal(got[..., 0], maps[i]) and got.max() == 255
        assert a.diff_tiles[ch].caption.text().startswith(_pct(stats[f"changed_ratio_{ch}"]))
    text = a.diff_text.text()
    assert f"Changed pixels: <b>{_pct(stats['changed_ratio'])}</b>" in text
    for ch in "RGB":
        assert f"{ch} {_pct(stats[f'changed_ratio_{ch}'])}" in text
    photo_ratio = (item.image.pixels != shown.result.protected).any(axis=2).mean()
    assert f"{_pct(photo_ratio)} of the whole photo" in text
    assert a.hist.hist["counts"] == hist["counts"] and a.hist.hist["changed"] == hist["changed"]
    assert 0.2 < hist["over_one"] < 0.5  # |Δ| = 3 > J = 2
    assert f"<b>{_pct(hist['over_one'])}</b> of them change by more than J" in a.hist_text.text()
    assert sum(a.hist.shares()) == pytest.approx(100.0)

    # Grad-CAM: the clean face and both protected versions, side by side
    assert [t.title.text() for t in a.cam_tiles] == ["<b>Clean</b>", "<b>HVS-JND</b>", "<b>PGD</b>"]
    box = shown.result.faces[0].box
    want = face_grad_cams(
        recogniser, item.image.pixels, [mr.result.protected for mr in item.results.values()], box
    )
    for k, tile in enumerate(a.cam_tiles):  # (the helper gets the face's window, not the photo)
        assert np.abs(_pixels(tile).astype(int) - want["overlays"][k]).max() <= 2
    assert not np.array_equal(want["overlays"][0], want["overlays"][2])
    assert want["cams"][0].max() == pytest.approx(1.0)  # the clean face has a map, not zeros
    for k in (1, 2):
        caption = a.cam_tiles[k].caption.text()
        assert caption.startswith("similarity ")
        assert float(caption.split()[1]) == pytest.approx(want["similarities"][k], abs=1.5e-3)
        assert ("empty map" in caption) == (want["cams"][k].max() == 0)
    assert f"τ = {recogniser.threshold:.3f}" in a.cam_note.text()

    # cached: leaving and coming back, or showing another result, computes no new Grad-CAM
    w.tabs.setCurrentWidget(w.views)
    w.tabs.setCurrentWidget(a)
    w.results.method.setCurrentIndex(w.results.method.findData("hvs-jnd"))
    qtbot.waitUntil(lambda: "HVS-JND" in a.header.text() and _analysis_drawn(w, 3), timeout=30000)
    _, _, stats_a, _ = _expected_region(item, item.results["hvs-jnd"])
    qtbot.waitUntil(lambda: f"<b>{_pct(stats_a['changed_ratio'])}</b>" in a.diff_text.text(), timeout=10000)
    assert len(calls) == 1


def test_face_selector_analyses_the_chosen_face(
    qtbot, make_window, wait_loaded, kodak_dir, tmp_path, fake_pipeline
):
    """Two faces: the selector switches the region (Grad-CAM stubbed: this is about the tab)."""
    photo = tmp_path / "photos" / "two-faces.png"
    photo.parent.mkdir()
    shutil.copy(kodak_dir / "kodim12.png", photo)
    boxes = []

    def cam_fn(original, protected, box, model, device, stop=None):
        boxes.append(tuple(box))
        n = 1 + len(protected)
        return {
            "overlays": np.zeros((n, 16, 16, 3), np.uint8),
            "similarities": [1.0] + [0.1] * (n - 1),
            "threshold": 0.25,
        }

    w = make_window(steps_fn=fake_pipeline)
    c = w.controller
    c.grad_cam_fn = cam_fn
    w.tabs.setCurrentWidget(w.analysis)
    w.add_paths([photo])
    wait_loaded(w, 1)
    assert c.current.n_faces == 2
    with qtbot.waitSignal(c.runFinished, timeout=60000):
        c.protect(None)
    a = w.analysis
    qtbot.waitUntil(lambda: _analysis_drawn(w, 2), timeout=30000)
    assert a.face.isVisible() and a.face.count() == 2
    faces = c.current.latest.result.faces
    first = _expected_region(c.current, c.current.latest, 0)[0]
    assert f"at {first[0]}, {first[1]})" in a.diff_text.text()
    a.face.setCurrentIndex(1)
    second = _expected_region(c.current, c.current.latest, 1)[0]
    assert second != first
    qtbot.waitUntil(lambda: f"at {second[0]}, {second[1]})" in a.diff_text.text(), timeout=30000)
    qtbot.waitUntil(lambda: _analysis_drawn(w, 2), timeout=30000)
    # each request carries its face's window of the photo, the box in window coordinates
    assert len(boxes) == 2
    for (x1, y1, x2, y2), face in zip(boxes, faces):
        assert (x2 - x1, y2 - y1) == pytest.approx((face.width, face.height))
        assert 0 <= x1 < 5 and 0 <= y1 < 5


@pytest.fixture
def real_models(model_home, monkeypatch):
    monkeypatch.setenv("JNDGUARD_HOME", str(model_home))
    yield model_home
    from jndguard.gui import helper

    helper.shutdown()


@pytest.mark.models
def test_grad_cam_runs_in_the_helper_process(
    qtbot, make_window, wait_loaded, sample_photo, fake_pipeline, recogniser, real_models
):
    """Without a stand-in, Grad-CAM runs with the helper process's recogniser."""
    from jndguard.core.research.analysis import face_grad_cams
    from jndguard.gui import helper

    w = make_window(steps_fn=fake_pipeline)
    c = w.controller
    w.add_paths([sample_photo])
    wait_loaded(w, 1)
    with qtbot.waitSignal(c.runFinished, timeout=60000):
        c.protect(None)
    w.tabs.setCurrentWidget(w.analysis)
    qtbot.waitUntil(lambda: _analysis_drawn(w, 2), timeout=180000)
    proc = helper.helper()._proc
    assert proc is not None and proc.is_alive()
    item = c.current
    want = face_grad_cams(
        recogniser, item.image.pixels, [item.latest.result.protected], item.latest.result.faces[0].box
    )
    got = _pixels(w.analysis.cam_tiles[1]).astype(int)
    assert np.abs(got - want["overlays"][1]).max() <= 2
    caption = w.analysis.cam_tiles[1].caption.text()
    assert float(caption.split()[1]) == pytest.approx(want["similarities"][1], abs=1.5e-3)
