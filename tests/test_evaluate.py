"""The evaluation harness (bench/evaluate.py): its figures are complete and consistent, the
baseline is the task's I-FGSM on the centre view, and every score can be reproduced from the
saved files by an independent JPEG-90 + scoring."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT
from PIL import Image
from tinybiqa import synthetic_photo

from pixcamd.protect import Settings
from pixcamd.scoring import score_image

sys.path.insert(0, str(ROOT / "bench"))
import evaluate
import evaluate_report

VIEWS = ("center", "resize")


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    synthetic_photo(640, 480, 103).save(folder / "a.png")  # PNG: pixels exactly as generated
    synthetic_photo(704, 496, 11).save(folder / "b.png")
    synthetic_photo(300, 200, 5).save(folder / "small.png")  # smaller than a view: skipped
    return folder


@pytest.fixture(scope="module")
def run(photo_dir, tiny_biqa, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    options = evaluate.Options(
        views=VIEWS,
        pixcamd=Settings(steps=10, platform_checks=False),
        sheet=1,
        save_outputs=out / "files",
    )
    report, sheet = evaluate.evaluate([photo_dir], tiny_biqa, options, log=io.StringIO())
    report["harness"]["command"] = "test"
    docs = out / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nhand-written text\n")
    outputs = evaluate_report.write_all(report, sheet, out, "tiny", docs, out / "img")
    return json.loads((out / "evaluate_tiny.json").read_text()), outputs, out


def test_json_has_every_figure(run):
    report, outputs, _ = run
    assert [p["name"] for p in report["photos"]] == ["a.png", "b.png"]
    assert [s["photo"].endswith("small.png") for s in report["skipped"]] == [True]
    assert report["model"]["fingerprint"].startswith("tiny@sha256:")
    assert report["machine"]["cpu"] and report["machine"]["torch"]
    for row in report["photos"]:
        for key in ("before", "before_jpeg90"):
            assert set(row[key]) == set(VIEWS)
        for method in ("pixcamd", "baseline"):
            r = row["methods"][method]
            for key in ("after", "after_jpeg90", "low_after_jpeg90"):
                assert set(r[key]) == set(VIEWS)
            for key in ("psnr", "ssim", "psnr_center", "ssim_center", "seconds", "peak_rss_mb"):
                assert r[key] > 0
            assert r["seconds_per_mp"] == pytest.approx(r["seconds"] / row["megapixels"])
    summary = report["summary"]
    for method in ("pixcamd", "baseline"):
        for key in ("protection_rate", "accuracy", "psnr_mean", "psnr_min", "ssim_mean"):
            assert summary[method][key] is not None
    assert set(summary["ratios"]) >= {"seconds", "psnr", "protection"}
    assert summary["ratios"]["seconds"] == pytest.approx(
        summary["pixcamd"]["seconds_mean"] / summary["baseline"]["seconds_mean"]
    )
    assert outputs["contact_sheet"] and outputs["markdown"]
    for mode in ("enhance", "auto"):  # the modes, measured against invisible on the same photos
        assert summary["ratios_vs_invisible"][mode]["seconds"] == pytest.approx(
            summary[mode]["seconds_mean"] / summary["pixcamd"]["seconds_mean"]
        )
        for row in report["photos"]:
            record = row["methods"][mode]
            assert record["mode"] == mode
            # What the filter did, in words; nothing for a photo already judged low.
            assert bool(record["enhancement"]) != record["untouched"]
        assert f"| {mode} ÷ invisible |" in Path(outputs["markdown"]).read_text()
    assert report["photos"][0]["methods"]["pixcamd"]["enhancement"] is None
    try:
        import matplotlib  # noqa: F401

        assert outputs["figure"].endswith(".png")
    except ImportError:
        assert outputs["figure"] is None


def test_rates_follow_from_the_scores(run, tiny_biqa):
    report, _, _ = run
    rows, summary = report["photos"], report["summary"]
    for method in evaluate.METHODS:
        recs = [row["methods"][method] for row in rows]
        for r in recs:
            assert r["low_after_jpeg90"] == {
                v: not tiny_biqa.is_good(s) for v, s in r["after_jpeg90"].items()
            }
            assert r["protected"] == all(r["low_after_jpeg90"].values())
        s = summary[method]
        assert s["protection_rate"] == sum(r["protected"] for r in recs) / len(recs)
        for v in VIEWS:
            assert s["view_rates"][v] == sum(r["low_after_jpeg90"][v] for r in recs) / len(recs)
        good_centre = [tiny_biqa.is_good(r["after_jpeg90"]["center"]) for r in recs]
        assert s["accuracy"] == sum(good_centre) / len(recs)
    originals = [tiny_biqa.is_good(row["before_jpeg90"]["center"]) for row in rows]
    assert summary["original"]["accuracy"] == sum(originals) / len(rows)
    assert summary["original"]["accuracy"] > 0  # the photos had something to protect


def test_scores_are_reproduced_from_the_saved_files(run, photo_dir, tiny_biqa):
    report, _, out = run
    for row in report["photos"]:
        stem = row["name"].rsplit(".", 1)[0]
        for method in evaluate.METHODS:
            suffix = ".png" if method == "baseline" else ".jpg"
            with Image.open(out / "files" / method / (stem + suffix)) as f:
                assert f.format == ("PNG" if method == "baseline" else "JPEG")
                saved = f.convert("RGB")
            judged = score_image(saved, tiny_biqa, VIEWS, jpeg_quality=90)
            expected = row["methods"][method]["after_jpeg90"]
            assert {v.view: v.score for v in judged.views} == pytest.approx(expected, abs=1e-3)
        for method in ("pixcamd", "enhance", "auto"):
            assert row["methods"][method]["agrees_with_self_report"]


def test_baseline_changes_only_the_centre_view_within_its_budget(run, photo_dir):
    report, _, out = run
    for row in report["photos"]:
        r = row["methods"]["baseline"]
        assert r["linf"] <= 7 and r["linf_file"] == r["linf"]  # PNG: lossless
        assert r["changed_outside_center"] == 0
        original = np.asarray(Image.open(photo_dir / row["name"]).convert("RGB"), np.int16)
        stem = row["name"].rsplit(".", 1)[0]
        saved = np.asarray(Image.open(out / "files" / "baseline" / f"{stem}.png"), np.int16)
        left, top, w, h = row["center_box"]
        assert (left, top) == ((row["width"] - 512) // 2, (row["height"] - 384) // 2)
        assert (w, h) == (512, 384)
        diff = saved - original
        inside = diff[top : top + h, left : left + w]
        assert np.abs(inside).max() <= 7 and np.abs(inside).max() > 0
        diff[top : top + h, left : left + w] = 0
        assert not diff.any()
        assert r["steps"] == 20 and r["target"] == 0.0  # tiny: higher is better, MSE towards 0
    settings = report["settings"]["baseline"]
    assert settings["epsilon"] == settings["alpha"] == 0.05
    assert settings["epsilon_grey_levels"] == pytest.approx(6.375)


def test_far_end_of_the_scale(tiny_biqa, brisque):
    assert evaluate.far_end(tiny_biqa) == 0.0
    assert evaluate.far_end(brisque) == 1000.0  # beyond any BRISQUE score reached


def test_docs_section_is_ours_alone(run, tmp_path):
    _, _, out = run
    text = (out / "benchmarks.md").read_text()
    assert text.startswith("# Benchmarks\n\nhand-written text\n")
    assert (
        text.index(evaluate_report.BEGIN) < text.index("### tiny") < text.index(evaluate_report.END)
    )
    assert "](img/evaluate_tiny_sheet.jpg)" in text
    assert (out / "img" / "evaluate_tiny_sheet.jpg").stat().st_size < 300_000

    docs = tmp_path / "b.md"
    evaluate_report.update_docs(docs, "one", "first")  # absent: created with a heading
    evaluate_report.update_docs(docs, "two", "second")
    evaluate_report.update_docs(docs, "one", "first again")  # replaced in place
    docs.write_text("before\n" + docs.read_text() + "after\n")
    evaluate_report.update_docs(docs, "two", "second again")
    text = docs.read_text()
    assert text.startswith("before\n# Benchmarks") and text.endswith("after\n")
    assert "first" not in text.replace("first again", "")
    assert text.index("first again") < text.index("second again") < text.index("after")
    assert text.count(evaluate_report.BEGIN) == text.count(evaluate_report.END) == 1


def test_command_line_baseline_only(photo_dir, tmp_path, capsys):
    code = evaluate.main(
        [
            *(str(photo_dir / "a.png"), "--model", "brisque", "--methods", "baseline"),
            *("--sheet", "0", "--name", "cli", "--out", str(tmp_path)),
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "evaluate_cli.json").read_text())
    assert list(report["summary"]) == ["original", "baseline"]
    assert report["model"]["fingerprint"].startswith("brisque-live-svr@")
    assert report["settings"]["baseline"]["target"] == 1000.0
    assert report["harness"]["command"].startswith("bench/evaluate.py ")
    assert json.loads(capsys.readouterr().out)["outputs"]["json"].endswith("evaluate_cli.json")


def test_timing_only_runs_are_labelled_everywhere(photo_dir, tiny_biqa, tmp_path):
    model = evaluate.TimingOnly(tiny_biqa, offset=10.0)
    assert model.fingerprint.startswith(tiny_biqa.fingerprint)
    assert "TIMING ONLY" in model.fingerprint
    options = evaluate.Options(methods=("baseline",), sheet=1)
    report, sheet = evaluate.evaluate(
        [photo_dir / "a.png"], model, options, timing_only=True, log=io.StringIO()
    )
    assert report["model"]["timing_only"] is True
    row = report["photos"][0]
    assert model(torch.zeros(1, 3, 384, 512)) == pytest.approx(
        tiny_biqa(torch.zeros(1, 3, 384, 512)) + 10.0
    )
    outputs = evaluate_report.write_all(report, sheet, tmp_path, "t", tmp_path / "b.md")
    assert "RANDOM WEIGHTS — timing only" in (tmp_path / "b.md").read_text()
    assert "TIMING ONLY" in Path(outputs["markdown"]).read_text()
    assert row["methods"]["baseline"]["seconds"] > 0
