"""Peak memory of protecting one photo, per stage, at several sizes (the memory model).

Each size runs in a fresh process (``python -m jndguard.benchmarks.memory --child``) on a
validation portrait upscaled (bicubic) to that many megapixels. The child resets the kernel's
peak-RSS counter (``/proc/self/clear_refs``, Linux) before each stage and reads ``VmHWM``
after it, so each stage's peak is its own: models loaded, photo decoded, face detection, JND
map, attack, re-detection, quality metrics, PNG export and verification of the file. The
parent fits ``peak = base + bytes_per_pixel × pixels`` (least squares) to the run's peak
with and without the whole-photo metrics; :mod:`jndguard.core.memory` holds the fitted
figures the protection guard uses.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jndguard.commands._output import emit_json, print_table

DEFAULT_SIZES = (1.0, 4.0, 12.0, 24.0)
GB = 1024**3


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", default=",".join(f"{s:g}" for s in DEFAULT_SIZES),
                   help="megapixels to measure, comma-separated (default %(default)s)")
    p.add_argument("--iterations", type=int, default=10, help="HVS-JND iteration budget")
    p.add_argument("--no-verify", action="store_true", help="skip the verification stage")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--child", help=argparse.SUPPRESS)


# --------------------------------------------------------------------------- child


def _status(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def _child(photo: Path, iterations: int, verify: bool) -> dict:
    import torch

    from jndguard.core.export import ExportOptions, export_photo
    from jndguard.core.imageio import load_image
    from jndguard.core.models import load_recogniser
    from jndguard.core.pipeline import ProtectionSettings, protect_steps
    from jndguard.core.progress import drive

    peaks: dict[str, int] = {}
    t0 = time.perf_counter()

    def mark(stage: str) -> None:
        peaks[stage] = max(peaks.get(stage, 0), _status("VmHWM"))
        _reset_peak()

    _reset_peak()
    rec = load_recogniser(None, torch.device("cpu"))
    from jndguard.core.models.gallery import celebrity_gallery

    celebrity_gallery(rec)
    mark("models")
    image = load_image(photo)
    mark("load")
    settings = ProtectionSettings(max_iterations=iterations, device="cpu")
    names = {"detect": "detect", "jnd": "jnd", "attack": "attack"}
    current = ["start"]

    def on_step(step) -> None:
        stage = names.get(step.stage)
        if step.stage == "verify":
            stage = "metrics" if step.message.startswith("measuring") else "redetect"
        if step.stage == "done":
            stage = "done"
        # the peak since the last step belongs to the stage that was running
        if stage != current[0]:
            mark(current[0])
            current[0] = stage or current[0]

    result = drive(protect_steps(image, settings, rec), on_step)
    mark(current[0])
    peaks.pop("start", None)
    peaks.pop("done", None)
    with tempfile.TemporaryDirectory() as out:
        verifier = None
        if verify:
            from jndguard.core.verify import verify as verify_file

            def verifier(p):
                mark("export")
                rep = verify_file(photo, p, [rec], torch.device("cpu"), use_dlib=False)
                mark("verify")
                return rep

        export_photo(result.protected, out, source=photo, report={"faces": result.per_face},
                     options=ExportOptions(), verify=verifier)
        mark("export" if not verify else "write")
    return {"pixels": image.width * image.height, "width": image.width, "height": image.height,
            "faces": len(result.faces), "peaks": peaks, "seconds": round(time.perf_counter() - t0, 1)}


# --------------------------------------------------------------------------- parent


def _make_photo(mp: float, folder: Path) -> Path:
    from PIL import Image

    from jndguard.core.models.store import validation_photos

    src = Image.open(validation_photos(1)[0]).convert("RGB")
    w, h = src.size
    s = (mp * 1e6 / (w * h)) ** 0.5
    path = folder / f"portrait-{mp:g}mp.jpg"
    src.resize((round(w * s), round(h * s)), Image.BICUBIC).save(path, quality=95)
    return path


def fit(points: list[tuple[int, int]]) -> tuple[float, float]:
    """Least-squares ``(base_bytes, bytes_per_pixel)`` of ``peak = base + bpp × pixels``."""
    import numpy as np

    x = np.array([p for p, _ in points], dtype=np.float64)
    y = np.array([b for _, b in points], dtype=np.float64)
    if len(x) < 2:
        return float(y[0]), 0.0
    bpp, base = np.polyfit(x, y, 1)
    return float(base), float(bpp)


def run(args: argparse.Namespace) -> int:
    if args.child:
        print(json.dumps(_child(Path(args.child), args.iterations, not args.no_verify)))
        return 0
    if not Path("/proc/self/clear_refs").exists():
        print("bench memory needs Linux (/proc/self/clear_refs)", file=sys.stderr)
        return 2
    sizes = [float(s) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mp in sizes:
            photo = _make_photo(mp, Path(tmp))
            cmd = [sys.executable, "-m", "jndguard", "bench", "memory", "--child", str(photo),
                   "--iterations", str(args.iterations), *(["--no-verify"] if args.no_verify else [])]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
            if proc.returncode != 0:
                print(proc.stderr[-2000:], file=sys.stderr)
                return 2
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"{mp:g} MP: peak {max(rows[-1]['peaks'].values()) / GB:.2f} GB", file=sys.stderr)
    stages = [s for s in ("models", "load", "detect", "jnd", "attack", "redetect", "metrics",
                          "export", "verify", "write") if any(s in r["peaks"] for r in rows)]
    whole = [(r["pixels"], max(r["peaks"].values())) for r in rows]
    no_metrics = [(r["pixels"], max(v for k, v in r["peaks"].items() if k != "metrics")) for r in rows]
    fits = {"with_metrics": fit(whole), "without_metrics": fit(no_metrics)}
    if args.json:
        emit_json({"rows": rows, "fit": {k: {"base_bytes": b, "bytes_per_pixel": p}
                                         for k, (b, p) in fits.items()}})
        return 0
    print_table(["MP", "size", "s", *stages, "peak", "peak w/o metrics"],
                [[f"{r['pixels'] / 1e6:.1f}", f"{r['width']}×{r['height']}", r["seconds"]]
                 + [f"{r['peaks'].get(s, 0) / GB:.2f}" for s in stages]
                 + [f"{w[1] / GB:.2f}", f"{n[1] / GB:.2f}"]
                 for r, w, n in zip(rows, whole, no_metrics)])
    print("\npeak RSS in GiB per stage (each stage's own peak, the process's baseline included)")
    for k, (b, p) in fits.items():
        print(f"fit {k.replace('_', ' ')}: {b / GB:.2f} GiB + {p:.0f} bytes/pixel")
    return 0


if __name__ == "__main__":
    from jndguard.cli import main

    sys.exit(main(["bench", "memory", *sys.argv[1:]]))
