"""Analysis of one protected photo: where it changed, by how much relative to the JND, and
where the recogniser looks.

- :func:`difference_maps`: per-channel ``|protected − original|`` normalised to 0–255 (the MND
  paper's Fig. 4) and the ratio of changed pixels.
- :func:`jnd_ratio_histogram`: histogram of ``|change| / J`` over changed pixel-channels.
- :func:`grad_cam`: Grad-CAM (Selvaraju et al., ICCV 2017) on the recogniser's last conv block,
  target = the cosine similarity to the clean embedding, or an identity logit.
- :func:`face_grad_cams`: Grad-CAM of one face in the clean photo and in each protected version
  (the MND paper's Fig. 3), as coloured overlays; the target is the identity logit, which
  unlike the cosine similarity is defined on the clean crop too.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

CHANNELS = ("R", "G", "B")


def difference_maps(original: np.ndarray, protected: np.ndarray) -> tuple[np.ndarray, dict]:
    """Per-channel absolute differences, each normalised to 0–255 by its own maximum.

    Args:
        original, protected: ``(H, W, 3)`` uint8 RGB of the same size.

    Returns:
        ``(maps, stats)``: ``maps`` is ``(3, H, W)`` uint8 (all zero for an unchanged channel);
        ``stats`` has ``changed_ratio`` (pixels with any channel changed), per-channel
        ``changed_ratio_<C>`` and ``max_abs_<C>`` (8-bit levels).
    """
    if original.shape != protected.shape or original.ndim != 3 or original.shape[2] != 3:
        raise ValueError(f"images must be (H, W, 3) of one size, got {original.shape} and "
                         f"{protected.shape}")
    d = np.abs(protected.astype(np.int16) - original.astype(np.int16)).transpose(2, 0, 1)
    maps = np.zeros(d.shape, np.uint8)
    stats: dict = {"changed_ratio": float((d > 0).any(axis=0).mean())}
    for c, name in enumerate(CHANNELS):
        m = int(d[c].max())
        if m > 0:
            maps[c] = np.round(d[c] * (255.0 / m)).astype(np.uint8)
        stats[f"changed_ratio_{name}"] = float((d[c] > 0).mean())
        stats[f"max_abs_{name}"] = m
    return maps, stats


def jnd_ratio_histogram(original: np.ndarray, protected: np.ndarray, jnd: np.ndarray,
                        bin_width: float = 0.1, upper: float = 3.0) -> dict:
    """Histogram of ``|change| / J`` over the pixel-channels that changed.

    Args:
        original, protected: ``(H, W, 3)`` uint8.
        jnd: ``(H, W, 3)`` JND in 8-bit levels.
        bin_width, upper: bins ``[0, w), [w, 2w) … [upper − w, upper)`` and one ``[upper, ∞)``.

    Returns:
        ``{"edges", "counts", "changed", "over_one"}`` (``over_one``: share of changed
        pixel-channels with ratio > 1, i.e. beyond the JND).
    """
    d = np.abs(protected.astype(np.float64) - original.astype(np.float64))
    mask = d > 0
    r = d[mask] / np.maximum(jnd.astype(np.float64)[mask], 1e-6)
    edges = np.round(np.arange(0.0, upper + bin_width / 2, bin_width), 6)
    counts = np.histogram(np.minimum(r, upper), bins=np.append(edges[:-1], [upper, np.inf]))[0]
    return {"edges": [*edges.tolist(), float("inf")], "counts": counts.astype(int).tolist(),
            "changed": int(mask.sum()),
            "over_one": float((r > 1).mean()) if r.size else 0.0}


def histogram_png(hist: dict, width: int = 640, height: int = 320) -> np.ndarray:
    """A bar chart of :func:`jnd_ratio_histogram` (cv2; the red line marks ratio 1)."""
    img = np.full((height, width, 3), 255, np.uint8)
    counts = np.asarray(hist["counts"], float)
    n = len(counts)
    pad, base = 30, height - 30
    bw = (width - 2 * pad) / n
    top = counts.max() if counts.size and counts.max() > 0 else 1.0
    for i, c in enumerate(counts):
        h = int((base - pad) * c / top)
        x0 = int(pad + i * bw)
        cv2.rectangle(img, (x0, base - h), (int(pad + (i + 1) * bw) - 1, base), (70, 110, 180), -1)
    edges = hist["edges"]
    one = next((i for i, e in enumerate(edges) if e >= 1.0), None)
    if one is not None:
        x = int(pad + one * bw)
        cv2.line(img, (x, pad // 2), (x, base), (220, 0, 0), 1)
    for i in range(0, n, 5):
        cv2.putText(img, f"{edges[i]:g}", (int(pad + i * bw), base + 18), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "|change| / J", (width - 130, pad), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                (0, 0, 0), 1, cv2.LINE_AA)
    return img


def _last_conv_block(recogniser) -> torch.nn.Module:
    b = recogniser.backbone
    if hasattr(b, "block8"):
        return b.block8
    if hasattr(b, "gradcam_layer"):  # dlib's ResNet: the last block with a 4×4 map
        return b.gradcam_layer
    convs = [m for m in b.modules() if isinstance(m, torch.nn.Conv2d)]
    if not convs:
        raise ValueError("the recogniser has no convolution to take Grad-CAM from")
    return convs[-1]


def _unnormalised_embedding(recogniser, x: torch.Tensor) -> torch.Tensor:
    """The recogniser's embedding of ``x`` before the final L2 normalisation."""
    last = getattr(recogniser.backbone, "last_bn", None)
    if last is None:  # a backbone that does not normalise inside (dlib's ResNet)
        return recogniser.descriptor(x)
    out: list[torch.Tensor] = []
    handle = last.register_forward_hook(lambda _m, _i, o: out.append(o))
    try:
        recogniser(x)
    finally:
        handle.remove()
    return out[-1]


def grad_cam(recogniser, crops: torch.Tensor, reference: torch.Tensor,
             layer: torch.nn.Module | None = None, target: str = "cosine") -> torch.Tensor:
    """Grad-CAM of each crop's similarity to ``reference``.

    Args:
        recogniser: a :class:`~jndguard.core.models.Recogniser`.
        crops: ``(N, 3, S, S)`` in [0, 1].
        reference: ``(D,)`` L2-normalised embedding (the clean face's).
        layer: the layer to explain (default: InceptionResnetV1's ``block8``, else the last
            Conv2d).
        target: ``"cosine"``: the cosine similarity of the embedding to ``reference``. Its
            gradient vanishes where the embedding *is* ``reference``: a crop explained against
            its own embedding gives a map of rounding noise. ``"logit"``: the projection of the
            embedding *before* its L2 normalisation (InceptionResnetV1's ``last_bn`` output) on
            ``reference``, an identity score whose weights are the reference, as a classifier's
            class logit; well defined (and stable) on the reference crop itself.

    Returns:
        ``(N, S, S)`` maps in [0, 1], non-negative, each normalised by its maximum (all zero
        when no region raises the similarity).

    References:
        Selvaraju et al., "Grad-CAM", ICCV 2017, eq. 1–2.
    """
    layer = layer or _last_conv_block(recogniser)
    acts: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: acts.append(out))
    try:
        with torch.enable_grad():
            x = crops.detach().to(recogniser.device).requires_grad_(True)
            if target == "cosine":
                emb = recogniser(x)
            elif target == "logit":
                emb = _unnormalised_embedding(recogniser, x)
            else:
                raise ValueError(f"unknown Grad-CAM target {target!r} (cosine, logit)")
            score = (emb @ reference.to(emb)).sum()
            (grads,) = torch.autograd.grad(score, acts[-1])
    finally:
        handle.remove()
    a = acts[-1].detach()
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * a).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=crops.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).max(dim=1).values.clamp_min(1e-12)[:, None, None]
    return (cam / peak).clamp(0, 1).cpu()


def heatmap_overlay(crop: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """A jet-coloured ``cam`` ((S, S) in [0, 1]) blended over ``crop`` ((S, S, 3) uint8 RGB)."""
    jet = cv2.applyColorMap(np.round(cam * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    return np.round((1 - alpha) * crop + alpha * jet).astype(np.uint8)


def face_grad_cams(recogniser, original: np.ndarray, protected: Sequence[np.ndarray],
                   box: Sequence[float]) -> dict:
    """Grad-CAM of one face in the clean photo and in each protected version of it.

    Every crop is the recogniser's input crop of the same ``box`` (the clean photo's detection).
    The target is :func:`grad_cam`'s identity logit (``target="logit"``) with the clean crop's
    embedding as the reference, the same for every crop (as the MND paper explains the true
    class's logit): the cosine similarity would explain nothing on the clean crop itself, where
    its gradient is zero.

    Args:
        recogniser: a :class:`~jndguard.core.models.Recogniser`.
        original: ``(H, W, 3)`` uint8 RGB.
        protected: ``(H, W, 3)`` uint8 RGB versions of ``original`` (any number, also none).
        box: ``(x1, y1, x2, y2)`` in pixels of ``original``.

    Returns:
        ``{"crops", "cams", "overlays", "similarities", "threshold"}``: ``crops`` and
        ``overlays`` ``(1 + K, S, S, 3)`` uint8 (clean first), ``cams`` ``(1 + K, S, S)``
        float32 in [0, 1], ``similarities`` the cosine similarity of each crop to the clean
        one (1.0 first), ``threshold`` the recogniser's verification threshold.

    References:
        Selvaraju et al., "Grad-CAM", ICCV 2017; the MND paper's Fig. 3.
    """
    from jndguard.core.imageio import to_tensor

    images = [original, *protected]
    for im in images[1:]:
        if im.shape != original.shape:
            raise ValueError(f"protected images must be {original.shape} like the original, "
                             f"got {im.shape}")
    dev = recogniser.device
    # every image seen through the view fixed on the original (its box, or dlib's landmarks)
    crops = torch.cat([recogniser.crops(to_tensor(im, dev), [box], pixels=original) for im in images])
    with torch.no_grad():
        embs = recogniser(crops)
    cams = grad_cam(recogniser, crops, embs[0], target="logit").numpy().astype(np.float32)
    crops_u8 = (crops.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
    overlays = np.stack([heatmap_overlay(c, cam) for c, cam in zip(crops_u8, cams)])
    return {"crops": crops_u8, "cams": cams, "overlays": overlays,
            "similarities": [float(v) for v in (embs @ embs[0]).cpu()],
            "threshold": float(recogniser.threshold)}


def analyze(original: str | Path, protected: str | Path, outdir: str | Path, recogniser=None,
            jnd_model: str = "yang", jnd_color: str = "scaled") -> dict:
    """Write the analysis of one protected photo into ``outdir``; the summary.

    Files: ``diff_R.png``, ``diff_G.png``, ``diff_B.png`` (normalised |Δ|), ``diff_rgb.png``
    (the three side by side), ``jnd_ratio_hist.png``/``.csv``, ``gradcam_clean.png``,
    ``gradcam_protected.png`` (first face; skipped when no face is found), ``summary.json``.
    """
    from PIL import Image

    from jndguard.core.faces import detect_faces
    from jndguard.core.imageio import load_image
    from jndguard.core.jnd import jnd_map

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    orig, prot = load_image(original), load_image(protected)
    if orig.pixels.shape != prot.pixels.shape:
        raise ValueError(f"{protected} is {prot.width}×{prot.height}, the original "
                         f"{orig.width}×{orig.height}: analysis needs the same size")
    maps, stats = difference_maps(orig.pixels, prot.pixels)
    files = {}
    for c, name in enumerate(CHANNELS):
        files[f"diff_{name}"] = outdir / f"diff_{name}.png"
        Image.fromarray(maps[c]).save(files[f"diff_{name}"])
    files["diff_rgb"] = outdir / "diff_rgb.png"
    Image.fromarray(np.concatenate(list(maps), axis=1)).save(files["diff_rgb"])

    x = orig.tensor("cpu")
    jnd = (jnd_map(x, jnd_model, jnd_color)[0].permute(1, 2, 0) * 255).numpy()
    hist = jnd_ratio_histogram(orig.pixels, prot.pixels, jnd)
    files["hist_png"] = outdir / "jnd_ratio_hist.png"
    Image.fromarray(histogram_png(hist)).save(files["hist_png"])
    files["hist_csv"] = outdir / "jnd_ratio_hist.csv"
    with files["hist_csv"].open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["low", "high", "count"])
        e = hist["edges"]
        for i, n in enumerate(hist["counts"]):
            w.writerow([f"{e[i]:g}", "inf" if not np.isfinite(e[i + 1]) else f"{e[i + 1]:g}", n])

    summary = {"original": str(original), "protected": str(protected), **stats,
               "jnd_ratio": {k: hist[k] for k in ("changed", "over_one")}, "files": files}
    if recogniser is not None:
        faces = detect_faces(orig.pixels, "cpu")
        if faces:
            box = faces[0].box
            cams = face_grad_cams(recogniser, orig.pixels, [prot.pixels], box)
            for k, name in enumerate(("clean", "protected")):
                files[f"gradcam_{name}"] = outdir / f"gradcam_{name}.png"
                Image.fromarray(cams["overlays"][k]).save(files[f"gradcam_{name}"])
            summary["similarity"] = cams["similarities"][1]
            summary["threshold"] = recogniser.threshold
            summary["box"] = [float(v) for v in box]
        else:
            summary["notes"] = ["no face found in the original: no Grad-CAM"]
    (outdir / "summary.json").write_text(
        json.dumps(summary, indent=2, default=str), encoding="utf-8")
    return summary
