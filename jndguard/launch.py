"""The one bridge from the command line to the GUI.

The core, the commands and the CLI never import Qt or :mod:`jndguard.gui` (enforced by
``tests/test_layering.py``); the two commands that open windows — ``jndguard`` without a
command and ``jndguard study run`` — hand over through these functions, which import the GUI
only when called.
"""

from __future__ import annotations

from pathlib import Path


def gui(argv: list[str] | None = None) -> int:
    """Start the desktop app (``jndguard-gui``)."""
    from jndguard.gui.app import main

    return int(main(argv or []) or 0)


def study_window(study_path: Path, results_dir: Path, participant: str | None, windowed: bool) -> int:
    """Run a perceptual study (:mod:`jndguard.core.study`) full-screen (or in a window)."""
    from jndguard.core.study import load_study
    from jndguard.gui.qtapp import create_app
    from jndguard.gui.study_window import StudyWindow

    study = load_study(study_path)
    app = create_app([])
    window = StudyWindow(study, results_dir=results_dir, participant=participant)
    if windowed:
        window.resize(1400, 900)
        window.show()
    else:
        window.showFullScreen()
    return int(app.exec())
