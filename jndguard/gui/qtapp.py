"""Qt application helpers shared by every window: the QApplication, the theme, the excepthook.

Kept apart from the entry point (:mod:`jndguard.gui.app`) so that windows import these without
importing the entry point that imports them (no app ↔ main_window cycle). :func:`create_app`
checks Qt's X11 libraries before the QApplication exists (:mod:`jndguard.gui.display`).
"""

from __future__ import annotations

import logging
import sys
import traceback

logger = logging.getLogger(__name__)

_SYSTEM_PALETTE = None


def _dark_palette():
    from PySide6.QtGui import QColor, QPalette

    p = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#2b2d31",
        QPalette.ColorRole.WindowText: "#e6e6e6",
        QPalette.ColorRole.Base: "#1e1f22",
        QPalette.ColorRole.AlternateBase: "#26282c",
        QPalette.ColorRole.ToolTipBase: "#3a3c42",
        QPalette.ColorRole.ToolTipText: "#f0f0f0",
        QPalette.ColorRole.Text: "#e6e6e6",
        QPalette.ColorRole.Button: "#35373c",
        QPalette.ColorRole.ButtonText: "#e6e6e6",
        QPalette.ColorRole.BrightText: "#ff6b6b",
        QPalette.ColorRole.Highlight: "#3d7bd9",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: "#6aa7ff",
        QPalette.ColorRole.PlaceholderText: "#9a9ca3",
        QPalette.ColorRole.Mid: "#4a4c52",
        QPalette.ColorRole.Dark: "#1b1c1f",
        QPalette.ColorRole.Light: "#505258",
        QPalette.ColorRole.Midlight: "#43454b",
        QPalette.ColorRole.Shadow: "#101113",
    }
    for role, colour in roles.items():
        p.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.WindowText, QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#7a7c82"))
    return p


def apply_theme(key: str) -> None:
    """``"system"`` follows the desktop's light/dark setting; ``"light"``/``"dark"`` force one.

    The Fusion style draws with the application palette, and Qt (6.5+) updates that palette
    when the system colour scheme changes; widgets that paint themselves read the palette,
    so they follow too.
    """
    global _SYSTEM_PALETTE
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if not isinstance(app, QApplication):
        return
    if _SYSTEM_PALETTE is None:
        _SYSTEM_PALETTE = app.palette()
    hints = QGuiApplication.styleHints()
    scheme = {"light": Qt.ColorScheme.Light, "dark": Qt.ColorScheme.Dark}.get(key, Qt.ColorScheme.Unknown)
    if hasattr(hints, "setColorScheme"):
        hints.setColorScheme(scheme)
    if key == "dark":
        app.setPalette(_dark_palette())
    elif key == "light":
        app.setPalette(app.style().standardPalette())
    else:
        app.setPalette(_SYSTEM_PALETTE)


def reserve_gui_core() -> int:
    """Leave one CPU core to the GUI thread: torch's intra-op threads busy-wait (OpenMP
    spinning) and would otherwise take every core while an attack runs, and the window's
    event loop would wait for the scheduler. Returns the thread count set."""
    import os

    import torch

    n = max(1, min(torch.get_num_threads(), (os.cpu_count() or 2) - 1))
    torch.set_num_threads(n)
    return n


def create_app(argv: list[str] | None = None):
    """The QApplication (created once), with names, Fusion style and the window icon.

    Raises:
        DisplayLibrariesMissing: Qt would use X11 and its libraries are missing.
    """
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from jndguard import __version__
    from jndguard.resources import APP_ICON, resource_path

    app = QApplication.instance()
    if app is None:
        from jndguard.gui.display import check_display

        check_display()  # names the missing X11 packages instead of Qt's abort
        app = QApplication(["jndguard", *(argv or [])])
        app.setStyle("Fusion")
    app.setApplicationName("JNDGuard")
    app.setOrganizationName("JNDGuard")
    app.setApplicationVersion(__version__)
    icon = resource_path(APP_ICON)
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))
    return app


def show_window(make, fullscreen: bool, size: tuple[int, int]):
    """Create the QApplication if needed, then the top-level window ``make()``: deleted on
    close, full screen or at ``size``, raised and active. Returns the window."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    if QApplication.instance() is None:
        create_app()
    w = make()
    w.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    if fullscreen:
        w.showFullScreen()
    else:
        w.resize(*size)
        w.show()
    w.raise_()
    w.activateWindow()
    return w


def install_excepthook(window) -> None:
    """Uncaught exceptions in slots go to the window's error banner instead of vanishing."""
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        if issubclass(exc_type, KeyboardInterrupt):
            previous(exc_type, exc, tb)
            return
        logger.error("uncaught exception:\n%s", "".join(traceback.format_exception(exc_type, exc, tb)))
        try:
            window.controller.errors.report_exception("Unexpected error", exc.with_traceback(tb))
        except Exception:  # the window may be gone
            previous(exc_type, exc, tb)

    sys.excepthook = hook


__all__ = ["apply_theme", "create_app", "install_excepthook", "reserve_gui_core", "show_window"]
