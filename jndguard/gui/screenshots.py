"""Render the main states of the window into PNGs (``make screenshots``, used by the README).

    xvfb-run -a -s "-screen 0 1920x1200x24" python -m jndguard.gui.screenshots docs/screenshots

States: the photo queue (with a damaged file), the JND view with the magnifier, a run in
progress with its live plots, the perturbation and before/after views, the results with
metrics and verdicts, two methods compared, their analysis (Grad-CAM, difference maps,
|change| / J), and the dark theme. Needs the fetched models (``jndguard models fetch``);
drives the real window, real workers and the real pipeline.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

SIZE = (1600, 1000)


def _wait(app, cond: Callable[[], bool], timeout: float, what: str) -> None:
    t0 = time.monotonic()
    while not cond():
        app.processEvents()
        time.sleep(0.02)
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"timed out waiting for {what}")
    for _ in range(5):
        app.processEvents()
        time.sleep(0.02)


def _photos(folder: Path) -> dict[str, Path]:
    from jndguard.core.models.store import dataset_dir
    from jndguard.resources import SAMPLE_PHOTO, resource_path

    folder.mkdir(parents=True, exist_ok=True)
    out = {"portrait": folder / "portrait.png"}
    shutil.copy(resource_path(SAMPLE_PHOTO), out["portrait"])
    val = dataset_dir() / "val"
    for person in ("ben_afflek", "madonna", "mindy_kaling"):
        src = sorted((val / person).glob("*.jpg"))[1]
        out[person] = folder / f"{person.replace('_', '-')}.jpg"
        shutil.copy(src, out[person])
    # The repository's own copy of the Kodak set (screenshots run from a checkout).
    kodak = Path(__file__).resolve().parents[2] / "tests" / "data" / "kodak" / "kodim12.png"
    if kodak.is_file():
        out["two-faces"] = folder / "two-faces.png"
        shutil.copy(kodak, out["two-faces"])
    bad = folder / "damaged.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0" + b"truncated download" * 20)
    out["damaged"] = bad
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--compare", default="pgd", help="second method of the comparison")
    args = parser.parse_args(argv)

    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtWidgets import QApplication

    from jndguard.core.models.store import is_fetched
    from jndguard.gui.main_window import MainWindow
    from jndguard.gui.qtapp import apply_theme, create_app
    from jndguard.gui.settings import SettingsStore
    from jndguard.gui.state import Status

    if not is_fetched():
        print("screenshots: the models are missing; run `jndguard models fetch` first", file=sys.stderr)
        return 2
    app = create_app()
    apply_theme("light")
    tmp = Path(tempfile.mkdtemp(prefix="jndguard-shots-"))
    args.out.mkdir(parents=True, exist_ok=True)
    w = MainWindow(SettingsStore.at(tmp / "settings.ini"), check_models=True)
    w.resize(*SIZE)
    w.show()
    c = w.controller
    c.use_dlib = False  # keeps the run short; the saved-file check still runs
    shots: list[Path] = []

    def shot(name: str) -> None:
        for _ in range(10):
            app.processEvents()
            time.sleep(0.03)
        path = args.out / name
        w.grab().save(str(path))
        shots.append(path)
        print(f"wrote {path}")

    _wait(app, lambda: c.model_status is not None, 60, "the model check")
    photos = _photos(tmp / "photos")
    w.add_paths(list(photos.values()))
    _wait(
        app,
        lambda: (
            len(c.queue.items()) == len(photos) and all(it.status != Status.LOADING for it in c.queue.items())
        ),
        120,
        "the photos",
    )
    portrait = next(it for it in c.queue.items() if it.name == "portrait.png")
    c.select(portrait.id)
    _wait(app, lambda: w.views.frames["jnd"].pane.has_image(), 60, "the JND view")
    w.banner.hide()
    shot("01-queue.png")

    # the JND map with the magnifier on an eye
    w.views.set_visible_panes(["original", "jnd"])
    w.act_magnifier.setChecked(True)
    face = portrait.faces[0].box
    eye = QPointF(face[0] + 0.38 * (face[2] - face[0]), face[1] + 0.4 * (face[3] - face[1]))
    w.views.set_magnifier_point(eye)
    shot("02-jnd.png")

    # a run in progress: live plots and perturbation preview
    w.views.set_visible_panes(["original", "jnd", "perturbation", "protected"])
    w.views.set_magnifier_point(None)
    w.act_magnifier.setChecked(False)
    from dataclasses import replace

    # a run in progress: shot when the optimisation is over and the saved file is being
    # checked (the curves are complete, the run is not)
    plain = c.settings
    c.set_settings(replace(plain, max_iterations=args.iterations, method="hvs-jnd", safety_margin=0.1))
    c.protect([portrait.id])
    _wait(
        app,
        lambda: (
            c.run is None
            or (c.run.step is not None and c.run.step.stage == "verify" and len(c.run.history) >= 5)
        ),
        900,
        "live progress",
    )
    shot("03-running.png")
    _wait(app, lambda: c.run is None, 900, "the end of the run")
    _wait(app, lambda: w.views.frames["protected"].pane.has_image(), 60, "the result")

    # perturbation, protected, before/after, with the red-box detail
    w.views.set_visible_panes(["original", "perturbation", "protected", "wipe"])
    w.act_magnifier.setChecked(True)
    w.views.set_magnifier_point(eye)
    w.views.wipe_slider.setValue(450)
    shot("04-perturbation.png")

    # results: verdict badges and metrics (bigger results panel)
    w.act_magnifier.setChecked(False)
    w.views.set_magnifier_point(None)
    w.views.set_visible_panes(["original", "protected"])
    w.resizeDocks([w.progress_dock], [430], Qt.Orientation.Vertical)
    w.resizeDocks([w.progress_dock, w.results_dock], [520, 1080], Qt.Orientation.Horizontal)
    shot("05-results.png")

    # two methods side by side
    second = args.compare
    c.set_settings(replace(plain, max_iterations=args.iterations, method=second))
    c.protect([portrait.id])
    _wait(app, lambda: c.run is None, 900, f"the {second} run")
    w.compare.set_methods(("hvs-jnd", second))
    c.set_compare(("hvs-jnd", second))
    w.tabs.setCurrentWidget(w.compare)
    w.resizeDocks([w.progress_dock], [200], Qt.Orientation.Vertical)
    _wait(app, lambda: w.compare.frames["perturbation_b"].pane.has_image(), 60, "the comparison")
    shot("06-compare.png")

    # the analysis: Grad-CAM of the clean face and both methods, HVS-JND's difference maps
    c.show_method("hvs-jnd")
    w.tabs.setCurrentWidget(w.analysis)
    _wait(
        app,
        lambda: (
            not w.analysis.showing_empty
            and not w.analysis.needs_data
            and "HVS-JND" in w.analysis.header.text()
        ),
        300,
        "the analysis",
    )
    shot("analysis.png")
    c.show_method(None)

    # dark theme
    w.tabs.setCurrentWidget(w.views)
    w.views.set_visible_panes(["original", "jnd", "perturbation", "protected"])
    w.set_theme("dark", persist=False)
    shot("07-dark.png")
    w.set_theme("light", persist=False)

    w.close()
    QApplication.processEvents()
    from jndguard.gui import helper

    helper.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(shots)} screenshots in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
