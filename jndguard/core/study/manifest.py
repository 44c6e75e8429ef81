"""The study manifest (``study.json``): settings, photos, trials; load and save."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from jndguard.core.files import atomic_write_text
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

    def side(self, proposed: bool) -> tuple[str, Path]:
        """``(method, path)`` of the proposed (True) or the anchor (False) version."""
        a = (self.proposed == "a") == proposed
        return (self.a_method, self.a_path) if a else (self.b_method, self.b_path)

    proposed_method = property(lambda self: self.side(True)[0], doc="the proposed method")
    anchor_method = property(lambda self: self.side(False)[0], doc="the anchor method")
    proposed_path = property(lambda self: self.side(True)[1], doc="the proposed method's version")
    anchor_path = property(lambda self: self.side(False)[1], doc="the anchor's version")

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
