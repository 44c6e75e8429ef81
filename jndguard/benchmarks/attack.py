"""Attack speed: seconds per iteration of each method, per recogniser pass, divided by the
recogniser's bare forward+backward time measured in the same run.

Also the median iterations and seconds to a protected face (full pipeline, re-detection
included) for HVS-JND over a few validation faces. Ratios, not absolute seconds, are the
figures to compare across machines.

The forward+backward time of every registered white-box recogniser is measured in the same
run: FaceNet on its 160×160 crop, the dlib port on its 150×150 chip and, since the port's
gradient must also pass its alignment, photo → aligned chip (pyramid + warp) → descriptor.
"""

from __future__ import annotations

import argparse
import statistics
import time

from jndguard.commands._options import add_device
from jndguard.commands._output import emit_json, print_table

DEFAULT_METHODS = "hvs-jnd,bim,pgd,mifgsm,difgsm,mnd,jndmga"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--methods", default=DEFAULT_METHODS)
    parser.add_argument("--iterations", type=int, default=10, help="iterations timed per method")
    parser.add_argument("--faces", type=int, default=5, help="faces for the time-to-protect figure")
    parser.add_argument("--threads", type=int, default=None)
    add_device(parser, "cpu")
    parser.add_argument("--model", default=None, help="recogniser the methods attack (default: "
                        "the default model)")
    parser.add_argument("--json", action="store_true")


def _median_time(fn, repeat: int = 10) -> float:
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _fwd_bwd(rec, device, batch: int = 1, repeat: int = 10) -> float:
    import torch
    s = rec.info.input_size
    x = torch.rand(batch, 3, s, s, device=device, requires_grad=True)
    return _median_time(lambda: torch.autograd.grad(rec(x).sum(), [x]), repeat)


def _fwd_bwd_from_photo(rec, photo, repeat: int = 10) -> float:
    """Forward+backward from the full photo through the recogniser's view of its first face."""
    import torch

    from jndguard.core.faces import detect_faces

    view = rec.face_view(photo.pixels, detect_faces(photo.pixels)[0])
    x = photo.tensor(rec.device).requires_grad_(True)
    return _median_time(lambda: torch.autograd.grad(rec(view(x)).sum(), [x]), repeat)


def recogniser_times(photo, device, repeat: int = 10) -> list[dict]:
    """Forward+backward seconds of every registered recogniser, measured in this run."""
    from jndguard.core.models import list_models, load_recogniser

    out = []
    for m in list_models():
        rec = load_recogniser(m["name"], device)
        s = rec.info.input_size
        out.append({"model": rec.name, "input": f"1×{s}×{s}", "seconds": _fwd_bwd(rec, device, 1, repeat)})
        if rec.info.alignment != "box":
            out.append({"model": rec.name, "input": f"photo {photo.width}×{photo.height} → aligned chip",
                        "seconds": _fwd_bwd_from_photo(rec, photo, repeat)})
    return out


def _problem(rec, photo, settings):
    from jndguard.core.attacks.base import Goal
    from jndguard.core.attacks.problem import AttackProblem, JitterConfig
    from jndguard.core.faces import detect_faces
    from jndguard.core.jnd import jnd_map
    from jndguard.core.models.gallery import celebrity_gallery, gallery_for
    from jndguard.core.pipeline import face_region

    x = photo.tensor(rec.device)
    face = detect_faces(photo.pixels)[0]
    view = rec.face_view(photo.pixels, face) if rec.info.alignment != "box" else None
    x0, y0, x1, y1 = face_region(face, settings.margin, photo.width, photo.height,
                                 None if view is None else view.footprint())
    j = jnd_map(x)
    emb = rec(rec.crops(x, [face], pixels=photo.pixels)).detach()[0]
    names, cents = celebrity_gallery(rec)
    gn, gc = gallery_for(emb, names, cents, rec.threshold)
    box = (face.box[0] - x0, face.box[1] - y0, face.box[2] - x0, face.box[3] - y0)
    return AttackProblem(x[:, :, y0:y1, x0:x1], j[:, :, y0:y1, x0:x1], box, rec, emb, gc, gn,
                         Goal.DODGE, jitter=JitterConfig(samples=settings.jitter_samples),
                         view=None if view is None else view.translate(-x0, -y0))


def run(args: argparse.Namespace) -> int:
    import torch

    from jndguard.core.imageio import load_image
    from jndguard.core.models import load_recogniser
    from jndguard.core.models.store import dataset_dir
    from jndguard.core.pipeline import ProtectionSettings, build_method, protect

    if args.threads:
        torch.set_num_threads(args.threads)
    rec = load_recogniser(args.model, device=args.device)
    photos = sorted((dataset_dir() / "val").glob("*/*.jpg"))
    photo = load_image(photos[0])
    base = _fwd_bwd(rec, rec.device)
    times = recogniser_times(photo, rec.device)
    batched: dict[int, float] = {}
    rows, out = [], []
    for name in args.methods.split(","):
        # one-crop problems: HVS-JND runs in lossless mode here (post mode's per-iteration cost
        # against the bare forward+backward of both recognisers is `jndguard bench post --cost`)
        settings = ProtectionSettings(method=name, mode="lossless")
        method = build_method(settings)
        problem = _problem(rec, photo, settings)
        passes = settings.jitter_samples
        gen = method.iterate(problem)
        n, t0 = 0, time.perf_counter()
        try:
            for _ in gen:
                n += 1
                if n >= args.iterations:
                    break
        finally:
            gen.close()
        per_iter = (time.perf_counter() - t0) / max(n, 1)
        if passes not in batched:
            batched[passes] = _fwd_bwd(rec, rec.device, passes)
        ratio = per_iter / (passes * base)
        overhead = per_iter / batched[passes]
        rows.append([name, n, f"{per_iter * 1000:.1f}", passes, f"{ratio:.2f}", f"{overhead:.2f}"])
        out.append({"method": name, "iterations_timed": n, "seconds_per_iteration": per_iter,
                    "passes_per_iteration": passes, "ratio_per_pass": ratio,
                    "ratio_to_batched_fwd_bwd": overhead})
    if not args.json:
        print(f"forward+backward on {rec.device}, {torch.get_num_threads()} threads, same run:")
        print_table(["recogniser", "input", "ms", "÷ first"],
                    [[t["model"], t["input"], f"{t['seconds'] * 1000:.1f}",
                      f"{t['seconds'] / times[0]['seconds']:.2f}"] for t in times])
        print(f"\nmethods attack {rec.name} (fwd+bwd {base * 1000:.1f} ms)")
        print_table(["method", "iters", "ms/iter", "passes/iter", "per pass ÷ fwd+bwd(1)",
                     "iter ÷ fwd+bwd(batch of passes)"], rows)
    its, secs, ok = [], [], 0
    for p in photos[: args.faces]:
        t = time.perf_counter()
        res = protect(load_image(p), ProtectionSettings(device=args.device, model=rec.name,
                                                        mode="lossless"), rec)
        secs.append(time.perf_counter() - t)
        its.append(res.per_face[0]["iterations"] if res.per_face else 0)
        ok += res.success
    summary = {"faces": len(secs), "protected": ok, "median_iterations": statistics.median(its),
               "median_seconds": statistics.median(secs),
               "median_seconds_in_fwd_bwd_units": statistics.median(secs) / base}
    if args.json:
        emit_json({"model": rec.name, "fwd_bwd_seconds": base, "recogniser_fwd_bwd": times,
                   "methods": out, "hvs_jnd_time_to_protect": summary})
    else:
        print(f"\nHVS-JND (lossless) time to a protected face ({ok}/{len(secs)} protected): median "
              f"{summary['median_iterations']} iterations, {summary['median_seconds']:.2f} s "
              f"= {summary['median_seconds_in_fwd_bwd_units']:.0f}× fwd+bwd (pipeline incl. "
              "detection, JND, re-detection and metrics)")
    return 0
