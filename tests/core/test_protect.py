"""The protection engine on real faces with the real recogniser."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jndguard.core.attacks.base import Goal
from jndguard.core.imageio import load_image
from jndguard.core.pipeline import (
    Cancelled,
    ProtectionSettings,
    face_region,
    paper_defaults,
    protect,
    protect_steps,
)


@pytest.fixture(scope="module")
def face_photo(celeb_dir):
    return load_image(sorted((celeb_dir / "val" / "jerry_seinfeld").glob("*.jpg"))[0])


LOSSLESS = {"mode": "lossless"}  # the one-crop mode: fast enough for the engine's plumbing tests


@pytest.fixture(scope="module")
def protected(face_photo, recogniser):
    return protect(face_photo, ProtectionSettings(**LOSSLESS), recogniser)


def test_lossless_protection_succeeds_on_the_8bit_result(protected, recogniser):
    assert protected.success
    f = protected.per_face[0]
    assert f["success"] and f["redetected"]
    assert f["similarity"] < recogniser.threshold
    assert f["psnr"] > 36
    assert f["quality"]["jnd"]["over_fraction"] < 0.1


def test_only_face_regions_change(protected, face_photo):
    diff = np.abs(protected.protected.astype(int) - face_photo.pixels.astype(int)).max(2)
    x0, y0, x1, y1 = face_region(protected.faces[0], 0.2, face_photo.width, face_photo.height)
    outside = diff.copy()
    outside[y0:y1, x0:x1] = 0
    assert outside.max() == 0
    assert diff[y0:y1, x0:x1].max() > 0
    assert protected.protected.dtype == np.uint8


@pytest.mark.parametrize("method", ["hvs-jnd", "bim"])
def test_model_untouched(face_photo, recogniser, watch_model, method):
    """The pipeline and the method leave the model's modes and gradients alone (checked with
    a model that would show it: see the ``watch_model`` fixture)."""
    settings = ProtectionSettings(method=method, max_iterations=3, anchor_iterations=2, max_rounds=1,
                                  **LOSSLESS)
    with watch_model(recogniser) as untouched:
        protect(face_photo, settings, recogniser)
        untouched()


def test_steps_then_result_and_stop_within_one_step(face_photo, recogniser):
    calls = {"n": 0}
    stages = []

    def stop():
        return calls["n"] >= 2

    gen = protect_steps(face_photo, ProtectionSettings(max_iterations=50, **LOSSLESS), recogniser,
                        stop=stop)
    with pytest.raises(Cancelled):
        for step in gen:
            stages.append(step.stage)
            if step.stage == "attack":
                calls["n"] += 1
    assert stages[:2] == ["detect", "jnd"]
    assert stages.count("attack") == 2  # stopped right after the step that set the flag


def test_cancel_ends_the_methods_worker_thread(face_photo, recogniser):
    """Cancelling a torchattacks run closes the method generator at once: its worker thread
    is joined before Cancelled reaches the caller, not when the generator is collected."""
    import threading

    attack_steps = {"n": 0}

    def stop():
        return attack_steps["n"] >= 1

    gen = protect_steps(face_photo, ProtectionSettings(method="bim", max_rounds=1), recogniser,
                        stop=stop)
    with pytest.raises(Cancelled):
        for step in gen:
            if step.stage == "attack":
                attack_steps["n"] += 1
                assert any(t.name == "jndguard-bim" for t in threading.enumerate())
    assert not any(t.name == "jndguard-bim" for t in threading.enumerate())


def test_deterministic_with_seed(face_photo, recogniser):
    s = ProtectionSettings(max_iterations=3, max_rounds=1, seed=7, **LOSSLESS)
    a = protect(face_photo, s, recogniser).protected
    b = protect(face_photo, s, recogniser).protected
    np.testing.assert_array_equal(a, b)


def test_impersonation(celeb_dir, recogniser):
    photo = load_image(sorted((celeb_dir / "val" / "ben_afflek").glob("*.jpg"))[0])
    res = protect(photo, ProtectionSettings(goal="impersonate", target="madonna", **LOSSLESS), recogniser)
    f = res.per_face[0]
    assert res.success and f["target_similarity"] >= recogniser.threshold


def test_paper_mode_adjusts_beta(face_photo, recogniser):
    s = paper_defaults("hvs-jnd", "dodge")
    assert s.beta == (1500.0, 1500.0, 1500.0) and s.delta == -50.0 and s.m_rgb == (3.0, 5.0, 1.0)
    from jndguard.core.pipeline import build_method

    method = build_method(ProtectionSettings(mode="paper", max_iterations=2))
    from jndguard.core.attacks.problem import AttackProblem
    from jndguard.core.faces import crop_resize
    from jndguard.core.jnd import jnd_map

    x = face_photo.tensor()
    box = (60.0, 60.0, 200.0, 220.0)
    emb = recogniser(crop_resize(x, [box])).detach()[0]
    prob = AttackProblem(x, jnd_map(x), box, recogniser, emb, torch.nn.functional.normalize(
        torch.randn(3, 128), dim=1), goal=Goal.DODGE)
    betas = []
    gen = method.iterate(prob)
    for step in gen:
        betas.append(step.beta[0])
        if len(betas) == 6:
            gen.close()
    assert betas[:2] == [1500.0, 1500.0] and betas[2:4] == [1450.0, 1450.0] and betas[4] == 1400.0


def test_no_face_returns_unsuccessful(kodak_dir, recogniser):
    res = protect(load_image(kodak_dir / "kodim01.png"), ProtectionSettings(), recogniser)
    assert not res.success and res.faces == []
    np.testing.assert_array_equal(res.protected, load_image(kodak_dir / "kodim01.png").pixels)


@pytest.mark.parametrize("mode", ["lossless", "post"])
def test_out_of_memory_is_a_clear_error_not_a_crash(face_photo, recogniser, monkeypatch, mode):
    """On the CPU there is nothing to fall back to: a clear JNDGuardError (on CUDA the same
    handler halves the crop batch, then moves to the CPU; no GPU here to test that)."""
    from jndguard.core.attacks.hvs_jnd import HVSJND
    from jndguard.errors import JNDGuardError

    def boom(self, problem, init=None):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        yield  # pragma: no cover

    monkeypatch.setattr(HVSJND, "iterate", boom)
    with pytest.raises(JNDGuardError, match="out of memory"):
        protect(face_photo, ProtectionSettings(max_iterations=2, mode=mode), recogniser)


def test_stage_timings_and_metrics_once(protected, face_photo):
    """Every stage is timed; the whole-photo metrics come from the changed window and equal
    the whole-photo computation; the multi-scale ones are left to ``full_metrics``."""
    from jndguard.core.imageio import to_tensor
    from jndguard.core.metrics import quality_report

    assert set(protected.timings) == {"detect", "jnd", "optimisation", "recheck", "metrics"}
    assert all(v >= 0 for v in protected.timings.values())
    from jndguard.core.jnd import jnd_map

    s = protected.settings
    x = to_tensor(face_photo.pixels)
    jnd = jnd_map(x, s.jnd_model, s.jnd_color, s.jnd_strength)  # the whole map, for reference
    whole = quality_report(x, to_tensor(protected.protected), jnd)
    assert protected.metrics["psnr"] == pytest.approx(whole["psnr"], abs=1e-3)
    assert protected.metrics["ssim"] == pytest.approx(whole["ssim"], abs=1e-5)
    assert protected.metrics["jnd"]["over_count"] == whole["jnd"]["over_count"]
    assert protected.metrics["jnd"]["mean_jnd"] == pytest.approx(whole["jnd"]["mean_jnd"], rel=1e-5)
    x0, y0, x1, y1 = protected.per_face[0]["region"]  # the result's J is the whole map's there
    assert np.allclose(protected.jnd[y0:y1, x0:x1], (jnd[0, :, y0:y1, x0:x1] * 255).permute(1, 2, 0).numpy())
    assert protected.metrics["ms_ssim"] is None and "ms_ssim" in protected.metrics["unavailable"]
    q = protected.per_face[0]["quality"]
    assert q["ms_ssim"] is not None and q["psnr"] == protected.per_face[0]["psnr"]


def test_deferred_metrics_come_after_the_result_and_equal_measuring_in_place(face_photo, recogniser):
    """``metrics=DeferredMetrics()``: the result comes back unmeasured; measuring it later
    gives exactly the figures the pipeline measures in place (same tensors)."""
    from jndguard.core.pipeline import DeferredMetrics

    s = ProtectionSettings(max_iterations=3, max_rounds=1, seed=3, **LOSSLESS)
    in_place = protect(face_photo, s, recogniser)
    deferred = DeferredMetrics()
    gen = protect_steps(face_photo, s, recogniser, metrics=deferred)
    while True:
        try:
            next(gen)
        except StopIteration as done:
            later = done.value
            break
    np.testing.assert_array_equal(later.protected, in_place.protected)
    assert later.metrics == {} and "quality" not in later.per_face[0] and deferred.pending
    figures = deferred.measure()
    assert not deferred.pending and later.metrics is figures and figures == in_place.metrics
    assert later.per_face[0]["quality"] == in_place.per_face[0]["quality"]
    assert later.timings["metrics"] > 0
    with pytest.raises(RuntimeError):
        deferred.measure()


def test_faces_detected_once(face_photo, recogniser, monkeypatch):
    """Given the photo's faces, the pipeline never runs MTCNN on the whole photo again: the
    re-check looks only near each face."""
    import jndguard.core.pipeline as pipeline
    from jndguard.core.faces import detect_faces

    faces = detect_faces(face_photo.pixels)
    seen: list[tuple[int, ...]] = []

    def spy(pixels, *a, **kw):
        seen.append(pixels.shape)
        return detect_faces(pixels, *a, **kw)

    monkeypatch.setattr(pipeline, "detect_faces", spy)
    out = protect(face_photo, ProtectionSettings(max_iterations=30, **LOSSLESS), recogniser,
                  faces=faces)
    assert out.faces == faces
    assert seen and all(s[:2] != face_photo.pixels.shape[:2] for s in seen)
    assert out.per_face[0]["redetected"]


def test_redetect_near_finds_the_same_faces(kodak_dir):
    """Near-face re-detection on the unchanged photo finds every face where the full
    detection put it (kodim12: two faces; kodim04: one large face, searched at 160 px)."""
    from jndguard.core.faces import detect_faces
    from jndguard.core.pipeline import redetect_near

    for name in ("kodim12.png", "kodim04.png"):
        pixels = load_image(kodak_dir / name).pixels
        faces = detect_faces(pixels)
        assert faces
        for f, m in zip(faces, redetect_near(pixels, faces), strict=True):
            assert m is not None
            assert max(abs(a - b) for a, b in zip(f.box, m.box)) < 0.1 * f.size
