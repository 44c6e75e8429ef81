"""GUI entry point: ``jndguard`` with no command, ``python -m jndguard``, ``jndguard-gui``.

The application helpers live in :mod:`jndguard.gui.qtapp` (re-exported here).
"""

from __future__ import annotations

import sys

from jndguard.gui.qtapp import apply_theme, create_app, install_excepthook, reserve_gui_core


def main(argv: list[str] | None = None) -> int:
    import multiprocessing

    multiprocessing.freeze_support()  # the verification helper process in a frozen app
    from jndguard.gui.display import DisplayLibrariesMissing, check_display

    try:
        check_display()  # before Qt loads its platform plugin (it would abort)
    except DisplayLibrariesMissing as exc:
        print(f"jndguard: {exc}", file=sys.stderr)
        return 1
    from jndguard.gui.main_window import MainWindow
    from jndguard.gui.settings import SettingsStore

    app = create_app(argv)
    reserve_gui_core()
    store = SettingsStore()
    first_start = not store.get("general/started", False)
    store.set("general/started", True)
    window = MainWindow(store, load_sample=first_start)
    install_excepthook(window)
    window.show()
    try:
        return app.exec()
    finally:
        from jndguard.gui import helper

        helper.shutdown()


__all__ = ["apply_theme", "create_app", "install_excepthook", "main", "reserve_gui_core"]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
