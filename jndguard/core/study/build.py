"""Building a study from folders of outputs, and generating the outputs with the pipeline."""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from jndguard.core.photos import is_photo
from jndguard.core.progress import relay
from jndguard.core.study.manifest import METHOD_RE, Study, StudyError, StudyImage, StudySettings, Trial


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
            result = yield from relay(protect_steps(image, settings, rec),
                                      lambda step, m=m, name=photo.name: GenerateEvent(m, name, step.message))
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
