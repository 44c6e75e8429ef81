"""The score table as Markdown, CSV and LaTeX (through :mod:`jndguard.core.tables`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jndguard.core.study.scoring import ScoreTable, Screening
from jndguard.core.tables import csv_table, latex_escape, markdown_table, write_texts


def _num(x: float, digits: int) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _average_label(images: Sequence[str]) -> str:
    return f"Average ({images[0]}–{images[-1]})" if len(images) > 1 else "Average"


def to_markdown(table: ScoreTable, digits: int = 2) -> str:
    """The table as GitHub Markdown: one Mean and one Std column per anchor."""
    head = ["Image ID"] + [f"vs. {a} {h}" for a in table.anchors for h in ("Mean", "Std")]
    rows = []
    for img in table.images:
        row = [img]
        for a in table.anchors:
            c = table.cell(img, a)
            row += [_num(c.mean, digits), _num(c.std, digits)] if c else ["", ""]
        rows.append(row)
    avg = [_average_label(table.images)]
    for a in table.anchors:
        avg += [_num(table.average(a), digits), "–"]
    return markdown_table(head, [*rows, avg], first=":---")


def caption(table: ScoreTable) -> str:
    n = len(table.participants) - len(table.excluded)
    return (
        f"Subjective viewing test: {table.proposed} compared with the anchor methods "
        f"(mean and standard deviation of the score over {n} participant{'s' if n != 1 else ''}; "
        f"+3 … −3, positive: {table.proposed} looks better)."
    )


def to_csv(table: ScoreTable, digits: int = 4) -> str:
    """The table as CSV, laid out like the Markdown/LaTeX one (empty Std in the average row)."""
    rows: list[list[Any]] = []
    for img in table.images:
        row: list[Any] = [img]
        for a in table.anchors:
            c = table.cell(img, a)
            row += (
                [round(c.mean, digits), "" if not math.isfinite(c.std) else round(c.std, digits)]
                if c
                else ["", ""]
            )
        rows.append(row)
    rows.append(["average"] + [v for a in table.anchors for v in (round(table.average(a), digits), "")])
    return csv_table(["image_id"] + [f"vs_{a}_{h}" for a in table.anchors for h in ("mean", "std")], rows)


def scores_csv(table: ScoreTable, digits: int = 4) -> str:
    """Long format: one row per photo and anchor with N, mean, sd and the 95 % interval."""
    def r(x: float) -> Any:
        return "" if not math.isfinite(x) else round(x, digits)

    rows = [[table.proposed, a, img, c.n, r(c.mean), r(c.std), r(c.ci95)]
            for a in table.anchors for img in table.images if (c := table.cell(img, a))]
    return csv_table(["proposed", "anchor", "image_id", "n", "mean", "std", "ci95"], rows)


def screening_csv(screening: Screening) -> str:
    rows = [[o.participant, o.presentations, o.p, o.q, round(o.fraction, 4), round(o.balance, 4),
             int(o.rejected)] for o in screening.observers]
    return csv_table(["participant", "presentations", "P", "Q", "fraction", "balance", "rejected"], rows)


def _tex_num(x: float, digits: int) -> str:
    if x is None or not math.isfinite(x):
        return "--"
    s = f"{x:.{digits}f}"
    return f"$-${s[1:]}" if s.startswith("-") else s


def to_latex(table: ScoreTable, digits: int = 2, label: str = "tab:subjective") -> str:
    """The table as a LaTeX ``table`` (needs ``booktabs``), in the layout of MND Table III."""
    k = len(table.anchors)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{latex_escape(caption(table))}}}",
        rf"\label{{{label}}}",
        r"\begin{tabular}{l" + "rr" * k + "}",
        r"\toprule",
        " & ".join([""] + [rf"\multicolumn{{2}}{{c}}{{vs.\ {latex_escape(a)}}}" for a in table.anchors])
        + r" \\",
        " ".join(rf"\cmidrule(lr){{{2 + 2 * i}-{3 + 2 * i}}}" for i in range(k)),
        " & ".join(["Image ID"] + ["Mean", "Std"] * k) + r" \\",
        r"\midrule",
    ]
    for img in table.images:
        row = [latex_escape(img)]
        for a in table.anchors:
            c = table.cell(img, a)
            row += [_tex_num(c.mean, digits), _tex_num(c.std, digits)] if c else ["", ""]
        lines.append(" & ".join(row) + r" \\")
    lines.append(r"\midrule")
    avg = [latex_escape(_average_label(table.images))]
    for a in table.anchors:
        avg += [_tex_num(table.average(a), digits), "--"]
    lines += [" & ".join(avg) + r" \\", r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_tables(table: ScoreTable, out_dir: str | Path, digits: int = 2) -> dict[str, Path]:
    """Write table.md, table.csv, table.tex, scores.csv (long) and screening.csv."""
    out = Path(out_dir)
    files = {
        "markdown": ("table.md", to_markdown(table, digits)),
        "csv": ("table.csv", to_csv(table)),
        "latex": ("table.tex", to_latex(table, digits)),
        "scores": ("scores.csv", scores_csv(table)),
    }
    if table.screening is not None:
        files["screening"] = ("screening.csv", screening_csv(table.screening))
    return write_texts(out, files)
