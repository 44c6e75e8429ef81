"""Before Qt loads its X11 plugin, a missing system library is named with its package."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jndguard.gui import display
from jndguard.gui.display import (
    X11_LIBRARIES,
    DisplayLibrariesMissing,
    check_display,
    missing_x11_packages,
    uses_xcb,
)


def test_when_qt_uses_x11():
    assert uses_xcb({}, "linux")
    assert uses_xcb({"QT_QPA_PLATFORM": "xcb"}, "linux")
    assert uses_xcb({"QT_QPA_PLATFORM": "xcb;wayland", "WAYLAND_DISPLAY": "w"}, "linux")
    assert not uses_xcb({"QT_QPA_PLATFORM": "offscreen"}, "linux")
    assert not uses_xcb({"WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert not uses_xcb({}, "darwin") and not uses_xcb({}, "win32")


def test_missing_libraries_name_their_packages():
    gone = {"libxcb-icccm.so.4", "libxcb-keysyms.so.1"}
    assert missing_x11_packages(lambda so: so not in gone) == ["libxcb-icccm4", "libxcb-keysyms1"]
    with pytest.raises(DisplayLibrariesMissing) as err:
        check_display({"QT_QPA_PLATFORM": "xcb"}, loads=lambda so: so not in gone)
    msg = str(err.value)
    assert "sudo apt-get install -y libxcb-icccm4 libxcb-keysyms1" in msg and "jndguard --help" in msg
    check_display({"QT_QPA_PLATFORM": "xcb"}, loads=lambda so: True)  # all there: no error
    check_display({"QT_QPA_PLATFORM": "offscreen"}, loads=lambda so: False)  # not X11
    check_display({"QT_QPA_PLATFORM": "xcb", "JNDGUARD_SKIP_DISPLAY_CHECK": "1"}, loads=lambda so: False)


@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("ldd") is None,
                    reason="the dynamic loader's view (ldd) is a Linux check")
def test_the_probe_agrees_with_the_dynamic_loader():
    """What the probe reports missing is what ``ldd`` says Qt's xcb plugin cannot find."""
    import PySide6

    qt = Path(PySide6.__file__).parent / "Qt"
    libs = [qt / "plugins" / "platforms" / "libqxcb.so", *sorted((qt / "lib").glob("libQt6XcbQpa.so*"))]
    out = "".join(subprocess.run(["ldd", str(p)], capture_output=True, text=True).stdout
                  for p in libs if p.is_file())
    if not out:
        pytest.skip("this PySide6 has no xcb plugin")
    not_found = {line.split("=>")[0].strip() for line in out.splitlines() if "not found" in line}
    expected = [pkg for so, pkg in X11_LIBRARIES.items() if so in not_found]
    linked = {line.split("=>")[0].strip() for line in out.splitlines() if "=>" in line}
    assert [pkg for pkg in missing_x11_packages() if pkg in {X11_LIBRARIES[s] for s in linked
                                                              if s in X11_LIBRARIES}] == expected
    assert not_found <= set(X11_LIBRARIES), f"unlisted libraries Qt needs: {not_found - set(X11_LIBRARIES)}"


def test_the_app_says_what_to_install_instead_of_aborting(monkeypatch, capsys):
    from jndguard.gui import app

    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.delenv("JNDGUARD_SKIP_DISPLAY_CHECK", raising=False)
    monkeypatch.setattr(display, "_loads", lambda so: so != "libxcb-cursor.so.0")
    assert app.main([]) == 1
    assert "libxcb-cursor0" in capsys.readouterr().err


def test_the_readme_lists_every_package():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert [p for p in X11_LIBRARIES.values() if p not in readme] == []
