"""The validation benchmarks run on the GPU when there is one (``--device``, default auto).

``bench post``, ``bench matrix`` and ``bench protection`` loaded the recogniser on the CPU
whatever the machine had; a GPU session then ran post mode on one CPU thread.
"""

from __future__ import annotations

import argparse

import pytest

from jndguard.benchmarks import matrix, post, protection
from jndguard.cli import main


@pytest.mark.parametrize("module", [post, matrix, protection])
def test_device_option_defaults_to_auto(module):
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    extra = ["-o", "out"] if module is post else []
    assert parser.parse_args(extra).device == "auto"
    assert parser.parse_args([*extra, "--device", "cpu"]).device == "cpu"


@pytest.mark.parametrize("target", ["post", "matrix", "protection"])
def test_unknown_device_is_a_clear_error(target, tmp_path, capsys):
    extra = ["-o", str(tmp_path)] if target == "post" else []
    code = main(["bench", target, *extra, "--device", "abacus"])
    assert code != 0
    assert "--device abacus: unknown device" in capsys.readouterr().err
