"""Subjective viewing tests: study manifests, per-participant plans, sessions, results, scores.

A *study* compares a proposed method with one or more anchor methods on a set of clean
photos, the way the MND paper (Sun, Jin & Lin 2023, §IV-B-5 and Tables III–V) and the HVS-JND paper
(Xue et al. 2023, "Subjective viewing test") did: each *trial* shows the proposed method's output and
one anchor's output of the same photo side by side, in random left/right order, and the
participant rates them on the 7-level comparison scale of the MND paper's Table V
(:data:`SCALE`: +3 "left much better" … 0 "same" … −3 "right much better").

Everything here is Qt-free: the GUI (:mod:`jndguard.gui.study_window`) and the CLI
(``jndguard study build|run|score``) only drive it.

Manifest (``study.json``; paths relative to the manifest's folder)::

    {"format": "jndguard-study", "version": 1, "name": "…", "proposed": "hvs-jnd",
     "methods": ["hvs-jnd", "pgd"],
     "settings": {"view_size": 512, "repeats": 1, "training": 3, "break_every": 20, …},
     "images": [{"id": "I1", "stem": "x", "clean": "clean/x.png",
                 "outputs": {"hvs-jnd": "hvs/x.protected.png", "pgd": "pgd/x.protected.png"}}],
     "trials": [{"id": "I1:hvs-jnd-vs-pgd", "image": "I1", "clean": "clean/x.png",
                 "a": {"method": "hvs-jnd", "path": "hvs/x.protected.png"},
                 "b": {"method": "pgd", "path": "pgd/x.protected.png"}, "proposed": "a"}],
     "training": [ …trials of the same form, shown first and never scored… ]}

Decisions (written down because the papers leave them open):

- Randomisation: every participant gets their own plan from a seed derived from the study
  seed and the anonymous participant id (SHA-256, so it is the same on every machine). Within
  each method pair the proposed method is on the left for half of the presentations and on
  the right for the other half (±1 when the count is odd); repeats of one photo and pair are
  split between the sides the same way. The order of the presentations is shuffled, and
  two presentations of the same photo are kept apart when the shuffle allows.
- Sign convention (both papers): the *score* of a rating is "proposed vs anchor", positive
  when the proposed method looked better: ``score = rating`` when the proposed image was on
  the left, ``score = -rating`` when it was on the right.
- Statistics per photo and anchor: mean and sample standard deviation (``N - 1``, the
  ``S`` of ITU-R BT.500) over every test rating of the participants kept after screening
  (repeats pooled), plus the 95 % confidence interval ``1.96·S/√N`` of BT.500. The
  "Average" row is the mean of the per-photo means, as in the MND paper's tables.
- Observer screening: ITU-R BT.500 (Annex 2, §2.3.1; the procedure of -11 to -15 for the
  DSIS, DSCQS and comparison methods). See :func:`screen_observers`.
- Results: one CSV per participant, ``<id>.csv``, appended and fsynced after every rating,
  next to ``<id>.session.json`` (the plan and progress), so a session can stop at any point
  and resume where it stopped. Participants are identified only by an anonymous id
  (:data:`PARTICIPANT_RE`); no names, no dates.

The package's modules: :mod:`~jndguard.core.study.manifest`, :mod:`~jndguard.core.study.build`,
:mod:`~jndguard.core.study.plan`, :mod:`~jndguard.core.study.ratings`,
:mod:`~jndguard.core.study.session`, :mod:`~jndguard.core.study.scoring` and
:mod:`~jndguard.core.study.tables`; everything is re-exported here.
"""

from __future__ import annotations

from jndguard.core.study.build import (
    GenerateEvent,
    build_study,
    find_output,
    generate_steps,
    make_study,
    match_outputs,
    natural_key,
)
from jndguard.core.study.manifest import (
    FORMAT,
    KURTOSIS_NORMAL,
    LEFT,
    METHOD_RE,
    PARTICIPANT_RE,
    RATINGS,
    REJECT_BALANCE,
    REJECT_FRACTION,
    RIGHT,
    SCALE,
    SESSION_FORMAT,
    TEST,
    TRAINING,
    VERSION,
    Study,
    StudyError,
    StudyImage,
    StudySettings,
    Trial,
    load_study,
    save_study,
)
from jndguard.core.study.plan import (
    Presentation,
    check_participant,
    make_plan,
    participant_seed,
    side_balance,
)
from jndguard.core.study.ratings import (
    CSV_FIELDS,
    Rating,
    is_results_file,
    make_rating,
    read_ratings,
    read_ratings_file,
    score_of,
    write_ratings,
)
from jndguard.core.study.scoring import (
    Cell,
    Observation,
    ObserverScreening,
    ScoreTable,
    Screening,
    _moments,
    cell_of,
    observations,
    score_study,
    screen_observers,
)
from jndguard.core.study.session import Session, default_results_dir, next_participant_id
from jndguard.core.study.tables import (
    caption,
    latex_escape,
    scores_csv,
    screening_csv,
    to_csv,
    to_latex,
    to_markdown,
    write_tables,
)

__all__ = [
    "CSV_FIELDS", "FORMAT", "KURTOSIS_NORMAL", "LEFT", "METHOD_RE", "PARTICIPANT_RE", "RATINGS",
    "REJECT_BALANCE", "REJECT_FRACTION", "RIGHT", "SCALE", "SESSION_FORMAT", "TEST", "TRAINING",
    "VERSION", "Cell", "GenerateEvent", "Observation", "ObserverScreening", "Presentation", "Rating",
    "ScoreTable", "Screening", "Session", "Study", "StudyError", "StudyImage", "StudySettings", "Trial",
    "_moments", "build_study", "caption", "cell_of", "check_participant", "default_results_dir",
    "find_output", "generate_steps", "is_results_file", "latex_escape", "load_study", "make_plan",
    "make_rating", "make_study", "match_outputs", "natural_key", "next_participant_id", "observations",
    "participant_seed", "read_ratings", "read_ratings_file", "save_study", "score_of", "score_study",
    "scores_csv", "screen_observers", "screening_csv", "side_balance", "to_csv", "to_latex",
    "to_markdown", "write_ratings", "write_tables",
]
