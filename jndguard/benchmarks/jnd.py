"""Speed of the JND engine: a 160×160 face and a 12-megapixel photo, next to a recogniser step.

Targets (docs/jnd.md, "Checks", item 6): a face crop in milliseconds, a 12 MP photo in at most
3 s on 2 CPU cores. For scale, the same run times one forward+backward pass (gradient with
respect to the input, as an attack step does) of FaceNet's InceptionResnetV1 on one
3×160×160 face — randomly initialised: timing needs only the architecture, nothing is
downloaded.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from jndguard.commands._output import emit_json, print_table

if TYPE_CHECKING:  # torch is imported where used: `bench jnd --help` stays light
    import torch

logger = logging.getLogger(__name__)

PHOTO_TARGET_S = 3.0
RECOGNISER_SIZE = 160  # FaceNet's input side


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return w, h


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeat", type=int, default=3,
                        help="timed runs per photo case (faces: 10×, recogniser: 3× as many); "
                        "default 3")
    parser.add_argument("--photo-size", type=_size, default=(4000, 3000), metavar="WxH",
                        help="size of the large photo (default 4000x3000 = 12 MP)")
    parser.add_argument("--face-size", type=int, default=160, help="face crop side (default 160)")
    parser.add_argument("--models", default="yang,chou,wu",
                        help="comma-separated JND models (default yang,chou,wu)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch and OpenCV (default: leave as is)")
    parser.add_argument("--no-recogniser", action="store_true",
                        help="skip the recogniser forward+backward timing")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def _time(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(median, min) wall time in ms over ``repeat`` runs after one warm-up run."""
    fn()
    times = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times), min(times)


def _test_photo(width: int, height: int) -> torch.Tensor:
    """The bundled sample portrait resized to ``width × height`` (synthetic if missing)."""
    import cv2
    import torch

    from jndguard.core.imageio import load_image, to_tensor
    from jndguard.resources import SAMPLE_PHOTO, resource_path

    try:
        pixels = load_image(resource_path(SAMPLE_PHOTO)).pixels
    except (FileNotFoundError, OSError):
        logger.warning("sample photo not found; using a synthetic image")
        g = torch.Generator().manual_seed(0)
        small = torch.rand((1, 3, 48, 64), generator=g)
        big = torch.nn.functional.interpolate(small, size=(height, width), mode="bicubic")
        return big.clamp(0, 1)
    resized = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_CUBIC)
    return to_tensor(resized)  # HWC-decoded layout, as real photos arrive


def _peak_rss_mib() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run(args: argparse.Namespace) -> int:
    import cv2
    import torch

    from jndguard.core.jnd import MODELS, JNDConfigError, jnd_map, jnd_to_crop

    if args.threads is not None:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        if m not in MODELS:
            raise JNDConfigError(f"unknown JND model {m!r}; choose from {MODELS}")
    repeat = max(1, args.repeat)
    pw, ph = args.photo_size
    fs = args.face_size
    photo = _test_photo(pw, ph)
    face = torch.nn.functional.interpolate(
        photo[:, :, : min(ph, pw), : min(ph, pw)].contiguous(), size=(fs, fs), mode="area"
    )
    rows: list[dict] = []

    def add(case: str, size: str, fn: Callable[[], object], n: int) -> None:
        median, best = _time(fn, n)
        rows.append({"case": case, "size": size, "median_ms": median, "min_ms": best, "runs": n})
        logger.info("%s %s: %.1f ms", case, size, median)

    photo_label = f"{pw}×{ph} ({pw * ph / 1e6:.1f} MP)"
    for m in models:
        add(f"JND {m} (face)", f"{fs}×{fs}", lambda m=m: jnd_map(face, m), 10 * repeat)
        add(f"JND {m} (photo)", photo_label, lambda m=m: jnd_map(photo, m), repeat)
    full = jnd_map(photo, models[0] if models else "yang")
    side = max(1, min(pw, ph) // 4)
    box = (pw / 2 - side / 2 + 0.3, ph / 2 - side / 2 + 0.7, pw / 2 + side / 2, ph / 2 + side / 2)
    add("jnd_to_crop (min-pool)", f"{side}px box → {fs}", lambda: jnd_to_crop(full, box, fs),
        10 * repeat)

    if not args.no_recogniser:
        from facenet_pytorch import InceptionResnetV1

        net = InceptionResnetV1(pretrained=None, classify=False).eval()
        net.requires_grad_(False)  # gradient w.r.t. the input only, as in an attack
        x = torch.rand(1, 3, RECOGNISER_SIZE, RECOGNISER_SIZE, requires_grad=True)

        def step() -> torch.Tensor:
            (grad,) = torch.autograd.grad(net(x).square().sum(), x)
            return grad

        side = RECOGNISER_SIZE
        add("recogniser fwd+bwd (InceptionResnetV1)", f"1×3×{side}×{side}", step, 3 * repeat)
        ref = rows[-1]["median_ms"]
        for r in rows:
            r["x_recogniser"] = r["median_ms"] / ref

    meta = {
        "torch_threads": torch.get_num_threads(),
        "opencv_threads": cv2.getNumThreads(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "device": "cpu",
        "photo_target_ms": PHOTO_TARGET_S * 1000.0,
        "peak_rss_mib": _peak_rss_mib(),
    }
    photo_rows = [r for r in rows if r["case"].endswith("(photo)")]
    meta["photo_target_met"] = all(r["median_ms"] <= PHOTO_TARGET_S * 1000 for r in photo_rows)
    if args.json:
        emit_json({"benchmark": "jnd", **meta, "results": rows})
        return 0
    headers = ["case", "size", "median ms", "min ms"]
    if not args.no_recogniser:
        headers.append("× recogniser")
    table = [
        [r["case"], r["size"], round(r["median_ms"], 2), round(r["min_ms"], 2)]
        + ([f"{r['x_recogniser']:.2f}"] if "x_recogniser" in r else [])
        for r in rows
    ]
    print_table(headers, table)
    rss = meta["peak_rss_mib"]
    print(
        f"\nCPU: torch {meta['torch_threads']} threads, OpenCV {meta['opencv_threads']} "
        f"threads, {meta['cpu_count']} cores visible"
        + (f"; peak RSS {rss:.0f} MiB" if rss else "")
    )
    print(
        f"target: photo ≤ {PHOTO_TARGET_S:.0f} s on 2 CPU cores — "
        + ("met" if meta["photo_target_met"] else "NOT met")
    )
    return 0
