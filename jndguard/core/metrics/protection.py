"""Protection-specific figures: how much, where and how visibly a photo was changed.

All figures are computed on the 8-bit change the user actually gets,

    ``D = round(255·Z) − round(255·X)``  (integer levels, per pixel and channel),

where X is the original and Z the protected image (both in [0, 1]). When Z is already on the
8-bit grid (it is after ``quantise``) this is exactly ``round(255·(Z − X))``.

Over-JND rule (pinned): a pixel-channel is *over the JND* when ``|D| > 255·J``, with J in
[0, 1] units, compared in 8-bit levels with no tolerance. A change equal to the JND is
allowed; since D is an integer, a J of 2.4 levels lets 2 levels through and flags 3.
"""

from __future__ import annotations

import torch

from jndguard.core.metrics.quality import row_bands
from jndguard.errors import ShapeError

CHANNELS = ("r", "g", "b")


def level_change(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The 8-bit change ``round(255·y) − round(255·x)`` as integers.

    Args:
        x: original images in [0, 1].
        y: protected images in [0, 1].

    Returns:
        Signed change in 8-bit levels (int16).

    Shape:
        - x, y: (B, 3, H, W)
        - output: (B, 3, H, W)
    """
    if x.shape != y.shape:
        raise ShapeError(f"images differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
    with torch.inference_mode():
        out = torch.empty(x.shape, dtype=torch.int16, device=x.device)
        for rows in row_bands(x.shape[-2], x.shape[-1]):  # large images: small float temporaries
            qx = x[..., rows, :].detach().clamp(0, 1).mul_(255).round_().to(torch.int16)
            qy = y[..., rows, :].detach().clamp(0, 1).mul_(255).round_().to(torch.int16)
            out[..., rows, :] = qy - qx
        return out


def _check_jnd(jnd: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if not isinstance(jnd, torch.Tensor) or jnd.ndim != 4:
        raise ShapeError(f"jnd must be a (B, 3, H, W) tensor, got {getattr(jnd, 'shape', jnd)}")
    if (
        jnd.shape[1] not in (1, 3)
        or jnd.shape[-2:] != like.shape[-2:]
        or jnd.shape[0]
        not in (
            1,
            like.shape[0],
        )
    ):
        raise ShapeError(
            f"jnd shape {tuple(jnd.shape)} does not match the images {tuple(like.shape)}"
        )
    if not jnd.is_floating_point():
        raise ShapeError(f"jnd must be floating point in [0, 1] units, got {jnd.dtype}")
    if float(jnd.min()) < 0:
        raise ValueError("jnd must be non-negative")
    return jnd.to(like.device).expand_as(like)


def over_jnd(change: torch.Tensor, jnd: torch.Tensor) -> dict[str, torch.Tensor]:
    """Where and by how much the change exceeds the JND (rule in the module docstring).

    Args:
        change: 8-bit change from :func:`level_change`.
        jnd: JND map in [0, 1] units (channel dimension 1 is broadcast to 3).

    Returns:
        ``fraction`` (B,): share of pixel-channels over the JND; ``count`` (B,);
        ``fraction_per_channel`` (B, 3); ``max_excess`` (B,): largest ``|D| − 255·J`` over
        the exceeding pixel-channels in levels (0 where none exceeds); ``mean_jnd`` (B,):
        mean JND in levels.

    Shape:
        - change: (B, 3, H, W)
        - jnd: (B, 3, H, W) or (B, 1, H, W)
    """
    with torch.inference_mode():
        jnd = _check_jnd(jnd, change)
        b, c = change.shape[:2]
        count = torch.zeros((b, c), dtype=torch.int64, device=change.device)
        excess_max = torch.zeros(b, device=change.device)
        j_sum = torch.zeros(b, dtype=torch.float64, device=change.device)
        for rows in row_bands(change.shape[-2], change.shape[-1]):  # large images: band by band
            j = jnd[..., rows, :].float() * 255.0
            excess = change[..., rows, :].abs().float() - j
            count += (excess > 0).flatten(2).sum(dim=2)
            excess_max = torch.maximum(excess_max, excess.clamp(min=0).reshape(b, -1).amax(dim=1))
            j_sum += j.double().reshape(b, -1).sum(dim=1)
        n = change[0, 0].numel()
        return {
            "fraction": count.sum(dim=1).float() / (c * n),
            "count": count.sum(dim=1),
            "fraction_per_channel": count.float() / n,
            "max_excess": excess_max,
            "mean_jnd": (j_sum / (c * n)).float(),
        }


def channel_energy(change: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel perturbation energy: mean squared change in 8-bit levels², and its share.

    Args:
        change: 8-bit change from :func:`level_change`.

    Returns:
        ``(energy, share)``: energy per channel in levels² (mean over all pixels of the
        image) and each channel's share of the total (0 everywhere for an unchanged image).

    Shape:
        - change: (B, 3, H, W)
        - outputs: (B, 3), (B, 3), float64 (float32 on MPS)
    """
    with torch.inference_mode():
        dt = torch.float32 if change.device.type == "mps" else torch.float64
        energy = torch.zeros(change.shape[:2], dtype=dt, device=change.device)
        for rows in row_bands(change.shape[-2], change.shape[-1]):  # large images: band by band
            energy += change[..., rows, :].to(dt).square().flatten(2).sum(dim=2)
        energy /= change[0, 0].numel()
        total = energy.sum(dim=1, keepdim=True)
        share = torch.where(total > 0, energy / total.clamp(min=1e-12), torch.zeros_like(energy))
        return energy, share


def max_abs_change(change: torch.Tensor) -> torch.Tensor:
    """Largest absolute change in 8-bit levels per image.

    Shape:
        - change: (B, 3, H, W)
        - output: (B,) integer
    """
    with torch.inference_mode():
        return change.abs().flatten(1).amax(dim=1)


def changed_region(change: torch.Tensor) -> list[dict]:
    """Bounding box and extent of the changed pixels of each image.

    A pixel counts as changed when any of its channels changed by at least one level.

    Args:
        change: 8-bit change from :func:`level_change`.

    Returns:
        One dict per image: ``bbox`` ``{"x0", "y0", "x1", "y1"}`` in pixels with exclusive
        ``x1``/``y1`` (``None`` when nothing changed), ``pixel_count``, ``pixel_fraction``
        (changed pixels / all pixels) and ``channel_fraction`` (changed pixel-channels /
        all pixel-channels).

    Shape:
        - change: (B, 3, H, W)
    """
    with torch.inference_mode():
        out = []
        nz = change != 0
        anyc = nz.any(dim=1)  # (B, H, W)
        for i in range(change.shape[0]):
            mask = anyc[i]
            count = int(mask.sum())
            bbox = None
            if count:
                rows = torch.nonzero(mask.any(dim=1)).flatten()
                cols = torch.nonzero(mask.any(dim=0)).flatten()
                bbox = {
                    "x0": int(cols[0]),
                    "y0": int(rows[0]),
                    "x1": int(cols[-1]) + 1,
                    "y1": int(rows[-1]) + 1,
                }
            out.append(
                {
                    "bbox": bbox,
                    "pixel_count": count,
                    "pixel_fraction": count / mask.numel(),
                    "channel_fraction": float(nz[i].float().mean()),
                }
            )
        return out
