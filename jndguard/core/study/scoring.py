"""ITU-R BT.500 observer screening and the per-photo score table."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from jndguard.core.study.build import natural_key
from jndguard.core.study.manifest import KURTOSIS_NORMAL, REJECT_BALANCE, REJECT_FRACTION, TEST, StudyError
from jndguard.core.study.ratings import Rating


@dataclass(frozen=True)
class Observation:
    """One test score "method vs other", from one participant."""

    participant: str
    image_id: str
    anchor: str
    repeat: int
    score: int


def observations(ratings: Iterable[Rating], proposed: str | None = None) -> tuple[str, list[Observation]]:
    """Test scores from ``proposed``'s point of view (default: the proposed method the rows name).

    Returns:
        ``(proposed, observations)``.
    """
    test = [r for r in ratings if r.phase == TEST]
    if not test:
        raise StudyError("no test ratings (training ratings are never scored)")
    if proposed is None:
        named = sorted({r.proposed_method for r in test})
        if len(named) != 1:
            raise StudyError(
                f"the results name several proposed methods ({', '.join(named)}); choose one with --proposed"
            )
        proposed = named[0]
    out = []
    for r in test:
        s = r.score_for(proposed)
        if s is not None:
            out.append(Observation(r.participant, r.image_id, s[0], r.repeat, s[1]))
    if not out:
        raise StudyError(f"no test rating involves the method {proposed!r}")
    return proposed, out


@dataclass(frozen=True)
class ObserverScreening:
    participant: str
    presentations: int  # how many test presentations this observer rated (J·K·R when complete)
    p: int  # scores at or above the upper limit
    q: int  # scores at or below the lower limit
    rejected: bool

    @property
    def fraction(self) -> float:
        return (self.p + self.q) / self.presentations if self.presentations else 0.0

    @property
    def balance(self) -> float:
        return abs(self.p - self.q) / (self.p + self.q) if self.p + self.q else 0.0


@dataclass(frozen=True)
class Screening:
    observers: tuple[ObserverScreening, ...]
    presentations: int  # J·K·R
    kurtosis: dict[tuple[str, str, int], float]  # per presentation; nan when undefined

    @property
    def rejected(self) -> list[str]:
        return [o.participant for o in self.observers if o.rejected]


def _moments(xs: Sequence[float]) -> tuple[float, float, float]:
    """mean, sample standard deviation (N−1), kurtosis β₂ = m₄/m₂² (moments over N)."""
    n = len(xs)
    mean = sum(xs) / n
    dev = [x - mean for x in xs]
    m2 = sum(d * d for d in dev) / n
    m4 = sum(d**4 for d in dev) / n
    std = math.sqrt(sum(d * d for d in dev) / (n - 1)) if n > 1 else float("nan")
    beta2 = m4 / (m2 * m2) if m2 > 0 else float("nan")
    return mean, std, beta2


def screen_observers(obs: Sequence[Observation]) -> Screening:
    """ITU-R BT.500 observer screening (Annex 2, §2.3.1) on proposed-vs-anchor scores.

    A *presentation* is one (anchor j, photo k, repeat r). For each, with the scores
    ``u_i`` of the N observers who rated it: mean ``ū``, ``S = sqrt(Σ(u_i − ū)²/(N−1))`` and
    the kurtosis coefficient ``β₂ = m₄/m₂²`` with ``m_x = Σ(u_i − ū)^x / N``. When
    ``2 ≤ β₂ ≤ 4`` the scores are taken as normal and the limits are ``ū ± 2S``; otherwise
    ``ū ± √20·S``. Every score ``u_i ≥`` the upper limit adds one to the observer's ``P``,
    every score ``≤`` the lower limit one to ``Q``. Observer ``i`` is rejected when
    ``(P+Q)/(J·K·R) > 0.05`` **and** ``|P−Q|/(P+Q) < 0.3`` — often far from the others, and
    in both directions (a consistent bias in one direction is not a reason to reject).

    Adaptations, documented: ``J·K·R`` is the number of presentations the observer actually
    rated (equal to it for complete sessions); a presentation rated by fewer than 3
    observers, or on which everybody agreed (``S = 0``), cannot single anyone out and
    counts for nobody's P or Q. The procedure is meant to be applied once, with the
    15 or more observers BT.500 asks for; with fewer, treat its verdict as a hint.
    """
    by_pres: dict[tuple[str, str, int], dict[str, float]] = defaultdict(dict)
    for o in obs:
        by_pres[(o.anchor, o.image_id, o.repeat)][o.participant] = float(o.score)
    people = sorted({o.participant for o in obs}, key=natural_key)
    p = dict.fromkeys(people, 0)
    q = dict.fromkeys(people, 0)
    rated = dict.fromkeys(people, 0)
    kurt: dict[tuple[str, str, int], float] = {}
    for key, scores in by_pres.items():
        for who in scores:
            rated[who] += 1
        xs = list(scores.values())
        if len(xs) < 3:
            kurt[key] = float("nan")
            continue
        mean, std, beta2 = _moments(xs)
        kurt[key] = beta2
        if not std > 0:
            continue
        k = 2.0 if KURTOSIS_NORMAL[0] <= beta2 <= KURTOSIS_NORMAL[1] else math.sqrt(20.0)
        hi, lo = mean + k * std, mean - k * std
        for who, u in scores.items():
            if u >= hi:
                p[who] += 1
            if u <= lo:
                q[who] += 1
    out = []
    for who in people:
        pq = p[who] + q[who]
        reject = (
            rated[who] > 0
            and pq / rated[who] > REJECT_FRACTION
            and abs(p[who] - q[who]) / pq < REJECT_BALANCE
        )
        out.append(ObserverScreening(who, rated[who], p[who], q[who], bool(reject)))
    return Screening(tuple(out), len(by_pres), kurt)


@dataclass(frozen=True)
class Cell:
    n: int
    mean: float
    std: float  # sample standard deviation (N−1); nan for N < 2
    ci95: float  # 1.96·S/√N (BT.500); nan for N < 2


@dataclass
class ScoreTable:
    """Per-photo mean and standard deviation of "proposed vs anchor" (MND Tables III/IV)."""

    proposed: str
    anchors: list[str]
    images: list[str]
    cells: dict[tuple[str, str], Cell]  # (image id, anchor) → Cell
    participants: list[str]
    excluded: list[str]
    screening: Screening | None = None

    def average(self, anchor: str) -> float:
        means = [c.mean for (img, a), c in self.cells.items() if a == anchor]
        return sum(means) / len(means) if means else float("nan")

    def cell(self, image: str, anchor: str) -> Cell | None:
        return self.cells.get((image, anchor))


def cell_of(scores: Sequence[float]) -> Cell:
    n = len(scores)
    mean, std, _ = _moments(scores)
    ci = 1.96 * std / math.sqrt(n) if n > 1 else float("nan")
    return Cell(n, mean, std, ci)


def score_study(
    ratings: Iterable[Rating],
    proposed: str | None = None,
    *,
    screen: bool = True,
    exclude: Iterable[str] = (),
) -> ScoreTable:
    """Score test ratings: BT.500 screening (optional), then mean ± sd per photo and anchor.

    Args:
        ratings: rows from :func:`read_ratings`.
        proposed: the method whose point of view the scores take (default: the rows').
        screen: reject observers by :func:`screen_observers` before scoring.
        exclude: participants to leave out by hand.
    """
    proposed, obs = observations(ratings, proposed)
    screening = screen_observers(obs) if screen else None
    excluded = sorted(set(exclude) | set(screening.rejected if screening else ()), key=natural_key)
    kept = [o for o in obs if o.participant not in excluded]
    participants = sorted({o.participant for o in obs}, key=natural_key)
    if not kept:
        raise StudyError("every participant was excluded; nothing to score")
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for o in kept:
        groups[(o.image_id, o.anchor)].append(float(o.score))
    anchors = sorted({a for _, a in groups}, key=natural_key)
    images = sorted({i for i, _ in groups}, key=natural_key)
    cells = {k: cell_of(v) for k, v in groups.items()}
    return ScoreTable(proposed, anchors, images, cells, participants, excluded, screening)
