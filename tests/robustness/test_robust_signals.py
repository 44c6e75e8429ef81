"""SIGTERM while a photo's exported file is being verified (its image is complete on disk, its
report and CSV row not yet): the process exits with 143 and leaves nothing of that photo,
neither under its final names nor as a temporary file. (Ctrl-C takes the same path: SIGTERM
is turned into it; tests/core/test_export.py interrupts the same moment in-process.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.robustness.helpers import listing

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143)], ids=["SIGTERM"])
def test_signal_during_verification_leaves_nothing(model_home, face_pixels, tmp_path, sig, code):
    photo = tmp_path / "face.png"
    Image.fromarray(face_pixels).save(photo)
    out = tmp_path / "out"
    env = {**os.environ, "JNDGUARD_HOME": str(model_home), "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    # lossless mode, one iteration per β attempt: the run reaches its export in seconds; what is
    # tested is the interruption of the export (verification runs on the staged file)
    proc = subprocess.Popen([sys.executable, "-m", "jndguard", "protect", str(photo), "-o", str(out),
                             "--device", "cpu", "--hvs-mode", "lossless", "--iterations", "1"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600
        staged = False
        while time.monotonic() < deadline and proc.poll() is None:
            # the staged image exists from its encoding until the three files are published
            if any(n.startswith(".face.protected.png.") for n in listing(out)):
                staged = True
                break
            time.sleep(0.05)
        assert staged, "the run never reached its export"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, err
    assert "nothing half-written" in err and "Traceback" not in err
    assert listing(out) == []
