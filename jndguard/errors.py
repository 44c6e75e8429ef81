"""Typed exceptions. Every user-facing failure is one of these, with a message that says
what went wrong, with which file, and what to do about it."""

from __future__ import annotations


class JNDGuardError(Exception):
    """Base class of every error JNDGuard raises on purpose."""


class ImageLoadError(JNDGuardError):
    """A photo could not be read (missing, corrupt, truncated, too large, unsupported)."""


class ModelMissingError(JNDGuardError):
    """The models have not been fetched; the message names the command to run."""


class ModelIntegrityError(JNDGuardError):
    """A stored model or archive does not match its pinned hash, or a conversion is wrong."""


class ConversionError(ModelIntegrityError):
    """The Keras → PyTorch weight conversion found a missing, unused or misshaped tensor."""


class NoFaceError(JNDGuardError):
    """No face large enough was found in a photo."""


class ExportError(JNDGuardError):
    """A protected photo or report could not be written (read-only or full folder, …)."""


class UsageError(JNDGuardError, ValueError):
    """A bad option or argument, found before any work starts (exit status 2)."""


class ShapeError(JNDGuardError, ValueError):
    """A tensor argument has the wrong shape (kornia's ShapeError style)."""


def check_image_batch(x, name: str = "images") -> None:
    """Raise ShapeError unless ``x`` is a float tensor of shape (B, 3, H, W)."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise ShapeError(f"{name} must have shape (B, 3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ShapeError(f"{name} must be a floating-point tensor in [0, 1], got {x.dtype}")
