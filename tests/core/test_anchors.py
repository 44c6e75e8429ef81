"""The anchor methods: MND, JNDMGA and the torchattacks anchors.

Loss terms are pinned to hand-computed values on small tensors; every method runs a few
iterations on a real 5-celebrity face with the real recogniser.
"""

from __future__ import annotations

import math
import threading
import time

import pytest
import torch

from jndguard.core.attacks.anchors import ANCHORS, make_anchor
from jndguard.core.attacks.base import AttackResult, Goal, Step
from jndguard.core.attacks.jndmga import (
    JNDMGA,
    JNDMGAConfig,
    bounded_range_loss,
    jndmga_cost,
    total_variation,
)
from jndguard.core.attacks.mnd import (
    MND,
    MNDConfig,
    deviation_loss,
    gradient_similarity_loss,
    least_likely_label,
    mnd_adversarial_loss,
    mnd_perceptual_loss,
    sobel_magnitude,
    structural_similarity,
)
from jndguard.core.attacks.problem import AttackProblem, JitterConfig
from jndguard.core.attacks.torchattacks_adapter import TorchattacksAnchor, TorchattacksConfig
from jndguard.core.pipeline import ProtectionSettings, build_method
from jndguard.errors import ShapeError

METHODS = tuple(ANCHORS)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- MND losses (Sun, Jin & Lin 2023) ---------------------------------------------------------------------


def test_deviation_loss_is_mean_absolute_difference():
    x = torch.zeros(1, 3, 2, 2)
    z = x.clone()
    z[0, 0, 0, 0] = 0.3
    z[0, 2, 1, 1] = -0.3
    assert float(deviation_loss(z, x)) == pytest.approx(0.6 / 12)


def test_ssim_of_identical_and_of_constant_images():
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert float(structural_similarity(x, x)) == pytest.approx(1.0, abs=1e-6)
    # constants a, b: σ terms vanish, SSIM = (2ab + C1) / (a² + b² + C1), C1 = 0.01²
    a = torch.full((1, 3, 16, 16), 0.5)
    b = torch.full((1, 3, 16, 16), 0.25)
    assert float(structural_similarity(b, a)) == pytest.approx(0.2501 / 0.3126, abs=1e-5)


def test_sobel_magnitude_of_a_step_edge():
    # columns 0 0 1 1 (reflect padding): |Gx| = 4·|left − right| → 0 4 4 0; Gy = 0
    z = torch.tensor([0.0, 0.0, 1.0, 1.0]).expand(1, 3, 4, 4).contiguous()
    g = sobel_magnitude(z)
    assert torch.allclose(g[0, :, :], torch.tensor([0.0, 4.0, 4.0, 0.0]).expand(3, 4, 4), atol=1e-5)
    # ‖g(Z) − g(X)‖₁ as a mean over 48 values: 24 of them are 4 → 2
    assert float(gradient_similarity_loss(z, torch.zeros_like(z))) == pytest.approx(2.0, abs=1e-5)


def test_sobel_magnitude_gradient_is_finite_on_flat_images():
    z = torch.full((1, 3, 8, 8), 0.5, requires_grad=True)
    loss = gradient_similarity_loss(z, torch.full((1, 3, 8, 8), 0.5))
    (g,) = torch.autograd.grad(loss, z)
    assert torch.isfinite(g).all()


def test_mnd_perceptual_loss_combines_the_terms_of_eq7():
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(1, 3, 16, 16, generator=gen)
    z = (x + 0.05 * torch.randn(1, 3, 16, 16, generator=gen)).clamp(0, 1).requires_grad_(True)
    loss, terms = mnd_perceptual_loss(z, x, (100.0, 100.0, 100.0))
    expected = 100 * deviation_loss(z, x) - 100 * structural_similarity(z, x) \
        + 100 * gradient_similarity_loss(z, x)
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    assert set(terms) == {"L1", "SSIM", "G"}
    (g,) = torch.autograd.grad(loss, z)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    only_l1, t1 = mnd_perceptual_loss(z, x, (2.0, 0.0, 0.0))
    assert set(t1) == {"L1"} and float(only_l1.detach()) == pytest.approx(2 * terms["L1"], rel=1e-6)


def test_mnd_adversarial_losses_eq3_eq4_eq6():
    logits = torch.tensor([[2.0, 0.0, 0.0]])
    p0 = math.exp(2) / (math.exp(2) + 2)  # 0.78699
    p1 = 1 / (math.exp(2) + 2)  # 0.10651
    # eq. 3: ⟨y_gt, ŷ + û⟩ = ŷ_0 + û_0
    assert float(mnd_adversarial_loss(logits, 0)) == pytest.approx(p0 + 2.0, rel=1e-6)
    # eq. 6 non-targeted: ŷ_0^r
    assert float(mnd_adversarial_loss(logits, 0, None, 0.5, "eq6")) == pytest.approx(p0**0.5, rel=1e-6)
    # eq. 4: −ŷ_t^r with the paper's r = 0.0625
    assert float(mnd_adversarial_loss(logits, 0, 1, 0.0625)) == pytest.approx(-(p1**0.0625), rel=1e-6)
    with pytest.raises(ValueError):
        mnd_adversarial_loss(logits, 0, None, 1.0, "eq9")


def test_least_likely_label_eq5():
    assert least_likely_label(torch.tensor([[3.0, 1.0, -2.0, 0.0]])) == 2


def test_mnd_losses_reject_bad_shapes():
    with pytest.raises(ShapeError):
        deviation_loss(torch.zeros(3, 4, 4), torch.zeros(3, 4, 4))
    with pytest.raises(ShapeError):
        sobel_magnitude(torch.zeros(1, 1, 4, 4))


# --- JNDMGA losses (Akan, Akbas & Yarman Vural 2021) ------------------------------------------


def test_bounded_range_eq5_on_the_8bit_scale():
    x = torch.tensor([[-0.1, 0.5], [1.2, 1.0], [0.0, 2.0]]).reshape(1, 3, 1, 2)
    # 0–255: −25.5 → 25.5; 127.5 → 0; 306 → 51; 255 → 0; 0 → 0; 510 → 255; mean of 6
    assert float(bounded_range_loss(x)) == pytest.approx((25.5 + 51 + 255) / 6, rel=1e-5)
    assert float(bounded_range_loss(torch.rand(1, 3, 4, 4))) == 0.0


def test_total_variation_eq6():
    # per channel [[0, 1], [2, 4]]: horizontal 1² + 2² = 5, vertical 2² + 3² = 13 → 18;
    # × 3 channels / (H·W·C = 12) = 4.5
    x = torch.tensor([[0.0, 1.0], [2.0, 4.0]]).expand(1, 3, 2, 2).contiguous()
    assert float(total_variation(x)) == pytest.approx(4.5)
    assert float(total_variation(torch.full((1, 3, 5, 7), 0.3))) == 0.0


def test_jndmga_cost_eq2():
    x0 = torch.zeros(1, 3, 2, 2)
    x = torch.tensor([[0.0, 0.1], [0.2, 0.0]]).expand(1, 3, 2, 2).contiguous()
    loss = torch.tensor(0.5)
    cost, terms = jndmga_cost(loss, x, x0, (100.0, 10.0, 10.0, 1.0))
    l2 = 3 * (0.01 + 0.04)  # ‖x − x₀‖²₂ = 0.15
    tv = 3 * (0.01 + 0.04 + 0.04 + 0.01) / 12  # 0.025
    assert terms["L2"] == pytest.approx(l2) and terms["TV"] == pytest.approx(tv)
    assert terms["BR"] == 0.0
    assert float(cost) == pytest.approx(100 * 0.5 + 10 * l2 + tv, rel=1e-6)


# --- configuration -----------------------------------------------------------------------------


def test_make_anchor_defaults_and_overrides():
    for name in ("bim", "pgd", "mifgsm", "difgsm"):
        m = build_method(ProtectionSettings(method=name))
        assert isinstance(m, TorchattacksAnchor) and m.name == name
        assert m.config == TorchattacksConfig(eps=8 / 255, alpha=2 / 255, steps=10)
    m = build_method(ProtectionSettings(method="pgd", max_iterations=300, epsilon=4 / 255,
                                        step_size=1 / 255, anchor_iterations=20))
    assert (m.config.eps, m.config.alpha, m.config.steps) == (4 / 255, 1 / 255, 20)
    mnd = build_method(ProtectionSettings(method="mnd", max_iterations=300))
    assert isinstance(mnd, MND) and mnd.config.max_iterations == 1000 and mnd.config.lr == 1e-4
    assert build_method(ProtectionSettings(method="mnd", beta=(1, 2, 3))).config.beta == (1, 2, 3)
    jm = build_method(ProtectionSettings(method="jndmga"))
    assert isinstance(jm, JNDMGA) and jm.config.lambdas == (100, 10, 10, 1) and jm.config.lr == 1e-4
    with pytest.raises(ValueError):
        make_anchor(ProtectionSettings(method="hvs-jnd"))
    with pytest.raises(ValueError):
        ProtectionSettings(method="bim", anchor_iterations=0)
    with pytest.raises(ValueError):
        TorchattacksAnchor("fgsm")
    for bad in ({"beta": (1, 2)}, {"lr": 0}, {"max_iterations": 0}, {"optimizer": "sgd"}):
        with pytest.raises(ValueError):
            MNDConfig(**bad)
    for bad in ({"lambdas": (1, 2, 3)}, {"dodge_label": "x"}, {"max_iterations": 0}):
        with pytest.raises(ValueError):
            JNDMGAConfig(**bad)


def test_mnd_paper_settings():
    assert MNDConfig().setting(Goal.DODGE) == "non-targeted"
    assert MNDConfig().setting(Goal.IMPERSONATE) == "targeted"
    assert MNDConfig(least_likely=True).setting(Goal.DODGE) == "targeted"


# --- the methods on a real face ----------------------------------------------------------------


@pytest.fixture(scope="module")
def make_problem(recogniser, celeb_faces):
    """A factory of small real problems: one validation face, 2 jitter samples."""
    from jndguard.core.faces import crop_resize
    from jndguard.core.imageio import load_image
    from jndguard.core.pipeline import face_region

    val = [f for f in celeb_faces if f.split == "val"]
    face = val[0]
    others = []
    for f in celeb_faces:
        if f.split == "train" and f.person != face.person and f.person not in [o.person for o in others]:
            others.append(f)
    img = load_image(face.path)
    x = img.tensor(recogniser.device)
    x0, y0, x1, y1 = face_region(face, 0.2, img.width, img.height)
    size = recogniser.info.input_size
    with torch.no_grad():
        clean_emb = recogniser(crop_resize(x, [face.box], size=size))[0]
        gallery = torch.cat([recogniser(crop_resize(load_image(o.path).tensor(recogniser.device),
                                                    [o.box], size=size)) for o in others])
    region = x[:, :, y0:y1, x0:x1].contiguous()

    def factory(seed: int = 0, goal: Goal = Goal.DODGE) -> AttackProblem:
        return AttackProblem(
            clean=region, jnd=torch.full_like(region, 3 / 255),
            box=(face.box[0] - x0, face.box[1] - y0, face.box[2] - x0, face.box[3] - y0),
            recogniser=recogniser, clean_embedding=clean_emb, gallery=gallery,
            gallery_labels=[o.person for o in others], goal=goal,
            target=0 if goal is Goal.IMPERSONATE else None,
            jitter=JitterConfig(samples=2), generator=torch.Generator().manual_seed(seed))

    return factory


def _small(name: str, iterations: int = 3):
    return make_anchor(ProtectionSettings(method=name, anchor_iterations=iterations))


def _drain(gen) -> tuple[list[Step], AttackResult]:
    steps = []
    while True:
        try:
            steps.append(next(gen))
        except StopIteration as stop:
            return steps, stop.value


@pytest.mark.parametrize("name", METHODS)
def test_method_contract(name, make_problem, recogniser, watch_model):
    problem = make_problem(seed=5)
    torch.manual_seed(1234)
    rng = torch.get_rng_state()
    with watch_model(recogniser) as untouched:
        steps, result = _drain(_small(name).iterate(problem))
        # untouched: model modes and parameter gradients (checked while they could change)
        untouched()
    # steps
    assert 1 <= len(steps) <= 3 and all(isinstance(s, Step) for s in steps)
    assert [s.iteration for s in steps] == list(range(1, len(steps) + 1))
    assert all(s.max_iterations == 3 and math.isfinite(s.similarity) for s in steps)
    # result: quantised region in [0, 1], success as judged
    adv = result.adversarial
    assert adv.shape == problem.clean.shape
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    assert torch.equal(adv, (adv * 255).round() / 255)
    ok, worst, _ = problem.judge(adv)
    assert result.success == ok and result.similarity == pytest.approx(worst)
    assert result.iterations == len(steps)
    assert steps[-1].success == result.success or name in ("mnd", "jndmga")
    # untouched: the caller's global RNG
    assert torch.equal(torch.get_rng_state(), rng)


@pytest.mark.parametrize("name", METHODS)
def test_method_is_deterministic(name, make_problem):
    a = _small(name, 2).run(make_problem(seed=7))
    b = _small(name, 2).run(make_problem(seed=7))
    assert torch.equal(a.adversarial, b.adversarial)
    assert a.history == b.history and a.similarity == b.similarity
    if name not in ("mnd", "jndmga"):  # their first steps are far below one 8-bit level
        assert not torch.equal(a.adversarial, make_problem().clean)


@pytest.mark.parametrize("name", METHODS)
def test_close_stops_within_one_step(name, make_problem, recogniser):
    calls = []
    hook = recogniser.register_forward_hook(lambda *_: calls.append(1))
    try:
        gen = _small(name, 50).iterate(make_problem())
        first = next(gen)
        assert first.iteration == 1
        gen.close()
        n = len(calls)
        time.sleep(0.2)
        assert len(calls) == n  # nothing ran after close()
    finally:
        hook.remove()
    assert not [t for t in threading.enumerate() if t.name.startswith("jndguard-")]


def test_torchattacks_impersonation_and_no_warm_start(make_problem):
    problem = make_problem(goal=Goal.IMPERSONATE)
    steps, result = _drain(TorchattacksAnchor("bim", TorchattacksConfig(steps=2)).iterate(problem))
    assert len(steps) == 2 and steps[0].target_similarity is not None
    assert result.target_similarity is not None and "targeted" in result.notes[0]
    with pytest.raises(ValueError):
        next(TorchattacksAnchor("pgd").iterate(problem, torch.zeros_like(problem.clean)))


def test_region_classifier_averages_jittered_logits(make_problem):
    from jndguard.core.attacks.torchattacks_adapter import RegionClassifier

    problem = make_problem(seed=3)
    with torch.no_grad():
        out = RegionClassifier(problem)(problem.clean)
        again = make_problem(seed=3)
        crops = again.crops(again.clean)
        ref = again.identity_head()(crops).mean(0, keepdim=True)
    assert out.shape == (1, 1 + problem.gallery.shape[0])
    assert torch.allclose(out, ref, atol=1e-5)


def test_torchattacks_errors_reach_the_caller(make_problem):
    problem = make_problem()

    def broken(*_args, **_kw):
        raise RuntimeError("crop failed")

    problem.crops = broken
    rng = torch.get_rng_state()
    with pytest.raises(RuntimeError, match="crop failed"):
        TorchattacksAnchor("pgd", TorchattacksConfig(steps=2)).run(problem)
    assert not [t for t in threading.enumerate() if t.name.startswith("jndguard-")]
    assert torch.equal(torch.get_rng_state(), rng)


def test_torchattacks_stay_inside_the_linf_ball(make_problem):
    problem = make_problem(seed=2)
    for name in ("pgd", "difgsm"):
        res = TorchattacksAnchor(name, TorchattacksConfig(steps=2)).run(problem)
        assert float((res.adversarial - problem.clean).abs().max()) <= 8 / 255 + 1e-6


def test_mnd_and_jndmga_targets(make_problem):
    imp = make_problem(goal=Goal.IMPERSONATE)
    r = MND(MNDConfig(max_iterations=1)).run(imp)
    assert r.beta == (1.0, 0.1, 1.0) and "r=0.0625" in r.notes[0]
    r = MND(MNDConfig(max_iterations=1, least_likely=True)).run(make_problem())
    assert any("least-likely" in n for n in r.notes)
    r = JNDMGA(JNDMGAConfig(max_iterations=1)).run(imp)
    assert "loss label 1 (sign +1)" in r.notes[0]  # the target, gallery index 0 → label 1
