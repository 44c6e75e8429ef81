"""`jndguard compare`: Table 1 writers, the red-box figure, resuming, one tiny real run."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from jndguard.core.research import compare as C
from jndguard.core.research.figure import RED, comparison_figure, detail_box, with_detail

ROWS = [
    {"photo": "a.jpg", "success": True, "psnr": 40.0, "ssim": 0.99, "iterations": 10,
     "seconds": 2.0, "over_jnd": 0.0, "matrix_protected": False, "matrix_share": 0.5,
     "matrix_by_recogniser": {"f": 0.5, "d": 0.5},
     "failed_cells": ["f mtcnn m20 aa file original", "f mtcnn m30 aa file original"]},
    {"photo": "b.jpg", "success": False, "psnr": 42.0, "ssim": 0.97, "iterations": 30,
     "seconds": 4.0, "over_jnd": 0.1, "matrix_protected": False, "matrix_share": 0.25,
     "matrix_by_recogniser": {"f": 0.25, "d": 0.25},
     "failed_cells": ["f mtcnn m20 aa file original"]},
]


def _results():
    a = C.summarise({"method": "hvs-jnd"}, ROWS)
    a["label"] = "hvs-jnd"
    b = C.summarise({"method": "bim"}, [])
    b["label"] = "L1_ori"
    return [a, b]


def test_summary_matches_benchmark_format():
    s = C.summarise({}, ROWS)
    assert s["n"] == 2 and s["success"] == 0.5 and s["matrix_protected"] == 0.0
    assert s["matrix_share"] == 0.375
    assert s["share_by_recogniser"] == {"d": 0.375, "f": 0.375}
    assert s["worst_cells"] == [("f mtcnn m20 aa file original", 2), ("f mtcnn m30 aa file original", 1)]
    assert s["psnr"] == "41.00±1.00" and s["ssim"] == "0.9800±0.0100"
    assert s["median_iterations"] == 20 and s["seconds_per_face"] == 3.0


def test_markdown_golden():
    assert C.to_markdown(_results()) == (
        "| Method | Faces | Protected (every cell) | Mean share of cells | Share per recogniser | Own crop"
        " | PSNR (dB) | SSIM | Iterations | s/face | Cells failed most often |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        "| hvs-jnd | 2 | 0% | 37.5% | d 37.5%; f 37.5% | 50% | 41.00±1.00 | 0.9800±0.0100 | 20 | 3.0 |"
        " f mtcnn m20 aa file original (2/2); f mtcnn m30 aa file original (1/2) |\n"
        "| L1_ori | 0 | – | – | – | – | – | – | – | – | – |\n")


def test_csv_golden():
    assert C.to_csv(_results()) == (
        "Method,Faces,Protected (every cell),Mean share of cells,Share per recogniser,Own crop,PSNR (dB),"
        "SSIM,Iterations,s/face,Cells failed most often\n"
        "hvs-jnd,2,0%,37.5%,d 37.5%; f 37.5%,50%,41.00±1.00,0.9800±0.0100,20,3.0,f mtcnn m20 aa file "
        "original (2/2); f mtcnn m30 aa file original (1/2)\n"
        "L1_ori,0,–,–,–,–,–,–,–,–,–\n")


def test_latex_golden():
    assert C.to_latex(_results()) == (
        "\\begin{tabular}{lrrrrrrrrrr}\n\\toprule\n"
        "Method & Faces & Protected (every cell) & Mean share of cells & Share per recogniser & Own crop"
        " & PSNR (dB) & SSIM & Iterations & s/face & Cells failed most often \\\\\n"
        "\\midrule\n"
        "hvs-jnd & 2 & 0\\% & 37.5\\% & d 37.5\\%; f 37.5\\% & 50\\% & 41.00$\\pm$1.00 & "
        "0.9800$\\pm$0.0100 & 20 & 3.0 & "
        "f mtcnn m20 aa file original (2/2); f mtcnn m30 aa file original (1/2) \\\\\n"
        "L1\\_ori & 0 & -- & -- & -- & -- & -- & -- & -- & -- & -- \\\\\n"
        "\\bottomrule\n\\end{tabular}\n")


def test_entries_methods_and_ablations():
    e = C.method_entries(["bim", "hvs-jnd"], "impersonate", ablations=True, max_iterations=5)
    assert [x.label for x in e][:2] == ["bim", "hvs-jnd"]
    assert [x.config["variant"] for x in e[2:]] == list(C.ABLATIONS)
    assert all(x.config["target"] == "auto" and x.config["anchor_iterations"] == 5 for x in e)
    with pytest.raises(ValueError):
        C.method_entries(["nope"])
    assert C.resolve_config({"target": "auto"}, C.Path("x/madonna/p.jpg"))["target"] == "ben_afflek"


# --------------------------------------------------------------------------- figure geometry


def test_red_box_geometry():
    img = np.full((200, 300, 3), 128, np.uint8)
    img[90:110, 140:160] = 20  # a dark patch at the face centre
    box = (100.0, 50.0, 200.0, 150.0)  # 100×100 face box, centre (150, 100)
    src = detail_box(box, 300, 200)
    assert src == (132, 82, 167, 117)  # 35 px square around the centre
    out, rects = with_detail(img, box, scale=0.4, corner="br", thickness=2)
    assert rects["source"] == src
    assert rects["inset"] == (220, 120, 300, 200)  # 0.4 × 200 = 80 px, bottom-right corner
    for x0, y0, x1, y1 in rects.values():  # outlines are red, 2 px wide, on all four sides
        for y, x in ((y0, x0), (y0 + 1, x1 - 1), (y1 - 1, x0 + 1), (y1 - 2, x1 - 2),
                     ((y0 + y1) // 2, x0), ((y0 + y1) // 2, x1 - 1)):
            assert tuple(out[y, x]) == RED
        assert tuple(out[y0 + 2, x0 + 2]) != RED
    # the inset is the enlarged crop: its centre shows the dark patch
    assert tuple(out[160, 260]) == (20, 20, 20)
    assert tuple(img[82, 132]) == (128, 128, 128)  # the input is not drawn on
    _, r = with_detail(img, box, corner="tl")
    assert r["inset"][:2] == (0, 0)


def test_comparison_grid_layout():
    img = np.full((100, 200, 3), 200, np.uint8)
    g = comparison_figure([("clean", img), ("a", img), ("b", img)], (50, 20, 150, 80),
                          columns=2, tile=100, label_height=20)
    assert g.shape == (2 * (50 + 20), 2 * 100, 3)
    assert (g[..., 0] == 255).any() and (g[..., 1] < 100).any()  # red outline present


# --------------------------------------------------------------------------- resuming


class _Interrupt(Exception):
    pass


def _stub(calls, fail_after=None):
    def protect_fn(image, settings, rec):
        calls.append(settings.method)
        if fail_after is not None and len(calls) > fail_after:
            raise _Interrupt
        k = sum(map(ord, settings.method + settings.variant)) % 7
        return SimpleNamespace(protected=image.pixels, per_face=[{
            "success": k % 2 == 0, "psnr": 35.0 + k, "ssim": 0.9 + k / 100, "iterations": k + 1,
            "quality": {"jnd": {"over_fraction": 0.0}}, "box": [4, 4, 28, 28]}])
    return protect_fn


@pytest.fixture
def photos(tmp_path):
    out = []
    for i in range(2):
        p = tmp_path / "in" / f"p{i}.png"
        p.parent.mkdir(exist_ok=True)
        Image.fromarray(np.full((32, 32, 3), 60 * i, np.uint8)).save(p)
        out.append(p)
    return out


def _run(entries, photos, outdir, protect_fn):
    from jndguard.core.progress import drive

    steps = []
    res = drive(C.compare_steps(entries, photos, None, outdir, reencode=False,
                                protect_fn=protect_fn), steps.append)
    return res, steps


def _strip_seconds(text):  # the s/face column and the (empty) cells column after it
    return "\n".join(line.rsplit("|", 3)[0] for line in text.splitlines())


def test_resume_after_interruption(tmp_path, photos):
    entries = C.method_entries(["bim", "hvs-jnd"], ablations=True)
    calls = []
    with pytest.raises(_Interrupt):
        _run(entries, photos, tmp_path / "out", _stub(calls, fail_after=1))
    lines = (tmp_path / "out" / C.RESULTS_FILE).read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["label"] == "bim"

    calls = []
    res, steps = _run(entries, photos, tmp_path / "out", _stub(calls))
    assert len(calls) == len(entries) * 2 - 1  # the recorded one is skipped
    assert steps[0].skipped and not any(s.skipped for s in steps[1:])
    assert steps[-1].done == steps[-1].total == len(entries) * 2
    C.write_tables(res, tmp_path / "out")
    first = {e: (tmp_path / "out" / f"table.{e}").read_text() for e in ("md", "csv", "tex")}

    calls = []  # a complete rerun does nothing and writes the same tables
    res2, _ = _run(entries, photos, tmp_path / "out", _stub(calls))
    assert calls == []
    C.write_tables(res2, tmp_path / "out")
    assert first == {e: (tmp_path / "out" / f"table.{e}").read_text() for e in ("md", "csv", "tex")}

    fresh, _ = _run(entries, photos, tmp_path / "fresh", _stub([]))  # same figures uninterrupted
    assert _strip_seconds(C.to_markdown(fresh)) == _strip_seconds(first["md"])
    assert len(C.to_markdown(res).splitlines()) == 2 + len(entries)


def test_torn_last_line_is_ignored(tmp_path):
    p = tmp_path / C.RESULTS_FILE
    rec = {"label": "bim", "config": {"method": "bim"}, "photo": "x.jpg", "row": None}
    p.write_text(json.dumps(rec) + '\n{"label": "b", "ro')
    assert list(C.load_results(p)) == [C.result_key(C.Entry("bim", {"method": "bim"}), Path("x.jpg"))]


def test_changed_settings_are_not_reused(tmp_path, photos):
    entries = C.method_entries(["bim"])
    _run(entries, photos, tmp_path, _stub([]))
    calls = []
    _run(C.method_entries(["bim"], max_iterations=3), photos, tmp_path, _stub(calls))
    assert len(calls) == 2  # same label, other settings: computed afresh
    calls = []
    _run(entries, photos, tmp_path, _stub(calls))
    assert calls == []  # the first settings are still on record


def test_paper_mode_entries():
    e = C.method_entries(["hvs-jnd", "bim"], ablations=True, hvs_mode="paper")
    assert e[0].label == "hvs-jnd (paper)" and e[1].label == "bim"
    assert e[0].config["mode"] == "paper" and e[0].config["beta"] == [1500.0] * 3
    assert e[0].config["delta"] == -50.0 and "mode" not in e[1].config
    assert [x.label for x in e[2:]] == [f"hvs-jnd[{v}] (paper)" for v in C.ABLATIONS]
    assert all(x.config["mode"] == "paper" for x in e[2:])
    with pytest.raises(ValueError):
        C.method_entries(["bim"], hvs_mode="slow")


# --------------------------------------------------------------------------- one real run


def test_real_compare_bim(tmp_path, recogniser, celeb_dir, one_torch_thread):
    from jndguard.core.research.figure import write_comparison_figure

    photo = sorted((celeb_dir / "val" / "ben_afflek").glob("*.jpg"))[0]
    entries = C.method_entries(["bim"], max_iterations=2)
    from jndguard.core.progress import drive

    res = drive(C.compare_steps(entries, [photo], recogniser, tmp_path, reencode=True,
                                matrix="quick"))
    r = res[0]
    assert r["n"] == 1 and r["faces"][0]["iterations"] <= 2
    f = r["faces"][0]
    assert f["matrix_size"] == "quick" and f["matrix_cells"] > 0 and 0 <= f["matrix_share"] <= 1
    assert r["matrix_protected"] is not None
    assert 25 < r["faces"][0]["psnr"] < 60
    paths = C.write_tables(res, tmp_path)
    assert paths["md"].read_text().splitlines()[2].startswith("| bim | 1 |")
    fig = write_comparison_figure(tmp_path, entries, photo)
    w, h = Image.open(fig).size  # two panels (clean, bim), longer side 320 px, label strip
    assert fig is not None and w % 2 == 0 and max(w // 2, h - 28) == 320


def test_compare_cli_needs_photos(tmp_path, capsys):
    from jndguard.cli import main

    assert main(["compare", "-o", str(tmp_path / "out")]) == 2
    assert "--validation" in capsys.readouterr().err


def test_validation_photos_are_the_benchmark_faces(model_home):
    from jndguard.core.models.store import validation_photos

    photos = validation_photos(home=model_home)
    assert len(photos) == 25 and photos == sorted(photos)
    assert {p.parent.parent.name for p in photos} == {"val"} and len({p.parent.name for p in photos}) == 5


def test_summarise_folders_merges_shards(tmp_path, photos):
    """Shards of one comparison (one photo each, in two folders) summarise like one run; a
    result recorded twice counts once; a dodging and an impersonation row of one method are
    told apart by their goal."""
    entries = C.method_entries(["bim", "hvs-jnd"])
    whole, _ = _run(entries, photos, tmp_path / "whole", _stub([]))
    _run(entries, photos[:1], tmp_path / "s0", _stub([]))
    _run(entries, photos, tmp_path / "s1", _stub([]))  # overlaps s0 on the first photo
    merged = C.summarise_folders([tmp_path / "s0", tmp_path / "s1"])
    assert [s["label"] for s in merged] == ["bim", "hvs-jnd"]
    assert _strip_seconds(C.to_markdown(merged)) == _strip_seconds(C.to_markdown(whole))
    assert [s["n"] for s in merged] == [2, 2]

    _run(C.method_entries(["bim"], goal="impersonate"), photos, tmp_path / "imp", _stub([]))
    both = C.summarise_folders([tmp_path / "whole", tmp_path / "imp"])
    assert [s["label"] for s in both] == ["bim (dodge)", "hvs-jnd", "bim (impersonate)"]


def test_compare_cli_summarise_runs_nothing(tmp_path, photos, capsys):
    from jndguard.cli import main

    _run(C.method_entries(["bim"]), photos, tmp_path / "s0", _stub([]))
    assert main(["compare", "--summarise", str(tmp_path / "s0"), "-o", str(tmp_path / "t")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| Method |") and "| bim | 2 |" in out
    assert (tmp_path / "t" / "table.tex").is_file()
    assert main(["compare", "--summarise", str(tmp_path / "nowhere"), "-o", str(tmp_path / "t")]) != 0
    assert "no results.jsonl in" in capsys.readouterr().err
