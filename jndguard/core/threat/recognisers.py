"""Recognisers as the threat matrix sees them: crops in, embeddings out, a same-person rule.

A matrix recogniser is any object with

- ``name`` (str) and ``input_size`` (int, the square crop side it takes),
- ``threshold`` (float) and ``metric`` (str, what ``similarity`` measures),
- ``embed(crops) -> (N, D) float32 ndarray`` for ``(N, S, S, 3)`` uint8 RGB crops,
- ``similarity(refs, probes) -> (N, M)``: larger = more alike, "same person" when
  ``≥ threshold``;
- optionally ``crops``: the crop conventions it is evaluated on (None or absent: all).

:class:`TorchEmbedder` wraps every loaded white-box :class:`~jndguard.core.models.Recogniser`
(cosine similarity, its calibrated threshold) — FaceNet and the PyTorch port of dlib's ResNet
(``dlib-resnet``, registered by ``jndguard models fetch``). dlib's ResNet enters the matrix as
that port when it is registered (every cell); otherwise as :class:`DlibBlackBox`, dlib itself
(``compute_face_descriptor`` on 150 px chips; Euclidean distance, same person below 0.6,
dlib's documented threshold), reported as ``similarity = 1 − distance`` with threshold 0.4 so
that every recogniser reads the same way. dlib built without BLAS (the ``dlib-bin`` wheel)
takes about 0.1–0.7 s per chip on a CPU, so the black box is evaluated on its own aligned
chips (``dlib150``) only — every detector, kernel, encoding and reference — not on the box
crops.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

DLIB_NAME = "dlib"  # dlib itself (the black box), as core.verify names it
PORT_NAME = "dlib-resnet"  # its PyTorch port in the model store
DLIB_DISTANCE = 0.6  # dlib's documented same-person Euclidean distance


class TorchEmbedder:
    """A white-box :class:`~jndguard.core.models.Recogniser` (cosine similarity)."""

    metric = "cosine"

    def __init__(self, recogniser, batch: int = 32) -> None:
        self.model = recogniser
        self.name = recogniser.name
        self.input_size = int(recogniser.info.input_size)
        self.threshold = float(recogniser.threshold)
        self.batch = batch

    @torch.no_grad()
    def embed(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, self.model.info.embedding_dim), dtype=np.float32)
        out = []
        for i in range(0, len(crops), self.batch):
            t = torch.from_numpy(np.ascontiguousarray(crops[i:i + self.batch]))
            t = t.permute(0, 3, 1, 2).float().div_(255.0).to(self.model.device)
            out.append(self.model(t).float().cpu().numpy())
        return np.concatenate(out)

    @staticmethod
    def similarity(refs: np.ndarray, probes: np.ndarray) -> np.ndarray:
        return probes @ refs.T


class DlibBlackBox:
    """dlib's ResNet face descriptor on 150 px crops (``compute_face_descriptor`` of an aligned
    chip); similarity ``1 − ‖a − b‖``, same person when ``≥ 1 − 0.6``."""

    metric = "1-L2"
    name = DLIB_NAME
    crops = ("dlib150",)  # its own pipeline's chips only (cost; see module docstring)
    input_size = 150
    threshold = 1.0 - DLIB_DISTANCE

    def __init__(self) -> None:
        import dlib

        from jndguard.core.verify import _dlib_model_dir, dlib_status

        d = _dlib_model_dir()
        if d is None:
            raise RuntimeError(dlib_status()[1])
        self._rec = dlib.face_recognition_model_v1(str(d / "dlib_face_recognition_resnet_model_v1.dat"))
        self._lock = threading.Lock()

    def embed(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, 128), dtype=np.float32)
        with self._lock:
            vecs = self._rec.compute_face_descriptor([np.ascontiguousarray(c) for c in crops])
        return np.array([np.array(v) for v in vecs], dtype=np.float32)

    @staticmethod
    def similarity(refs: np.ndarray, probes: np.ndarray) -> np.ndarray:
        d = np.sqrt(np.maximum(0.0, (probes ** 2).sum(1)[:, None] + (refs ** 2).sum(1)[None, :]
                               - 2 * probes @ refs.T))
        return 1.0 - d


def as_matrix_recogniser(rec):
    """Wrap a loaded torch Recogniser; pass through objects that already fit (see above)."""
    from jndguard.core.models import Recogniser

    return TorchEmbedder(rec) if isinstance(rec, Recogniser) else rec


_PORTS: dict[tuple, object] = {}


def registered_port(device: torch.device | str = "cpu"):
    """The PyTorch port of dlib's ResNet when the model store has it, else None (loaded once
    per store and device)."""
    from jndguard.core.models import list_models, load_recogniser, models_home

    try:
        names = {m["name"] for m in list_models()}
    except Exception:  # an unreadable store has no port to offer; the caller notes the black box
        return None
    if PORT_NAME not in names:
        return None
    key = (str(models_home()), str(device))
    if key not in _PORTS:
        _PORTS[key] = load_recogniser(PORT_NAME, device)
    return _PORTS[key]


def default_recognisers(recognisers: list | None = None, device: torch.device | str = "cpu",
                        use_dlib: bool = True) -> tuple[list, list[str]]:
    """The matrix's recognisers and notes: the given ones (default: every registered model),
    plus — with ``use_dlib`` and unless already among them — dlib's ResNet: its PyTorch port
    when registered, else dlib itself when installed."""
    from jndguard.core.threat.conventions import dlib_available

    notes: list[str] = []
    if recognisers is None:
        from jndguard.core.models import list_models, load_recogniser

        recognisers = [load_recogniser(m["name"], device) for m in list_models()]
    out = [as_matrix_recogniser(r) for r in recognisers]
    names = {r.name for r in out}
    if use_dlib and not names & {PORT_NAME, DLIB_NAME}:
        port = registered_port(device)
        if port is not None:
            out.append(TorchEmbedder(port))
        elif dlib_available():
            out.append(DlibBlackBox())
            notes.append("dlib's ResNet: dlib itself on its aligned chips only (the PyTorch port "
                         "is not registered: `jndguard models fetch`)")
        else:
            from jndguard.core.verify import dlib_status

            notes.append(dlib_status()[1])
    return out, notes
