"""Qt-free pieces of the GUI: settings round trips, presets, display helpers, result text."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from jndguard.gui import imaging, params, presenters
from jndguard.gui.params import ProtectionSettings


def test_settings_flat_round_trip_and_bad_values():
    s = replace(
        params.default_settings(),
        beta=(1.0, 2.0, 3.0),
        delta=-4.0,
        m_rgb=(1.5, 2.5, 0.5),
        step_size=0.003,
        goal="impersonate",
        target="madonna",
        robust=True,
    )
    flat = params.to_flat(s)
    assert params.from_flat(flat) == s
    as_text = {
        k: ("" if v is None else str(v).lower() if isinstance(v, bool) else str(v)) for k, v in flat.items()
    }  # what an INI file gives back
    assert params.from_flat(as_text) == s
    broken = dict(flat, max_iterations="lots", goal="impersonate", target="")
    out = params.from_flat(broken, params.default_settings())
    assert out.max_iterations == params.default_settings().max_iterations
    assert isinstance(out, ProtectionSettings)


def test_strength_presets_and_paper_defaults():
    s = params.default_settings()
    assert params.strength_of(s) == "standard"
    assert params.strength_of(params.apply_strength(s, "strong")) == "strong"
    assert params.strength_of(replace(s, max_iterations=7)) == params.CUSTOM
    paper = params.paper_settings(replace(s, device="cpu", seed=3))
    assert paper.mode == "paper" and paper.beta == (1500.0,) * 3 and paper.delta == -50.0
    assert paper.device == "cpu" and paper.seed == 3


def test_display_helpers():
    jnd = np.zeros((4, 5, 3), np.float32)
    jnd[..., 2] = 10.0
    rgb, (lo, hi) = imaging.colour_jnd(jnd, "b")
    assert rgb.shape == (4, 5, 3) and rgb.dtype == np.uint8 and lo == 0 and hi == 10
    assert (rgb == imaging.VIRIDIS[255]).all()
    delta = np.full((2, 2, 3), 2.0, np.float32)
    pic, (lo, hi) = imaging.render_perturbation(delta, "rgb", 10)
    assert (pic == 148).all() and hi == pytest.approx(12.75) and lo == -hi
    pic, _ = imaging.render_perturbation(-delta, "r", 50)
    assert tuple(pic[0, 0]) == tuple(imaging.DIVERGING[28])
    assert imaging.suggested_amplification(delta) == 50
    assert imaging.nice_ceiling(7.3) == 10 and imaging.nice_ceiling(0.21) == 0.25


def _result(method: str, success: bool, sim: float):
    res = SimpleNamespace(
        settings=SimpleNamespace(method=method, goal="dodge"),
        success=success,
        metrics={
            "psnr": 41.234,
            "ssim": 0.99,
            "ms_ssim": 0.995,
            "max_abs_change": 4,
            "jnd": {"over_fraction": 0.0123, "mean_jnd": 6.0},
        },
        per_face=[
            {
                "success": success,
                "similarity": sim,
                "threshold": 0.25,
                "psnr": 40.0,
                "ssim": 0.98,
                "iterations": 12,
                "seconds": 1.5,
                "redetected": True,
            }
        ],
        faces=[object()],
        model={"name": "facenet"},
        device="cpu",
        seconds=2.0,
    )
    checks = [
        {
            "face": 0,
            "recogniser": "facenet",
            "variant": v,
            "similarity": sim + i * 0.1,
            "threshold": 0.25,
            "same_person": sim + i * 0.1 >= 0.25,
            "redetected": True,
        }
        for i, v in enumerate(("exported", "jpeg75"))
    ]
    ver = {
        "checks": checks,
        "recognisers": ["facenet"],
        "protected_ok": success,
        "all_recognisers_ok": success,
    }
    return SimpleNamespace(result=res, verification=ver, method=method, success=success)


def test_metric_rows_compare_methods_and_verdicts():
    a, b = _result("hvs-jnd", True, 0.1), _result("pgd", False, 0.3)
    assert presenters.headers([a, b]) == ["HVS-JND", "PGD"]
    rows = {r.label: r for r in presenters.metric_rows([a, b])}
    assert rows["PSNR"].cells == ["41.23 dB", "41.23 dB"]
    assert rows["Over J"].cells == ["1.23 %", "1.23 %"]
    assert rows["Verdict"].verdicts == [True, False]
    assert rows["Face 1 · JPEG q75"].cells[0].startswith("0.200 vs τ 0.250")
    assert rows["Face 1 · JPEG q75"].verdicts == [True, False]
    (v,) = presenters.face_verdicts(a)
    assert v.protected and "0.100 < τ 0.250" in v.detail and "2 of 2 versions" in v.detail
    (v,) = presenters.face_verdicts(b)
    assert v.protected is False and "still recognised" in v.title


def test_loader_notes_row():
    a = _result("hvs-jnd", True, 0.1)
    assert "Notes" not in {r.label for r in presenters.metric_rows([a])}
    a.result.notes = ["first frame of 3 taken (GIF with 3 frames)", "transparency composited on white"]
    rows = {r.label: r for r in presenters.metric_rows([a])}
    assert rows["Notes"].cells == ["first frame of 3 taken (GIF with 3 frames); "
                                   "transparency composited on white"]


def _matrix_verification(sims: dict[str, float]) -> dict:
    """A threat-matrix report built by the matrix's own summary code from given cells."""
    from jndguard.core.threat.matrix import MatrixEntry, MatrixReport, summarise

    entries = []
    for crop, sim in sims.items():
        for enc in ("file", "jpeg75"):
            for ref in ("original", "gallery"):
                s = sim + (0.05 if enc == "jpeg75" else 0.0)
                entries.append(MatrixEntry(0, "facenet", "mtcnn", crop, "aa", enc, ref, s, 0.25,
                                           s >= 0.25, "ok", s < 0.25))
    rep = MatrixReport("quick", "dodge", None, [{}], [{"name": "facenet"}], entries,
                       summarise(entries, 1, ["facenet"], "dodge"),
                       protected=all(e.passed for e in entries),
                       axes={"detectors": ["mtcnn"], "crops": list(sims), "kernels": ["aa"],
                             "encodings": ["file", "jpeg75"], "references": ["original", "gallery"]})
    return rep.to_dict()


def test_matrix_rows_grid_and_worst_cell():
    a = _result("hvs-jnd", True, 0.1)
    a.verification = _matrix_verification({"tight": 0.1, "m20": 0.6})
    rows = {r.label: r for r in presenters.metric_rows([a])}
    assert rows["Threat matrix"].cells == ["fails 4 of 8 cells ✗"]
    assert rows["Threat matrix"].verdicts == [False]
    assert rows["Face 1 · facenet"].cells[0].startswith("50% of cells · worst 0.65 (m20 aa, JPEG q75")
    (v,) = presenters.face_verdicts(a)  # the matrix decides the badge, not the own crop
    assert v.protected is False and "4 of 8 matrix cells" in v.detail
    (g,) = presenters.matrix_grids(a.verification)
    assert g.columns == ["saved file", "JPEG q75"] and len(g.rows) == 2
    assert [c.ok for c in g.cells[0]] == [True, True] and [c.ok for c in g.cells[1]] == [False, False]
    assert g.cells[1][1].text == "✗ 0.65" and "vs gallery: 0.650" in g.cells[1][1].tooltip
    sim, thr, text = presenters.worst_cell(a.verification)
    assert sim == 0.65 and thr == 0.25 and "m20" in text
    ok = _result("hvs-jnd", True, 0.1)
    ok.verification = _matrix_verification({"tight": 0.1})
    assert presenters.metric_rows([ok])[-1].label  # renders
    assert {r.label: r for r in presenters.metric_rows([ok])}["Threat matrix"].verdicts == [True]
