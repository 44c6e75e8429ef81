"""Post mode on a real face: one perturbation that moves the tight crop, a 20 % margin crop and
a JPEG q75 re-encode far from the clean face (judged independently of the optimiser's own
stopping check), inside the JND budget and the perceptual guard. Whether that is *protection*
(every threat-matrix cell past τ) is measured by ``jndguard bench post``, not claimed here: with
the guard, 60 iterations are not enough on this face (README "Post mode")."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from jndguard.core.attacks.perceptual_guard import PerceptualGuard
from jndguard.core.faces import crop_resize, detect_faces, expand_box
from jndguard.core.imageio import load_image
from jndguard.core.pipeline import ProtectionSettings, match_faces, protect
from jndguard.core.settings import HvsMode


def _jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def test_fast_is_the_old_name_of_lossless_and_post_is_the_default():
    assert ProtectionSettings().mode is HvsMode.POST
    assert ProtectionSettings(mode="fast").mode is HvsMode.LOSSLESS
    assert ProtectionSettings.from_flat({"mode": "fast"}).mode is HvsMode.LOSSLESS


@pytest.mark.parametrize("white_box", [()])  # FaceNet alone keeps this test short
def test_post_mode_protects_margin_crops_and_jpeg(celeb_dir, recogniser, white_box):
    photo = load_image(sorted((celeb_dir / "val" / "madonna").glob("*.jpg"))[0])
    torch.manual_seed(0)
    res = protect(photo, ProtectionSettings(white_box=white_box, max_iterations=60), recogniser)
    assert res.faces, "no face in the test photo"
    face = res.faces[0]
    f = res.per_face[0]
    assert f["quick_matrix"]["cells"] > 0 and "quick_matrix" in f
    x = photo.tensor()
    checked = []
    for name, pixels in (("file", res.protected), ("jpeg75", _jpeg(res.protected, 75))):
        found = match_faces([face], detect_faces(pixels, "cpu", min_face_size=12))[0]
        assert found is not None, f"face not re-detected on the {name} version"
        z = torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float().div(255)
        for margin in (0.0, 0.2):
            clean = recogniser(crop_resize(x, [expand_box(face.box, margin)]))[0]
            prot = recogniser(crop_resize(z, [expand_box(found.box, margin)]))[0]
            sim = float(prot @ clean)
            checked.append((name, margin, round(sim, 3)))
            # the clean face has cosine 1 with itself through the same crop; JPEG q75 takes back
            # part of the change (measured here: 0.60 on the tight crop)
            bound = 0.55 if name == "file" else 0.75
            assert sim < bound, f"still near the clean face on {name}, margin {margin}: cos {sim:.3f}"
    assert len(checked) == 4
    assert f["psnr"] > 37
    assert f["quality"]["jnd"]["over_fraction"] == 0  # never past J, in whole 8-bit levels
    # the perceptual guard holds on the saved photo: no coherent colour or brightness shift
    x0, y0, x1, y1 = f["region"]
    z = torch.from_numpy(res.protected.copy()).permute(2, 0, 1)[None].float().div(255)
    state = PerceptualGuard().prepare(torch.ones(1, 3, y1 - y0, x1 - x0), max(face.width, face.height))
    seen = state.measure(z[..., y0:y1, x0:x1] - x[..., y0:y1, x0:x1])
    assert seen["low_luma"] < 1.6 and seen["low_chroma"] < 0.9, seen


def test_post_mode_impersonation_pulls_every_view_toward_the_target(celeb_dir, recogniser):
    """Impersonation in post mode: after a short run the face's paired views are closer to the
    target (Madonna's centroid) than the clean face was, on the file and after JPEG q75."""
    from jndguard.core.models.gallery import celebrity_gallery

    photo = load_image(sorted((celeb_dir / "val" / "ben_afflek").glob("*.jpg"))[0])
    res = protect(photo, ProtectionSettings(goal="impersonate", target="madonna", white_box=(),
                                            max_iterations=12), recogniser)
    names, cents = celebrity_gallery(recogniser)
    target = cents[names.index("madonna")]
    face = res.faces[0]
    x = photo.tensor()
    before = float(recogniser(crop_resize(x, [expand_box(face.box, 0.2)]))[0] @ target)
    for pixels in (res.protected, _jpeg(res.protected, 75)):
        z = torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float().div(255)
        after = float(recogniser(crop_resize(z, [expand_box(face.box, 0.2)]))[0] @ target)
        assert after > before + 0.1, (before, after)
    assert res.per_face[0]["quick_matrix"]["cells"] > 0


def test_bench_post_mean_gap_is_the_relative_distance_past_the_line():
    """``bench post``'s continuous figure: mean over a face's cells of (s − τ)/(1 − τ), cells
    without a face left out, other faces and recognisers not mixed in."""
    from types import SimpleNamespace as Cell

    from jndguard.benchmarks.post import mean_gap

    cells = [Cell(face=0, recogniser="a", similarity=0.6, threshold=0.2),   # +0.5
             Cell(face=0, recogniser="a", similarity=0.2, threshold=0.2),   # 0
             Cell(face=0, recogniser="a", similarity=None, threshold=0.2),  # no face: left out
             Cell(face=1, recogniser="a", similarity=1.0, threshold=0.2),
             Cell(face=0, recogniser="b", similarity=0.5, threshold=0.9)]   # −4
    assert mean_gap(cells, "a") == pytest.approx(0.25)
    assert mean_gap(cells, "b") == pytest.approx(-4.0)
    assert mean_gap(cells, "c") is None
