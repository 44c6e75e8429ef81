"""Defaults the command-line parsers and the GUI's controls show before any work starts.

This module (like the method registry, :mod:`jndguard.core.methods`) must stay free of torch,
facenet-pytorch, piq, kornia and Qt: ``jndguard --help``, ``jndguard COMMAND --help`` and an
argument error import only these modules, so that they answer in a fraction of the time
``import torch`` takes (measured by ``jndguard bench cli``; ``tests/cli/test_lazy_imports.py``
fails when a heavy import sneaks in). The modules that do the work import their defaults from
here.
"""

from __future__ import annotations

#: devices a user may ask for (``auto``: CUDA, then Apple MPS, then the CPU), and ``cuda:N``
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def is_device_name(name: str) -> bool:
    """Whether ``name`` (lower case) is one of :data:`DEVICE_CHOICES` or ``cuda:N`` — a name,
    not a check that the device is present (:func:`jndguard.core.device.resolve_device`)."""
    return name in DEVICE_CHOICES or (name.startswith("cuda:") and name[5:].isdigit())

#: faces whose shorter box side is below this many full-resolution pixels are dropped
DEFAULT_MIN_FACE_SIZE = 20

#: DMV-JND: cosine to spare over τ when choosing the iterate (measured, README)
DMVJND_MARGIN = 0.05
