"""The compute helper: protection, verification and Grad-CAM run in a separate process.
No Qt here.

Why a process: the pipeline, the verification and Grad-CAM run Python code (MTCNN's
proposal stages, the attack loop, dlib's bindings, first-time imports) that holds Python's
GIL, sometimes for 100–300 ms at a stretch. In a thread of the GUI process that freezes the
window for as long, however short the widgets' own work is. In the helper process it cannot:
the GUI process's worker thread only waits on a pipe (without the GIL) and forwards what
arrives.

Face detection of photos being added runs there too, for the same reason (MTCNN's Python
stages on a 12 MP photo take seconds), on a second pipe served by a thread of the helper, so a
photo added during a protection run still gets its faces at once.

Protocol: one persistent helper (spawned on first use, or early by :func:`warm_up`) serves
one request at a time over a :func:`multiprocessing.Pipe` (and one detection at a time over
the second). The parent sends
``(kind, args)``; the helper answers with any number of ``("step", PipelineStep)`` and one
``("result", value)``, ``("cancelled", None)`` or ``("error", (message, traceback))``, each
tagged with the request's id. A cancel marks the request's id as cancelled in shared memory;
the pipeline polls that between steps (``stop=``), so a run ends within one step, and the
parent stops waiting at once (late answers of a cancelled request are dropped by id).
:func:`protect_steps` wraps this as a drop-in for the pipeline's generator.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import logging
import multiprocessing
import os
import pickle
import struct
import sys
import threading
import traceback
from collections.abc import Callable, Generator
from dataclasses import dataclass
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


def _requests(conn):
    """``(rid, kind, args, send)`` per request on ``conn`` until it closes or says "quit"."""
    while True:
        try:
            rid, kind, args = recv_message(conn)
        except (EOFError, OSError):
            return
        if kind == "quit":
            return
        yield rid, kind, args, _sender(conn, rid)


def _serve_detections(conn) -> None:
    """The helper's detection loop (a thread of the child process): ``("detect", {path,
    min_face_size, device})`` → the faces of the photo as :func:`load_image` decodes it."""
    for _rid, kind, args, send in _requests(conn):
        try:
            if kind != "detect":
                raise ValueError(f"unknown request {kind!r}")
            from jndguard.core.device import resolve_device
            from jndguard.core.faces import detect_faces
            from jndguard.core.imageio import load_image

            try:
                dev = resolve_device(args.get("device", "cpu"))
            except ValueError:
                dev = resolve_device("cpu")
            image = load_image(args["path"])
            send(("result", list(detect_faces(image.pixels, dev, min_face_size=args["min_face_size"]))))
        except Exception as exc:
            send(("error", (str(exc) or type(exc).__name__, traceback.format_exc())))


def _serve(conn, cancelled_upto, detect_conn=None) -> None:
    """The helper's loop (runs in the child process)."""
    import torch

    # leave one core to the GUI process (torch's OpenMP threads busy-wait)
    torch.set_num_threads(max(1, min(torch.get_num_threads(), (os.cpu_count() or 2) - 1)))
    if detect_conn is not None:
        threading.Thread(target=_serve_detections, args=(detect_conn,), daemon=True,
                         name="detections").start()
    for rid, kind, args, send in _requests(conn):

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
    return lambda msg: send_message(conn, (rid, *msg))


def send_message(conn, message: Any) -> None:
    """Send ``message`` with its large arrays out of band (pickle protocol 5): a header, the
    pickle, then each array's bytes as they lie in memory — nothing is copied into the pickle."""
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(message, protocol=5, buffer_callback=buffers.append)
    raws = [b.raw() for b in buffers]
    conn.send([r.nbytes for r in raws])
    conn.send_bytes(data)
    for r in raws:
        conn.send_bytes(r)


def recv_message(conn) -> Any:
    """Receive what :func:`send_message` sent. The arrays' bytes are read straight into their
    final memory (the pipe is read without Python's GIL), so a 12 MP result never holds the
    GIL for the hundreds of milliseconds unpickling a 180 MB pickle takes: the window stays
    responsive while it arrives."""
    import numpy as np

    sizes = conn.recv()
    data = conn.recv_bytes()
    buffers = []
    for n in sizes:
        buf = np.empty(n, np.uint8)  # (no zero-filling, unlike bytearray)
        _recv_bytes_into(conn, buf)
        buffers.append(buf)
    return pickle.loads(data, buffers=buffers)


def _recv_bytes_into(conn, buf) -> None:
    """``conn.recv_bytes_into(buf)`` for a message of exactly ``len(buf)`` bytes, reading the
    socket straight into ``buf``: the standard one gathers the message in a BytesIO first,
    copying it twice with the GIL held (hundreds of ms for a 12 MP JND map)."""
    n = len(buf)
    if sys.platform == "win32" or not hasattr(conn, "fileno"):
        if conn.recv_bytes_into(buf) != n:
            raise OSError("the helper sent a message of an unexpected size")
        return
    f = io.FileIO(conn.fileno(), "rb", closefd=False)

    def exact(view) -> None:
        got, total = 0, len(view)
        while got < total:
            k = f.readinto(view[got:])  # (the read releases the GIL)
            if not k:
                raise EOFError("the helper process closed the pipe")
            got += k

    header = bytearray(4)  # multiprocessing.connection's framing: !i, or -1 then !Q
    exact(memoryview(header))
    size = struct.unpack("!i", header)[0]
    if size == -1:
        header = bytearray(8)
        exact(memoryview(header))
        size = struct.unpack("!Q", header)[0]
    if size != n:
        raise OSError(f"the helper sent {size} bytes where {n} were announced")
    with memoryview(buf) as view:
        exact(view.cast("B"))


@dataclass
class Unmeasured:
    """A step of a protection run with ``defer_metrics``: the finished result before its
    quality figures (``metrics`` empty), so the window shows the protected photo first."""

    result: Any


@dataclass
class Measured:
    """What measuring a deferred result adds to it (its ``metrics``, the faces' quality)."""

    metrics: dict
    per_face: list
    notes: list
    timings: dict


def _serve_protect(send, stop: Callable[[], bool], args: dict) -> None:
    from jndguard.core.pipeline import DeferredMetrics, PipelineStep
    from jndguard.core.pipeline import protect_steps as pipeline_steps

    settings = args["settings"]
    rec = _recogniser(args["home"], settings.model, settings.device)
    deferred = DeferredMetrics() if args.get("defer_metrics") else None
    gen = pipeline_steps(args["image"], settings, recogniser=rec, stop=stop, faces=args.get("faces"),
                         metrics=deferred)
    while True:
        try:
            step = next(gen)
        except StopIteration as done:
            result = done.value
            break
        send(("step", step))
    if deferred is None or not deferred.pending:
        send(("result", result))
        return
    send(("step", Unmeasured(result)))
    send(("step", PipelineStep("metrics", "measuring the quality of the protected photo",
                               n_faces=len(result.faces))))
    deferred.measure()
    # only what measuring added travels back (the pixels and the JND map went with Unmeasured)
    send(("result", Measured(result.metrics, result.per_face, result.notes, result.timings)))


# ----------------------------------------------------------------------------- GUI side
class Helper:
    """One helper process and the pipe to it (thread-safe: one request at a time)."""

    def __init__(self) -> None:
        self._ctx = multiprocessing.get_context("spawn")
        self._proc = None
        self._conn = None
        self._detect_conn = None
        self._cancelled_upto = None
        self._lock = threading.Lock()  # one request at a time on the main pipe
        self._detect_lock = threading.Lock()  # and one on the detection pipe
        self._start_lock = threading.Lock()
        self._rids = itertools.count(1)

    def _ensure(self) -> None:
        with self._start_lock:
            if self._proc is not None and self._proc.is_alive():
                return
            parent, child = self._ctx.Pipe()
            dparent, dchild = self._ctx.Pipe()
            self._cancelled_upto = self._ctx.Value("q", 0, lock=False)  # ids ≤ this are cancelled
            self._proc = self._ctx.Process(
                target=_serve, args=(child, self._cancelled_upto, dchild), daemon=True,
                name="jndguard-helper"
            )
            self._proc.start()
            child.close()
            dchild.close()
            self._conn, self._detect_conn = parent, dparent

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

        detection = kind == "detect"
        with self._detect_lock if detection else self._lock:
            self._ensure()
            conn = self._detect_conn if detection else self._conn
            proc = self._proc
            rid = next(self._rids)
            send_message(conn, (rid, kind, {"home": str(models_home()), **args}))
            while True:
                if stop is not None and stop():
                    # the helper ends a protection within one step; a verification (or a
                    # detection) runs to its end. Either way its late answers carry this
                    # request's id and are dropped.
                    if not detection:  # (ids are shared: a detection must not cancel a run)
                        self._cancelled_upto.value = max(self._cancelled_upto.value, rid)
                    raise Cancelled("cancelled")
                try:
                    ready = conn.poll(POLL_S)
                except (EOFError, OSError) as exc:
                    self._forget(proc)
                    raise HelperError(f"the helper process stopped ({exc})") from exc
                if not ready:
                    if not proc.is_alive():
                        self._forget(proc)
                        raise HelperError(f"the helper process died (exit code {proc.exitcode})")
                    continue
                try:
                    got, tag, value = recv_message(conn)
                except (EOFError, OSError) as exc:
                    self._forget(proc)
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

    def _forget(self, proc) -> None:
        """The helper ``proc`` is gone: the next request starts a new one."""
        with self._start_lock:
            if self._proc is proc:
                self._proc = None

    def shutdown(self) -> None:
        with self._lock:
            proc, conn, dconn = self._proc, self._conn, self._detect_conn
            self._proc = self._conn = self._detect_conn = None
        if dconn is not None:
            with contextlib.suppress(OSError, ValueError):
                send_message(dconn, (0, "quit", {}))
        if conn is not None:
            with contextlib.suppress(OSError, ValueError):
                send_message(conn, (0, "quit", {}))
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
    defer_metrics: bool = False,
) -> Generator[Any, None, Any]:
    """The pipeline's ``protect_steps``, run in the helper process (same steps, same result);
    ``faces``: the photo's faces when already detected (the pipeline then detects none).

    With ``defer_metrics`` the finished result is yielded first as an :class:`Unmeasured`
    step (no quality figures yet), then a ``metrics`` step, and a copy of it with its
    figures is returned."""
    args = {"image": image, "settings": settings, "faces": faces, "defer_metrics": defer_metrics}
    result = None
    gen = helper().request("protect", args, stop)
    while True:
        try:
            step = next(gen)
        except StopIteration as done:
            out = done.value
            break
        if isinstance(step, Unmeasured):
            result = step.result
        yield step
    if isinstance(out, Measured):  # a new object: the one shown keeps its (missing) figures
        return dataclasses.replace(result, metrics=out.metrics, per_face=out.per_face, notes=out.notes,
                                   timings=out.timings)
    return out


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


def detect_file(path: str | Path, min_face_size: int = 20, device: str = "cpu",
                stop: Callable[[], bool] | None = None) -> list | None:
    """The faces of the photo at ``path`` (decoded by :func:`jndguard.core.imageio.load_image`,
    as the caller decoded it), found in the helper process; None when ``stop`` fired first."""
    from jndguard.core.pipeline import Cancelled

    args = {"path": str(path), "min_face_size": int(min_face_size), "device": device}
    try:
        return _drain(helper().request("detect", args, stop))
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
