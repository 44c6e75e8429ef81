"""Device resolution: done once, then passed explicitly (docs/design.md §2)."""

from __future__ import annotations

import torch

from jndguard.core.defaults import DEVICE_CHOICES, is_device_name
from jndguard.errors import UsageError


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Turn a user choice into a torch.device.

    ``auto`` picks CUDA, then Apple MPS, then the CPU. Asking for a device that is not
    present raises :class:`~jndguard.errors.UsageError` (a ValueError) with a clear message
    instead of failing later.
    """
    if isinstance(name, torch.device):
        return name
    name = str(name).lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: no CUDA device is available on this machine; "
                         "use --device cpu (or auto)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UsageError(f"--device {name}: Apple MPS is not available on this machine; "
                         "use --device cpu (or auto)")
    if not is_device_name(name):
        raise UsageError(f"--device {name}: unknown device; choose from {', '.join(DEVICE_CHOICES)}")
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    """Human-readable device name for status bars and reports."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type
