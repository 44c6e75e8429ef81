"""`jndguard analyze`: difference maps, the |change|/J histogram, Grad-CAM on a real face."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from jndguard.core.research.analysis import (
    difference_maps,
    grad_cam,
    heatmap_overlay,
    histogram_png,
    jnd_ratio_histogram,
)


def test_difference_maps_normalised_per_channel():
    a = np.zeros((4, 5, 3), np.uint8)
    b = a.copy()
    b[0, 0] = (4, 0, 1)
    b[1, 1, 0] = 2
    maps, s = difference_maps(a, b)
    assert maps.shape == (3, 4, 5) and maps.dtype == np.uint8
    assert maps[0, 0, 0] == 255 and maps[0, 1, 1] == 128  # 2/4 of the red maximum
    assert maps[1].max() == 0 and maps[2, 0, 0] == 255
    assert s["changed_ratio"] == pytest.approx(2 / 20)
    assert s["changed_ratio_R"] == pytest.approx(2 / 20) and s["max_abs_R"] == 4
    with pytest.raises(ValueError):
        difference_maps(a, b[:2])


def test_jnd_ratio_histogram():
    a = np.full((2, 2, 3), 100, np.uint8)
    b = a.copy()
    b[0, 0, 0] = 101  # ratio 0.5
    b[0, 1, 1] = 104  # ratio 2.0
    b[1, 1, 2] = 200  # ratio 50 → overflow bin
    h = jnd_ratio_histogram(a, b, np.full((2, 2, 3), 2.0))
    assert h["changed"] == 3 and sum(h["counts"]) == 3
    assert h["counts"][5] == 1 and h["counts"][20] == 1 and h["counts"][-1] == 1
    assert h["over_one"] == pytest.approx(2 / 3)
    assert len(h["edges"]) == len(h["counts"]) + 1 and h["edges"][-1] == float("inf")
    assert histogram_png(h).shape == (320, 640, 3)


def test_grad_cam_on_real_face(recogniser, celeb_faces, one_torch_thread):
    from jndguard.core.faces import crop_resize
    from jndguard.core.imageio import load_image

    face = next(f for f in celeb_faces if f.split == "val")
    s = recogniser.info.input_size
    crop = crop_resize(load_image(face.path).tensor(), [face.box], size=s)
    with torch.no_grad():
        ref = recogniser(crop)[0]
    noisy = (crop + 0.05 * torch.randn(crop.shape, generator=torch.Generator().manual_seed(0))
             ).clamp(0, 1)
    cam = grad_cam(recogniser, torch.cat([crop, noisy]), ref)
    assert cam.shape == (2, s, s)
    assert (cam >= 0).all() and (cam <= 1).all()
    assert cam[0].max() == pytest.approx(1.0)
    assert all(p.grad is None for p in recogniser.parameters())
    over = heatmap_overlay((crop[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8), cam[0].numpy())
    assert over.shape == (s, s, 3) and over.dtype == np.uint8


def test_analyze_writes_files_without_recogniser(tmp_path):
    from PIL import Image

    from jndguard.core.research.analysis import analyze

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-2, 3, a.shape), 0, 255).astype(np.uint8)
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(b).save(tmp_path / "b.png")
    s = analyze(tmp_path / "a.png", tmp_path / "b.png", tmp_path / "out")
    for name in ("diff_R.png", "diff_G.png", "diff_B.png", "diff_rgb.png", "jnd_ratio_hist.png",
                 "jnd_ratio_hist.csv", "summary.json"):
        assert (tmp_path / "out" / name).is_file()
    assert 0.5 < s["changed_ratio"] <= 1
    assert Image.open(tmp_path / "out" / "diff_rgb.png").size == (3 * 48, 40)
    lines = (tmp_path / "out" / "jnd_ratio_hist.csv").read_text().splitlines()
    assert lines[0] == "low,high,count" and lines[-1].startswith("3,inf,")


# --------------------------------------------------------------------------- DMV-JND (Jin et al. 2022)


def test_dmvjnd_losses():
    from jndguard.core.research.dmvjnd import magnitude_loss, spatial_loss

    e = torch.full((1, 3, 4, 4), 0.2, requires_grad=True)
    assert magnitude_loss(e, 0.2).item() == pytest.approx(0.0, abs=1e-6)  # N0 = N: minimum
    assert magnitude_loss(e, 0.4).item() > 0
    (g,) = torch.autograd.grad(magnitude_loss(e, 0.4), e)
    assert (g < 0).all()  # pushes |e| up towards N
    cam = torch.zeros(4, 4)
    cam[0, 0] = 5.0  # the recogniser looks at one pixel
    (g3,) = torch.autograd.grad(spatial_loss(e, cam), e)
    assert g3[0, :, 0, 0].mean() > g3[0, :, 3, 3].mean() > 0  # noise costs most where it looks


def test_dmvjnd_identity_decision_and_cam_contrast():
    import torch.nn.functional as F

    from jndguard.core.research.dmvjnd import cam_contrast, identity_decision

    ref = F.normalize(torch.tensor([1.0, 0.0, 0.0]), dim=0)
    other = F.normalize(torch.tensor([[0.0, 1.0, 0.0]]), dim=1)
    near_ref = F.normalize(torch.tensor([1.0, 0.6, 0.0]), dim=0)  # cos 0.857 to ref
    near_other = F.normalize(torch.tensor([0.6, 1.0, 0.0]), dim=0)  # cos 0.514 to ref
    assert identity_decision(near_ref, ref, other, 0.3) == (True, pytest.approx(0.857, abs=1e-3))
    assert not identity_decision(near_ref, ref, other, 0.3, margin=0.6)[0]
    assert identity_decision(near_other, ref, None, 0.3)[0]  # verification alone: kept
    assert not identity_decision(near_other, ref, other, 0.3)[0]  # but closer to someone else
    cam = torch.linspace(0, 1, 9 * 9).reshape(9, 9)
    e = (1.0 - cam).expand(1, 3, 9, 9)  # large where the CAM is low
    assert cam_contrast(e, cam) > 3
    assert cam_contrast(torch.ones(1, 3, 9, 9), cam) == pytest.approx(1.0)


def test_place_noise_maps_crop_noise_onto_the_box_only():
    from jndguard.core.research.dmvjnd import place_noise

    pixels = np.full((40, 50, 3), 100, np.uint8)
    noise = torch.full((1, 3, 16, 16), 10 / 255)
    out = place_noise(pixels, (10.2, 5.0, 30.0, 25.4), noise)
    assert out.dtype == np.uint8 and out.shape == pixels.shape
    assert (out[5:25, 10:30] == 110).all()  # the box (rounded) moved by +10 levels
    changed = out != 100
    assert changed.sum() == 20 * 20 * 3  # nothing outside it
    edge = place_noise(pixels, (-5.0, -5.0, 10.0, 10.0), torch.full((1, 3, 8, 8), -1.0))
    assert (edge[:10, :10] == 0).all() and (edge[10:, :] == 100).all()  # clipped at the border


def test_dmvjnd_markdown_table():
    from jndguard.commands.dmvjnd import to_markdown
    from jndguard.core.research.dmvjnd import summarise

    rows = [
        {"photo": "/x/a.jpg", "psnr": 10.0, "hvs_psnr": 30.0, "identity_kept": True,
         "identity_kept_photo": False, "wgn_kept": False, "homogeneous": True, "cam_contrast": 1.2},
        {"photo": "/x/b.jpg", "psnr": 12.0, "hvs_psnr": 28.0, "identity_kept": True,
         "identity_kept_photo": True, "wgn_kept": True, "homogeneous": True, "cam_contrast": 1.0},
        {"photo": "/x/c.jpg", "error": "no face found"},
    ]
    s = summarise(rows)
    assert s["faces"] == 2 and s["rca"] == 1.0 and s["rca_photo"] == 0.5 and s["rca_wgn"] == 0.5
    assert s["psnr"] == 11.0 and s["hvs_psnr"] == 29.0 and s["cam_contrast"] == pytest.approx(1.1)
    md = to_markdown({**s, "results": rows}).splitlines()
    assert md[2] == "| a.jpg | 10.00 | 30.00 | yes | no | no | yes | 1.20 |"
    assert md[4] == "| c.jpg | no face found |||||||"
    assert md[5] == "| **mean / rate (2 faces)** | 11.00 | 29.00 | 100% | 50% | 50% | 100% | 1.10 |"


def test_dmvjnd_on_a_real_face(recogniser, celeb_faces, one_torch_thread):
    """Seed 004 on a real validation face: the identity decision is kept, the tolerated noise
    is far above the human JND (lower PSNR), and the spatial loss (Loss3) moves it towards
    where Grad-CAM is low (compared with the same run without Loss3)."""
    from jndguard.core.faces import crop_resize
    from jndguard.core.imageio import load_image
    from jndguard.core.jnd import jnd_map
    from jndguard.core.models.gallery import celebrity_gallery, gallery_for
    from jndguard.core.research.dmvjnd import dmv_jnd, identity_decision

    face = next(f for f in celeb_faces if f.split == "val")
    crop = crop_resize(load_image(face.path).tensor(), [face.box], size=recogniser.info.input_size)
    with torch.no_grad():
        ref = recogniser(crop)[0]
    names, cents = celebrity_gallery(recogniser)
    _, others = gallery_for(ref, names, cents, recogniser.threshold)
    r = dmv_jnd(recogniser, crop, others, iterations=60)
    assert r.noise.shape == crop.shape
    assert (r.distorted >= 0).all() and (r.distorted <= 1).all()
    assert torch.equal(r.distorted, r.distorted.mul(255).round().div(255))  # 8-bit crop
    with torch.no_grad():
        kept, sim = identity_decision(recogniser(r.distorted)[0], ref, others, recogniser.threshold)
    assert kept and r.identity_kept and sim == pytest.approx(r.similarity, abs=1e-5)
    hvs_psnr = 10 * math.log10(1 / float(jnd_map(crop).square().mean()))
    assert r.psnr < hvs_psnr - 5, (r.psnr, hvs_psnr)
    assert float(r.cam.std()) > 0.05  # a real Grad-CAM, not a flat map
    without = dmv_jnd(recogniser, crop, others, iterations=60, beta=0.0)
    assert r.cam_contrast > without.cam_contrast, (r.cam_contrast, without.cam_contrast)
