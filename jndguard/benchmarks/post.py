"""Post mode on the validation faces, judged on the threat matrix (docs/design.md §4, §8).

``jndguard bench post --faces 25 --matrix full -o runs/post`` protects each validation face
with every ``--config`` (ProtectionSettings fields as JSON; default: the defaults, i.e. post
mode), saves the protected photo, and judges it in every cell of the threat matrix with the
person's train photos as the gallery. It prints, per config: the share of faces protected in
every cell per white-box recogniser, the mean share of cells, face-region PSNR/SSIM and share
of pixel-channels over J, the median seconds per face with the split (detection, JND,
optimisation, stopping checks), and the cost of one iteration relative to the bare
forward+backward of the same batch through the same recognisers, timed in the same run.
Results are appended per face to ``OUT/results.jsonl``; a rerun skips what is there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from jndguard.commands._options import add_device
from jndguard.commands._output import emit_json, print_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", action="append", default=[],
                        help="ProtectionSettings fields as JSON (repeatable; default: the defaults)")
    parser.add_argument("--faces", type=int, default=25, help="first N validation faces")
    parser.add_argument("--skip", type=int, default=0, help="skip the first K of them")
    parser.add_argument("--every", type=int, default=1,
                        help="only every K-th of them (with --skip as the offset: parallel shards)")
    parser.add_argument("--matrix", choices=["full", "quick"], default="full")
    parser.add_argument("-o", "--output", type=Path, required=True, help="results folder")
    parser.add_argument("--cost", type=int, default=0, metavar="N",
                        help="only time N post-mode iterations on the first face against the bare "
                             "forward+backward of the same batch, interleaved, and print the ratio")
    parser.add_argument("--summarise", type=Path, nargs="+", metavar="DIR",
                        help="only summarise the results.jsonl of these folders (e.g. parallel shards) "
                             "as Markdown: per config, then per face")
    add_device(parser)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", action="store_true")


def config_label(config: dict) -> str:
    return json.dumps(config, sort_keys=True) if config else "defaults"


def bare_step_seconds(recognisers, samples: int, reps: int = 3, precision: str = "fp32") -> float:
    """Median seconds of one forward+backward of ``samples`` random crops through every
    recogniser (the floor one post-mode iteration cannot go below), at the optimiser's
    ``precision`` (:func:`~jndguard.core.models.inference.gradient_autocast`)."""
    import torch

    from jndguard.core.models.inference import gradient_autocast

    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for rec in recognisers:
            s = int(rec.info.input_size)
            x = torch.rand(samples, 3, s, s, device=rec.device, requires_grad=True)
            with gradient_autocast(precision, rec.device):
                emb = rec(x)
            torch.autograd.grad(emb.float().sum(), [x])
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


_GALLERIES: dict[str, object] = {}


def gallery_of(person: str, home=None):
    """The person's train photos as matrix references, one object per person so their
    embeddings are computed once per run."""
    from jndguard.core.models.store import dataset_dir
    from jndguard.core.threat.matrix import as_references

    if person not in _GALLERIES:
        _GALLERIES[person] = as_references(dataset_dir(home) / "train" / person, "gallery")
    return _GALLERIES[person]


def iteration_cost(path: Path, settings, rec, n: int) -> dict:
    """Median seconds of one post-mode iteration (views, encodings, both recognisers' forward
    and backward, perceptual loss, step; no stopping check) and of the bare forward+backward of
    the same number of random crops through the same recognisers, interleaved in one run."""
    from dataclasses import replace as dc_replace

    import torch

    from jndguard.core.attacks.base import Goal
    from jndguard.core.attacks.post_eot import PostEOT
    from jndguard.core.attacks.post_problem import make_post_problem
    from jndguard.core.faces import detect_faces
    from jndguard.core.imageio import load_image
    from jndguard.core.jnd import jnd_map
    from jndguard.core.methods import POST_TRAIN_EXTRA, build_method
    from jndguard.core.models import load_recogniser
    from jndguard.core.models.inference import resolve_precision
    from jndguard.core.pipeline import white_box_recognisers

    image = load_image(path)
    face = detect_faces(image.pixels, "cpu", min_face_size=settings.min_face_size)[0]
    x = image.tensor(rec.device)
    jnd = jnd_map(x, settings.jnd_model, settings.jnd_color, settings.jnd_strength)
    recs = white_box_recognisers(settings, rec)
    problem, _ = make_post_problem(x, jnd, image.pixels, face, recs, Goal.DODGE,
                                   PostEOT(samples=settings.eot_samples), lambda: image.pixels,
                                   settings.stop_margin, settings.stop_margin + POST_TRAIN_EXTRA,
                                   torch.Generator().manual_seed(0))
    method = build_method(settings)
    method.config = dc_replace(method.config, check_share=2.0, max_iterations=4 * (n + 1))  # no checks
    gen = method.iterate(problem)
    used = resolve_precision(settings.precision, rec.device)
    # the same recognisers as converted (no folded normalisation, no channels-last layout)
    raw = [load_recogniser(r.name, r.device, prepare=False) for r in recs]
    its, bare, bare32, bare_raw = [], [], [], []
    next(gen)  # warm-up
    for _ in range(n):
        t = time.perf_counter()
        next(gen)
        its.append(time.perf_counter() - t)
        bare.append(bare_step_seconds(recs, settings.eot_samples, reps=1, precision=used))
        bare32.append(bare_step_seconds(recs, settings.eot_samples, reps=1))
        bare_raw.append(bare_step_seconds(raw, settings.eot_samples, reps=1))
    gen.close()
    it_s, bare_s, bare32_s, raw_s = (statistics.median(v) for v in (its, bare, bare32, bare_raw))
    return {"iteration_seconds": it_s, "bare_seconds": bare_s, "ratio": it_s / bare_s, "n": n,
            "precision": used, "bare_fp32_seconds": bare32_s, "ratio_fp32": it_s / bare32_s,
            "bare_unprepared_seconds": raw_s, "ratio_unprepared": it_s / raw_s,
            "samples": settings.eot_samples, "recognisers": [r.name for r in recs]}


def protect_one(path: Path, settings, rec, out_dir: Path, matrix_size: str, recognisers=None) -> dict:
    """Protect one photo, judge it on the matrix (the white-box ``recognisers``, the person's
    train photos as the gallery), return the per-face record."""
    from PIL import Image

    from jndguard.core.imageio import load_image
    from jndguard.core.pipeline import protect_steps
    from jndguard.core.progress import drive
    from jndguard.core.threat.matrix import evaluate_matrix

    image = load_image(path)
    t0 = time.perf_counter()
    result = drive(protect_steps(image, settings, rec))
    total = time.perf_counter() - t0
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"{path.parent.name}-{path.stem[:40]}.png"
    Image.fromarray(result.protected).save(out_dir / name)
    person = path.parent.name
    gallery = gallery_of(person, getattr(rec, "home", None))
    tm = time.perf_counter()
    report = evaluate_matrix(image.pixels, result.protected, result.faces, recognisers, matrix_size,
                             gallery=gallery)
    matrix_seconds = time.perf_counter() - tm
    f = result.per_face[0] if result.per_face else {}
    q = f.get("quality", {})
    t = result.timings
    split = {"detect": t.get("detect", 0.0), "jnd": t.get("jnd", 0.0), "setup": t.get("setup", 0.0),
             "optimise": t.get("optimisation", 0.0) - t.get("checks", 0.0), "checks": t.get("checks", 0.0),
             "recheck": t.get("recheck", 0.0) + t.get("metrics", 0.0)}
    per_rec = {s["recogniser"]: {"protected": s["protected"], "share": s["share"],
                                 "worst": s["worst"], "mean_gap": mean_gap(report.entries, s["recogniser"])}
               for s in report.summaries if s["face"] == 0}
    return {
        "photo": f"{person}/{path.name}", "output": name, "success": result.success,
        "iterations": f.get("iterations"), "seconds": total, "split": split,
        "psnr": f.get("psnr"), "ssim": f.get("ssim"),
        "over_j": (q.get("jnd") or {}).get("over_fraction"),
        "quick_matrix": f.get("quick_matrix"), "matrix": per_rec,
        "matrix_protected": report.protected, "matrix_errors": report.errors,
        "matrix_seconds": matrix_seconds, "white_box": result.model.get("white_box"),
    }


def mean_gap(entries, recogniser: str, face: int = 0) -> float | None:
    """Mean over a face's cells of ``(similarity − τ) / (1 − τ)`` for one recogniser (dodging;
    cells where no face was found are left out): below 0 the cell passes, and unlike the share
    of cells passed it moves smoothly — one seed's share of cells swings between 0 % and 74 %
    on the same face, which this figure shows as the few hundredths it is."""
    gaps = [(e.similarity - e.threshold) / max(1e-6, 1 - e.threshold) for e in entries
            if e.face == face and e.recogniser == recogniser and e.similarity is not None]
    return float(np.mean(gaps)) if gaps else None


def summarise(config: dict, rows: list[dict], bare: float | None, samples: int) -> dict:
    recs = sorted({r for row in rows for r in row["matrix"]})
    it_s = [(row["split"]["optimise"]) / row["iterations"] for row in rows if row.get("iterations")]
    out = {
        "config": config_label(config), "faces": len(rows),
        "protected_all": float(np.mean([all(v["protected"] for v in row["matrix"].values())
                                        for row in rows])) if rows else None,
        "per_recogniser": {r: float(np.mean([row["matrix"].get(r, {}).get("protected", False)
                                             for row in rows])) for r in recs},
        "share_cells": {r: float(np.mean([row["matrix"].get(r, {}).get("share", 0.0) for row in rows]))
                        for r in recs},
        "mean_gap": {r: float(np.mean(g)) if (g := [row["matrix"][r]["mean_gap"] for row in rows
                                                     if row["matrix"].get(r, {}).get("mean_gap") is not None])
                     else None for r in recs},
        "psnr": [float(np.mean([r["psnr"] for r in rows])), float(np.std([r["psnr"] for r in rows]))],
        "ssim": [float(np.mean([r["ssim"] for r in rows])), float(np.std([r["ssim"] for r in rows]))],
        "over_j": float(np.mean([r["over_j"] or 0.0 for r in rows])),
        "median_seconds": statistics.median(r["seconds"] for r in rows),
        "median_iterations": statistics.median(r["iterations"] or 0 for r in rows),
        "split": {k: statistics.median(r["split"][k] for r in rows) for k in rows[0]["split"]},
        "iteration_seconds": statistics.median(it_s) if it_s else None,
        "bare_seconds": bare, "samples": samples,
    }
    out["iteration_ratio"] = (out["iteration_seconds"] / bare) if bare and it_s else None
    return out


def _cost_row(c: dict) -> str:
    """One row of the iteration-cost table (records from before the precision columns: fp32)."""
    def ratio(key: str) -> str:
        return f"{c[key]:.2f}" if key in c else "–"

    return (f"| {c['config']} | {', '.join(c['recognisers'])} | {c['samples']} "
            f"| {c.get('precision', 'fp32')} "
            f"| {c['iteration_seconds']:.3f} | {c['ratio']:.2f} | {ratio('ratio_fp32')} "
            f"| {ratio('ratio_unprepared')} |")


def markdown(rows_by_config: dict[str, list[dict]], costs: list[dict] | None = None) -> str:
    """The summary and per-face tables of finished rows, as Markdown."""
    lines = ["| config | faces | protected in every cell (all white-box recognisers) | per recogniser "
             "| mean share of cells | mean gap past τ | PSNR dB | SSIM | over J | median s/face "
             "| median iterations |",
             "|---|---:|---:|---|---|---|---:|---:|---:|---:|---:|"]
    for label, rows in rows_by_config.items():
        s = summarise({}, rows, None, 0)
        per = ", ".join(f"{k} {100 * v:.0f}%" for k, v in s["per_recogniser"].items())
        share = ", ".join(f"{k} {100 * v:.1f}%" for k, v in s["share_cells"].items())
        gap = ", ".join(f"{k} {v:+.3f}" for k, v in s["mean_gap"].items() if v is not None) or "—"
        lines.append(f"| {label} | {s['faces']} | {100 * s['protected_all']:.0f}% | {per} | {share} | {gap} "
                     f"| {s['psnr'][0]:.2f} ± {s['psnr'][1]:.2f} | {s['ssim'][0]:.4f} ± {s['ssim'][1]:.4f} "
                     f"| {100 * s['over_j']:.2f}% | {s['median_seconds']:.0f} "
                     f"| {s['median_iterations']:.0f} |")
    lines += ["", "Median seconds per face by stage:", "",
              "| config | " + " | ".join(next(iter(rows_by_config.values()))[0]["split"]) + " |",
              "|---|" + "---:|" * len(next(iter(rows_by_config.values()))[0]["split"])]
    for label, rows in rows_by_config.items():
        s = summarise({}, rows, None, 0)
        lines.append(f"| {label} | " + " | ".join(f"{v:.1f}" for v in s["split"].values()) + " |")
    if costs:
        lines += ["", "| config | recognisers | views each | precision | iteration s | iteration / bare "
                  "forward+backward (same precision) | iteration / bare float32 | iteration / bare "
                  "float32, backbones as converted |",
                  "|---|---|---:|---|---:|---:|---:|---:|"]
        lines += [_cost_row(c) for c in costs]
    lines += ["", "| config | photo | quick matrix (optimiser) | full matrix | worst cell | PSNR dB | "
              "iterations |", "|---|---|---|---|---|---:|---:|"]
    for label, rows in rows_by_config.items():
        for r in rows:
            worst = []
            for name, v in r["matrix"].items():
                if not v["protected"]:
                    w = v["worst"]
                    worst.append(f"{name} {w['detector']}/{w['crop']}/{w['resize']}/{w['encoding']} vs "
                                 f"{w['reference']} {w['similarity']}")
            lines.append(f"| {label} | {r['photo'].split('/')[0]} | "
                         f"{'ok' if (r.get('quick_matrix') or {}).get('success') else 'fail'} "
                         f"| {'ok' if r['matrix_protected'] else 'FAIL'} | {'; '.join(worst) or '–'} "
                         f"| {r['psnr']:.2f} | {r['iterations']} |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    import torch

    from jndguard.core.device import resolve_device
    from jndguard.core.models import load_recogniser
    from jndguard.core.models.inference import resolve_precision
    from jndguard.core.models.store import validation_photos
    from jndguard.core.pipeline import ProtectionSettings, white_box_recognisers

    if args.summarise:
        by: dict[str, list[dict]] = {}
        costs = []
        for d in args.summarise:
            if (d / "results.jsonl").is_file():
                for line in (d / "results.jsonl").read_text().splitlines():
                    row = json.loads(line)
                    by.setdefault(row["config"], []).append(row)
            if (d / "iteration_cost.json").is_file():
                costs += json.loads((d / "iteration_cost.json").read_text())
        print(markdown(by, costs), end="")
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    rec = load_recogniser(device=resolve_device(args.device))
    photos = validation_photos(args.faces)[args.skip::args.every]
    configs = [json.loads(c) for c in args.config] or [{}]
    args.output.mkdir(parents=True, exist_ok=True)
    if args.cost:
        out = [iteration_cost(photos[0], ProtectionSettings(**c), rec, args.cost)
               | {"config": config_label(c)} for c in configs]
        (args.output / "iteration_cost.json").write_text(json.dumps(out, indent=1))
        if args.json:
            emit_json(out)
        else:
            print_table(["config", "recognisers", "views each", "precision", "iteration s",
                         "bare fwd+bwd s", "ratio", "bare float32 s", "ratio", "bare unprepared s", "ratio"],
                        [[o["config"], ", ".join(o["recognisers"]), o["samples"], o["precision"],
                          f"{o['iteration_seconds']:.3f}", f"{o['bare_seconds']:.3f}", f"{o['ratio']:.2f}",
                          f"{o['bare_fp32_seconds']:.3f}", f"{o['ratio_fp32']:.2f}",
                          f"{o['bare_unprepared_seconds']:.3f}", f"{o['ratio_unprepared']:.2f}"]
                         for o in out])
        return 0
    log = args.output / "results.jsonl"
    done = {}
    if log.is_file():
        for line in log.read_text().splitlines():
            d = json.loads(line)
            done[(d["config"], d["photo"])] = d
    summaries = []
    for c in configs:
        settings = ProtectionSettings(**c)
        label = config_label(c)
        recs = white_box_recognisers(settings, rec)
        used = resolve_precision(settings.precision, rec.device)
        bare_before = bare_step_seconds(recs, settings.eot_samples, precision=used)
        rows = []
        for i, path in enumerate(photos):
            key = (label, f"{path.parent.name}/{path.name}")
            if key in done:
                rows.append(done[key])
                continue
            row = protect_one(path, settings, rec, args.output / f"config{configs.index(c)}",
                              args.matrix, recs)
            row["config"] = label
            rows.append(row)
            with log.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            verdict = "ok" if row["matrix_protected"] else "FAIL"
            print(f"{label} {i + 1}/{len(photos)} {key[1]}: matrix {verdict} "
                  f"quick {row['success']} {row['psnr']:.2f} dB {row['iterations']} it "
                  f"{row['seconds']:.0f} s", flush=True)
        bare_after = bare_step_seconds(recs, settings.eot_samples, precision=used)
        summaries.append(summarise(c, rows, (bare_before + bare_after) / 2, settings.eot_samples))
    if args.json:
        emit_json(summaries)
        return 0
    rows_out = []
    for s in summaries:
        per = ", ".join(f"{k} {100 * v:.0f}%" for k, v in s["per_recogniser"].items())
        rows_out.append([s["config"], s["faces"], f"{100 * s['protected_all']:.0f}%", per,
                         f"{s['psnr'][0]:.2f}±{s['psnr'][1]:.2f}", f"{s['ssim'][0]:.4f}",
                         f"{100 * s['over_j']:.2f}%", f"{s['median_seconds']:.0f}",
                         " ".join(f"{k} {v:.1f}" for k, v in s["split"].items()),
                         "–" if s["iteration_ratio"] is None else f"{s['iteration_ratio']:.2f}"])
    print_table(["config", "faces", "all cells, all recognisers", "per recogniser", "PSNR dB", "SSIM",
                 "over J", "s/face", "split (median s)", "iteration / bare fwd+bwd"], rows_out)
    return 0
