"""A participant's session: the plan, progress and ratings, resumable at any point."""

from __future__ import annotations

import json
from pathlib import Path

from jndguard.core.files import atomic_write_text
from jndguard.core.study.manifest import SESSION_FORMAT, TEST, TRAINING, VERSION, Study, StudyError
from jndguard.core.study.plan import Presentation, check_participant, make_plan
from jndguard.core.study.ratings import Rating, _append_row, make_rating, read_ratings_file


class Session:
    """A participant's run through a study: the plan, how far they got, their results file.

    ``<results_dir>/<id>.csv`` gets one row per rating (appended and fsynced at once);
    ``<results_dir>/<id>.session.json`` holds the plan, so opening the same participant again
    resumes at the first presentation without a rating.
    """

    def __init__(self, study: Study, participant: str, results_dir: str | Path) -> None:
        self.study = study
        self.participant = check_participant(participant)
        self.results_dir = Path(results_dir)
        self.csv_path = self.results_dir / f"{self.participant}.csv"
        self.state_path = self.results_dir / f"{self.participant}.session.json"
        self.plan: list[Presentation] = []
        self.ratings: list[Rating] = []
        self.session = 1
        self._load()

    @property
    def resumed(self) -> bool:
        return self.session > 1

    def _load(self) -> None:
        self.results_dir.mkdir(parents=True, exist_ok=True)
        prior = read_ratings_file(self.csv_path) if self.csv_path.is_file() else []
        state = None
        if self.state_path.is_file():
            try:
                state = json.loads(self.state_path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise StudyError(f"{self.state_path}: cannot read the session ({exc})") from exc
        if state is not None:
            if state.get("format") != SESSION_FORMAT or state.get("participant") != self.participant:
                raise StudyError(f"{self.state_path}: not a session of participant {self.participant}")
            if state.get("study") != self.study.fingerprint():
                raise StudyError(
                    f"{self.state_path}: participant {self.participant} started a different "
                    "version of this study; use another participant id or results folder"
                )
            self.plan = [
                Presentation(
                    p["phase"], p["seq"], self.study.trial(p["trial"]), p["repeat"], p["proposed_side"]
                )
                for p in state["plan"]
            ]
            self.session = int(state.get("sessions", 1)) + (1 if prior else 0)
        else:
            self.plan = make_plan(self.study, self.participant)
            self.session = 1 + (1 if prior else 0)
        if len(prior) > len(self.plan):
            raise StudyError(f"{self.csv_path}: more ratings than the plan has presentations")
        for r, p in zip(prior, self.plan):
            if (r.phase, r.trial_id, r.repeat, r.proposed_side) != (
                p.phase,
                p.trial.id,
                p.repeat,
                p.proposed_side,
            ):
                raise StudyError(
                    f"{self.csv_path}: the ratings do not follow this participant's plan "
                    f"(row {r.phase} #{r.seq}); use another participant id"
                )
        self.ratings = list(prior)
        self._save_state()

    def _save_state(self) -> None:
        state = {
            "format": SESSION_FORMAT,
            "version": VERSION,
            "participant": self.participant,
            "study": self.study.fingerprint(),
            "study_name": self.study.name,
            "sessions": self.session,
            "done": len(self.ratings),
            "plan": [p.key() for p in self.plan],
        }
        atomic_write_text(self.state_path, json.dumps(state, indent=1) + "\n")

    # -- progress
    @property
    def done(self) -> int:
        return len(self.ratings)

    @property
    def finished(self) -> bool:
        return self.done >= len(self.plan)

    @property
    def current(self) -> Presentation | None:
        return None if self.finished else self.plan[self.done]

    @property
    def n_training(self) -> int:
        return sum(p.phase == TRAINING for p in self.plan)

    @property
    def n_test(self) -> int:
        return sum(p.phase == TEST for p in self.plan)

    @property
    def test_done(self) -> int:
        return sum(r.phase == TEST for r in self.ratings)

    def record(self, rating: int, *, response_ms: int = 0, reference_views: int = 0) -> Rating:
        """Store the rating of the current presentation and move on."""
        p = self.current
        if p is None:
            raise StudyError("the session is finished")
        row = make_rating(
            self.participant,
            p,
            rating,
            reference_views=reference_views,
            response_ms=response_ms,
            session=self.session,
        )
        _append_row(self.csv_path, row)
        self.ratings.append(row)
        self._save_state()
        return row

    def break_due(self) -> bool:
        """True right after every ``break_every``-th test rating (not after the last)."""
        every = self.study.settings.break_every
        last = self.ratings[-1] if self.ratings else None
        return (
            bool(every)
            and last is not None
            and last.phase == TEST
            and not self.finished
            and self.test_done % every == 0
        )


def next_participant_id(results_dir: str | Path, prefix: str = "P") -> str:
    """The first of P01, P02, … with no results in the folder yet."""
    folder = Path(results_dir)
    n = 1
    while (folder / f"{prefix}{n:02d}.csv").exists() or (folder / f"{prefix}{n:02d}.session.json").exists():
        n += 1
    return f"{prefix}{n:02d}"


def default_results_dir(study: Study) -> Path:
    base = study.path.resolve().parent if study.path is not None else Path.cwd()
    return base / f"{study.path.stem if study.path is not None else 'study'}-results"
