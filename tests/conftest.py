"""Test isolation and shared fixtures.

- The model store the tests read is the one ``make test`` fetched before pytest started
  (``$JNDGUARD_HOME`` or the user cache). It is only read. Every test runs with
  ``JNDGUARD_HOME`` pointing at an empty temporary folder, so nothing a test does can touch
  the real store, and tests never download.
- Missing models fail the model tests loudly (run ``make test``, which fetches them).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from jndguard.core.models.store import models_home

REAL_HOME = models_home()
# The 24 Kodak test photos (free to use) ship with the repository in tests/data/kodak;
# $JNDGUARD_KODAK may point elsewhere. Modules read the resolved folder from $JNDGUARD_KODAK.
KODAK = Path(os.environ.get("JNDGUARD_KODAK") or Path(__file__).resolve().parent / "data" / "kodak")
os.environ["JNDGUARD_KODAK"] = str(KODAK)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("jndguard-home")
    monkeypatch.setenv("JNDGUARD_HOME", str(home))
    yield home


@pytest.fixture(scope="session")
def model_home() -> Path:
    from jndguard.core.models.store import is_fetched

    if not is_fetched(REAL_HOME):
        pytest.fail(f"models are not fetched in {REAL_HOME}: run `make test` (it fetches them)")
    return REAL_HOME


@pytest.fixture(scope="session")
def recogniser(model_home):
    from jndguard.core.models import load_recogniser

    return load_recogniser(home=model_home)


@pytest.fixture(scope="session")
def celeb_dir(model_home) -> Path:
    from jndguard.core.models.store import dataset_dir

    return dataset_dir(model_home)


@pytest.fixture(scope="session")
def celeb_faces(model_home):
    from jndguard.core.models.calibrate import index_faces
    from jndguard.core.models.store import dataset_dir

    return index_faces(dataset_dir(model_home))


@pytest.fixture(scope="session")
def kodak_dir() -> Path:
    if not KODAK.is_dir():
        pytest.fail(f"Kodak images not found at {KODAK} (set JNDGUARD_KODAK)")
    return KODAK


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's many small tensor ops single-threaded.

    On a loaded 2-core machine, OpenMP's spinning barriers make two-thread torch ops on
    small tiles 10× slower than one thread; results do not depend on the thread count.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
