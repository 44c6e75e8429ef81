"""The layering of the package: the core, the commands and the CLI never import Qt or the GUI
(the CLI opens windows only through :mod:`jndguard.launch`), and the settings and the method
registry import without torch.

Imports are read from the source (AST), including those inside functions, so a lazy import
that would only run on some path is caught too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "jndguard"
FORBIDDEN = ("PySide6", "shiboken6", "jndguard.gui")
LAYERS = [PACKAGE / "core", PACKAGE / "commands", PACKAGE / "cli.py"]


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """``(line, absolute module name)`` of every import statement in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.append((node.lineno, name))
            out += [(node.lineno, f"{name}.{a.name}") for a in node.names]
    return out


def _files() -> list[Path]:
    files: list[Path] = []
    for layer in LAYERS:
        files += [layer] if layer.is_file() else sorted(layer.rglob("*.py"))
    return files


def _forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def test_the_layers_exist():
    assert all(p.exists() for p in LAYERS)
    assert len(_files()) > 20


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_core_commands_and_cli_never_import_qt_or_the_gui(path):
    bad = [f"line {line}: {name}" for line, name in imported_modules(path) if _forbidden(name)]
    assert not bad, f"{path.name} imports the GUI layer: {bad}"


def test_the_checker_sees_every_form_of_import(tmp_path):
    """The AST reader itself: plain, from, relative, and function-local imports."""
    pkg = tmp_path / "jndguard" / "core"
    pkg.mkdir(parents=True)
    f = pkg / "x.py"
    f.write_text("import PySide6.QtCore\nfrom ..gui import app\n"
                 "def later():\n    from jndguard.gui.params import METHODS\n", encoding="utf-8")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "jndguard"
    try:
        names = [n for _, n in imported_modules(f)]
    finally:
        PACKAGE = saved
    assert "PySide6.QtCore" in names and "jndguard.gui" in names and "jndguard.gui.params" in names
    assert all(_forbidden(n) for n in ("PySide6.QtCore", "jndguard.gui", "jndguard.gui.params"))
    assert not _forbidden("jndguard.guidance")


@pytest.mark.parametrize("path", sorted((PACKAGE / "core").rglob("*.py")),
                         ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_the_core_never_opens_windows(path):
    """Only the CLI hands over to the GUI, through :mod:`jndguard.launch`."""
    bad = [name for _, name in imported_modules(path) if name.startswith("jndguard.launch")]
    assert not bad


def test_settings_and_registry_import_without_torch_or_qt():
    code = ("import sys\n"
            "import jndguard.core.settings, jndguard.core.methods, jndguard.commands._options\n"
            "bad = [m for m in ('torch', 'PySide6', 'numpy') if m in sys.modules]\n"
            "assert not bad, bad\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=PACKAGE.parent)
    assert r.returncode == 0, r.stderr
