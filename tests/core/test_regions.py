"""Region-based protection (docs/design.md §11): J of the face regions, the whole-photo figures
from the changed windows and the quick matrix of a face's window equal their whole-photo
computations, without the whole photo in float."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from jndguard.core.imageio import load_image, to_tensor
from jndguard.core.jnd import jnd_map
from jndguard.core.jnd.regions import RegionMaps, jnd_regions
from jndguard.core.metrics import change_windows, photo_report_windows, quality_report

KODAK = "tests/data/kodak"


@pytest.mark.parametrize(("model", "color"), [("yang", None), ("chou", None), ("yang", "ycbcr")])
def test_jnd_regions_are_the_whole_maps_regions(model, color):
    pixels = load_image(f"{KODAK}/kodim04.png").pixels  # 512 × 768
    whole = jnd_map(to_tensor(pixels), model, color, 1.3)
    rects = [(0, 0, 50, 40), (100, 200, 300, 512), (10, 300, 512, 768)]  # corners, edges, inside
    maps, mean = jnd_regions(pixels, rects, model, color, 1.3, tile_pixels=1 << 15)  # many tiles
    for (x0, y0, x1, y1), m in zip(rects, maps):
        assert torch.equal(m, whole[:, :, y0:y1, x0:x1])
    assert mean == pytest.approx(float(whole.double().mean() * 255), rel=1e-6)
    levels = RegionMaps(768, 512, rects, maps)
    part = levels[190:210, 95:105]  # straddles the second rectangle's corner
    assert np.isnan(part[:10]).all() and np.isnan(part[:, :5]).all()
    assert np.allclose(part[10:, 5:], (whole[0, :, 200:210, 100:105] * 255).permute(1, 2, 0).numpy())
    assert np.asarray(levels).shape == (768, 512, 3)


def test_photo_figures_from_two_changed_windows_equal_the_whole_photo():
    x = to_tensor(load_image(f"{KODAK}/kodim12.png").pixels)
    g = torch.Generator().manual_seed(3)
    y = x.clone()
    changed = [(40, 50, 160, 170), (400, 300, 520, 420), (150, 160, 200, 200)]  # two overlap
    for x0, y0, x1, y1 in changed:
        noise = torch.randint(-4, 5, (1, 3, y1 - y0, x1 - x0), generator=g).float() / 255
        y[:, :, y0:y1, x0:x1] = (x[:, :, y0:y1, x0:x1] + noise).clamp(0, 1)
    jnd = jnd_map(x)
    h, w = x.shape[-2:]
    windows = change_windows(changed, h, w)
    assert len(windows) == 2  # the overlapping ones merged
    pieces = [(a, b, x[..., b:d, a:c], y[..., b:d, a:c], jnd[..., b:d, a:c]) for a, b, c, d in windows]
    fast = photo_report_windows(pieces, h, w, float(jnd.mean() * 255))
    whole = quality_report(x, y, jnd=jnd)
    assert fast["psnr"] == pytest.approx(whole["psnr"], abs=1e-4)
    assert fast["ssim"] == pytest.approx(whole["ssim"], abs=1e-6)
    assert fast["changed"]["bbox"] == whole["changed"]["bbox"]
    assert fast["changed"]["pixel_count"] == whole["changed"]["pixel_count"]
    assert fast["max_abs_change"] == whole["max_abs_change"]
    for key in ("over_count", "over_fraction", "max_excess", "mean_jnd"):
        assert fast["jnd"][key] == pytest.approx(whole["jnd"][key], rel=1e-5), key
    for c in ("r", "g", "b", "mean"):
        assert fast["energy"][c] == pytest.approx(whole["energy"][c], rel=1e-5)


def test_window_matrix_equals_the_whole_photos_matrix(recogniser, celeb_dir):
    """A face in a 2400 × 1600 photo (detected on a downscaled copy; the 720 px site resize
    applies): every quick-matrix cell judged on the face's window gives the whole photo's
    similarity."""
    from jndguard.core.faces import detect_faces
    from jndguard.core.threat.matrix import QUICK, ThreatMatrix
    from jndguard.core.threat.window import WindowMatrix, face_window

    portrait = Image.open(sorted((celeb_dir / "val" / "madonna").glob("*.jpg"))[0]).convert("RGB")
    scene = Image.open(f"{KODAK}/kodim01.png").convert("RGB").resize((2400, 1600), Image.BICUBIC)
    scene.paste(portrait, (1013, 611))
    clean = np.asarray(scene).copy()
    faces = detect_faces(clean, "cpu")
    assert len(faces) == 1
    protected = clean.copy()
    x0, y0, x1, y1 = (int(v) for v in faces[0].box)
    rng = np.random.default_rng(0)
    noise = rng.integers(-8, 9, (y1 - y0, x1 - x0, 3))
    protected[y0:y1, x0:x1] = np.clip(clean[y0:y1, x0:x1] + noise, 0, 255).astype(np.uint8)
    whole = ThreatMatrix(clean, faces, [recogniser], QUICK).evaluate(protected)
    window = face_window(faces[0].box, 2400, 1600, QUICK.encodings)
    assert (window[2] - window[0]) * (window[3] - window[1]) < 0.2 * 2400 * 1600
    wm = WindowMatrix(clean, window, faces, [recogniser], QUICK)
    rep = wm.evaluate(protected[window[1]:window[3], window[0]:window[2]])
    a = {(e.crop, e.encoding, e.reference): e.similarity for e in whole.entries}
    b = {(e.crop, e.encoding, e.reference): e.similarity for e in rep.entries if e.face == wm.local_index(0)}
    assert a.keys() == b.keys() and len(a) == 12
    assert all(v is not None for v in a.values())
    for key in a:
        assert b[key] == pytest.approx(a[key], abs=2e-3), key
