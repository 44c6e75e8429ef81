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
    """Refused while the arguments are parsed (exit status 2), before any model is loaded."""
    extra = ["-o", str(tmp_path)] if target == "post" else []
    with pytest.raises(SystemExit) as exc:
        main(["bench", target, *extra, "--device", "abacus"])
    assert exc.value.code == 2
    assert "--device: unknown device 'abacus'" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["protect", "x.jpg", "-o", "out"], ["detect", "x.jpg"],
                                  ["identify", "a.jpg", "b.jpg"], ["verify", "a.jpg", "b.jpg"]])
def test_every_command_takes_the_same_devices(argv):
    """One ``--device`` for every command and benchmark: cuda:N accepted, case ignored,
    nonsense refused (``jndguard.commands._options.add_device``)."""
    from jndguard.cli import build_parser

    parser = build_parser()
    assert parser.parse_args([*argv, "--device", "CUDA:1"]).device == "cuda:1"
    assert parser.parse_args([*argv, "--device", "cpu"]).device == "cpu"
    with pytest.raises(SystemExit):
        parser.parse_args([*argv, "--device", "gpu"])
