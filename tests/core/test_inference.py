"""Faster backbones with the same outputs, and the optimiser's gradient precision
(:mod:`jndguard.core.models.inference`)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from jndguard.core.models import inference as inf
from jndguard.core.models.dlib_resnet import DlibResNet
from jndguard.core.models.recogniser import Recogniser, RecogniserInfo


def _randomise_norms(model: nn.Module, gen: torch.Generator) -> None:
    """Give every BatchNorm/affine layer non-trivial statistics, so folding has work to do."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            elif type(m).__name__ == "Affine":
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)


def test_folding_facenet_batchnorm_keeps_the_output():
    from facenet_pytorch.models.inception_resnet_v1 import BasicConv2d

    gen = torch.Generator().manual_seed(0)
    block = nn.Sequential(BasicConv2d(3, 8, 3, 1, 1), BasicConv2d(8, 4, 1, 1)).eval()
    _randomise_norms(block, gen)
    x = torch.rand(2, 3, 12, 12, generator=gen)
    before = block(x)
    assert inf.fold_normalisation(block) == 2
    assert all(isinstance(b.bn, nn.Identity) for b in block)
    torch.testing.assert_close(block(x), before, atol=1e-5, rtol=1e-5)


def test_folding_dlib_affine_layers_keeps_the_descriptor():
    gen = torch.Generator().manual_seed(1)
    net = DlibResNet().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    _randomise_norms(net, gen)
    x = torch.rand(2, 3, 150, 150, generator=gen)
    before = net(x)
    folded = inf.prepare_backbone(copy.deepcopy(net))
    assert sum(isinstance(m, nn.Identity) for m in folded.modules()) == len(net.conv_affine_pairs())
    torch.testing.assert_close(folded(x), before, atol=1e-4, rtol=1e-4)
    assert inf.fold_normalisation(folded) == 0  # folding twice changes nothing


def test_a_backbone_in_train_mode_is_refused():
    with pytest.raises(ValueError, match="eval"):
        inf.fold_normalisation(nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)).train())


def test_a_prepared_backbone_takes_its_input_channels_last():
    gen = torch.Generator().manual_seed(2)
    backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 8))
    info = RecogniserInfo("toy", 8, 0.5, "0", "fixed", 16)
    plain = Recogniser(copy.deepcopy(backbone), info)
    fast = Recogniser(inf.prepare_backbone(backbone), info)
    assert not plain.channels_last and fast.channels_last
    x = torch.rand(3, 3, 16, 16, generator=gen)
    torch.testing.assert_close(fast(x), plain(x), atol=1e-6, rtol=1e-5)


def test_loaded_recognisers_are_prepared(recogniser):
    assert recogniser.channels_last
    assert not any(isinstance(m, nn.BatchNorm2d) for m in recogniser.backbone.modules())


@pytest.mark.parametrize(("asked", "device", "units", "used"), [
    ("fp32", "cpu", True, "fp32"),
    ("auto", "cpu", True, "bf16"),
    ("auto", "cpu", False, "fp32"),
    ("bf16", "cpu", False, "fp32"),  # emulated bfloat16 would be slower than float32
    ("bf16", "cpu", True, "bf16"),
    ("auto", "cuda", True, "fp32"),
    ("bf16", "cuda", False, "bf16"),
])
def test_precision_resolution(monkeypatch, asked, device, units, used):
    monkeypatch.setattr(inf, "has_bf16_units", lambda: units)
    assert inf.resolve_precision(asked, device) == used


def test_unknown_precision_is_refused():
    from jndguard.core.settings import ProtectionSettings

    with pytest.raises(ValueError, match="precision"):
        inf.resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="precision"):
        ProtectionSettings(precision="half")
    assert ProtectionSettings(precision="fp32").to_dict()["precision"] == "fp32"


def test_gradient_autocast_runs_convolutions_in_bfloat16_and_gradients_flow(monkeypatch):
    monkeypatch.setattr(inf, "has_bf16_units", lambda: True)
    conv = nn.Conv2d(3, 2, 3)
    x = torch.rand(1, 3, 8, 8, requires_grad=True)
    with inf.gradient_autocast("auto", "cpu") as used:
        y = conv(x)
    assert used == "bf16" and y.dtype == torch.bfloat16
    (g,) = torch.autograd.grad(y.float().sum(), [x])
    assert g.dtype == torch.float32 and g.abs().sum() > 0
    with inf.gradient_autocast("fp32", "cpu") as used:
        assert conv(x).dtype == torch.float32 and used == "fp32"


def test_post_mode_passes_its_precision_to_the_optimiser():
    from jndguard.core.methods import build_method
    from jndguard.core.settings import ProtectionSettings

    assert build_method(ProtectionSettings()).config.precision == "auto"
    assert build_method(ProtectionSettings(precision="fp32")).config.precision == "fp32"
