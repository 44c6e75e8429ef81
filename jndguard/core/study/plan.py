"""Per-participant plans: balanced sides, spread repeats, a seed per participant."""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from jndguard.core.study.manifest import LEFT, PARTICIPANT_RE, RIGHT, TEST, TRAINING, Study, StudyError, Trial


@dataclass(frozen=True)
class Presentation:
    """One trial as a participant sees it: which version is on which side."""

    phase: str  # training | test
    seq: int  # 1-based position within its phase
    trial: Trial
    repeat: int  # 1-based
    proposed_side: str  # left | right

    left_method = property(lambda self: self.trial.side(self.proposed_side == LEFT)[0])
    right_method = property(lambda self: self.trial.side(self.proposed_side != LEFT)[0])
    left_path = property(lambda self: self.trial.side(self.proposed_side == LEFT)[1])
    right_path = property(lambda self: self.trial.side(self.proposed_side != LEFT)[1])

    def key(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "seq": self.seq,
            "trial": self.trial.id,
            "repeat": self.repeat,
            "proposed_side": self.proposed_side,
        }


def participant_seed(study_seed: int, participant: str) -> int:
    """A plan seed from the study seed and the participant id, the same on every machine."""
    digest = hashlib.sha256(f"{study_seed}\x00{participant}".encode()).hexdigest()
    return int(digest[:16], 16)


def check_participant(participant: str) -> str:
    participant = participant.strip()
    if not PARTICIPANT_RE.match(participant):
        raise StudyError(
            f"participant id {participant!r}: use an anonymous code such as P07 "
            "(letters, digits, '-' and '_', at most 32 characters)"
        )
    return participant


def _balanced_sides(items: list[tuple[Trial, int]], rng: random.Random) -> dict[tuple[str, int], str]:
    """Proposed-left/right for the presentations of one method pair, balanced within ±1
    over the pair and within ±1 over each photo's repeats."""
    by_trial: dict[str, list[int]] = defaultdict(list)
    for t, r in items:
        by_trial[t.id].append(r)
    out: dict[tuple[str, int], str] = {}
    next_odd = rng.choice((LEFT, RIGHT))
    order = list(by_trial)
    rng.shuffle(order)
    for tid in order:
        reps = by_trial[tid]
        half = len(reps) // 2
        sides = [LEFT] * half + [RIGHT] * half
        if len(reps) % 2:
            sides.append(next_odd)
            next_odd = RIGHT if next_odd == LEFT else LEFT
        rng.shuffle(sides)
        for r, s in zip(reps, sides):
            out[(tid, r)] = s
    return out


def _spread(items: list, image_of, rng: random.Random) -> list:
    """Reorder (best effort) so that no two neighbours show the same photo: swap an item of
    each clash with a random other item whenever that lowers the number of clashes."""
    items = list(items)
    n = len(items)

    def clashes(positions: Iterable[int]) -> int:
        return sum(0 <= a < n - 1 and image_of(items[a]) == image_of(items[a + 1]) for a in set(positions))

    for _ in range(n):
        todo = [i for i in range(1, n) if clashes([i - 1])]
        if not todo:
            break
        for i in todo:
            if not clashes([i - 1]):
                continue
            cands = [j for j in range(n) if j != i]
            rng.shuffle(cands)
            for j in cands:
                near = (i - 1, i, j - 1, j)
                before = clashes(near)
                items[i], items[j] = items[j], items[i]
                if clashes(near) < before:
                    break
                items[i], items[j] = items[j], items[i]
    return items


def make_plan(study: Study, participant: str) -> list[Presentation]:
    """The participant's presentations: the training trials, then every test trial
    ``repeats`` times, sides balanced per method pair, order shuffled (see module docstring)."""
    rng = random.Random(participant_seed(study.settings.seed, check_participant(participant)))
    plan: list[Presentation] = []
    training = list(study.training)
    rng.shuffle(training)
    start = rng.choice((LEFT, RIGHT))
    for n, t in enumerate(training):
        side = start if n % 2 == 0 else (RIGHT if start == LEFT else LEFT)
        plan.append(Presentation(TRAINING, n + 1, t, 1, side))
    items = [(t, r) for t in study.trials for r in range(1, study.settings.repeats + 1)]
    groups: dict[tuple[str, str], list[tuple[Trial, int]]] = defaultdict(list)
    for t, r in items:
        groups[t.pair].append((t, r))
    sides: dict[tuple[str, int], str] = {}
    for pair in sorted(groups):
        sides.update(_balanced_sides(groups[pair], rng))
    rng.shuffle(items)
    items = _spread(items, lambda it: it[0].image_id, rng)
    plan += [Presentation(TEST, n + 1, t, r, sides[(t.id, r)]) for n, (t, r) in enumerate(items)]
    return plan


def side_balance(plan: Iterable[Presentation]) -> dict[tuple[str, str], tuple[int, int]]:
    """Test presentations per method pair: (proposed on the left, proposed on the right)."""
    out: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for p in plan:
        if p.phase == TEST:
            out[p.trial.pair][0 if p.proposed_side == LEFT else 1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}
