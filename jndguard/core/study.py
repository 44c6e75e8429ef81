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
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import os
import random
import re
from collections import defaultdict
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from jndguard.core.files import atomic_write_text
from jndguard.core.photos import is_photo
from jndguard.errors import JNDGuardError

logger = logging.getLogger(__name__)

FORMAT = "jndguard-study"
VERSION = 1
SESSION_FORMAT = "jndguard-study-session"

#: The comparison scale of the MND paper (Table V): score → label.
SCALE: tuple[tuple[int, str], ...] = (
    (3, "Left image is much better"),
    (2, "Left image is better"),
    (1, "Left image is slightly better"),
    (0, "Both images have the same quality"),
    (-1, "Right image is slightly better"),
    (-2, "Right image is better"),
    (-3, "Right image is much better"),
)
RATINGS = tuple(v for v, _ in SCALE)

#: Anonymous participant ids: letters, digits, ``_`` and ``-``; at most 32 characters.
PARTICIPANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
METHOD_RE = re.compile(r"^\w[\w.+-]*$")

LEFT, RIGHT = "left", "right"
TRAINING, TEST = "training", "test"

#: BT.500 screening constants.
KURTOSIS_NORMAL = (2.0, 4.0)
REJECT_FRACTION = 0.05
REJECT_BALANCE = 0.3


class StudyError(JNDGuardError):
    """A study manifest, session or results file is missing, malformed or inconsistent."""


# --------------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class StudySettings:
    """How trials are presented.

    Attributes:
        view_size: long edge, in pixels, at which every image is shown (both images of a
            trial and the reference at the same size); 0 shows images at their own pixel
            size (1:1).
        repeats: how often each trial is shown to each participant (sides balanced).
        training: number of training trials shown before the test (never scored).
        break_every: a break after this many test trials (0: no breaks).
        break_seconds: minimum length of a break before the participant can go on.
        gap_ms: mid-grey screen between two trials.
        grey: grey level (0–255) of the surround.
        seed: study seed; each participant's plan also depends on their id.
    """

    view_size: int = 512
    repeats: int = 1
    training: int = 3
    break_every: int = 20
    break_seconds: int = 10
    gap_ms: int = 500
    grey: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "view_size": self.view_size >= 0,
            "repeats": self.repeats >= 1,
            "training": self.training >= 0,
            "break_every": self.break_every >= 0,
            "break_seconds": self.break_seconds >= 0,
            "gap_ms": self.gap_ms >= 0,
            "grey": 0 <= self.grey <= 255,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise StudyError(f"invalid study settings: {', '.join(f'{k}={getattr(self, k)}' for k in bad)}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StudySettings:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            logger.warning("ignoring unknown study settings: %s", ", ".join(sorted(unknown)))
        try:
            return cls(**{k: int(v) for k, v in d.items() if k in known})
        except (TypeError, ValueError) as exc:
            raise StudyError(f"invalid study settings: {exc}") from exc


@dataclass(frozen=True)
class StudyImage:
    """One clean photo and the output of every method for it."""

    id: str
    stem: str
    clean: Path
    outputs: dict[str, Path]


@dataclass(frozen=True)
class Trial:
    """Two versions of one photo to compare; ``proposed`` says which one ("a" or "b")."""

    id: str
    image_id: str
    clean: Path
    a_method: str
    a_path: Path
    b_method: str
    b_path: Path
    proposed: str = "a"

    @property
    def proposed_method(self) -> str:
        return self.a_method if self.proposed == "a" else self.b_method

    @property
    def anchor_method(self) -> str:
        return self.b_method if self.proposed == "a" else self.a_method

    @property
    def proposed_path(self) -> Path:
        return self.a_path if self.proposed == "a" else self.b_path

    @property
    def anchor_path(self) -> Path:
        return self.b_path if self.proposed == "a" else self.a_path

    @property
    def pair(self) -> tuple[str, str]:
        """(proposed, anchor): the method pair whose sides are balanced."""
        return self.proposed_method, self.anchor_method


@dataclass(frozen=True)
class Study:
    """A loaded study manifest (see the module docstring for the file format)."""

    name: str
    proposed: str
    methods: tuple[str, ...]
    images: tuple[StudyImage, ...]
    trials: tuple[Trial, ...]
    training: tuple[Trial, ...] = ()
    settings: StudySettings = field(default_factory=StudySettings)
    path: Path | None = None

    @property
    def anchors(self) -> tuple[str, ...]:
        return tuple(m for m in self.methods if m != self.proposed)

    def trial(self, trial_id: str) -> Trial:
        for t in (*self.trials, *self.training):
            if t.id == trial_id:
                return t
        raise StudyError(f"no trial {trial_id!r} in study {self.name!r}")

    def files(self) -> list[Path]:
        """Every image file the study shows."""
        out: list[Path] = []
        for t in (*self.trials, *self.training):
            out += [t.clean, t.a_path, t.b_path]
        return list(dict.fromkeys(out))

    def missing_files(self) -> list[Path]:
        return [p for p in self.files() if not p.is_file()]

    def fingerprint(self) -> str:
        """Hash of what a participant's plan depends on (trials, methods, repeats, training, seed);
        display settings (size, breaks, grey) may change between sittings."""
        h = hashlib.sha256()
        for t in (*self.trials, *self.training):
            h.update(f"{t.id}|{t.image_id}|{t.a_method}|{t.b_method}|{t.proposed}\n".encode())
        plan = {k: getattr(self.settings, k) for k in ("repeats", "training", "seed")}
        h.update(json.dumps(plan, sort_keys=True).encode())
        return h.hexdigest()[:16]

    # -- serialisation
    def to_dict(self, base: Path | None = None) -> dict[str, Any]:
        def rel(p: Path) -> str:
            if base is None:
                return str(p)
            try:
                return Path(os.path.relpath(p, base)).as_posix()
            except ValueError:  # another drive (Windows)
                return str(p)

        def trial(t: Trial) -> dict[str, Any]:
            return {
                "id": t.id,
                "image": t.image_id,
                "clean": rel(t.clean),
                "a": {"method": t.a_method, "path": rel(t.a_path)},
                "b": {"method": t.b_method, "path": rel(t.b_path)},
                "proposed": t.proposed,
            }

        return {
            "format": FORMAT,
            "version": VERSION,
            "name": self.name,
            "proposed": self.proposed,
            "methods": list(self.methods),
            "settings": asdict(self.settings),
            "images": [
                {
                    "id": im.id,
                    "stem": im.stem,
                    "clean": rel(im.clean),
                    "outputs": {m: rel(p) for m, p in im.outputs.items()},
                }
                for im in self.images
            ],
            "trials": [trial(t) for t in self.trials],
            "training": [trial(t) for t in self.training],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], base: Path, path: Path | None = None) -> Study:
        label = str(path) if path else "study"
        if d.get("format") != FORMAT:
            raise StudyError(f"{label}: not a JNDGuard study manifest (format {d.get('format')!r})")
        if int(d.get("version", 0)) > VERSION:
            raise StudyError(f"{label}: made by a newer JNDGuard (version {d.get('version')})")

        def res(p: str) -> Path:
            q = Path(p)
            return q if q.is_absolute() else (base / q)

        def trial(t: Mapping[str, Any]) -> Trial:
            try:
                proposed = t.get("proposed", "a")
                if proposed not in ("a", "b"):
                    raise StudyError(f"{label}: trial {t.get('id')!r}: proposed must be 'a' or 'b'")
                return Trial(
                    str(t["id"]),
                    str(t["image"]),
                    res(t["clean"]),
                    str(t["a"]["method"]),
                    res(t["a"]["path"]),
                    str(t["b"]["method"]),
                    res(t["b"]["path"]),
                    proposed,
                )
            except (KeyError, TypeError) as exc:
                raise StudyError(f"{label}: malformed trial {t!r} (missing {exc})") from exc

        try:
            images = tuple(
                StudyImage(
                    str(im["id"]),
                    str(im.get("stem", im["id"])),
                    res(im["clean"]),
                    {str(m): res(p) for m, p in im.get("outputs", {}).items()},
                )
                for im in d.get("images", [])
            )
            study = cls(
                name=str(d.get("name") or (path.stem if path else "study")),
                proposed=str(d["proposed"]),
                methods=tuple(str(m) for m in d["methods"]),
                images=images,
                trials=tuple(trial(t) for t in d["trials"]),
                training=tuple(trial(t) for t in d.get("training", [])),
                settings=StudySettings.from_dict(d.get("settings", {})),
                path=path,
            )
        except (KeyError, TypeError) as exc:
            raise StudyError(f"{label}: malformed manifest (missing {exc})") from exc
        study.validate()
        return study

    def validate(self) -> None:
        """Raise :class:`StudyError` unless the trials are consistent."""
        if not self.trials:
            raise StudyError(f"study {self.name!r} has no trials")
        ids = [t.id for t in (*self.trials, *self.training)]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise StudyError(f"study {self.name!r}: duplicate trial ids {', '.join(dup)}")
        for t in (*self.trials, *self.training):
            if t.a_method == t.b_method:
                raise StudyError(f"trial {t.id!r} compares {t.a_method!r} with itself")
            if self.proposed not in (t.a_method, t.b_method) or t.proposed_method != self.proposed:
                raise StudyError(f"trial {t.id!r} does not mark {self.proposed!r} as the proposed method")


def load_study(path: str | Path) -> Study:
    """Read a study manifest; image paths are resolved against its folder."""
    path = Path(path)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise StudyError(f"{path}: no such study file") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StudyError(f"{path}: cannot read the study ({exc})") from exc
    if not isinstance(d, dict):
        raise StudyError(f"{path}: not a JNDGuard study manifest")
    return Study.from_dict(d, path.resolve().parent, path)


def save_study(study: Study, path: str | Path) -> Path:
    """Write the manifest atomically, with image paths relative to its folder."""
    path = Path(path)
    base = path.resolve().parent
    atomic_write_text(path, json.dumps(study.to_dict(base), indent=2, ensure_ascii=False) + "\n")
    return path


# --------------------------------------------------------------------------- building



def natural_key(text: str) -> tuple:
    """Sort key with numbers compared by value ("I2" before "I10")."""
    return tuple(int(p) if p.isdigit() else p.casefold() for p in re.split(r"(\d+)", text))


def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise StudyError(f"{folder}: no such folder")
    return sorted(
        (
            p
            for p in folder.iterdir()
            if p.is_file() and is_photo(p) and not p.name.startswith(".")
        ),
        key=lambda p: natural_key(p.name),
    )


def find_output(folder: Path, stem: str, files: Sequence[Path] | None = None) -> Path | None:
    """The file in ``folder`` that holds a method's output for the clean photo ``stem``.

    Files match by stem: ``x.png`` (same stem, any image suffix), then ``x.protected.png``
    (what ``jndguard protect`` and the app export), then any other ``x.<tag>.png``
    (e.g. ``x.pgd.png``). Raises :class:`StudyError` when two files match equally well.
    """
    files = _images_in(folder) if files is None else files
    ranked: dict[int, list[Path]] = defaultdict(list)
    for f in files:
        name = f.name[: -len(f.suffix)] if f.suffix else f.name
        if name == stem:
            ranked[0].append(f)
        elif name.startswith(stem + "."):
            tag = name[len(stem) + 1 :]
            ranked[1 if tag == "protected" else 2].append(f)
    for rank in sorted(ranked):
        hits = ranked[rank]
        if len(hits) == 1:
            return hits[0]
        raise StudyError(
            f"{folder}: several files match {stem!r}: {', '.join(h.name for h in hits)}; keep one"
        )
    return None


def _image_size(path: Path) -> tuple[int, int] | None:
    """Display size (EXIF orientation applied) without decoding the pixels."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
            if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                w, h = h, w
            return w, h
    except OSError:
        return None


def match_outputs(
    clean_dir: str | Path, methods: Mapping[str, str | Path], check_sizes: bool = True
) -> tuple[list[tuple[Path, dict[str, Path]]], list[str]]:
    """Pair every clean photo with each method's output of it.

    Returns:
        ``(matched, skipped)``: ``matched`` lists ``(clean_path, {method: output_path})`` for
        photos that every method has (and, with ``check_sizes``, of the same pixel size);
        ``skipped`` says, one line per photo, why the others were left out.
    """
    clean_dir = Path(clean_dir)
    clean = [p for p in _images_in(clean_dir) if ".protected" not in p.name]
    if not clean:
        raise StudyError(f"{clean_dir}: no photos found")
    listings = {m: _images_in(Path(d)) for m, d in methods.items()}
    stems = [p.stem for p in clean]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise StudyError(f"{clean_dir}: several photos share the name {', '.join(dup)}")
    matched, skipped = [], []
    for c in clean:
        outs: dict[str, Path] = {}
        missing = []
        for m, d in methods.items():
            hit = find_output(Path(d), c.stem, listings[m])
            if hit is None:
                missing.append(m)
            else:
                outs[m] = hit
        if missing:
            skipped.append(f"{c.name}: no output from {', '.join(missing)}")
            continue
        if check_sizes:
            size = _image_size(c)
            wrong = [m for m, p in outs.items() if _image_size(p) != size]
            if size is None or wrong:
                skipped.append(
                    f"{c.name}: " + ("unreadable" if size is None else f"size differs in {', '.join(wrong)}")
                )
                continue
        matched.append((c, outs))
    return matched, skipped


def make_study(
    matched: Sequence[tuple[Path, Mapping[str, Path]]],
    proposed: str,
    *,
    name: str = "study",
    settings: StudySettings | None = None,
    methods: Sequence[str] | None = None,
) -> Study:
    """A study comparing ``proposed`` with every other method on each photo.

    Photos get ids I1, I2, … in order; one trial per photo and anchor (``a`` = proposed);
    the training trials are a seeded random sample of them.
    """
    settings = settings or StudySettings()
    methods = list(methods or dict.fromkeys(m for _, outs in matched for m in outs))
    if proposed not in methods:
        raise StudyError(f"the proposed method {proposed!r} is not among the methods ({', '.join(methods)})")
    if len(methods) < 2:
        raise StudyError("a study needs at least two methods (the proposed one and an anchor)")
    for m in methods:
        if not METHOD_RE.match(m):
            raise StudyError(f"method name {m!r}: use letters, digits, '.', '+', '-' and '_'")
    if not matched:
        raise StudyError("no photo has an output from every method")
    anchors = [m for m in methods if m != proposed]
    images, trials = [], []
    for n, (clean, outs) in enumerate(matched, 1):
        iid = f"I{n}"
        images.append(StudyImage(iid, Path(clean).stem, Path(clean), {m: Path(outs[m]) for m in methods}))
        for a in anchors:
            trials.append(
                Trial(
                    f"{iid}:{proposed}-vs-{a}",
                    iid,
                    Path(clean),
                    proposed,
                    Path(outs[proposed]),
                    a,
                    Path(outs[a]),
                    "a",
                )
            )
    rng = random.Random(settings.seed)
    picked = rng.sample(trials, min(settings.training, len(trials)))
    training = [replace(t, id=f"training/{t.id}") for t in picked]
    study = Study(name, proposed, tuple(methods), tuple(images), tuple(trials), tuple(training), settings)
    study.validate()
    return study


def build_study(
    clean_dir: str | Path,
    methods: Mapping[str, str | Path],
    proposed: str,
    *,
    name: str | None = None,
    settings: StudySettings | None = None,
) -> tuple[Study, list[str]]:
    """:func:`match_outputs` + :func:`make_study`; returns the study and the skipped photos."""
    matched, skipped = match_outputs(clean_dir, methods)
    study = make_study(
        matched, proposed, name=name or Path(clean_dir).name, settings=settings, methods=list(methods)
    )
    return study, skipped


@dataclass
class GenerateEvent:
    """Progress of :func:`generate_steps`."""

    method: str
    photo: str
    message: str
    note: str = ""


def generate_steps(
    clean_dir: str | Path,
    methods: Sequence[str],
    out_root: str | Path,
    base: Any = None,
    recogniser: Any = None,
) -> Generator[GenerateEvent, None, dict[str, Path]]:
    """Protect every clean photo with each method, for a study built "on the spot".

    Outputs go to ``out_root/<method>/<stem>.protected.png`` with their JSON reports (the
    same files ``jndguard protect`` writes). Photos that already have an output there are
    skipped, so an interrupted generation continues; photos without a face get no output
    (and :func:`match_outputs` then leaves them out).

    Args:
        clean_dir: folder of clean photos.
        methods: method keys of :data:`jndguard.core.pipeline.METHODS`.
        out_root: parent folder of the per-method output folders.
        base: :class:`~jndguard.core.pipeline.ProtectionSettings` to start from.
        recogniser: a loaded recogniser (default: load ``base.model``).

    Returns:
        ``{method: output folder}``.
    """
    from jndguard.core.device import resolve_device
    from jndguard.core.export import export_photo
    from jndguard.core.imageio import load_image
    from jndguard.core.models import load_recogniser
    from jndguard.core.pipeline import ProtectionSettings, protect_steps

    base = base or ProtectionSettings()
    out_root = Path(out_root)
    photos = [p for p in _images_in(Path(clean_dir)) if ".protected" not in p.name]
    if not photos:
        raise StudyError(f"{clean_dir}: no photos found")
    rec = recogniser or load_recogniser(base.model, resolve_device(base.device))
    dirs: dict[str, Path] = {}
    for m in methods:
        folder = out_root / m
        folder.mkdir(parents=True, exist_ok=True)
        dirs[m] = folder
        settings = replace(base, method=m)
        for photo in photos:
            if find_output(folder, photo.stem) is not None:
                yield GenerateEvent(m, photo.name, "already there")
                continue
            image = load_image(photo)
            gen = protect_steps(image, settings, rec)
            while True:
                try:
                    step = next(gen)
                except StopIteration as done:
                    result = done.value
                    break
                yield GenerateEvent(m, photo.name, step.message)
            if not result.faces:
                yield GenerateEvent(m, photo.name, "no face", note=f"{photo.name}: no face found; left out")
                continue
            note = "" if result.success else f"{photo.name}: {m} did not protect every face"
            report = {
                "method": m,
                "settings": settings.to_dict(),
                "model": result.model,
                "success": result.success,
                "metrics": result.metrics,
                "faces": result.per_face,
            }
            export_photo(result.protected, folder, source=photo, report=report)
            yield GenerateEvent(m, photo.name, "written", note=note)
    return dirs


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class Presentation:
    """One trial as a participant sees it: which version is on which side."""

    phase: str  # training | test
    seq: int  # 1-based position within its phase
    trial: Trial
    repeat: int  # 1-based
    proposed_side: str  # left | right

    @property
    def left_method(self) -> str:
        return self.trial.proposed_method if self.proposed_side == LEFT else self.trial.anchor_method

    @property
    def right_method(self) -> str:
        return self.trial.anchor_method if self.proposed_side == LEFT else self.trial.proposed_method

    @property
    def left_path(self) -> Path:
        return self.trial.proposed_path if self.proposed_side == LEFT else self.trial.anchor_path

    @property
    def right_path(self) -> Path:
        return self.trial.anchor_path if self.proposed_side == LEFT else self.trial.proposed_path

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


# --------------------------------------------------------------------------- results


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


# --------------------------------------------------------------------------- sessions


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


# --------------------------------------------------------------------------- screening


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


# --------------------------------------------------------------------------- scoring


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


# --------------------------------------------------------------------------- tables


def _num(x: float, digits: int) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _average_label(images: Sequence[str]) -> str:
    return f"Average ({images[0]}–{images[-1]})" if len(images) > 1 else "Average"


def to_markdown(table: ScoreTable, digits: int = 2) -> str:
    """The table as GitHub Markdown: one Mean and one Std column per anchor."""
    head = ["Image ID"] + [f"vs. {a} {h}" for a in table.anchors for h in ("Mean", "Std")]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join([":---"] + ["---:"] * (len(head) - 1)) + "|"]
    for img in table.images:
        row = [img]
        for a in table.anchors:
            c = table.cell(img, a)
            row += [_num(c.mean, digits), _num(c.std, digits)] if c else ["", ""]
        lines.append("| " + " | ".join(row) + " |")
    avg = [_average_label(table.images)]
    for a in table.anchors:
        avg += [_num(table.average(a), digits), "–"]
    lines.append("| " + " | ".join(avg) + " |")
    return "\n".join(lines) + "\n"


def caption(table: ScoreTable) -> str:
    n = len(table.participants) - len(table.excluded)
    return (
        f"Subjective viewing test: {table.proposed} compared with the anchor methods "
        f"(mean and standard deviation of the score over {n} participant{'s' if n != 1 else ''}; "
        f"+3 … −3, positive: {table.proposed} looks better)."
    )


def to_csv(table: ScoreTable, digits: int = 4) -> str:
    """The table as CSV, laid out like the Markdown/LaTeX one (empty Std in the average row)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["image_id"] + [f"vs_{a}_{h}" for a in table.anchors for h in ("mean", "std")])
    for img in table.images:
        row: list[Any] = [img]
        for a in table.anchors:
            c = table.cell(img, a)
            row += (
                [round(c.mean, digits), "" if not math.isfinite(c.std) else round(c.std, digits)]
                if c
                else ["", ""]
            )
        w.writerow(row)
    w.writerow(["average"] + [v for a in table.anchors for v in (round(table.average(a), digits), "")])
    return buf.getvalue()


def scores_csv(table: ScoreTable, digits: int = 4) -> str:
    """Long format: one row per photo and anchor with N, mean, sd and the 95 % interval."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["proposed", "anchor", "image_id", "n", "mean", "std", "ci95"])

    def r(x: float) -> Any:
        return "" if not math.isfinite(x) else round(x, digits)

    for a in table.anchors:
        for img in table.images:
            c = table.cell(img, a)
            if c:
                w.writerow([table.proposed, a, img, c.n, r(c.mean), r(c.std), r(c.ci95)])
    return buf.getvalue()


def screening_csv(screening: Screening) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["participant", "presentations", "P", "Q", "fraction", "balance", "rejected"])
    for o in screening.observers:
        w.writerow(
            [
                o.participant,
                o.presentations,
                o.p,
                o.q,
                round(o.fraction, 4),
                round(o.balance, 4),
                int(o.rejected),
            ]
        )
    return buf.getvalue()


_LATEX_SPECIAL = {
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
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


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
    avg = [latex_escape(_average_label(table.images)).replace("–", "--")]
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
    written = {}
    for key, (name, text) in files.items():
        atomic_write_text(out / name, text)
        written[key] = out / name
    return written


__all__ = [
    "CSV_FIELDS",
    "RATINGS",
    "SCALE",
    "Cell",
    "GenerateEvent",
    "Observation",
    "ObserverScreening",
    "Presentation",
    "Rating",
    "ScoreTable",
    "Screening",
    "Session",
    "Study",
    "StudyError",
    "StudyImage",
    "StudySettings",
    "Trial",
    "build_study",
    "find_output",
    "generate_steps",
    "load_study",
    "make_plan",
    "make_rating",
    "make_study",
    "match_outputs",
    "next_participant_id",
    "observations",
    "read_ratings",
    "save_study",
    "score_study",
    "screen_observers",
    "side_balance",
    "to_csv",
    "to_latex",
    "to_markdown",
    "write_ratings",
    "write_tables",
]
