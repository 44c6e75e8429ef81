"""The JND-based perceptual loss of the HVS-inspired attack.

``L_per = β₁·L₁(Z,X,J) + β₂·L₂(Z,X,J) + β₃·G(Z,X,J)`` with ``P = Z − X``,
``e = relu(|P| − J)`` and ``λ(n,h,w) = M(n)`` where ``|P| > J``, else 0:

- ``L₁ = mean(λ·e)`` (deviation, eq. 3/4 with the channel matrix of eq. 7),
- ``L₂ = mean(λ·e²)`` (fidelity, eq. 5),
- ``G = L₁(g(Z), g(X), |g(J)|)`` with ``g`` the Sobel operator, horizontal and vertical (eq. 6).

The paper writes sums; JNDGuard uses means over pixels and channels (values in [0, 1]) so β
does not depend on the image size (docs/design.md §5) — the paper's β are kept for ``paper`` mode.
The ablations of the paper's Table 1 are selectable: ``L1``, ``L1_ori`` (plain mean |P|),
``L2``, ``L2_ori`` (plain mean P²), ``L1+L2``, ``L1+L2+G``.

References: "HVS-inspired adversarial image generation with high perceptual quality",
J. Cloud Comput. (Xue et al. 2023), eqs. 1–8; Sobel: Kanopoulos et al. 1988.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from jndguard.core.settings import Variant
from jndguard.errors import check_image_batch

ABLATIONS = tuple(v.value for v in Variant)  # "L1+L2+G", "L1+L2", "L1", "L1_ori", "L2", "L2_ori"

_SOBEL_X = [[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]


def channel_weights(m_rgb, like: torch.Tensor) -> torch.Tensor:
    """``M(n)`` as a ``(1, 3, 1, 1)`` tensor on ``like``'s device and dtype."""
    return torch.as_tensor(m_rgb, dtype=like.dtype, device=like.device).reshape(1, 3, 1, 1)


def sobel(x: torch.Tensor) -> torch.Tensor:
    """Per-channel Sobel responses, reflect-padded: the correlation with ``_SOBEL_X`` and its
    transpose, computed separably ([1, 2, 1] smoothing, then the central difference) from
    shifted views — the same numbers as ``conv2d`` with the 3×3 kernels, several times faster
    forward and backward on the CPU for the few channels of a photo.

    Shape:
        ``(B, C, H, W)`` → ``(B, C, 2, H, W)`` (horizontal, vertical).
    """
    h, w = x.shape[-2:]
    mode = "reflect" if min(h, w) > 1 else "replicate"  # reflect needs two pixels per side
    xp = F.pad(x, (1, 1, 1, 1), mode=mode)
    smooth_v = xp[..., :-2, :] + 2 * xp[..., 1:-1, :] + xp[..., 2:, :]  # (H, W + 2)
    smooth_h = xp[..., :-2] + 2 * xp[..., 1:-1] + xp[..., 2:]  # (H + 2, W)
    gx = smooth_v[..., :-2] - smooth_v[..., 2:]  # _SOBEL_X: +1 left, −1 right
    gy = smooth_h[..., :-2, :] - smooth_h[..., 2:, :]  # its transpose: +1 top, −1 bottom
    return torch.stack([gx, gy], dim=2)


def _weighted_excess(diff: torch.Tensor, budget: torch.Tensor, m: torch.Tensor,
                     power: int) -> torch.Tensor:
    e = F.relu(diff.abs() - budget)
    return (m * e.pow(power)).mean()


def jnd_l1(z: torch.Tensor, x: torch.Tensor, j: torch.Tensor, m_rgb=(1.0, 1.0, 1.0)) -> torch.Tensor:
    """Deviation loss ``L₁ = mean(λ · relu(|Z−X| − J))`` (Xue et al. 2023 eq. 3, λ from eq. 7)."""
    check_image_batch(z, "Z")
    return _weighted_excess(z - x, j, channel_weights(m_rgb, z), 1)


def jnd_l2(z: torch.Tensor, x: torch.Tensor, j: torch.Tensor, m_rgb=(1.0, 1.0, 1.0)) -> torch.Tensor:
    """Fidelity loss ``L₂ = mean(λ · relu(|Z−X| − J)²)`` (Xue et al. 2023 eq. 5)."""
    check_image_batch(z, "Z")
    return _weighted_excess(z - x, j, channel_weights(m_rgb, z), 2)


def gradient_loss(z: torch.Tensor, x: torch.Tensor, j: torch.Tensor,
                  m_rgb=(1.0, 1.0, 1.0), j_gradient: torch.Tensor | None = None) -> torch.Tensor:
    """Gradient loss ``G = L₁(g(Z), g(X), |g(J)|)`` (Xue et al. 2023 eq. 6).

    ``j_gradient`` may pass a precomputed ``|g(J)|`` (it is constant during an attack).
    """
    check_image_batch(z, "Z")
    gj = sobel(j).abs() if j_gradient is None else j_gradient
    m = channel_weights(m_rgb, z)[:, :, None]
    return _weighted_excess(sobel(z) - sobel(x), gj, m, 1)


def hvs_perceptual_loss(z: torch.Tensor, x: torch.Tensor, j: torch.Tensor,
                        beta=(1.0, 1.0, 1.0), m_rgb=(3.0, 5.0, 1.0), variant: str = "L1+L2+G",
                        j_gradient: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """``L_per`` for one of the paper's ablation variants.

    Args:
        z: adversarial images ``(B, 3, H, W)`` in [0, 1].
        x: clean images.
        j: JND budget, [0, 1] units.
        beta: ``(β₁, β₂, β₃)``; terms the variant does not use are ignored.
        m_rgb: channel weights ``M(r, g, b)`` (paper: 3, 5, 1).
        variant: one of :data:`ABLATIONS`.

    Returns:
        ``(loss, terms)`` where ``terms`` holds the unweighted values as floats.
    """
    if variant not in ABLATIONS:
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(ABLATIONS)}")
    b1, b2, b3 = (float(b) for b in beta)
    terms: dict[str, torch.Tensor] = {}
    loss = z.new_zeros(())
    if variant == "L1_ori":
        terms["L1_ori"] = (z - x).abs().mean()
        loss = b1 * terms["L1_ori"]
    elif variant == "L2_ori":
        terms["L2_ori"] = (z - x).pow(2).mean()
        loss = b2 * terms["L2_ori"]
    else:
        if "L1" in variant:
            terms["L1"] = jnd_l1(z, x, j, m_rgb)
            loss = loss + b1 * terms["L1"]
        if "L2" in variant:
            terms["L2"] = jnd_l2(z, x, j, m_rgb)
            loss = loss + b2 * terms["L2"]
        if variant.endswith("G"):
            terms["G"] = gradient_loss(z, x, j, m_rgb, j_gradient)
            loss = loss + b3 * terms["G"]
    return loss, {k: float(v.detach()) for k, v in terms.items()}
