"""A large photo in the app: the thumbnail comes from a reduced decode before the photo is
decoded, and the JND view of a large photo is computed on a display copy."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from jndguard.gui import tasks


def test_thumbnail_first_from_a_reduced_decode(kodak_dir, tmp_path):
    img = Image.open(kodak_dir / "kodim04.png").convert("RGB")  # portrait 512×768
    big = img.resize((img.width * 4, img.height * 4), Image.BICUBIC)
    stored = big.transpose(Image.Transpose.ROTATE_90)  # stored landscape, EXIF rotates back
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "big.jpg"
    stored.save(path, "JPEG", quality=90, exif=exif.tobytes())
    events = list(tasks.load_photos([(1, path)], min_face_size=20))
    assert [type(e) for e in events] == [tasks.PhotoThumbnail, tasks.PhotoDecoded, tasks.PhotoLoaded]
    events = [events[0], events[2]]
    thumb = events[0].thumbnail
    assert max(thumb.shape[:2]) == tasks.THUMBNAIL_SIZE and thumb.shape[0] > thumb.shape[1]  # portrait
    assert events[1].faces  # detected on the decoded photo
    # the reduced decode shows the same picture as the full one
    full = tasks.imaging.thumbnail(events[1].image.pixels, tasks.THUMBNAIL_SIZE)
    assert thumb.shape == full.shape
    assert np.abs(thumb.astype(int) - full.astype(int)).mean() < 6


def test_unreadable_file_has_no_quick_thumbnail_and_fails_once(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    events = list(tasks.load_photos([(2, bad)]))
    assert len(events) == 1 and isinstance(events[0], tasks.PhotoFailed)


def test_jnd_view_of_a_large_photo_uses_a_display_copy(kodak_dir):
    pixels = np.asarray(Image.open(kodak_dir / "kodim04.png").convert("RGB").resize((2048, 3072)))
    views = tasks.render_views(1, 1, pixels, tasks.JndParams(), tasks.DisplayOptions())
    assert views.jnd_error is None
    w, h = views.jnd_size
    assert w * h <= tasks.VIEW_JND_PIXELS * 1.01 and h > w
    assert views.jnd_rgb.shape == (h, w, 3) and views.extent == (2048, 3072)  # stretched by the view
    assert views.jnd_image.width() == w and views.jnd_image.height() == h
    small = tasks.render_views(1, 1, pixels[:600, :400], tasks.JndParams(), tasks.DisplayOptions())
    assert small.jnd_size == (400, 600)  # small photos: the exact map


def test_pictures_are_native_32_bit_deep_copies():
    """Workers make the QImages: RGB32 (what a pixmap shares without converting), a deep copy
    that outlives the array, the same pixels."""
    import gc

    from PySide6.QtGui import QImage

    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    want = pixels.copy()
    img = tasks.imaging.to_qimage(pixels)
    del pixels
    gc.collect()
    _ = [np.ones((37, 53, 4), np.uint8) for _ in range(50)]  # reuse freed memory, if any
    assert img.format() == QImage.Format.Format_RGB32 and (img.width(), img.height()) == (53, 37)
    rgb = img.convertToFormat(QImage.Format.Format_RGB888)
    got = np.frombuffer(rgb.constBits(), np.uint8).reshape(37, rgb.bytesPerLine())[:, : 53 * 3]
    assert np.array_equal(got.reshape(37, 53, 3), want)


def test_a_display_copy_is_stretched_over_the_photo(qtbot):
    """The JND view of a large photo: a smaller picture covering the photo's pixel grid, so
    zoom, face boxes and the magnifier line up with the other panes."""
    from PySide6.QtCore import QRectF, QSize

    from jndguard.gui.widgets.views import ImagePane

    pane = ImagePane("jnd")
    qtbot.addWidget(pane)
    small = np.zeros((20, 10, 3), np.uint8)
    small[10:, 5:] = (200, 30, 60)  # bottom-right quarter
    pane.set_image(tasks.imaging.to_qimage(small), extent=QSize(40, 80))
    assert pane.scene().sceneRect() == QRectF(0, 0, 40, 80)
    assert pane.pixmap_item.sceneBoundingRect() == QRectF(0, 0, 40, 80)
    detail = pane.detail(QRectF(24, 44, 8, 8), 16).toImage()  # inside the bottom-right quarter
    assert detail.pixelColor(8, 8).getRgb()[:3] == (200, 30, 60)
    assert pane.detail(QRectF(4, 4, 8, 8), 16).toImage().pixelColor(8, 8).getRgb()[:3] == (0, 0, 0)


def test_a_working_scale_preview_covers_its_face_region(qtbot):
    """The live preview of a face optimised at a working scale is smaller than its region: it
    is stretched over the region's pixels of the photo."""
    from PySide6.QtCore import QRectF

    from jndguard.gui.widgets.views import ImagePane

    pane = ImagePane("perturbation")
    qtbot.addWidget(pane)
    pane.set_image(tasks.imaging.to_qimage(np.zeros((80, 40, 3), np.uint8)))
    pane.set_overlay(tasks.imaging.to_qimage(np.full((10, 5, 3), 90, np.uint8)), (8, 16), 20)
    assert pane.overlay_item.sceneBoundingRect() == QRectF(8, 16, 20, 40)
    pane.set_overlay(tasks.imaging.to_qimage(np.full((10, 5, 3), 90, np.uint8)), (8, 16))
    assert pane.overlay_item.sceneBoundingRect() == QRectF(8, 16, 5, 10)


def test_the_app_detects_faces_in_the_helper_process(kodak_dir, tmp_path, qapp):
    """The window's detection runs in the helper process (MTCNN's Python stages would hold
    the GUI process's GIL for seconds on a 12 MP photo): same faces as detecting here."""
    from jndguard.core.imageio import load_image
    from jndguard.gui import controller, helper
    from jndguard.gui.settings import SettingsStore

    c = controller.Controller(SettingsStore.at(tmp_path / "s.ini"))
    assert c.detect_fn is controller.detect_in_helper
    path = kodak_dir / "kodim04.png"
    image = load_image(path)
    try:
        there = helper.detect_file(path, 20, "cpu")  # (no fall-back to this process here)
        proc = helper.helper()._proc
        assert proc is not None and proc.is_alive() and proc.pid != os.getpid()
    finally:
        helper.shutdown()
    here = tasks.detect_here(path, image, 20, "cpu")
    assert len(there) == len(here) >= 1
    for a, b in zip(there, here):
        np.testing.assert_allclose(a.box, b.box, atol=1e-3)


def test_helper_messages_carry_arrays_out_of_band():
    """What crosses the helper's pipe: arrays travel as raw bytes read straight into place
    (a 12 MP result never sits in a pickle the GUI process must copy with the GIL held)."""
    import multiprocessing
    import threading

    from jndguard.gui.helper import recv_message, send_message

    a, b = multiprocessing.Pipe()
    jnd = np.random.default_rng(1).random((300, 200, 3), dtype=np.float32)
    message = (7, "result", {"jnd": jnd, "strided": jnd[:, ::2, 0], "empty": np.zeros(0), "text": "ok"})
    t = threading.Thread(target=send_message, args=(a, message))  # (larger than the pipe's buffer)
    t.start()
    rid, tag, got = recv_message(b)
    t.join()
    assert (rid, tag, got["text"]) == (7, "result", "ok")
    assert np.array_equal(got["jnd"], jnd) and got["jnd"].flags.writeable
    assert np.array_equal(got["strided"], jnd[:, ::2, 0]) and got["empty"].size == 0


def test_only_a_few_photos_keep_their_picture_and_a_selected_one_gets_it_back(
    qtbot, make_window, wait_loaded, small_photo
):
    """A photo's QImage (48 MB at 12 MP) is kept for the shown photo and the last few; a
    photo selected without one gets it from a worker, and its views are drawn again."""
    import shutil

    w = make_window()
    c = w.controller
    paths = [small_photo]
    for k in range(4):
        paths.append(small_photo.with_name(f"copy{k}.png"))
        shutil.copy(small_photo, paths[-1])
    w.add_paths(paths)
    wait_loaded(w, len(paths))
    items = c.queue.items()
    held = [it for it in items if it.picture is not None]
    assert len(held) <= c.PICTURES_KEPT and c.current.picture is not None
    bare = next(it for it in items if it.picture is None)
    c.select(bare.id)
    qtbot.waitUntil(lambda: bare.picture is not None, timeout=10000)
    qtbot.waitUntil(lambda: w.views.frames["original"].pane.has_image(), timeout=10000)
    assert sum(it.picture is not None for it in items) <= c.PICTURES_KEPT
    qtbot.waitUntil(lambda: w.views.frames["jnd"].pane.has_image(), timeout=20000)
