"""DMV-JND (Jin et al. 2022): the largest noise the recogniser tolerates without changing its
decision — the machine's own JND — estimated per face (docs/design.md §5).

The paper trains an encoder–decoder on CIFAR-10 classifiers; JNDGuard has one face and one
recogniser, so it optimises the noise ``e`` of that face's crop directly with the paper's loss
``Loss = Loss1 + α·Loss2 + β·Loss3`` (eq. 7, α = β = 1):

- ``Loss1`` (eq. 8–9): cross-entropy of the identity head on ``x + e`` against the label the
  recogniser gives the clean crop (class 0 = the person themself; the other classes are the
  celebrity centroids the recogniser does not already match to this face).
- ``Loss2`` (eq. 10–13): ``ln((N² + N0² + q) / (2·N·N0 + q))`` with ``N = 1 − mean(c)`` the
  target magnitude from the CAM map ``c`` and ``N0 = mean|e|``.
- ``Loss3`` (eq. 14–15): ``⟨softmax(c), |e|⟩`` — the paper writes ``⟨v, e⟩``; with a signed
  ``e`` that term rewards negative noise instead of placing it, so the magnitude is used.

``c`` is the Grad-CAM of the recogniser on the clean crop with the identity-logit target (the
cosine to its own embedding has a zero gradient there; see :func:`~jndguard.core.research.analysis.grad_cam`).

The *identity decision* (:func:`identity_decision`) is the recogniser's verdict on a face: the
same person as the clean crop (cosine ≥ τ) and closer to it than to any other identity of the
head — the paper's "label unchanged". The returned noise is the largest iterate (mean |e|)
whose 8-bit distorted crop keeps that decision with ``margin`` to spare. Because that choice
is made on the crop itself, the crop's RCA is 100 % by construction; :func:`dmvjnd_photo`
adds held-out evidence: the noise is placed into the photo, the photo is quantised to 8 bits,
the face is re-detected (MTCNN) and re-cropped, and the decision is taken again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from jndguard.core.defaults import DMVJND_MARGIN
from jndguard.core.imageio import quantise, to_tensor, to_uint8

Q = 1e-10
DEFAULT_MARGIN = DMVJND_MARGIN  # cosine to spare over τ when choosing the iterate (measured, README)


def magnitude_loss(e: torch.Tensor, target: torch.Tensor | float) -> torch.Tensor:
    """Loss2 (eq. 13): ``ln((N² + N0² + q) / (2·N·N0 + q))`` with ``N0 = mean|e|``."""
    n0 = e.abs().mean()
    n = torch.as_tensor(target, dtype=e.dtype, device=e.device)
    return torch.log(n * n + n0 * n0 + Q) - torch.log(2 * n * n0 + Q)


def spatial_loss(e: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """Loss3 (eq. 14–15): ``⟨softmax(c), |e|⟩`` with |e| averaged over channels.

    Shape:
        e: ``(1, 3, S, S)``; cam: ``(S, S)``.
    """
    v = torch.softmax(cam.flatten(), dim=0)
    return (v * e.abs().mean(dim=1).flatten()).sum()


def identity_decision(embedding: torch.Tensor, reference: torch.Tensor,
                      others: torch.Tensor | None, threshold: float,
                      margin: float = 0.0) -> tuple[bool, float]:
    """``(kept, cosine)``: is ``embedding`` still judged the person of ``reference``?

    Kept when the cosine to the clean embedding is at least ``threshold + margin`` and higher
    than the cosine to every other identity in ``others`` (``(K, D)``, L2-normalised).
    """
    sim = float(embedding @ reference)
    kept = sim >= threshold + margin
    if kept and others is not None and others.numel():
        kept = sim > float((others.to(embedding) @ embedding).max())
    return kept, sim


def cam_contrast(noise: torch.Tensor, cam: torch.Tensor) -> float:
    """Mean |e| where the CAM is in its lowest third over mean |e| in its highest third.

    Above 1: the machine JND is larger where the recogniser does not look (the paper's
    claim for Loss3). Shape: noise ``(1, 3, S, S)``; cam ``(S, S)``.
    """
    mag = noise.abs().mean(dim=(0, 1)).flatten()
    c = cam.flatten().to(mag)
    lo, hi = torch.quantile(c, torch.tensor([1 / 3, 2 / 3], dtype=c.dtype))
    low, high = mag[c <= lo].mean(), mag[c >= hi].mean()
    return float(low / high.clamp_min(1e-12))


@dataclass
class DMVJNDResult:
    noise: torch.Tensor  # (1, 3, S, S) signed, [0, 1] units, on the 8-bit grid: the tolerated e
    distorted: torch.Tensor  # (1, 3, S, S) the 8-bit distorted crop x + e
    cam: torch.Tensor  # (S, S) Grad-CAM of the clean crop
    psnr: float  # of the distorted crop against the clean one (dB; inf when e = 0)
    similarity: float  # cosine of the distorted crop's embedding to the clean one
    identity_kept: bool  # decision on the distorted crop (without the margin)
    target_magnitude: float  # N
    magnitude: float  # N0 of the returned noise
    iterations: int
    cam_contrast: float  # see :func:`cam_contrast`
    wgn_kept: bool  # decision on the crop with white Gaussian noise of the same MSE (Fig. 1)
    homogeneous: bool  # decision kept for e·k/9, k = 1..8 (Section V-E)


def dmv_jnd(recogniser, crop: torch.Tensor, others: torch.Tensor | None = None,
            iterations: int = 200, lr: float = 0.01, alpha: float = 1.0, beta: float = 1.0,
            seed: int = 0, scale: float = 30.0, margin: float = DEFAULT_MARGIN) -> DMVJNDResult:
    """Estimate the recogniser's JND of one face crop (see module docstring).

    Args:
        recogniser: a loaded recogniser.
        crop: ``(1, 3, S, S)`` clean face crop in [0, 1].
        others: ``(K, D)`` embeddings of other identities (the identity head's classes 1..K);
            None: only the cosine to the clean embedding is kept above the threshold.
        iterations: Adam steps.
        lr: Adam learning rate (on ``e`` in [0, 1] units).
        alpha, beta: weights of Loss2 and Loss3 (paper: 1, 1).
        seed: seed of the small random start (``|e| = 0`` has no magnitude gradient).
        scale: logit scale of the identity head.
        margin: cosine over τ an iterate must keep to be chosen.

    References:
        Jin et al., "DMV-JND", Jin et al. 2022, eq. 7–15.
    """
    from jndguard.core.research.analysis import grad_cam

    dev = recogniser.device
    x = crop.detach().to(dev)
    with torch.no_grad():
        ref = recogniser(x)[0]
    cam = grad_cam(recogniser, x, ref, target="logit")[0].to(dev)
    target = float(1.0 - cam.mean())
    if others is not None and others.numel() == 0:
        others = None
    if others is not None:
        others = F.normalize(others.to(dev), dim=1)
    gallery = ref[None] if others is None else torch.cat([ref[None], others])
    g = torch.Generator().manual_seed(seed)
    e = ((torch.rand(x.shape, generator=g) - 0.5) * 0.02).to(dev).requires_grad_(True)
    opt = torch.optim.Adam([e], lr=lr)
    label = torch.zeros(1, dtype=torch.long, device=dev)
    best_img = quantise(x)
    best = best_img - x
    for _ in range(iterations):
        xh = (x + e).clamp(0, 1)
        emb = recogniser(xh)
        sims = emb @ gallery.T
        if gallery.shape[0] > 1:
            loss1 = F.cross_entropy(scale * sims, label)
        else:  # one class: keep the cosine above the threshold with a margin
            loss1 = F.relu(recogniser.threshold + margin + 0.1 - sims[0, 0])
        loss = (loss1 + alpha * magnitude_loss(xh - x, target)
                + beta * spatial_loss(xh - x, cam))
        (grad,) = torch.autograd.grad(loss, e)
        opt.zero_grad(set_to_none=True)
        e.grad = grad
        opt.step()
        with torch.no_grad():
            img = quantise(x + e)
            if (img - x).abs().mean() <= best.abs().mean():
                continue
            if identity_decision(recogniser(img)[0], ref, others, recogniser.threshold, margin)[0]:
                best_img, best = img, img - x
    mse = float(best.square().mean())
    wgn_kept, homogeneous = _held_out_checks(recogniser, x, best, ref, others, seed)
    with torch.no_grad():
        kept, best_sim = identity_decision(recogniser(best_img)[0], ref, others,
                                           recogniser.threshold)
    return DMVJNDResult(
        noise=best.cpu(), distorted=best_img.cpu(), cam=cam.cpu(),
        psnr=math.inf if mse == 0 else 10 * math.log10(1 / mse), similarity=best_sim,
        identity_kept=kept, target_magnitude=target,
        magnitude=float(best.abs().mean()), iterations=iterations,
        cam_contrast=cam_contrast(best.cpu(), cam.cpu()) if mse > 0 else 1.0,
        wgn_kept=wgn_kept, homogeneous=homogeneous)


@torch.no_grad()
def _held_out_checks(recogniser, x: torch.Tensor, e: torch.Tensor, ref: torch.Tensor,
                     others: torch.Tensor | None, seed: int) -> tuple[bool, bool]:
    """The paper's two checks of a found JND, on the 8-bit crop without the margin.

    White Gaussian noise with the same MSE as ``e`` (Fig. 1: the recogniser should *notice*
    it) and the scaled-down noises ``e·k/9`` (Section V-E: all should keep the decision).
    """
    tau = recogniser.threshold
    g = torch.Generator().manual_seed(seed + 1)
    wgn = torch.randn(x.shape, generator=g).to(x) * e.square().mean().sqrt()
    batch = torch.cat([quantise(x + wgn)] + [quantise(x + e * k / 9) for k in range(1, 9)])
    emb = recogniser(batch)
    kept = [identity_decision(v, ref, others, tau)[0] for v in emb]
    return kept[0], all(kept[1:])


def place_noise(pixels: np.ndarray, box, noise: torch.Tensor) -> np.ndarray:
    """The photo with the crop-space ``noise`` resized onto the face ``box``, 8-bit.

    Args:
        pixels: ``(H, W, 3)`` uint8 photo.
        box: ``(x1, y1, x2, y2)`` the crop was taken from.
        noise: ``(1, 3, S, S)`` signed, [0, 1] units.

    Returns:
        ``(H, W, 3)`` uint8 photo; pixels outside the box are unchanged.
    """
    h, w = pixels.shape[:2]
    x1, y1, x2, y2 = (round(v) for v in box)
    bw, bh = x2 - x1, y2 - y1
    up = F.interpolate(noise.float(), size=(bh, bw), mode="bilinear", align_corners=False)
    up = up[0].permute(1, 2, 0).numpy() * 255
    cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    out = pixels.astype(np.float32)
    out[cy1:cy2, cx1:cx2] += up[cy1 - y1:cy2 - y1, cx1 - x1:cx2 - x1]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _panel(tiles: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """Tiles side by side, each with its caption underneath (the side-by-side view)."""
    import cv2

    cap = 22
    out = []
    for text, img in tiles:
        t = np.full((img.shape[0] + cap, img.shape[1], 3), 255, np.uint8)
        t[: img.shape[0]] = img
        cv2.putText(t, text, (4, img.shape[0] + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.42,
                    (0, 0, 0), 1, cv2.LINE_AA)
        out += [t, np.full((t.shape[0], 6, 3), 255, np.uint8)]
    return np.hstack(out[:-1])


def dmvjnd_photo(photo, recogniser, outdir, iterations: int = 200, seed: int = 0,
                 margin: float = DEFAULT_MARGIN) -> dict:
    """DMV-JND of the first face of ``photo``, judged again in the photo.

    Writes ``<stem>_dmvjnd.png`` (the noise; gray = none, amplified with the human map by the
    same factor), ``<stem>_hvsjnd.png`` (the human JND map of the same crop),
    ``<stem>_distorted.png``, ``<stem>_cam.png`` and ``<stem>_panel.png`` (clean crop,
    Grad-CAM, machine JND, human JND side by side).

    Returns the figures — ``psnr`` (noise on the crop), ``hvs_psnr`` (±J noise at the human
    JND on the same crop), ``identity_kept`` (distorted crop), ``identity_kept_photo`` (noise
    placed in the photo, 8-bit, face re-detected and re-cropped: the RCA evidence),
    ``cam_contrast`` — or ``{"photo", "error"}`` when no face is found.
    """
    from pathlib import Path

    from PIL import Image

    from jndguard.core.faces import detect_faces
    from jndguard.core.imageio import load_image
    from jndguard.core.jnd import jnd_map
    from jndguard.core.models.gallery import celebrity_gallery, gallery_for
    from jndguard.core.pipeline import match_faces
    from jndguard.core.research.analysis import heatmap_overlay

    photo, outdir = Path(photo), Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    img = load_image(photo)
    faces = detect_faces(img.pixels, "cpu")
    if not faces:
        return {"photo": str(photo), "error": "no face found"}
    crop = recogniser.crops(img.tensor(recogniser.device), [faces[0]], pixels=img.pixels)
    with torch.no_grad():
        ref = recogniser(crop)[0]
    names, cents = celebrity_gallery(recogniser)
    _, others = gallery_for(ref, names, cents, recogniser.threshold)
    r = dmv_jnd(recogniser, crop, others, iterations=iterations, seed=seed, margin=margin)

    # held-out check: the noise in the photo, 8-bit, re-detected and re-cropped
    placed = place_noise(img.pixels, faces[0].box, r.noise)
    match = match_faces([faces[0]], detect_faces(placed, "cpu"))[0]
    kept_photo, sim_photo = False, None
    if match is not None:
        with torch.no_grad():
            emb = recogniser(recogniser.crops(to_tensor(placed, recogniser.device), [match],
                                              pixels=placed))[0]
        kept_photo, sim_photo = identity_decision(emb, ref, others, recogniser.threshold)

    jnd = jnd_map(crop.cpu())
    amp = max(float(r.noise.abs().max()), float(jnd.max()), 1e-6)
    stem = photo.stem
    files = {k: outdir / f"{stem}_{k}.png" for k in ("dmvjnd", "hvsjnd", "distorted", "cam", "panel")}
    machine, human = to_uint8(0.5 + 0.5 * r.noise[0] / amp), to_uint8(0.5 + 0.5 * jnd[0] / amp)
    cam_img = heatmap_overlay(to_uint8(crop[0].cpu()), r.cam.numpy())
    Image.fromarray(machine).save(files["dmvjnd"])
    Image.fromarray(human).save(files["hvsjnd"])
    Image.fromarray(to_uint8(r.distorted[0])).save(files["distorted"])
    Image.fromarray(cam_img).save(files["cam"])
    hvs_mse = float(jnd.square().mean())
    hvs_psnr = 10 * math.log10(1 / hvs_mse) if hvs_mse > 0 else math.inf
    Image.fromarray(_panel([
        ("clean", to_uint8(crop[0].cpu())), ("Grad-CAM", cam_img),
        (f"machine JND {r.psnr:.1f} dB", machine), (f"human JND {hvs_psnr:.1f} dB", human),
    ])).save(files["panel"])
    return {"photo": str(photo), "psnr": r.psnr, "identity_kept": r.identity_kept,
            "similarity": r.similarity, "threshold": recogniser.threshold,
            "identity_kept_photo": kept_photo, "similarity_photo": sim_photo,
            "magnitude": r.magnitude, "target_magnitude": r.target_magnitude,
            "cam_contrast": r.cam_contrast, "hvs_psnr": hvs_psnr,
            "wgn_kept": r.wgn_kept, "homogeneous": r.homogeneous,
            "hvs_magnitude": float(jnd.abs().mean()), "iterations": r.iterations,
            "margin": margin, "files": {k: str(v) for k, v in files.items()},
            "amplification": float(np.round(0.5 / amp, 3))}


def summarise(rows: list[dict]) -> dict:
    """RCA and mean PSNRs over the faces that were found.

    ``rca``: the paper's RCA (decision on the 8-bit distorted crop); ``rca_photo``: the noise
    placed in the photo, face re-detected; ``rca_wgn``: the same amount of white Gaussian
    noise; ``homogeneous``: share of faces whose scaled-down noises all keep the decision.
    """
    import statistics

    ok = [r for r in rows if "error" not in r]

    def mean(key):
        v = [r[key] for r in ok if r.get(key) is not None and math.isfinite(r[key])]
        return statistics.mean(v) if v else None

    def rate(key):
        return sum(bool(r[key]) for r in ok) / len(ok) if ok else None

    return {"faces": len(ok), "rca": rate("identity_kept"), "rca_photo": rate("identity_kept_photo"),
            "rca_wgn": rate("wgn_kept"), "homogeneous": rate("homogeneous"),
            "psnr": mean("psnr"), "hvs_psnr": mean("hvs_psnr"),
            "cam_contrast": mean("cam_contrast")}
