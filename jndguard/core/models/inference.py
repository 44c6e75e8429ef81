"""Faster recogniser backbones with the same outputs, and the precision of the optimiser's gradients.

Every method spends its time in the recognisers' forward and backward passes (README "Speed").
Two rewrites are exact up to float rounding and are applied to every loaded backbone
(:func:`prepare_backbone`):

- **Folding the per-channel normalisation into the convolution before it.** facenet-pytorch's
  ``BasicConv2d`` is conv → BatchNorm (eval mode: a fixed per-channel ``γ·(x − μ)/σ + β``) →
  ReLU, and dlib's ResNet is conv → ``affine_`` (``γ·x + β``) throughout. Both are a per-channel
  scale and shift of the conv's output, i.e. a conv with scaled weights and a bias (Jacob et al.,
  "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only
  Inference", CVPR 2018, §3.2). One elementwise pass fewer per layer, forward and backward.
- **channels-last memory format** (NHWC), which oneDNN's CPU convolutions run faster.

Measured on this project's 2-core CPU (8 crops, forward+backward): FaceNet 0.34 → 0.26 s,
dlib's ResNet 0.11 → 0.08 s; outputs differ by < 1e-6.

**Gradient precision.** Where the CPU has native bfloat16 matrix units (Intel AMX or
AVX-512 BF16), the post-mode optimiser may run its forward/backward under bfloat16 autocast
(:func:`gradient_autocast`): the embeddings stay within cos 0.9998 of float32, the gradients are
as useful (measured: README "Speed"), and FaceNet's forward+backward is about 2.3× faster again.
Only the optimiser's own passes use it — every decision (the stopping check, the threat
matrix, verification) is computed in float32. Elsewhere (no bf16 units; the GPU, not measured
this way) ``auto`` means float32.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import torch
from torch import nn

from jndguard.core.settings import check_precision


def fold_scale_shift(conv: nn.Conv2d, scale: torch.Tensor, shift: torch.Tensor) -> nn.Conv2d:
    """A conv equal to ``scale_k · conv(x) + shift_k`` per output channel ``k``."""
    out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode).to(conv.weight)
    with torch.no_grad():
        out.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(shift)
        out.bias.copy_(bias * scale + shift)
    out.weight.requires_grad_(conv.weight.requires_grad)
    out.bias.requires_grad_(conv.weight.requires_grad)
    return out


def _batchnorm_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale.detach(), shift.detach()


def fold_normalisation(backbone: nn.Module) -> int:
    """Fold every conv → per-channel normalisation pair of ``backbone`` in place; returns how many.

    Known pairs: facenet-pytorch's ``BasicConv2d`` (``conv`` then ``bn``, BatchNorm in eval mode)
    and dlib's ResNet port (:meth:`~jndguard.core.models.dlib_resnet.DlibResNet.conv_affine_pairs`).
    The normalisation module becomes an ``nn.Identity``. Other modules are left alone.
    """
    if backbone.training:
        raise ValueError("fold only a backbone in eval mode (BatchNorm's running statistics)")
    folded = 0
    for module in list(backbone.modules()):
        conv, bn = getattr(module, "conv", None), getattr(module, "bn", None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
            module.conv = fold_scale_shift(conv, *_batchnorm_scale_shift(bn))
            module.bn = nn.Identity()
            folded += 1
    pairs = getattr(backbone, "conv_affine_pairs", None)
    if callable(pairs):
        for owner, conv_name, affine_name in pairs():
            affine = getattr(owner, affine_name)
            if isinstance(affine, nn.Identity):
                continue
            setattr(owner, conv_name, fold_scale_shift(getattr(owner, conv_name),
                                                       affine.weight.detach(), affine.bias.detach()))
            setattr(owner, affine_name, nn.Identity())
            folded += 1
    return folded


def prepare_backbone(backbone: nn.Module) -> nn.Module:
    """The loaded backbone made faster with the same outputs (module docstring): normalisation
    folded into its convs, parameters in channels-last layout. Returns it (changed in place)."""
    backbone.eval()
    fold_normalisation(backbone)
    return backbone.to(memory_format=torch.channels_last)


# --- gradient precision -------------------------------------------------------------------------


@functools.cache
def has_bf16_units() -> bool:
    """Whether this CPU multiplies bfloat16 natively (Intel AMX tiles or AVX-512 BF16); asked
    once per process (post mode resolves its precision every iteration)."""
    cpu = getattr(torch, "cpu", None)
    try:
        return bool(cpu._is_amx_tile_supported() or cpu._is_avx512_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``fp32`` or ``bf16`` for the optimiser's passes on ``device``: ``auto`` is ``bf16`` on a
    CPU with bfloat16 units and ``fp32`` otherwise; ``bf16`` asked for on a CPU without them
    falls back to ``fp32`` (emulated bfloat16 is slower than float32)."""
    if check_precision(precision) == "fp32":
        return "fp32"
    if torch.device(device).type != "cpu":  # the GPU: bf16 only when asked for
        return "bf16" if precision == "bf16" else "fp32"
    return "bf16" if has_bf16_units() else "fp32"


@contextlib.contextmanager
def gradient_autocast(precision: str, device: torch.device | str) -> Iterator[str]:
    """Autocast for an optimiser's forward/backward at ``precision`` (see
    :func:`resolve_precision`); yields the precision used. Outputs of the block should be cast
    back with ``.float()`` before they meet float32 tensors."""
    used = resolve_precision(precision, device)
    if used == "fp32":
        yield used
        return
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
        yield used
