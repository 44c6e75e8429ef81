"""The compute helper: protection, verification and Grad-CAM run in a separate process.
No Qt here.

Why a process: the pipeline, the verification and Grad-CAM run Python code (MTCNN's
proposal stages, the attack loop, dlib's bindings, first-time imports) that holds Python's
GIL, sometimes for 100–300 ms at a stretch. In a thread of the GUI process that freezes the
window for as long, however short the widgets' own work is. In the helper process it cannot:
the GUI process's worker thread only waits on a pipe (without the GIL) and forwards what
arrives.

Protocol: one persistent helper (spawned on first use, or early by :func:`warm_up`) serves
one request at a time over a :func:`multiprocessing.Pipe`. The parent sends
``(kind, args)``; the helper answers with any number of ``("step", PipelineStep)`` and one
``("result", value)``, ``("cancelled", None)`` or ``("error", (message, traceback))``, each
tagged with the request's id. A cancel marks the request's id as cancelled in shared memory;
the pipeline polls that between steps (``stop=``), so a run ends within one step, and the
parent stops waiting at once (late answers of a cancelled request are dropped by id).
:func:`protect_steps` wraps this as a drop-in for the pipeline's generator.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import traceback
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

POLL_S = 0.05


class HelperError(RuntimeError):
    """A request failed in the helper process (the message and traceback are the helper's)."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


# ----------------------------------------------------------------------------- helper side
_recognisers: dict[tuple, Any] = {}


def _recogniser(home: str, model: str | None, device: str):
    from jndguard.core.device import resolve_device
    from jndguard.core.models import load_recogniser

    try:
        dev = resolve_device(device)
    except ValueError:
        dev = resolve_device("cpu")
    key = (home, model, str(dev))
    rec = _recognisers.get(key)
    if rec is None:
        rec = _recognisers[key] = load_recogniser(model, dev)
    return rec


def _serve(conn, cancelled_upto) -> None:
    """The helper's loop (runs in the child process)."""
    import torch

    # leave one core to the GUI process (torch's OpenMP threads busy-wait)
    torch.set_num_threads(max(1, min(torch.get_num_threads(), (os.cpu_count() or 2) - 1)))
    while True:
        try:
            rid, kind, args = conn.recv()
        except (EOFError, OSError):
            return
        if kind == "quit":
            return
        send = _sender(conn, rid)

        def stop(rid=rid) -> bool:
            return cancelled_upto.value >= rid

        try:
            os.environ["JNDGUARD_HOME"] = args["home"]
            if kind == "warm_up":
                import jndguard.core.pipeline
                import jndguard.core.verify  # noqa: F401  (the heavy imports, once)

                if args.get("load"):
                    _recogniser(args["home"], args.get("model"), args.get("device", "auto"))
                send(("result", True))
            elif kind == "protect":
                _serve_protect(send, stop, args)
            elif kind == "verify":
                from jndguard.core.verify import verify

                rec = _recogniser(args["home"], args.get("model"), args.get("device", "auto"))
                out = verify(
                    args["original"],
                    args["protected"],
                    [rec],
                    rec.device,
                    use_dlib=args.get("use_dlib", True),
                    target=args.get("target"),
                    matrix=args.get("matrix", "quick"),
                    gallery=_gallery(args.get("gallery")),
                )
                send(("result", out))
            elif kind == "grad_cam":
                from jndguard.core.research.analysis import face_grad_cams

                rec = _recogniser(args["home"], args.get("model"), args.get("device", "auto"))
                send(("result", face_grad_cams(rec, args["original"], args["protected"], args["box"])))
            else:
                send(("error", (f"unknown request {kind!r}", "")))
        except Exception as exc:
            if type(exc).__name__ == "Cancelled" or stop():
                send(("cancelled", None))
            else:
                send(("error", (str(exc) or type(exc).__name__, traceback.format_exc())))


def _sender(conn, rid: int) -> Callable[[tuple], None]:
    return lambda msg: conn.send((rid, *msg))


def _serve_protect(send, stop: Callable[[], bool], args: dict) -> None:
    from jndguard.core.pipeline import protect_steps as pipeline_steps

    settings = args["settings"]
    rec = _recogniser(args["home"], settings.model, settings.device)
    gen = pipeline_steps(args["image"], settings, recogniser=rec, stop=stop, faces=args.get("faces"))
    while True:
        try:
            step = next(gen)
        except StopIteration as done:
            send(("result", done.value))
            return
        send(("step", step))


# ----------------------------------------------------------------------------- GUI side
class Helper:
    """One helper process and the pipe to it (thread-safe: one request at a time)."""

    def __init__(self) -> None:
        self._ctx = multiprocessing.get_context("spawn")
        self._proc = None
        self._conn = None
        self._cancelled_upto = None
        self._lock = threading.Lock()
        self._rid = 0

    def _ensure(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        parent, child = self._ctx.Pipe()
        self._cancelled_upto = self._ctx.Value("q", 0, lock=False)  # ids ≤ this are cancelled
        self._proc = self._ctx.Process(
            target=_serve, args=(child, self._cancelled_upto), daemon=True, name="jndguard-helper"
        )
        self._proc.start()
        child.close()
        self._conn = parent

    def request(
        self,
        kind: str,
        args: dict,
        stop: Callable[[], bool] | None = None,
    ) -> Generator[Any, None, Any]:
        """Send a request; yield its steps; return its result.

        Raises:
            HelperError: the request failed in the helper (or the helper died).
            Cancelled: ``stop`` fired (from :mod:`jndguard.core.pipeline`).
        """
        from jndguard.core.models import models_home
        from jndguard.core.pipeline import Cancelled

        with self._lock:
            self._ensure()
            conn = self._conn
            self._rid += 1
            rid = self._rid
            conn.send((rid, kind, {"home": str(models_home()), **args}))
            while True:
                if stop is not None and stop():
                    # the helper ends a protection within one step; a verification runs to its
                    # end. Either way its late answers carry this request's id and are dropped.
                    self._cancelled_upto.value = rid
                    raise Cancelled("cancelled")
                try:
                    ready = conn.poll(POLL_S)
                except (EOFError, OSError) as exc:
                    self._proc = None
                    raise HelperError(f"the helper process stopped ({exc})") from exc
                if not ready:
                    if not self._proc.is_alive():
                        code = self._proc.exitcode
                        self._proc = None
                        raise HelperError(f"the helper process died (exit code {code})")
                    continue
                try:
                    got, tag, value = conn.recv()
                except (EOFError, OSError) as exc:
                    self._proc = None
                    raise HelperError(f"the helper process stopped ({exc})") from exc
                if got != rid:
                    continue  # the tail of a cancelled request
                if tag == "step":
                    yield value
                elif tag == "result":
                    return value
                elif tag == "cancelled":
                    raise Cancelled("cancelled")
                else:
                    message, details = value
                    raise HelperError(message, details)

    def shutdown(self) -> None:
        with self._lock:
            proc, conn = self._proc, self._conn
            self._proc = self._conn = None
        if conn is not None:
            with contextlib.suppress(OSError, ValueError):
                conn.send((0, "quit", {}))
        if proc is not None:
            proc.join(2)
            if proc.is_alive():
                proc.terminate()


_helper: Helper | None = None
_helper_lock = threading.Lock()


def helper() -> Helper:
    global _helper
    with _helper_lock:
        if _helper is None:
            _helper = Helper()
        return _helper


def _drain(gen: Generator) -> Any:
    while True:
        try:
            next(gen)
        except StopIteration as done:
            return done.value


def protect_steps(
    image,
    settings,
    recogniser=None,
    stop: Callable[[], bool] | None = None,
    faces: list | None = None,
) -> Generator[Any, None, Any]:
    """The pipeline's ``protect_steps``, run in the helper process (same steps, same result);
    ``faces``: the photo's faces when already detected (the pipeline then detects none)."""
    args = {"image": image, "settings": settings, "faces": faces}
    return (yield from helper().request("protect", args, stop))


_GALLERIES: dict = {}


def _gallery(folder: str | None):
    """The gallery folder's photos with their embeddings, cached in the helper process (a
    changed folder content is read afresh)."""
    if not folder:
        return None
    from pathlib import Path

    from jndguard.core.threat.matrix import ReferencePhotos

    p = Path(folder)
    key = (str(p), tuple(sorted((q.name, q.stat().st_mtime_ns) for q in p.iterdir()))
           if p.is_dir() else ())
    if key not in _GALLERIES:
        _GALLERIES.clear()
        _GALLERIES[key] = ReferencePhotos.from_dir(p)
    return _GALLERIES[key]


def verify_file(
    original: str | Path,
    protected: str | Path,
    model: str | None = None,
    device: str = "cpu",
    use_dlib: bool = True,
    target: str | None = None,
    stop: Callable[[], bool] | None = None,
    gallery: str | None = None,
    matrix: str = "quick",
) -> dict | None:
    """``jndguard.core.verify.verify(original, protected, [model])`` in the helper process:
    the threat matrix (``matrix`` size) with the user's other photos (``gallery`` folder)
    as references when given.

    Returns:
        The verification report, or None when ``stop`` fired first.
    """
    from jndguard.core.pipeline import Cancelled

    args = {
        "original": str(original),
        "protected": str(protected),
        "model": model,
        "device": device,
        "use_dlib": use_dlib,
        "target": target,
        "gallery": str(gallery) if gallery else None,
        "matrix": matrix,
    }
    try:
        return _drain(helper().request("verify", args, stop))
    except Cancelled:
        return None


def grad_cams(
    original,
    protected: list,
    box,
    model: str | None = None,
    device: str = "cpu",
    stop: Callable[[], bool] | None = None,
) -> dict | None:
    """``jndguard.core.research.analysis.face_grad_cams`` with the recogniser of the helper
    process (loaded once, shared with protection and verification).

    Returns:
        Its result, or None when ``stop`` fired first.
    """
    from jndguard.core.pipeline import Cancelled

    args = {
        "original": original,
        "protected": list(protected),
        "box": [float(v) for v in box],
        "model": model,
        "device": device,
    }
    try:
        return _drain(helper().request("grad_cam", args, stop))
    except Cancelled:
        return None


def warm_up(model: str | None = None, device: str = "auto", load: bool = True) -> None:
    """Start the helper now and let it import and load the recogniser (seconds), so the
    first run starts at once. Runs in a worker thread (it waits for the helper)."""
    _drain(helper().request("warm_up", {"model": model, "device": device, "load": load}))


def shutdown() -> None:
    """Stop the helper process (at exit)."""
    global _helper
    with _helper_lock:
        h, _helper = _helper, None
    if h is not None:
        h.shutdown()
