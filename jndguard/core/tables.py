"""One table writer for the papers' tables (``compare`` and ``study score``): Markdown, CSV,
LaTeX (``booktabs``), one LaTeX escape, atomic files.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

#: Characters LaTeX treats specially (and the two typographic ones the tables use).
LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\^{}",
    "±": r"$\pm$",
    "–": "--",
}


def latex_escape(text: str) -> str:
    """``text`` safe inside a LaTeX table cell or caption."""
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def markdown_table(head: Sequence[str], rows: Iterable[Sequence[Any]], first: str = "---") -> str:
    """A GitHub Markdown table: the first column aligned by ``first``, the others right."""
    lines = ["| " + " | ".join(map(str, head)) + " |",
             "|" + "|".join([first] + ["---:"] * (len(head) - 1)) + "|"]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def csv_table(head: Sequence[Any], rows: Iterable[Sequence[Any]]) -> str:
    """CSV text (``\\n`` line ends) with a header row."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    w.writerows(rows)
    return buf.getvalue()


def latex_row(cells: Iterable[str]) -> str:
    """One row of a ``tabular``: the cells as given (escape them first), ``\\\\`` at the end."""
    return " & ".join(cells) + r" \\"


def write_texts(out_dir: str | Path, files: Mapping[str, tuple[str, str]]) -> dict[str, Path]:
    """Write ``{key: (file name, text)}`` into ``out_dir`` atomically; ``{key: path}``."""
    from jndguard.core.files import atomic_write_text

    out = Path(out_dir)
    return {key: atomic_write_text(out / name, text) for key, (name, text) in files.items()}


__all__ = ["LATEX_SPECIAL", "csv_table", "latex_escape", "latex_row", "markdown_table", "write_texts"]
