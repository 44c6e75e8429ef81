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


@pytest.fixture
def watch_model():
    """A context manager that makes a method's misuse of the model visible.

    A :class:`~jndguard.core.models.recogniser.Recogniser` freezes itself (eval mode, no
    parameter needs a gradient), so "modes unchanged, no ``p.grad``" holds whatever a method
    does. Inside ``with watch_model(model) as untouched:`` every parameter accepts a gradient
    and every other shape-neutral submodule (convolutions, activations, …: not BatchNorm or
    Dropout, whose train mode changes the output) is flagged as training; ``untouched()``
    asserts that no parameter received ``.grad`` and that the flags are as they were set (a
    method calling ``model.eval()``/``train()`` or ``backward()`` fails it). The model is
    restored on exit.
    """
    from contextlib import contextmanager

    from torch import nn

    neutral = (nn.modules.batchnorm._BatchNorm, nn.Dropout)

    @contextmanager
    def watch(model: nn.Module):
        modules = list(model.modules())
        saved = [(m, m.training) for m in modules]
        params = list(model.parameters())
        needs = [p.requires_grad for p in params]
        pattern = [m.training if isinstance(m, neutral) else i % 2 == 0 for i, m in enumerate(modules)]
        for m, flag in zip(modules, pattern, strict=True):
            m.training = flag
        for p in params:
            p.requires_grad_(True)
            p.grad = None

        def untouched() -> None:
            changed = [type(m).__name__ for m, flag in zip(modules, pattern, strict=True)
                       if m.training != flag]
            assert not changed, f"train/eval mode changed on {len(changed)} module(s): {changed[:5]}"
            grads = sum(p.grad is not None for p in params)
            assert grads == 0, f"{grads} parameter(s) received .grad"

        try:
            yield untouched
        finally:
            for m, flag in saved:
                m.training = flag
            for p, req in zip(params, needs, strict=True):
                p.grad = None
                p.requires_grad_(req)

    return watch
