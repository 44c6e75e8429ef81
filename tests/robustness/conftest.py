"""Robustness suite: the whole matrix of bad inputs, options, damaged stores and interruptions,
run through the CLI on tiny files generated here with Pillow (docs/design.md §10: every failure
is a one- or two-line message naming the file or option, a documented exit status, and
nothing half-written)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture()
def store_env(model_home, monkeypatch):
    """Run with the fetched model store (the suite's own tests otherwise get an empty one)."""
    monkeypatch.setenv("JNDGUARD_HOME", str(model_home))
    return model_home


@pytest.fixture(scope="session")
def face_pixels(model_home) -> np.ndarray:
    """A real face photo (the first validation photo), as 8-bit RGB."""
    from jndguard.core.imageio import load_image
    from jndguard.core.models.store import validation_photos

    return load_image(validation_photos(1, model_home)[0]).pixels
