"""A truncated manifest, once a dead end ("run `jndguard models fetch`", and the fetch failed
with the same message), is rebuilt by `models fetch --force` from the archive in the store;
the damaged file is kept beside it for inspection."""

from __future__ import annotations

import json

from jndguard.cli import main
from tests.robustness.helpers import copy_store


def test_truncated_manifest_is_rebuilt_by_fetch(model_home, tmp_path, monkeypatch, capsys):
    home = copy_store(model_home, tmp_path / "store")
    monkeypatch.setenv("JNDGUARD_HOME", str(home))
    manifest = home / "manifest.json"
    text = manifest.read_text()
    manifest.write_text(text[: len(text) // 2])
    assert main(["models", "list"]) == 2
    assert "manifest.json is damaged" in capsys.readouterr().err

    assert main(["models", "fetch", "--force"]) == 0
    capsys.readouterr()
    assert main(["models", "verify", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    rebuilt = json.loads(manifest.read_text())
    old = json.loads(text)
    assert rebuilt["models"]["facenet128-msceleb"]["sha256"] == old["models"]["facenet128-msceleb"]["sha256"]
    assert rebuilt["models"]["facenet128-msceleb"]["gallery"]["sha256"]
    assert [p.name.startswith("manifest.json.damaged-") for p in home.iterdir()].count(True) == 1
