"""Detection on real photos and the differentiable crop."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from jndguard.core.faces import crop_resize, detect_faces, expand_box
from jndguard.core.imageio import load_image


def test_kodak_faces(kodak_dir):
    n = {k: len(detect_faces(load_image(kodak_dir / f"kodim{k}.png").pixels))
         for k in ("04", "05", "10", "12", "17")}
    assert n == {"04": 1, "05": 0, "10": 0, "12": 2, "17": 1}
    faces = detect_faces(load_image(kodak_dir / "kodim14.png").pixels, min_face_size=12)
    assert len(faces) >= 5
    assert all(a.probability >= b.probability for a, b in zip(faces, faces[1:]))


def test_big_photo_is_detected_downscaled_and_mapped_back(kodak_dir):
    img = load_image(kodak_dir / "kodim04.png")
    small = detect_faces(img.pixels)[0]
    big_px = np.array(Image.fromarray(img.pixels).resize((img.width * 4, img.height * 4)))
    big = detect_faces(big_px, max_side=800)[0]
    np.testing.assert_allclose(np.array(big.box) / 4, small.box, atol=6)
    assert len(big.landmarks) == 5


def test_no_face(kodak_dir):
    assert detect_faces(load_image(kodak_dir / "kodim01.png").pixels) == []


def test_crop_resize_identity_and_gradient():
    x = torch.rand(1, 3, 160, 160, requires_grad=True)
    out = crop_resize(x, [[0, 0, 160, 160]])
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)
    x2 = torch.rand(1, 3, 320, 320)
    torch.testing.assert_close(crop_resize(x2, [[0, 0, 320, 320]]),
                               torch.nn.functional.avg_pool2d(x2, 2), atol=1e-5, rtol=0)
    big = torch.rand(1, 3, 600, 800, requires_grad=True)
    crop = crop_resize(big, [[100, 50, 420, 370], [0, 0, 320, 320]])
    assert crop.shape == (2, 3, 160, 160)
    crop.sum().backward()
    g = big.grad[0].abs().sum(0)
    assert g[200, 250] > 0 and g[500, 700] == 0  # inside a box vs outside both


def test_expand_box():
    assert expand_box((0, 0, 10, 20), margin=0.5) == (-5, -10, 15, 30)
    assert expand_box((0, 0, 10, 10), jitter=(0.1, 0, 0)) == (1, 0, 11, 10)


def test_tiny_and_thin_images_have_no_face_instead_of_crashing():
    """MTCNN's image pyramid is empty below P-Net's 12 px window (facenet-pytorch then fails
    in torch.cat); a 6000×30 strip must not be downscaled below it either."""
    for w, h in ((1, 1), (11, 11), (6000, 30), (30, 6000), (2400, 12)):
        assert detect_faces(np.full((h, w, 3), 128, np.uint8)) == []


def test_possible_faces_below_the_floor(kodak_dir):
    """kodim19's 27 px false detection (p 0.84) is a possible face; kodim04's face is not."""
    from jndguard.core.faces.detect import PROTECT_MIN_PROBABILITY, split_possible

    faces, possible = split_possible(detect_faces(load_image(kodak_dir / "kodim19.png").pixels))
    assert faces == [] and len(possible) == 1
    assert possible[0].probability < PROTECT_MIN_PROBABILITY
    faces, possible = split_possible(detect_faces(load_image(kodak_dir / "kodim04.png").pixels))
    assert len(faces) == 1 and possible == []
