"""Ratings: one CSV per participant, appended and fsynced after every rating."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from jndguard.core.files import atomic_write_text
from jndguard.core.study.build import natural_key
from jndguard.core.study.manifest import LEFT, RATINGS, RIGHT, TEST, TRAINING, StudyError
from jndguard.core.study.plan import Presentation


@dataclass(frozen=True)
class Rating:
    """One row of a participant's results CSV."""

    participant: str
    phase: str
    seq: int
    trial_id: str
    image_id: str
    repeat: int
    left_method: str
    right_method: str
    proposed_method: str
    anchor_method: str
    proposed_side: str
    rating: int  # as given: +3 left much better … −3 right much better
    score: int  # proposed vs anchor: positive = proposed better
    reference_views: int = 0
    response_ms: int = 0
    session: int = 1

    def score_for(self, method: str) -> tuple[str, int] | None:
        """``(other_method, score)`` from ``method``'s point of view, or None when it was not shown."""
        if method == self.left_method:
            return self.right_method, self.rating
        if method == self.right_method:
            return self.left_method, -self.rating
        return None


CSV_FIELDS = tuple(f.name for f in fields(Rating))
_INT_FIELDS = {"seq", "repeat", "rating", "score", "reference_views", "response_ms", "session"}


def score_of(rating: int, proposed_side: str) -> int:
    """Proposed-vs-anchor score of a left-vs-right rating (sign flipped when proposed was right)."""
    return rating if proposed_side == LEFT else -rating


def make_rating(
    participant: str,
    p: Presentation,
    rating: int,
    *,
    reference_views: int = 0,
    response_ms: int = 0,
    session: int = 1,
) -> Rating:
    if rating not in RATINGS:
        raise StudyError(f"rating {rating!r} is not on the scale {RATINGS}")
    return Rating(
        participant,
        p.phase,
        p.seq,
        p.trial.id,
        p.trial.image_id,
        p.repeat,
        p.left_method,
        p.right_method,
        p.trial.proposed_method,
        p.trial.anchor_method,
        p.proposed_side,
        rating,
        score_of(rating, p.proposed_side),
        reference_views,
        response_ms,
        session,
    )


def _append_row(path: Path, row: Rating) -> None:
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_FIELDS, lineterminator="\n")
        if new:
            w.writeheader()
        w.writerow(asdict(row))
        fh.flush()
        os.fsync(fh.fileno())


def write_ratings(path: str | Path, rows: Iterable[Rating]) -> Path:
    """Write rows as one results CSV (atomically)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(asdict(r))
    path = Path(path)
    atomic_write_text(path, buf.getvalue())
    return path


def _parse_row(d: Mapping[str, str], where: str) -> Rating:
    try:
        vals: dict[str, Any] = {k: (int(d[k]) if k in _INT_FIELDS else d[k]) for k in CSV_FIELDS}
    except (KeyError, TypeError, ValueError) as exc:
        raise StudyError(f"{where}: malformed row ({exc})") from exc
    r = Rating(**vals)
    if r.rating not in RATINGS:
        raise StudyError(f"{where}: rating {r.rating} is not on the scale −3…+3")
    if r.proposed_side not in (LEFT, RIGHT) or r.phase not in (TRAINING, TEST):
        raise StudyError(f"{where}: bad proposed_side or phase")
    if r.score != score_of(r.rating, r.proposed_side):
        raise StudyError(
            f"{where}: score {r.score} does not follow from rating {r.rating} with the "
            f"proposed method on the {r.proposed_side}"
        )
    expected = (
        (r.proposed_method, r.anchor_method)
        if r.proposed_side == LEFT
        else (r.anchor_method, r.proposed_method)
    )
    if (r.left_method, r.right_method) != expected:
        raise StudyError(f"{where}: left/right methods contradict proposed_side")
    return r


def read_ratings_file(path: str | Path) -> list[Rating]:
    """Rows of one results CSV (validated: scale, sides, score sign)."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            missing = set(CSV_FIELDS) - set(reader.fieldnames or ())
            if missing:
                raise StudyError(
                    f"{path}: not a JNDGuard study results file "
                    f"(missing columns {', '.join(sorted(missing))})"
                )
            return [_parse_row(d, f"{path}:{n + 2}") for n, d in enumerate(reader)]
    except FileNotFoundError as exc:
        raise StudyError(f"{path}: no such results file") from exc
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise StudyError(f"{path}: cannot read ({exc})") from exc


def is_results_file(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            header = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return set(CSV_FIELDS) <= set(header)


def read_ratings(sources: Iterable[str | Path]) -> list[Rating]:
    """Rows from results CSVs and from folders of them (other CSVs in a folder are skipped).

    Raises:
        StudyError: no rows, a malformed file, or the same participant's presentation twice.
    """
    files: list[Path] = []
    for s in sources:
        s = Path(s)
        if s.is_dir():
            files += [
                p for p in sorted(s.glob("*.csv"), key=lambda p: natural_key(p.name)) if is_results_file(p)
            ]
        else:
            files.append(s)
    files = list({f.resolve(): f for f in files}.values())
    rows: list[Rating] = []
    seen: dict[tuple, Path] = {}
    for f in files:
        for r in read_ratings_file(f):
            key = (r.participant, r.phase, r.trial_id, r.repeat)
            if key in seen:
                raise StudyError(
                    f"{f}: participant {r.participant} rated {r.trial_id} (repeat "
                    f"{r.repeat}) twice (also in {seen[key]})"
                )
            seen[key] = f
            rows.append(r)
    if not rows:
        raise StudyError("no ratings found in " + ", ".join(str(Path(s)) for s in sources))
    return rows
