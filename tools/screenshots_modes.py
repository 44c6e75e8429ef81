"""Render the study and presentation modes into PNGs for the docs.

    QT_QPA_PLATFORM=offscreen python tools/screenshots_modes.py docs/screenshots
    # or: xvfb-run -a -s "-screen 0 1920x1200x24" python tools/screenshots_modes.py

Writes study-intro.png, study.png (a trial with a choice made), study-reference.png (the
original shown with R), presentation-running.png (live similarity mid-run) and
presentation.png (the protected result). Needs the fetched models (``jndguard models
fetch``): the study's two versions are generated with the real pipeline (HVS-JND and PGD on
the bundled sample and one 5-celebrity photo), and the presentation runs a real protection.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from jndguard.gui.screenshots import SIZE, _wait  # the same window size and event wait


def _shot(app, widget, path: Path) -> None:
    for _ in range(10):
        app.processEvents()
        time.sleep(0.02)
    widget.grab().save(str(path))
    print(f"wrote {path}")


def _study_photos(folder: Path) -> None:
    from jndguard.core.models.store import dataset_dir
    from jndguard.resources import SAMPLE_PHOTO, resource_path

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(resource_path(SAMPLE_PHOTO), folder / "portrait.png")
    src = sorted((dataset_dir() / "val" / "madonna").glob("*.jpg"))
    if src:
        shutil.copy(src[0], folder / "madonna.jpg")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--iterations", type=int, default=30, help="HVS-JND budget")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import torch
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from jndguard.core.models.store import is_fetched
    from jndguard.core.pipeline import ProtectionSettings
    from jndguard.core.progress import drive
    from jndguard.core.study import StudySettings, build_study, generate_steps, save_study
    from jndguard.gui.presentation import PresentationWindow, presentation_settings
    from jndguard.gui.qtapp import create_app
    from jndguard.gui.study_window import StudyWindow

    torch.set_num_threads(1)
    if not is_fetched():
        print("screenshots: the models are missing; run `jndguard models fetch` first", file=sys.stderr)
        return 2
    app = create_app()
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="jndguard-modes-"))

    # ---------------------------------------------------------------- study
    clean = tmp / "clean"
    _study_photos(clean)
    base = ProtectionSettings(max_iterations=args.iterations, device=args.device)

    def show(ev) -> None:
        if ev.message in ("written", "no face"):
            print(f"  {ev.method}: {ev.photo} {ev.message}")

    dirs = drive(generate_steps(clean, ["hvs-jnd", "pgd"], tmp / "outputs", base), show)
    study, _ = build_study(
        clean, dirs, "hvs-jnd", name="demo", settings=StudySettings(training=1, gap_ms=0, break_seconds=0)
    )
    path = save_study(study, tmp / "study.json")
    w = StudyWindow(study, results_dir=tmp / "results", participant="P01")
    w.resize(*SIZE)
    w.show()
    _shot(app, w, args.out / "study-intro.png")
    QTest.keyClick(w.id_edit, Qt.Key.Key_Return)
    _wait(app, lambda: w.state == "intro-training", 10, "the practice screen")
    QTest.keyClick(w, Qt.Key.Key_Space)
    _wait(app, lambda: w.state == "trial", 10, "the first trial")
    QTest.keyClick(w, Qt.Key.Key_Return)  # nothing chosen yet: ignored
    QTest.keyClick(w, Qt.Key.Key_3)
    _shot(app, w, args.out / "study.png")
    QTest.keyClick(w, Qt.Key.Key_R)
    _shot(app, w, args.out / "study-reference.png")
    w.close()
    print(f"  (study manifest: {path})")

    # ---------------------------------------------------------------- presentation
    p = PresentationWindow(
        settings=presentation_settings(device=args.device, max_iterations=args.iterations, safety_margin=0.1)
    )
    p.resize(*SIZE)
    p.show()
    p.load_sample()
    _wait(app, lambda: p.photo is not None, 30, "the sample photo")
    p.protect()
    _wait(app, lambda: len(p.history) >= 6 or p.result is not None, 300, "live progress")
    _shot(app, p, args.out / "presentation-running.png")
    _wait(app, lambda: not p.busy, 600, "the end of the run")
    _shot(app, p, args.out / "presentation.png")
    p.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
