"""``jndguard jnd PHOTO``: compute a photo's JND map, print its statistics, draw it."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from jndguard.commands._options import add_device
from jndguard.commands._output import emit_json, print_table


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def register(subparsers) -> None:
    from jndguard.commands import _options as opt

    p = subparsers.add_parser(
        "jnd",
        help="compute a photo's JND map and its statistics",
        description="Compute the Just Noticeable Difference map of a photo (the per-pixel "
        "budget JNDGuard protects within), print the mean threshold per channel in 8-bit "
        "levels and the PSNR of the photo with random ±J noise (seed 0), and optionally draw "
        "the map as a PNG montage.",
    )
    p.add_argument("photo", type=Path, help="the photo")
    p.add_argument("-o", "--output", type=Path, metavar="MAP.png",
                   help="write a viewable montage of the map (R, G, B and luminance panels "
                   "with a colour scale in 8-bit levels)")
    p.add_argument("--json", action="store_true", help="print one JSON document to stdout")
    opt.add_jnd(p, prefix="--", color_default=None)  # --model, --color (default: scaled)
    p.add_argument("--strength", type=_positive_float, default=1.0,
                   help="global factor on the map (default 1)")
    p.add_argument("--external", type=Path, metavar="MODEL",
                   help="use a learned JND model file (TorchScript .pt, torch.export .pt2 or "
                   "ONNX .onnx; RGB [0,1] in, 3-channel J out) instead of --model")
    add_device(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jndguard.core.device import resolve_device
    from jndguard.core.imageio import load_image
    from jndguard.core.jnd import (
        CHANNEL_NAMES,
        JNDConfigError,
        jnd_map,
        load_external_jnd,
        mean_levels,
        noise_psnr,
    )
    from jndguard.core.jnd.render import render_montage, save_png

    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        raise JNDConfigError(str(exc)) from exc
    photo = load_image(args.photo)
    images = photo.tensor(device)
    start = time.perf_counter()
    if args.external is not None:
        if args.color not in (None, "scaled"):
            raise JNDConfigError("--color applies to the classic models, not to --external")
        model = load_external_jnd(args.external, device=device)
        model_name, color = f"external:{args.external.name}", None
        jnd = jnd_map(images, model, strength=args.strength)
    else:
        model_name, color = args.model, args.color or "scaled"
        jnd = jnd_map(images, args.model, color, args.strength)
    seconds = time.perf_counter() - start

    names = CHANNEL_NAMES[color or "scaled"]
    means = dict(zip(names, (round(float(v), 4) for v in mean_levels(jnd))))
    psnr = float(noise_psnr(images, jnd, color=color, seed=0)[0])
    map_path = None
    if args.output is not None:
        title = (f"{photo.path.name if photo.path else 'photo'}: JND {model_name}, "
                 f"{color or 'rgb'}, strength {args.strength:g} (8-bit levels)")
        map_path = save_png(args.output, render_montage(jnd, color=color, title=title))

    result = {
        "photo": str(args.photo),
        "width": photo.width,
        "height": photo.height,
        "model": model_name,
        "color": color or "rgb",
        "strength": args.strength,
        "device": str(device),
        "mean_jnd_levels": means,
        "noise_psnr_db": round(psnr, 4),
        "noise_seed": 0,
        "seconds": round(seconds, 4),
        "map": str(map_path) if map_path else None,
    }
    if args.json:
        emit_json(result)
        return 0
    rows = [
        ["photo", f"{args.photo} ({photo.width}×{photo.height})"],
        ["model", f"{model_name}, colour {color or 'rgb'}, strength {args.strength:g}"],
        ["mean J (8-bit levels)", "  ".join(f"{k} {v:.2f}" for k, v in means.items())],
        ["PSNR of ±J noise (seed 0)", f"{psnr:.2f} dB"],
        ["time", f"{seconds:.3f} s on {device}"],
    ]
    if map_path:
        rows.append(["map", str(map_path)])
    print_table(["statistic", "value"], rows)
    return 0
