"""Peak memory of protecting one photo, per stage, at several sizes (the memory model).

Each size runs in a fresh process (``python -m jndguard.benchmarks.memory --child``) on a photo
of that many megapixels laid out one of two ways: ``portrait``, a validation portrait upscaled
(bicubic) to that size, its face filling most of the photo (the face region grows with the
photo); ``scene``, the same portrait upscaled to a face of about :data:`SCENE_FACE_PX` pixels
pasted in the middle of a face-free Kodak photo (kodim01) upscaled to that size (the face
region stays the same, the photo grows). The child resets the kernel's
peak-RSS counter (``/proc/self/clear_refs``, Linux) before each stage and reads ``VmHWM``
after it, so each stage's peak is its own: models loaded, photo decoded, face detection, JND
map, attack, re-detection, quality metrics, PNG export and verification of the file. The
child also reports the pixels of the largest face region the optimiser reads (post mode: the
box + 60 % context; lossless: the box + margin). The parent fits ``peak = base +
photo_bytes × pixels + region_bytes × region pixels`` (least squares over every run; with one
layout only ``peak = base + bytes × pixels``); :mod:`jndguard.core.memory` holds the fitted
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
#: the face's longer side in the ``scene`` layout (a face a few metres away in a 24 MP photo)
SCENE_FACE_PX = 400
LAYOUTS = ("portrait", "scene")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", default=",".join(f"{s:g}" for s in DEFAULT_SIZES),
                   help="megapixels to measure, comma-separated (default %(default)s)")
    p.add_argument("--iterations", type=int, default=10, help="HVS-JND iteration budget")
    p.add_argument("--no-verify", action="store_true", help="skip the verification stage")
    p.add_argument("--mode", default="post", choices=("post", "lossless"), help="HVS-JND mode")
    p.add_argument("--layouts", default="portrait",
                   help="photo layouts, comma-separated: portrait (the face fills the photo), "
                        "scene (a fixed-size face in a larger photo); default %(default)s")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--save", help="append each run's figures to this file (JSON lines)")
    p.add_argument("--load", help="fit and print the runs saved in this file instead of running")
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


def _work_region_pixels(result, mode: str) -> int:
    """Pixels of the largest region the optimiser read (what the region term of the model
    counts; post mode: at the face's working scale, :mod:`jndguard.core.attacks.post_scale`)."""
    if mode == "post":
        from jndguard.core.attacks.post_problem import CONTEXT_MARGIN, region_of
        from jndguard.core.attacks.post_scale import work_scale

        h, w = result.protected.shape[:2]
        regions = [region_of(f.box, CONTEXT_MARGIN, w, h) for f in result.faces]
        return max((round((x1 - x0) * (y1 - y0) * work_scale((x0, y0, x1, y1)) ** 2)
                    for x0, y0, x1, y1 in regions), default=0)
    else:
        regions = [f["region"] for f in result.per_face]
    return max(((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in regions), default=0)


def _child(photo: Path, iterations: int, verify: bool, mode: str = "post") -> dict:
    import torch

    import jndguard.core.memory as guard
    from jndguard.core.export import ExportOptions, export_photo
    from jndguard.core.imageio import load_image
    from jndguard.core.models import load_recogniser
    from jndguard.core.pipeline import ProtectionSettings, protect_steps
    from jndguard.core.progress import drive

    # the guard is what this measurement fits: it must not refuse what is being measured (the
    # parent runs only the sizes it is asked for)
    guard.available_memory = lambda: None
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
    settings = ProtectionSettings(max_iterations=iterations, device="cpu", mode=mode)
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
            "faces": len(result.faces), "region_pixels": _work_region_pixels(result, mode),
            "peaks": peaks, "seconds": round(time.perf_counter() - t0, 1)}


# --------------------------------------------------------------------------- parent


def _make_photo(mp: float, folder: Path, layout: str = "portrait") -> Path:
    from PIL import Image

    from jndguard.core.models.store import validation_photos

    src = Image.open(validation_photos(1)[0]).convert("RGB")
    w, h = src.size
    path = folder / f"{layout}-{mp:g}mp.jpg"
    if layout == "portrait":
        s = (mp * 1e6 / (w * h)) ** 0.5
        src.resize((round(w * s), round(h * s)), Image.BICUBIC).save(path, quality=95)
        return path
    import numpy as np

    from jndguard.core.faces import detect_faces

    face = detect_faces(np.asarray(src), "cpu")[0]
    k = SCENE_FACE_PX / max(face.width, face.height)
    portrait = src.resize((round(w * k), round(h * k)), Image.BICUBIC)
    kodak = Path(os.environ.get("JNDGUARD_KODAK")
                 or Path(__file__).resolve().parents[2] / "tests" / "data" / "kodak")
    if not (kodak / "kodim01.png").is_file():
        raise FileNotFoundError(f"the scene layout needs kodim01.png (set JNDGUARD_KODAK to its folder; "
                                f"not found in {kodak})")
    bg = Image.open(kodak / "kodim01.png").convert("RGB")
    bw, bh = bg.size
    s = (mp * 1e6 / (bw * bh)) ** 0.5
    bg = bg.resize((max(portrait.width, round(bw * s)), max(portrait.height, round(bh * s))), Image.BICUBIC)
    bg.paste(portrait, ((bg.width - portrait.width) // 2, (bg.height - portrait.height) // 2))
    bg.save(path, quality=95)
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


def fit_regions(points: list[tuple[int, int, int]]) -> tuple[float, float, float] | None:
    """Non-negative least squares ``(base, photo_bytes, region_bytes)`` of ``peak = base +
    photo_bytes × pixels + region_bytes × region pixels`` from ``(pixels, region_pixels,
    peak)`` (a negative byte count is noise: the best fit over every subset of the terms with
    all coefficients ≥ 0); None when the runs cannot tell the two apart (one layout)."""
    import itertools

    import numpy as np

    a = np.array([[1.0, p, r] for p, r, _ in points], dtype=np.float64)
    y = np.array([b for _, _, b in points], dtype=np.float64)
    if len(points) < 3 or np.linalg.matrix_rank(a) < 3:
        return None
    best = None
    for k in range(1, 4):
        for cols in itertools.combinations(range(3), k):
            sub = np.linalg.lstsq(a[:, cols], y, rcond=None)[0]
            if (sub < 0).any():
                continue
            coef = np.zeros(3)
            coef[list(cols)] = sub
            err = float(((a @ coef - y) ** 2).sum())
            if best is None or err < best[0]:
                best = (err, coef)
    coef = best[1]
    return float(coef[0]), float(coef[1]), float(coef[2])


def run(args: argparse.Namespace) -> int:
    if args.child:
        print(json.dumps(_child(Path(args.child), args.iterations, not args.no_verify, args.mode)))
        return 0
    rows = []
    if args.load:
        rows = [json.loads(line) for line in Path(args.load).read_text().splitlines() if line.strip()]
    else:
        if not Path("/proc/self/clear_refs").exists():
            print("bench memory needs Linux (/proc/self/clear_refs)", file=sys.stderr)
            return 2
        sizes = [float(s) for s in args.sizes.split(",")]
        layouts = [v for v in args.layouts.split(",") if v]
        unknown = set(layouts) - set(LAYOUTS)
        if unknown:
            print(f"--layouts: unknown {', '.join(sorted(unknown))}; choose from {', '.join(LAYOUTS)}",
                  file=sys.stderr)
            return 2
        with tempfile.TemporaryDirectory() as tmp:
            for layout in layouts:
                for mp in sizes:
                    photo = _make_photo(mp, Path(tmp), layout)
                    cmd = [sys.executable, "-m", "jndguard", "bench", "memory", "--child", str(photo),
                           "--iterations", str(args.iterations), "--mode", args.mode,
                           *(["--no-verify"] if args.no_verify else [])]
                    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
                    if proc.returncode != 0 and "downscale it to at most" in proc.stderr:
                        # refused by the memory guard on this machine: said so, the series goes on
                        reason = proc.stderr.strip().splitlines()[-1]
                        print(f"{layout} {mp:g} MP: refused: {reason}", file=sys.stderr)
                        rows.append({"layout": layout, "mode": args.mode, "mp": mp, "refused": reason})
                        if args.save:
                            with open(args.save, "a") as fh:
                                fh.write(json.dumps(rows[-1]) + "\n")
                        continue
                    if proc.returncode != 0:
                        print(proc.stderr[-2000:], file=sys.stderr)
                        return 2
                    row = {"layout": layout, "mode": args.mode,
                           **json.loads(proc.stdout.strip().splitlines()[-1])}
                    rows.append(row)
                    if args.save:  # one line per run, so a long series keeps what it measured
                        with open(args.save, "a") as fh:
                            fh.write(json.dumps(row) + "\n")
                    print(f"{layout} {mp:g} MP: peak {max(row['peaks'].values()) / GB:.2f} GB",
                          file=sys.stderr)
    refused = [r for r in rows if "refused" in r]
    rows = [r for r in rows if "refused" not in r]
    for r in refused:
        print(f"{r['layout']} {r['mp']:g} MP ({r['mode']}): refused by the memory guard: {r['refused']}")
    if not rows:
        return 2
    stages = [s for s in ("models", "load", "detect", "jnd", "attack", "redetect", "metrics",
                          "export", "verify", "write") if any(s in r["peaks"] for r in rows)]
    whole = [(r["pixels"], max(r["peaks"].values())) for r in rows]
    fits = {"photo": fit(whole)}
    regions = fit_regions([(r["pixels"], r.get("region_pixels", 0), max(r["peaks"].values())) for r in rows])
    if args.json:
        emit_json({"rows": rows, "fit": {"base_bytes": fits["photo"][0], "bytes_per_pixel": fits["photo"][1]},
                   "fit_regions": None if regions is None else dict(
                       zip(("base_bytes", "photo_bytes_per_pixel", "region_bytes_per_pixel"), regions))})
        return 0
    print_table(["layout", "mode", "MP", "size", "region MP", "s", *stages, "peak"],
                [[r.get("layout", "portrait"), r.get("mode", "post"), f"{r['pixels'] / 1e6:.1f}",
                  f"{r['width']}×{r['height']}", f"{r.get('region_pixels', 0) / 1e6:.2f}", r["seconds"]]
                 + [f"{r['peaks'].get(s, 0) / GB:.2f}" for s in stages] + [f"{w[1] / GB:.2f}"]
                 for r, w in zip(rows, whole)])
    print("\npeak RSS in GiB per stage (each stage's own peak, the process's baseline included)")
    b, p = fits["photo"]
    print(f"fit on the photo's pixels: {b / GB:.2f} GiB + {p:.0f} bytes/pixel")
    if regions is not None:
        print(f"fit on photo and region pixels: {regions[0] / GB:.2f} GiB + {regions[1]:.0f} bytes/photo "
              f"pixel + {regions[2]:.0f} bytes/region pixel")
    return 0


if __name__ == "__main__":
    from jndguard.cli import main

    sys.exit(main(["bench", "memory", *sys.argv[1:]]))
