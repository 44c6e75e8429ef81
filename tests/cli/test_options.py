"""The settings flags come from the registry: names that say what they set, aliases, choices."""

from __future__ import annotations

import pytest

from jndguard.cli import build_parser
from jndguard.core.methods import REGISTRY, paper_defaults
from jndguard.core.settings import (
    ExportFormat,
    Goal,
    HvsMode,
    ProtectionSettings,
    Variant,
    add_alias,
)


def _parse(*argv):
    return build_parser().parse_args(list(argv))


def test_goal_flag_and_its_deprecated_alias(capsys):
    assert _parse("protect", "a.jpg", "-o", "out").goal == "dodge"
    assert _parse("protect", "a.jpg", "-o", "out", "--goal", "impersonate").goal == "impersonate"
    assert capsys.readouterr().err == ""
    args = _parse("protect", "a.jpg", "-o", "out", "--mode", "impersonate", "--target", "madonna")
    assert args.goal == "impersonate"
    assert "--mode is deprecated; use --goal" in capsys.readouterr().err
    assert _parse("compare", "-o", "out", "--mode", "impersonate").goal == "impersonate"
    with pytest.raises(SystemExit):
        _parse("protect", "a.jpg", "-o", "out", "--goal", "vanish")


def test_format_jpg_means_jpeg():
    assert _parse("protect", "a.jpg", "-o", "out", "--format", "jpg").format == "jpeg"
    assert _parse("protect", "a.jpg", "-o", "out", "--format", "JPEG").format == "jpeg"
    assert _parse("protect", "a.jpg", "-o", "out").format == "png"
    with pytest.raises(SystemExit):
        _parse("protect", "a.jpg", "-o", "out", "--format", "gif")


def test_choices_are_the_registry_s():
    p = build_parser()
    sub = next(a for a in p._actions if a.dest == "command").choices["protect"]
    by_flag = {s: a for a in sub._actions for s in a.option_strings}
    assert list(by_flag["--method"].choices) == list(REGISTRY)
    assert list(by_flag["--hvs-mode"].choices) == [m.value for m in HvsMode]
    assert list(by_flag["--variant"].choices) == [v.value for v in Variant]
    assert list(by_flag["--format"].choices) == [f.value for f in ExportFormat]


def test_an_alias_is_one_line(monkeypatch):
    """A renamed choice keeps its old name working everywhere settings are read."""
    from jndguard.core import settings

    monkeypatch.setitem(settings._ALIASES, "HvsMode", {})
    add_alias(HvsMode, "quick", "lossless")
    assert HvsMode("quick") is HvsMode.LOSSLESS
    assert _parse("protect", "a.jpg", "-o", "out", "--hvs-mode", "quick").hvs_mode == "lossless"
    assert ProtectionSettings.from_flat({"mode": "quick"}).mode is HvsMode.LOSSLESS


def test_settings_flat_interface_and_old_reports():
    s = ProtectionSettings(method="mnd", max_iterations=7, jnd_strength=1.5, seed=3)
    assert (s.hvs.max_iterations, s.jnd.strength, s.run.seed) == (7, 1.5, 3)
    assert (s.max_iterations, s.jnd_strength, s.seed) == (7, 1.5, 3)
    flat = s.to_dict()
    assert flat["goal"] == "dodge" and type(flat["goal"]) is str
    assert ProtectionSettings.from_flat(flat) == s
    # a report written before the settings had groups: flat, lists for tuples, extra keys
    old = {**flat, "m_rgb": [3.0, 5.0, 1.0], "beta": [1.0, 2.0, 3.0], "retired_field": 1}
    assert ProtectionSettings.from_flat(old).beta == (1.0, 2.0, 3.0)
    assert s.goal is Goal.DODGE and f"{s.goal}" == "dodge" and str(s.goal) == "dodge"
    with pytest.raises(TypeError):
        ProtectionSettings(no_such_field=1)
    with pytest.raises(ValueError):
        ProtectionSettings(goal="impersonate")  # no target
    with pytest.raises(ValueError):
        ProtectionSettings(method="nope")


def test_paper_defaults_come_from_the_registry():
    p = paper_defaults("hvs-jnd", "impersonate")
    assert p.mode is HvsMode.PAPER and p.beta == (30.0, 30.0, 30.0) and p.delta == -1.0
    assert p.target == "madonna"
    assert paper_defaults("pgd", "dodge") == ProtectionSettings(method="pgd")
