"""Post mode at a working scale (jndguard.core.attacks.post_scale): the lift back to full
resolution, the geometry of the working copy, and a protection run through it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from jndguard.core.attacks.post_eot import FaceGeometry
from jndguard.core.attacks.post_scale import WorkScale, work_scale


def _work(h=90, w=120, change=(20, 10, 100, 80), budget_levels=255, seed=0, max_pixels=2500):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(20, 236, (h, w, 3), dtype=np.uint8)
    jnd = torch.full((1, 3, h, w), budget_levels / 255.0)
    return pixels, WorkScale.build(pixels, (0, 0, w, h), change, jnd, 1.0, max_pixels=max_pixels)


def test_work_scale_keeps_small_regions_and_brings_large_ones_to_the_cap():
    assert work_scale((0, 0, 100, 100), 10_000) == 1.0
    s = work_scale((0, 0, 400, 300), 10_000)
    assert s < 1 and (400 * s) * (300 * s) == pytest.approx(10_000)


def test_lift_is_torch_bilinear_upsampling_of_the_working_perturbation():
    pixels, ws = _work()
    assert ws.small.shape[0] * ws.small.shape[1] <= 2600  # the cap, up to rounding
    a0, b0, a1, b1 = ws.change_small
    rng = np.random.default_rng(1)
    delta = torch.from_numpy(rng.integers(-6, 7, (3, b1 - b0, a1 - a0)).astype(np.float32))
    small = torch.from_numpy(ws.small).permute(2, 0, 1).float()
    region = ((small[:, b0:b1, a0:a1] + delta).clamp(0, 255) / 255)[None]
    got = ws.lift(region, rows=7)  # several row blocks
    d = torch.zeros_like(small)
    d[:, b0:b1, a0:a1] = region[0] * 255 - small[:, b0:b1, a0:a1]
    up = F.interpolate(d[None], size=pixels.shape[:2], mode="bilinear", align_corners=False)[0]
    x0, y0, x1, y1 = ws.change
    ref = (torch.from_numpy(pixels[y0:y1, x0:x1]).permute(2, 0, 1).float() + up[:, y0:y1, x0:x1])
    ref = ref.round().clamp(0, 255).permute(1, 2, 0).numpy().astype(np.uint8)
    assert got.shape == ref.shape
    diff = np.abs(got.astype(int) - ref)
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999  # ties of the rounding only


def test_lift_clips_to_the_full_resolution_budget_in_whole_levels():
    pixels, ws = _work(budget_levels=2)
    a0, b0, a1, b1 = ws.change_small
    small = torch.from_numpy(ws.small).permute(2, 0, 1).float()
    region = ((small[:, b0:b1, a0:a1] + 10).clamp(0, 255) / 255)[None]
    x0, y0, x1, y1 = ws.change
    d = ws.lift(region).astype(int) - pixels[y0:y1, x0:x1]
    assert d.max() == 2 and d.min() >= 0  # ⌊budget·J⌋ = 2 levels, whole levels


def test_lift_of_the_clean_working_copy_is_the_clean_photo():
    pixels, ws = _work()
    a0, b0, a1, b1 = ws.change_small
    region = torch.from_numpy(ws.small[b0:b1, a0:a1]).permute(2, 0, 1).float()[None] / 255
    x0, y0, x1, y1 = ws.change
    assert np.array_equal(ws.lift(region), pixels[y0:y1, x0:x1])


def test_scaled_geometry_maps_boxes_and_pixel_centres():
    g = FaceGeometry((10.0, 20.0, 50.0, 80.0), np.array([[19.5, 39.5]] * 5), 100, 100,
                     np.array([[9.5, 9.5]] * 5), (12.0, 22.0, 48.0, 78.0))
    s = g.scaled(0.5, 0.25, 50, 25)
    assert s.box == (5.0, 5.0, 25.0, 20.0) and s.hog_box == (6.0, 5.5, 24.0, 19.5)
    assert np.allclose(s.landmarks[0], [9.5, 9.5]) and np.allclose(s.dlib_points[0], [4.5, 2.0])
    assert (s.width, s.height) == (50, 25)


def test_post_mode_optimises_a_large_face_at_a_working_scale(celeb_dir, recogniser, monkeypatch):
    """A face whose context region is over the cap is optimised on its downscale: the report says
    the scale, only the changing region changes, never past ⌊budget·J⌋ at full resolution, and
    the lifted perturbation still moves the face away from itself on the exported pixels."""
    import jndguard.core.attacks.post_scale as post_scale
    from jndguard.core.faces import crop_resize
    from jndguard.core.imageio import load_image
    from jndguard.core.pipeline import ProtectionSettings, protect

    monkeypatch.setattr(post_scale, "WORK_MAX_PIXELS", 6000)
    photo = load_image(sorted((celeb_dir / "val" / "madonna").glob("*.jpg"))[0])
    res = protect(photo, ProtectionSettings(white_box=(), max_iterations=12), recogniser)
    f = res.per_face[0]
    assert 0.3 < f["work_scale"] < 0.9
    assert any("of full resolution" in n for n in res.notes)  # the user is told
    x0, y0, x1, y1 = f["region"]
    d = res.protected.astype(int) - photo.pixels
    outside = np.ones(d.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert not d[outside].any() and d[~outside].any()
    assert f["quality"]["jnd"]["over_fraction"] == 0
    face = res.faces[0]
    x, z = photo.tensor(), torch.from_numpy(res.protected.copy()).permute(2, 0, 1)[None].float() / 255
    sim = float(recogniser(crop_resize(z, [face.box]))[0] @ recogniser(crop_resize(x, [face.box]))[0])
    assert sim < 0.9, sim  # the clean face through the same crop: 1.0
