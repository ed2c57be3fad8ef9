"""The evaluation harness (bench/evaluate.py): every method is judged by the same real platform
pipelines, its figures follow from the recorded scores, every score can be reproduced from the
saved files by an independent pipeline + scoring, the baseline is the task's I-FGSM on the centre
view, the flattest region is the flattest, and the small photos are small."""

from __future__ import annotations

import io
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT
from PIL import Image
from tinybiqa import synthetic_photo

from pixcamd.platform_specs import parse_platforms
from pixcamd.platforms import DEFAULT_PLATFORMS, PRESETS
from pixcamd.protect import Settings
from pixcamd.scoring import score_image

sys.path.insert(0, str(ROOT / "bench"))
import evaluate
import evaluate_baseline
import evaluate_inputs
import evaluate_judging
import evaluate_report
import evaluate_tables

VIEWS = ("center", "resize")
JUDGE = parse_platforms(evaluate_judging.DEFAULT_JUDGE)
NAMES = [p.name for p in JUDGE]
DEFAULTS = list(DEFAULT_PLATFORMS)  # the judging set names the default presets by name
UNSEEN = list(evaluate_judging.UNSEEN)
NEARBY = list(evaluate_judging.NEARBY)


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    # PNG: pixels exactly as generated. a: 1.09 MP, downscaled by instagram (width 1080) and
    # the unseen pipelines; --small 1 makes a 640×480 crop of it.
    synthetic_photo(1208, 906, 11).save(folder / "a.png")
    synthetic_photo(640, 480, 103).save(folder / "b.png")
    synthetic_photo(300, 200, 5).save(folder / "small.png")  # smaller than a view: skipped
    return folder


@pytest.fixture(scope="module")
def run(photo_dir, tiny_biqa, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    # Short searches keep the test quick (every loop view of a photo this small runs the
    # differentiable JPEG): the harness is under test here, not how well pixcamd protects.
    quick = Settings(steps=3, epsilon_cap=4 / 255, views_per_step=2)
    options = evaluate.Options(
        methods=evaluate.METHODS,
        views=VIEWS,
        pixcamd=quick,
        small=1,
        sheet=1,
        save_outputs=out / "files",
    )
    report, sheet = evaluate.evaluate([photo_dir], tiny_biqa, options, log=io.StringIO())
    report["harness"]["command"] = "test"
    docs = out / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nhand-written text\n")
    outputs = evaluate_report.write_all(report, sheet, out, "tiny", docs, out / "img")
    return json.loads((out / "evaluate_tiny.json").read_text()), outputs, out


def all_rows(report: dict) -> list[dict]:
    return report["photos"] + report["small_photos"]


def test_json_has_every_figure(run):
    report, outputs, _ = run
    assert [p["name"] for p in report["photos"]] == ["a.png", "b.png"]
    assert [s["photo"].endswith("small.png") for s in report["skipped"]] == [True]
    assert report["model"]["fingerprint"].startswith("tiny@sha256:")
    assert report["machine"]["cpu"] and report["machine"]["torch"]
    assert [p["name"] for p in report["harness"]["pipelines"]] == NAMES
    assert report["harness"]["default_set"] == DEFAULTS
    assert report["harness"]["task_pipeline"] == "task"
    for row in all_rows(report):
        assert set(row["before"]) == set(VIEWS)
        assert set(row["original"]["judged"]) == set(NAMES)
        for method in evaluate.METHODS:
            r = row["methods"][method]
            assert set(r["after"]) == set(VIEWS)
            assert list(r["judged"]) == NAMES
            for per_view in (*r["judged"].values(), *r["low"].values()):
                assert set(per_view) == set(VIEWS)
            for key in ("psnr", "ssim", "psnr_center", "ssim_center", "psnr_flat", "ssim_flat"):
                assert r[key] > 0
            assert r["seconds"] > 0 and r["peak_rss_mb"] > 0
            assert r["seconds_per_mp"] == pytest.approx(r["seconds"] / row["megapixels"])
            assert r["steps"] >= 0
        # Served sizes: what each pipeline really made of the photo (never larger).
        for w, h in row["served"].values():
            assert w <= row["width"] and h <= row["height"]
        assert row["served"]["scale0.33-q75"] == [
            round(row["width"] * 0.33),
            round(row["height"] * 0.33),
        ]
    assert report["photos"][0]["served"]["instagram"] == [1080, 810]  # width 1080, Lanczos
    summary = report["summary"]
    for method in evaluate.METHODS:
        s = summary[method]
        for key in ("protection_rate_defaults", "protection_rate_unseen", "accuracy", "psnr_mean"):
            assert s[key] is not None
        assert set(s["pipeline_rates"]) == set(NAMES)
    assert set(summary["ratios"]) == {
        "pixcamd/task",
        "pixcamd/baseline",
        "task/baseline",
        "enhance/pixcamd",
        "auto/pixcamd",
    }
    assert outputs["contact_sheet"] and outputs["flat_sheet"] and outputs["markdown"]
    md = Path(outputs["markdown"]).read_text()
    for text in ("| pixcamd ÷ task |", "**Small photos**", "| long1280-q70-bicubic * |"):
        assert text in md
    assert "| task * |" not in md  # task is in the default set: no star
    for mode in ("enhance", "auto"):
        for row in report["photos"]:
            record = row["methods"][mode]
            assert record["mode"] == mode
            assert bool(record["enhancement"]) != record["untouched"]
    assert report["photos"][0]["methods"]["pixcamd"]["enhancement"] is None
    try:
        import matplotlib  # noqa: F401

        assert outputs["figure"].endswith(".png")
    except ImportError:
        assert outputs["figure"] is None


def test_methods_protect_for_their_platforms(run):
    report, _, _ = run
    settings = report["settings"]["pixcamd"]
    assert [p["name"] for p in settings["platforms"]] == DEFAULTS
    for row in all_rows(report):
        for method in ("pixcamd", "enhance", "auto"):
            assert row["methods"][method]["platforms"] == DEFAULTS
        assert row["methods"]["task"]["platforms"] == ["task"]
        assert row["methods"]["task"]["self_report_pipelines_compared"] == ["task"]
        assert row["methods"]["pixcamd"]["self_report_pipelines_compared"] == DEFAULTS
        assert "checks" in row["methods"]["baseline"]
        assert row["methods"]["baseline"]["first_check_passed"] is None


def _worst(scores: dict, model) -> str:
    sign = 1.0 if model.higher_is_better else -1.0
    pairs = [(p, v) for p, per in scores.items() for v in per]
    p, v = max(pairs, key=lambda pv: sign * (scores[pv[0]][pv[1]] - model.threshold))
    return f"{p}/{v}"


def test_rates_follow_from_the_scores(run, tiny_biqa):
    report, _, _ = run
    groups = {p["name"]: p["group"] for p in report["harness"]["pipelines"]}
    assert groups == {
        **dict.fromkeys(DEFAULTS, "default"),
        **dict.fromkeys(UNSEEN, "unseen"),
        **dict.fromkeys(NEARBY, "nearby"),
    }
    for rows, summary in (
        (report["photos"], report["summary"]),
        (report["small_photos"], report["summary_small"]),
    ):
        for key in ("original", *evaluate.METHODS):
            recs = [row["original"] if key == "original" else row["methods"][key] for row in rows]
            for r in recs:
                low = {
                    p: {v: not tiny_biqa.is_good(s) for v, s in per.items()}
                    for p, per in r["judged"].items()
                }
                assert r["low"] == low
                on = {p: all(per.values()) for p, per in low.items()}
                assert r["protected_on"] == on
                assert r["protected_defaults"] == all(on[p] for p in DEFAULTS)
                assert r["protected_unseen"] == all(on[p] for p in UNSEEN)
                assert r["protected_nearby"] == all(on[p] for p in NEARBY)
                assert r["protected_all"] == all(on.values())
                assert r["center_good_task"] == tiny_biqa.is_good(r["judged"]["task"]["center"])
                assert f"{r['worst']['pipeline']}/{r['worst']['view']}" == _worst(
                    r["judged"], tiny_biqa
                )
            s, n = summary[key], len(recs)
            assert s["photos"] == n
            assert (
                s["protection_rate_defaults"]
                == sum(all(r["protected_on"][p] for p in DEFAULTS) for r in recs) / n
            )
            for group, names in (("unseen", UNSEEN), ("nearby", NEARBY)):
                assert (
                    s[f"protection_rate_{group}"]
                    == sum(all(r["protected_on"][p] for p in names) for r in recs) / n
                )
            for p in NAMES:
                assert s["pipeline_rates"][p] == sum(r["protected_on"][p] for r in recs) / n
                for v in VIEWS:
                    assert s["pair_rates"][p][v] == sum(r["low"][p][v] for r in recs) / n
                    assert s["mean_scores"][p][v] == pytest.approx(
                        statistics.mean(r["judged"][p][v] for r in recs)
                    )
            good = [tiny_biqa.is_good(r["judged"]["task"]["center"]) for r in recs]
            assert s["accuracy"] == sum(good) / n
            assert sum(s["worst_counts"].values()) == n
    originals = [tiny_biqa.is_good(row["before"]["center"]) for row in report["photos"]]
    assert any(originals)  # the photos had something to protect


def test_costs_and_ratios_follow_from_the_records(run):
    report, _, _ = run
    rows, summary = report["photos"], report["summary"]
    for method in evaluate.METHODS:
        recs = [row["methods"][method] for row in rows]
        s = summary[method]
        seconds = [r["seconds"] for r in recs]
        assert s["seconds_mean"] == pytest.approx(statistics.mean(seconds))
        assert s["seconds_median"] == pytest.approx(statistics.median(seconds))
        mp = sum(row["megapixels"] for row in rows)
        assert s["seconds_per_mp"] == pytest.approx(sum(seconds) / mp)
        firsts = [r["first_check_passed"] for r in recs if r["first_check_passed"] is not None]
        assert s["first_check_photos"] == len(firsts)
        assert s["first_check_passed"] == sum(firsts)
        called = [r["first_check_protected"] for r in recs]
        called = [c for c in called if c is not None]
        assert s["estimate_check_photos"] == len(called)
        assert s["estimate_check_protected"] == sum(called)
        if method == "baseline":
            assert s["first_check_photos"] == 0 and s["checks_mean"] is None
            assert s["estimate_check_photos"] == 0
        else:
            for r in recs:  # a search that ran no check is one that never stopped early
                assert r["checks"] >= 1 or r["first_check_passed"] is None
                assert r["checks"] >= 1 or r["first_check_protected"] is None
    q = summary["ratios"]["pixcamd/task"]
    a, b = summary["pixcamd"], summary["task"]
    assert q["seconds"] == pytest.approx(a["seconds_mean"] / b["seconds_mean"])
    assert q["seconds_median"] == pytest.approx(a["seconds_median"] / b["seconds_median"])
    per_photo = [r["methods"]["pixcamd"]["seconds"] / r["methods"]["task"]["seconds"] for r in rows]
    assert q["seconds_per_photo_ratio_median"] == pytest.approx(statistics.median(per_photo))
    assert q["psnr_db_difference"] == pytest.approx(a["psnr_mean"] - b["psnr_mean"])


def test_scores_are_reproduced_from_the_saved_files(run, photo_dir, tiny_biqa):
    report, _, out = run
    for row in all_rows(report):
        stem = Path(row["name"]).stem
        for method in evaluate.METHODS:
            suffix = ".png" if method == "baseline" else ".jpg"
            with Image.open(out / "files" / method / (stem + suffix)) as f:
                assert f.format == ("PNG" if method == "baseline" else "JPEG")
                saved = f.convert("RGB")
            judged = score_image(saved, tiny_biqa, VIEWS, JUDGE)
            record = row["methods"][method]
            for scored in judged.platforms:
                name = scored.pipeline.name
                expected = record["judged"][name]
                assert {v.view: v.score for v in scored.views} == pytest.approx(expected, abs=1e-3)
                assert list(scored.served) == row["served"][name]
                assert (not scored.good) == record["protected_on"][name]
        for method in ("pixcamd", "task", "enhance", "auto"):
            # protect()'s own verdict on its pipelines is the harness's, score for score.
            assert row["methods"][method]["agrees_with_self_report"] is True
            assert row["methods"][method]["self_report_max_score_difference"] < 1e-3
        if row["small"]:  # the made photo itself, judged again
            made = Image.open(out / "files" / "small" / (row["name"] + ".png")).convert("RGB")
            judged = score_image(made, tiny_biqa, VIEWS, JUDGE)
            for scored in judged.platforms:
                expected = row["original"]["judged"][scored.pipeline.name]
                assert {v.view: v.score for v in scored.views} == pytest.approx(expected, abs=1e-3)


def test_small_photos_are_small_and_made_from_the_inputs(run, photo_dir):
    report, _, out = run
    small = report["small_photos"]
    assert [r["name"] for r in small] == ["small00_crop_a"]
    for row in small:
        assert row["small"] and row["width"] * row["height"] <= 1_000_000
    assert (small[0]["width"], small[0]["height"]) == (640, 480)
    made = Image.open(out / "files" / "small" / "small00_crop_a.png").convert("RGB")
    source = Image.open(photo_dir / "a.png").convert("RGB")  # 1208×906: its centre 640×480
    assert np.array_equal(np.asarray(made), np.asarray(source)[213:693, 284:924])
    assert report["summary_small"]["pixcamd"]["photos"] == 1
    assert report["harness"]["small"] == 1

    big = Image.fromarray(
        np.random.default_rng(0).integers(0, 256, (1500, 2000, 3), dtype=np.uint8), "RGB"
    )
    crop, what = evaluate_inputs.make_small(big, 0)
    assert crop.size == (640, 480) and what == "crop 640x480"
    assert np.array_equal(np.asarray(crop), np.asarray(big)[510:990, 680:1320])
    down, what = evaluate_inputs.make_small(big, 1)
    assert down.size == (1024, 768) and what == "lanczos1024 1024x768"
    assert np.array_equal(
        np.asarray(down), np.asarray(big.resize((1024, 768), Image.Resampling.LANCZOS))
    )
    portrait, _ = evaluate_inputs.make_small(big.transpose(Image.Transpose.ROTATE_90), 3)
    assert portrait.size == (768, 1024)
    items = evaluate_inputs.photo_items([Path("x/p.jpg"), Path("x/q.jpg")], None, 5)
    assert [i.name for i in items if i.small] == [
        "small00_crop_p",
        "small01_down_q",
        "small02_crop_p",
        "small03_down_q",
        "small04_crop_p",
    ]


def flat_test_image() -> tuple[Image.Image, tuple[int, int, int, int]]:
    """Noise (luma std ≈ 30) everywhere but a 200×160 patch of faint noise (std ≈ 1) at
    (430, 250), and a constant strip inside the 5 % border (flatter still, but left out)."""
    rng = np.random.default_rng(1)
    img = np.clip(rng.normal(128, 30, (600, 800, 3)), 0, 255)
    img[250:410, 430:630] = np.clip(rng.normal(100, 1, (160, 200, 3)), 0, 255)
    img[:, :38] = 200  # 38 px < 5 % of 800: the border
    return Image.fromarray(img.round().astype(np.uint8), "RGB"), (430, 250, 200, 160)


def test_flattest_region_is_the_flattest_window():
    image, (px, py, pw, ph) = flat_test_image()
    box, std = evaluate_inputs.flattest_box(image, size=64, stride=8)
    left, top, w, h = box
    assert (w, h) == (64, 64)
    assert px <= left and left + w <= px + pw and py <= top and top + h <= py + ph
    assert std < 2
    # Brute force over the same candidates: no window has a lower luma deviation.
    luma = np.asarray(image, np.float64) @ np.array([0.299, 0.587, 0.114])
    tops, lefts, side, stds = evaluate_inputs.window_stds(
        evaluate_inputs.luma_of(image), 64, stride=8
    )
    brute = np.array([[luma[t : t + side, x : x + side].std() for x in lefts] for t in tops])
    assert stds == pytest.approx(brute, abs=1e-3)
    assert std == pytest.approx(brute.min(), abs=1e-3)
    assert lefts.min() >= 40 and tops.min() >= 30  # the 5 % border is never a candidate
    assert lefts.max() + side <= 760 and tops.max() + side <= 570
    # Without the border rule the constant strip would win: the rule is what keeps it out.
    strip_box, strip_std = evaluate_inputs.flattest_box(image, size=32, border=0.0)
    assert strip_box[0] + 32 <= 38 and strip_std == 0
    # A photo smaller than the crop: the window shrinks to the inside of the border.
    tiny_box, _ = evaluate_inputs.flattest_box(image.resize((100, 80)), size=256)
    assert tiny_box[2:] == (72, 72)  # min(256, 76 − 4, 95 − 5)


def test_contact_sheets_show_the_flattest_region_at_100_percent(run, photo_dir):
    report, outputs, out = run
    row = report["photos"][0]  # sheet=1: the first photo
    left, top, w, h = row["flat_box"]
    original = Image.open(photo_dir / row["name"]).convert("RGB")
    flat = Image.open(outputs["flat_sheet"]).convert("RGB")
    assert np.array_equal(
        np.asarray(flat.crop((4, 36, 4 + w, 36 + h))),
        np.asarray(original.crop((left, top, left + w, top + h))),
    )
    with Image.open(out / "files" / "pixcamd" / "a.jpg") as f:
        saved = f.convert("RGB")
    x = 4 + (w + 4)  # beside the original: the first method's file, pixcamd
    assert np.array_equal(
        np.asarray(flat.crop((x, 36, x + w, 36 + h))),
        np.asarray(saved.crop((left, top, left + w, top + h))),
    )
    # The recorded flat box is the one the finder gives, and its PSNR is measured there.
    assert tuple(row["flat_box"]) == evaluate_inputs.flattest_box(original)[0]
    columns = 2 + 2 * len(evaluate.METHODS)  # thumbnail, original; per method file, difference
    assert Image.open(outputs["contact_sheet"]).width == columns * (512 + 4) + 4


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


def test_pipeline_groups_compare_numbers_not_names():
    default = tuple(PRESETS[n] for n in DEFAULT_PLATFORMS)
    (renamed,) = parse_platforms("long2048-q85")  # facebook's numbers under another name
    assert evaluate_judging.group_of(renamed, default) == "default"
    assert evaluate_judging.group_of(PRESETS["telegram"], default) == "preset"
    for spec in evaluate_judging.UNSEEN:
        assert evaluate_judging.group_of(parse_platforms(spec)[0], default) == "unseen"
    for spec in evaluate_judging.NEARBY:
        assert evaluate_judging.group_of(parse_platforms(spec)[0], default) == "nearby"
    (other,) = parse_platforms("long2000-q85")  # off facebook's size, but not one of NEARBY
    assert evaluate_judging.group_of(other, default) == "unseen"
    assert evaluate_judging.task_pipeline_name(parse_platforms("none-q90,instagram")) == "none-q90"
    with pytest.raises(ValueError, match="include task"):
        evaluate_judging.task_pipeline_name(parse_platforms("instagram"))


def test_far_end_of_the_scale(tiny_biqa, brisque):
    assert evaluate_baseline.far_end(tiny_biqa) == 0.0
    assert evaluate_baseline.far_end(brisque) == 1000.0  # beyond any BRISQUE score reached


def test_docs_section_is_ours_alone(run, tmp_path):
    _, _, out = run
    text = (out / "benchmarks.md").read_text()
    assert text.startswith("# Benchmarks\n\nhand-written text\n")
    assert (
        text.index(evaluate_tables.BEGIN) < text.index("### tiny") < text.index(evaluate_tables.END)
    )
    for image in ("evaluate_tiny_sheet.jpg", "evaluate_tiny_flat.jpg"):
        assert f"](img/{image})" in text
        assert (out / "img" / image).stat().st_size < 300_000

    docs = tmp_path / "b.md"
    evaluate_tables.update_docs(docs, "one", "first")  # absent: created with a heading
    evaluate_tables.update_docs(docs, "two", "second")
    evaluate_tables.update_docs(docs, "one", "first again")  # replaced in place
    docs.write_text("before\n" + docs.read_text() + "after\n")
    evaluate_tables.update_docs(docs, "two", "second again")
    text = docs.read_text()
    assert text.startswith("before\n# Benchmarks") and text.endswith("after\n")
    assert "first" not in text.replace("first again", "")
    assert text.index("first again") < text.index("second again") < text.index("after")
    assert text.count(evaluate_tables.BEGIN) == text.count(evaluate_tables.END) == 1


def test_command_line_baseline_only(photo_dir, tmp_path, capsys):
    code = evaluate.main(
        [
            *(str(photo_dir / "a.png"), "--model", "brisque", "--methods", "baseline"),
            *("--judge", "task,width320-q60", "--sheet", "0", "--name", "cli"),
            *("--out", str(tmp_path), "--seed", "7", "--platforms", "width320-q60"),
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "evaluate_cli.json").read_text())
    assert report["settings"]["pixcamd"]["seed"] == 7
    assert [p["name"] for p in report["settings"]["pixcamd"]["platforms"]] == ["width320-q60"]
    assert list(report["summary"]) == ["original", "baseline", "ratios"]
    assert report["summary_small"] is None
    # the pipelines pixcamd was told to protect for are the run's default group
    assert [(p["name"], p["group"]) for p in report["harness"]["pipelines"]] == [
        ("task", "preset"),
        ("width320-q60", "default"),
    ]
    assert report["photos"][0]["served"]["width320-q60"] == [320, 240]
    assert report["model"]["fingerprint"].startswith("brisque-live-svr@")
    assert report["settings"]["baseline"]["target"] == 1000.0
    assert report["harness"]["command"].startswith("bench/evaluate.py ")
    assert json.loads(capsys.readouterr().out)["outputs"]["json"].endswith("evaluate_cli.json")
    for bad in ("instagram", "long1600-q75-sharp"):  # no task pipeline; an unknown filter
        with pytest.raises(SystemExit):
            evaluate.main([str(photo_dir / "a.png"), "--judge", bad, "--out", str(tmp_path)])
    with pytest.raises(SystemExit):  # a quality outside 1–100
        evaluate.main([str(photo_dir / "a.png"), "--platforms", "long800-q101"])
    assert "long800-q101" in capsys.readouterr().err


def test_timing_only_runs_are_labelled_everywhere(photo_dir, tiny_biqa, tmp_path):
    model = evaluate.TimingOnly(tiny_biqa, offset=10.0)
    assert model.fingerprint.startswith(tiny_biqa.fingerprint)
    assert "TIMING ONLY" in model.fingerprint
    options = evaluate.Options(methods=("baseline",), sheet=1, judge=parse_platforms("task"))
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
