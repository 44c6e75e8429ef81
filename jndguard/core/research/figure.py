"""The papers' Fig. 2 layout: the clean photo and each method's result side by side, each with
an enlarged detail of the face region outlined in red and pasted in a corner (numpy/cv2)."""

from __future__ import annotations

import cv2
import numpy as np

RED = (255, 0, 0)  # RGB


def detail_box(box: tuple[float, float, float, float], width: int, height: int,
               fraction: float = 0.35) -> tuple[int, int, int, int]:
    """The square crop the detail shows: the centre of the face box, ``fraction`` of its size.

    Returns ``(x0, y0, x1, y1)`` integers inside the image.
    """
    x1, y1, x2, y2 = box
    side = max(4, round(fraction * min(x2 - x1, y2 - y1)))
    side = min(side, width, height)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    x0 = int(np.clip(round(cx - side / 2), 0, width - side))
    y0 = int(np.clip(round(cy - side / 2), 0, height - side))
    return x0, y0, x0 + side, y0 + side


def outline(img: np.ndarray, rect: tuple[int, int, int, int], colour=RED, thickness: int = 2) -> None:
    """Draw a rectangle outline in place; ``rect`` is ``(x0, y0, x1, y1)``, exclusive end."""
    x0, y0, x1, y1 = rect
    c = np.asarray(colour, dtype=img.dtype)
    t = thickness
    img[y0:y0 + t, x0:x1] = c
    img[y1 - t:y1, x0:x1] = c
    img[y0:y1, x0:x0 + t] = c
    img[y0:y1, x1 - t:x1] = c


def with_detail(pixels: np.ndarray, box, scale: float = 0.4, corner: str = "br",
                thickness: int = 2, fraction: float = 0.35) -> tuple[np.ndarray, dict]:
    """A copy of ``pixels`` with the face detail enlarged into a corner.

    Args:
        pixels: ``(H, W, 3)`` uint8 RGB.
        box: the face box ``(x1, y1, x2, y2)``.
        scale: side of the inset as a fraction of the image's shorter side.
        corner: ``"br"``, ``"bl"``, ``"tr"`` or ``"tl"``.
        thickness: red outline width in pixels (around the source crop and the inset).
        fraction: crop side as a fraction of the face box's shorter side.

    Returns:
        The image and ``{"source": rect, "inset": rect}`` (``(x0, y0, x1, y1)``).
    """
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ValueError("pixels must be (H, W, 3) uint8")
    out = pixels.copy()
    h, w = out.shape[:2]
    src = detail_box(box, w, h, fraction)
    side = max(2 * thickness + 2, round(scale * min(h, w)))
    crop = pixels[src[1]:src[3], src[0]:src[2]]
    inset = cv2.resize(crop, (side, side), interpolation=cv2.INTER_NEAREST)
    ix = w - side if corner[1] == "r" else 0
    iy = h - side if corner[0] == "b" else 0
    out[iy:iy + side, ix:ix + side] = inset
    ins = (ix, iy, ix + side, iy + side)
    outline(out, src, RED, thickness)
    outline(out, ins, RED, thickness)
    return out, {"source": src, "inset": ins}


def comparison_figure(panels: list[tuple[str, np.ndarray]], box, columns: int = 4,
                      tile: int = 320, label_height: int = 28) -> np.ndarray:
    """A grid of labelled panels (clean first, then each method), each with its red-box detail.

    All panels are the same photo, so the detail shows the same face region in each.
    Returns ``(H, W, 3)`` uint8 RGB.
    """
    if not panels:
        raise ValueError("no panels")
    h, w = panels[0][1].shape[:2]
    s = tile / max(h, w)
    th, tw = max(1, round(h * s)), max(1, round(w * s))
    thickness = max(2, round(2 / s))  # about 2 px once the panel is shrunk to the tile
    cols = min(columns, len(panels))
    rows = -(-len(panels) // cols)
    grid = np.full((rows * (th + label_height), cols * tw, 3), 255, np.uint8)
    for k, (label, img) in enumerate(panels):
        # the detail is cut from the full-resolution image, then the panel is shrunk
        framed, _ = with_detail(img, box, thickness=thickness)
        small = cv2.resize(framed, (tw, th), interpolation=cv2.INTER_AREA)
        r, c = divmod(k, cols)
        y, x = r * (th + label_height), c * tw
        grid[y:y + th, x:x + tw] = small
        cv2.putText(grid, label, (x + 6, y + th + label_height - 9), cv2.FONT_HERSHEY_SIMPLEX,
                    0.55, (0, 0, 0), 1, cv2.LINE_AA)
    return grid


def write_comparison_figure(outdir, entries, photo, name: str = "figure.png"):
    """Fig. 2 for ``photo`` from a comparison's recorded results → ``OUTDIR/figure.png``.

    Returns the path, or None when no method produced a result for the photo.
    """
    from pathlib import Path

    from PIL import Image

    from jndguard.core.imageio import load_image
    from jndguard.core.research.compare import RESULTS_FILE, load_results, result_key

    outdir = Path(outdir)
    done = load_results(outdir / RESULTS_FILE)
    panels, box = [("clean", load_image(photo).pixels)], None
    for e in entries:
        rec = done.get(result_key(e, Path(photo)))
        if not rec or not rec.get("row") or not rec.get("image"):
            continue
        box = box or rec["row"]["box"]
        panels.append((e.label, np.asarray(Image.open(outdir / rec["image"]).convert("RGB"))))
    if box is None:
        return None
    path = outdir / name
    Image.fromarray(comparison_figure(panels, box)).save(path)
    return path
