"""Adversarial losses on the identity head / the embeddings.

- :func:`paper_adversarial_loss` — the cross-entropy variant of the MND paper that the
  HVS-JND paper adopts ("a variant of cross-entropy loss [29]"): with ``ŷ = softmax(logits)``,
  non-targeted ``⟨y_gt, ŷ^r⟩`` (push the true class's probability down), targeted
  ``−⟨y_t, ŷ^r⟩`` (Sun, Jin & Lin 2023 eqs. 3, 4, 6).
- :func:`cosine_margin_loss` — JNDGuard's ``fast``-mode loss, aligned with the success test
  of docs/design.md §4: dodging pushes ``cos(emb(Z), emb(X))`` below ``τ − margin``; impersonation
  pulls ``cos(emb(Z), c_target)`` above ``τ + margin`` and above every other identity.
  The softmax loss saturates on this recogniser (``ŷ_self ≈ 1`` at the start, vanishing
  gradient) and its optimum (top-1 changed) is not the success criterion.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def paper_adversarial_loss(logits: torch.Tensor, true_label: int, target_label: int | None = None,
                           power: float = 1.0) -> torch.Tensor:
    """MND/HVS-JND adversarial loss (Sun, Jin & Lin 2023 eq. 6), mean over the batch of crops.

    Args:
        logits: ``(N, C)`` identity-head logits.
        true_label: the clean class (0 = the person).
        target_label: the target class for impersonation, None when dodging.
        power: ``r``.
    """
    p = F.softmax(logits, dim=1)
    if target_label is None:
        return p[:, true_label].pow(power).mean()
    return -p[:, target_label].pow(power).mean()


def cosine_margin_loss(sim_self: torch.Tensor, threshold: float, margin: float,
                       sim_target: torch.Tensor | None = None,
                       sim_others: torch.Tensor | None = None) -> torch.Tensor:
    """Hinge on cosine similarity, mean over the crops.

    Args:
        sim_self: ``(N,)`` cosine of each crop to the clean face.
        threshold: the recogniser's verification threshold τ.
        margin: how far past τ to push.
        sim_target: ``(N,)`` cosine to the impersonation target (None when dodging).
        sim_others: ``(N, K)`` cosine to every non-target identity, self included.
    """
    if sim_target is None:
        return F.relu(sim_self - (threshold - margin)).mean()
    loss = F.relu((threshold + margin) - sim_target)
    if sim_others is not None:
        loss = loss + F.relu(sim_others.max(dim=1).values - sim_target + margin)
    return loss.mean()
