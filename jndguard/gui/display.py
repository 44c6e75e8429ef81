"""Can Qt open a window here? The X11 libraries of Qt's ``xcb`` platform plugin, checked
before the QApplication exists (no Qt import).

Without them Qt aborts with "Could not load the Qt platform plugin "xcb"" and a core dump,
which tells a user nothing about what to install. :func:`check_display` probes each shared
library the plugin links (``libqxcb.so``, ``libQt6XcbQpa.so``) the way the dynamic loader would
(``dlopen`` by soname) and names the Debian/Ubuntu packages that provide the missing ones.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable

from jndguard.errors import JNDGuardError

#: soname → Debian/Ubuntu package, for everything Qt's xcb plugin needs beyond Qt itself.
X11_LIBRARIES: dict[str, str] = {
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libfontconfig.so.1": "libfontconfig1",
    "libEGL.so.1": "libegl1",
}
SKIP_ENV = "JNDGUARD_SKIP_DISPLAY_CHECK"


class DisplayLibrariesMissing(JNDGuardError):
    """Qt's X11 platform plugin cannot load: system libraries are missing."""


def uses_xcb(environ: dict[str, str] | None = None, platform: str | None = None) -> bool:
    """Whether Qt will use its X11 (``xcb``) plugin: Linux, and ``QT_QPA_PLATFORM`` says xcb,
    or says nothing outside a Wayland session."""
    env = os.environ if environ is None else environ
    if not (platform or sys.platform).startswith("linux"):
        return False
    chosen = env.get("QT_QPA_PLATFORM", "").strip()
    if chosen:
        return chosen.split(";")[0].split(":")[0].strip() == "xcb"
    return not env.get("WAYLAND_DISPLAY")


def _loads(soname: str) -> bool:
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def missing_x11_packages(loads: Callable[[str], bool] | None = None) -> list[str]:
    """The packages whose libraries ``dlopen`` cannot find (in :data:`X11_LIBRARIES` order)."""
    loads = loads or _loads
    return [pkg for soname, pkg in X11_LIBRARIES.items() if not loads(soname)]


def install_hint(packages: list[str]) -> str:
    """What to tell the user (the packages and the apt command)."""
    return ("The desktop app cannot open a window: Qt's X11 platform plugin (xcb) needs system "
            f"libraries that are missing: {', '.join(packages)}.\n"
            f"Install them (Debian/Ubuntu):\n  sudo apt-get install -y {' '.join(packages)}\n"
            "Other distributions name them alike (e.g. xcb-util-cursor, xcb-util-wm, "
            "xcb-util-keysyms). The command line works without them: jndguard --help.")


def check_display(environ: dict[str, str] | None = None,
                  loads: Callable[[str], bool] | None = None) -> None:
    """Raise :class:`DisplayLibrariesMissing` (with the packages to install) when Qt would
    use X11 and a library it needs is missing; do nothing elsewhere.

    ``JNDGUARD_SKIP_DISPLAY_CHECK=1`` skips the check.
    """
    env = os.environ if environ is None else environ
    if env.get(SKIP_ENV) or not uses_xcb(env):
        return
    missing = missing_x11_packages(loads)
    if missing:
        raise DisplayLibrariesMissing(install_hint(missing))


__all__ = ["X11_LIBRARIES", "DisplayLibrariesMissing", "check_display", "install_hint",
           "missing_x11_packages", "uses_xcb"]
