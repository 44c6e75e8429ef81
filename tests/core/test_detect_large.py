"""Detection on a 12 MP photo (through a downscaled copy) finds the faces the photo shows at
its natural size, in the same places.

MTCNN is not scale-invariant: its boxes and landmarks move by a few per cent of the face size
between two resolutions of the same picture (measured on these 8 photos: worst box overlap
IoU 0.79, worst landmark 0.16 × the face size, on a small validation face), so the faces are
compared by overlap and landmark distance relative to the face size, in the natural photo's
pixels — not within 2 px.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from jndguard.core.faces import detect_faces
from jndguard.core.faces.detect import DEFAULT_MAX_SIDE

MEGAPIXELS = 12e6


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _photos(kodak_dir, model_home):
    from jndguard.core.models.store import validation_photos

    val = validation_photos(home=model_home)
    return [kodak_dir / f"kodim{n:02d}.png" for n in (4, 12, 17)] + list(val[::5])


def test_12mp_detection_matches_the_natural_size(kodak_dir, model_home):
    worst_iou, worst_landmark = 1.0, 0.0
    for path in _photos(kodak_dir, model_home):
        img = Image.open(path).convert("RGB")
        native = detect_faces(np.asarray(img))
        k = (MEGAPIXELS / (img.width * img.height)) ** 0.5
        big = img.resize((round(img.width * k), round(img.height * k)), Image.LANCZOS)
        assert max(big.size) > DEFAULT_MAX_SIDE  # goes through the downscaled copy
        found = detect_faces(np.asarray(big))
        assert len(found) == len(native), path.name
        for f in native:
            best = max(found, key=lambda g: _iou(f.box, [v / k for v in g.box]))
            iou = _iou(f.box, [v / k for v in best.box])
            lm = max(np.hypot(x / k - x0, y / k - y0)
                     for (x, y), (x0, y0) in zip(best.landmarks, f.landmarks, strict=True))
            worst_iou = min(worst_iou, iou)
            worst_landmark = max(worst_landmark, lm / f.size)
    print(f"worst IoU {worst_iou:.3f}, worst landmark error {worst_landmark:.3f} × face size")
    assert worst_iou > 0.75
    assert worst_landmark < 0.2
