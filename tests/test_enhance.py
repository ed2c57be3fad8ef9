"""Enhancement mode: the colour filter's guarantees, and protection judged by a real JPEG-90 (the
task's pipeline: these tests are about the filter, not about where photos go)."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from test_daemon_support import (
    events,
    finished,
    ledger_rows,
    make_config,
    no_leaked_threads,  # noqa: F401
    running,
    wait_for,
)
from tinybiqa import synthetic_photo

from pixcamd.cli import main
from pixcamd.commands.progress import summary_line
from pixcamd.enhance import (
    Bounds,
    ColourFilter,
    Enhancer,
    Guards,
    apply_filter,
    describe,
    describe_text,
    identity_knots,
    project_knots,
    tone_curve,
)
from pixcamd.jpeg import Chain
from pixcamd.photo import to_image, to_tensor
from pixcamd.platforms import PRESETS
from pixcamd.protect import Settings, protect
from pixcamd.scoring import score_views
from pixcamd.views import make_views

TASK = (PRESETS["task"],)

# A 512×384 crop BRISQUE puts at 57.0, near its threshold 60: one a colour filter can protect.
NEAR = ("greentock_by_Peter_Nerlich.jpg", (1184, 528))
NEAR_TARGET = 62  # beyond the threshold, well within the filter's reach (it gets to 67)


def judged_after_jpeg90(result, model, views) -> dict[str, float]:
    """Score the output bytes as the task's pipeline + BIQA would, independently of protect()."""
    with Image.open(io.BytesIO(result.output_jpeg)) as f:
        written = f.convert("RGB")
    return judged_as_task(written, model, views)


def judged_as_task(img: Image.Image, model, views) -> dict[str, float]:
    """The real JPEG-90 of ``img`` (the task's pipeline), then every view through ``model``."""
    boxes, batch = make_views(to_tensor(PRESETS["task"].apply(img)), views, model.view_size)
    return {b.label: s for b, s in zip(boxes, score_views(model, batch).tolist(), strict=True)}


@pytest.fixture(scope="module")
def near_crop(corpus_dir):
    name, (left, top) = NEAR
    with Image.open(corpus_dir / "photos" / name) as img:
        return img.convert("RGB").crop((left, top, left + 512, top + 384))


@pytest.fixture(scope="module")
def real_photo(corpus_dir):
    with Image.open(corpus_dir / "photos" / "Wine_by_Jakkub_Mede.jpg") as img:
        img = img.convert("RGB")
        img.thumbnail((1024, 1024))
        return img


# -- the filter -----------------------------------------------------------------------------------


def test_the_identity_filter_changes_nothing():
    photo = to_tensor(synthetic_photo(320, 240, 1))
    out = ColourFilter.identity().apply(photo)
    assert (out - photo).abs().max() < 1e-6  # float rounding only: the same 8-bit values
    assert torch.equal(torch.round(out * 255), torch.round(photo * 255))
    assert torch.equal(tone_curve(photo, identity_knots()), photo)


def test_optimization_starts_at_the_identity(brisque):
    photo = to_tensor(synthetic_photo(640, 480, 2))
    enhancer = Enhancer(photo, [brisque], ("center", "resize"), {"brisque": 80}, Chain())
    assert enhancer.filter().is_identity
    assert torch.equal(enhancer.pixels(), photo)


def test_the_differentiable_curve_is_the_same_function_as_the_fast_one():
    photo = to_tensor(synthetic_photo(320, 240, 4))
    knots = project_knots(identity_knots() + 0.05 * torch.randn(3, 9), Bounds())
    fast = tone_curve(photo, knots)
    slow = tone_curve(photo, knots.clone().requires_grad_(True))
    assert slow.requires_grad and (fast - slow).abs().max() < 1e-6


@pytest.mark.parametrize("grey_levels", [0, 8, 24, 64])
def test_projected_curves_are_monotone_bounded_and_keep_black_and_white(grey_levels):
    bounds = Bounds.for_strength(grey_levels)
    low, high = (s / bounds.pieces for s in bounds.slopes)
    ramp = torch.linspace(0, 1, 1001).view(1, 1, 1, -1).expand(1, 3, 1, -1)
    generator = torch.Generator().manual_seed(grey_levels)
    for _ in range(200):
        noise = torch.randn(3, bounds.pieces + 1, generator=generator) * 0.3
        knots = project_knots(identity_knots() + noise, bounds)
        assert torch.all(knots[:, 0] == 0) and torch.all(knots[:, -1] == 1)
        steps = knots.diff(dim=1)
        assert torch.all(steps >= low - 1e-6) and torch.all(steps <= high + 1e-6)
        assert torch.all((knots - identity_knots()).abs() <= bounds.shift + 1e-6)
        curve = tone_curve(ramp, knots)
        assert torch.all(curve.diff(dim=-1) >= 0)  # monotone everywhere, not only at the knots


def test_the_resize_view_seen_in_the_loop_is_the_filtered_photo_downscaled(real_photo, brisque):
    """The loop never filters the full photo for the resize view; check the shortcut is exact."""
    photo = to_tensor(real_photo)
    enhancer = Enhancer(photo, [brisque], ("resize",), {"brisque": 80}, Chain())
    curves = torch.tensor([[0, 0.15, 0.3, 0.42, 0.55, 0.66, 0.78, 0.9, 1.0]] * 3)
    curves[2] -= torch.tensor([0, 0.02, 0.03, 0.03, 0.03, 0.03, 0.02, 0.01, 0])  # warmer
    with torch.no_grad():
        enhancer.knots.copy_(curves)
        enhancer.contrast.fill_(1.1)
        enhancer.saturation.fill_(1.2)
    in_loop = enhancer.evaluate(backward=False)["brisque"]["resize"]
    filtered = apply_filter(photo, curves, 1.1, 1.2, enhancer.pivot)
    _, batch = make_views(filtered, ("resize",))
    assert in_loop == pytest.approx(float(brisque(batch)[0]), abs=0.05)


def test_every_candidate_is_held_to_the_guards(real_photo, brisque):
    """Whatever the optimizer's state, the filter it hands out looks like an edit a person
    would choose: here a flattening, desaturating, green state and an over-the-top one."""
    photo = to_tensor(real_photo)
    enhancer = Enhancer(photo, [brisque], ("center",), {"brisque": 80}, Chain())
    flat = identity_knots()
    flat[:, 1:-1] = flat[:, 1:-1] * 0.8 + 0.1  # lifted shadows, dimmed highlights
    flat[1] += 0.03 * torch.tensor([0, 1, 1, 1, 1, 1, 1, 1, 0])  # green cast
    garish = project_knots(
        identity_knots() + 0.05 * torch.tensor([0, -1, -1, -1, 0, 1, 1, 1, 0]), Bounds()
    )
    # A flattening edit stays one at any fraction: dropped. An excessive one: scaled back.
    for knots, contrast, saturation, dropped in (
        (flat, 0.95, 0.9, True),
        (garish, 1.25, 1.4, False),
    ):
        with torch.no_grad():
            enhancer.knots.copy_(knots)
            enhancer.contrast.fill_(contrast)
            enhancer.saturation.fill_(saturation)
        out = enhancer.filter().apply(photo)
        numbers = describe(photo, out)
        assert Guards().allow({k: torch.tensor(v) for k, v in numbers.items() if k != "text"})
        assert enhancer.filter().is_identity == dropped


def test_the_filter_is_described_in_words(real_photo):
    photo = to_tensor(real_photo)
    ident = identity_knots()
    assert describe(photo, photo)["text"] == "no visible colour change"

    punchy = describe(photo, apply_filter(photo, ident, 1.2, 1.0, 0.45))
    assert 12 <= punchy["contrast_pct"] <= 25
    assert punchy["text"].startswith(f"+{punchy['contrast_pct']:.0f} % contrast")

    warm = ident.clone()
    warm[0, 1:-1] += 0.04  # red up, blue down in the mid-tones
    warm[2, 1:-1] -= 0.04
    text = describe(photo, apply_filter(photo, warm, 1.0, 1.0, 0.45))["text"]
    assert "warmer" in text and "cooler" not in text


# -- protect() in enhance and auto mode -----------------------------------------------------------


@pytest.fixture(scope="module")
def enhanced(near_crop, brisque):
    settings = Settings(
        mode="enhance", views=("center",), targets={"brisque": NEAR_TARGET}, platforms=TASK
    )
    return protect(near_crop, [brisque], settings)


def test_enhance_protects_a_photo_near_the_threshold_against_brisque(enhanced, near_crop, brisque):
    result = enhanced
    assert result.before["task"]["brisque"]["center"] < brisque.threshold
    assert result.protected and result.mode == "enhance"
    after = judged_after_jpeg90(result, brisque, ("center",))  # the real re-check
    assert after["center"] > brisque.threshold
    assert after == pytest.approx(result.after_jpeg["task"]["brisque"], abs=1e-3)
    assert result.epsilon == 0  # no invisible perturbation: the filter did it
    assert result.image.size == near_crop.size


def test_an_enhancement_is_recorded_well_enough_to_reproduce_and_stays_an_edit(enhanced, near_crop):
    record = enhanced.enhancement
    assert record["description"] != "no visible colour change"
    assert record["description"] == describe_text(record["change"])
    assert Guards().allow({k: torch.tensor(v) for k, v in record["change"].items()})
    again = ColourFilter.from_dict(json.loads(json.dumps(record["filter"])))  # via a report
    pixels = to_image(torch.round(again.apply(to_tensor(near_crop)) * 255) / 255)
    assert pixels.tobytes() == enhanced.image.tobytes()
    json.dumps(enhanced.summary())  # ledger- and report-ready


def test_auto_stops_at_the_filter_when_it_is_enough(enhanced, near_crop, brisque):
    settings = Settings(
        mode="auto", views=("center",), targets={"brisque": NEAR_TARGET}, platforms=TASK
    )
    result = protect(near_crop, [brisque], settings)
    assert result.protected and result.epsilon == 0
    assert result.image.tobytes() == enhanced.image.tobytes()


@pytest.fixture(scope="module")
def hard_photo():
    """Judged far on the good side (89 where the threshold is 50): beyond any guarded filter."""
    return synthetic_photo(640, 480, 103)


def test_enhance_alone_is_reported_unprotected_when_it_falls_short(hard_photo, tiny_biqa):
    settings = Settings(mode="enhance", views=("center",), platforms=TASK)
    result = protect(hard_photo, [tiny_biqa], settings)
    assert result.before["task"]["tiny"]["center"] > tiny_biqa.threshold + 30
    assert not result.protected and result.verdict == "unprotected"
    after = judged_after_jpeg90(result, tiny_biqa, ("center",))
    assert after["center"] > tiny_biqa.threshold
    assert result.steps == 2 * settings.steps  # both rounds, no early stop


def test_auto_adds_the_invisible_perturbation_when_the_filter_falls_short(hard_photo, tiny_biqa):
    settings = Settings(mode="auto", views=("center",), platforms=TASK)
    result = protect(hard_photo, [tiny_biqa], settings)
    assert result.protected and result.mode == "auto"
    after = judged_after_jpeg90(result, tiny_biqa, ("center",))
    assert after["center"] <= tiny_biqa.threshold
    assert result.epsilon > 0 and result.enhancement is not None
    assert result.steps > 2 * settings.steps  # the filter's rounds, then the perturbation's
    # the filter found here moves the score the wrong way (docs/protection.md: 88.96 → 90.8):
    # it is left out, said so, and the copy is the invisible perturbation of the original
    alone = protect(hard_photo, [tiny_biqa], replace(settings, mode="enhance"))
    assert alone.worst["score"] > result.before["task"]["tiny"]["center"]
    assert result.enhancement["description"].startswith("none (the filter found, ")
    assert alone.enhancement["description"] in result.enhancement["description"]
    assert ColourFilter.from_dict(result.enhancement["filter"]).is_identity
    plain = protect(hard_photo, [tiny_biqa], replace(settings, mode="invisible"))
    assert result.image.tobytes() == plain.image.tobytes()
    assert result.psnr > alone.psnr + 5
    # the summary line says which of the two protected the copy
    line = summary_line({**result.summary(), "path": "hard.png"})
    assert f"; then the invisible change, ε {result.epsilon:g}; PSNR" in line


def test_zero_strength_auto_is_the_invisible_mode(hard_photo, tiny_biqa):
    common = dict(views=("center",), platforms=TASK)
    auto = protect(hard_photo, [tiny_biqa], Settings(mode="auto", enhance_strength=0, **common))
    plain = protect(hard_photo, [tiny_biqa], Settings(**common))
    assert auto.enhancement["description"] == "no visible colour change"
    assert auto.image.tobytes() == plain.image.tobytes()


def test_an_unknown_mode_is_refused(brisque):
    with pytest.raises(ValueError, match="unknown mode 'vivid'"):
        protect(synthetic_photo(640, 480, 3), [brisque], Settings(mode="vivid"))


# -- the command ----------------------------------------------------------------------------------


def test_protect_command_in_enhance_mode_writes_a_protected_file(
    near_crop, brisque, tmp_path, capsys
):
    source, target = tmp_path / "near.png", tmp_path / "out" / "near.jpg"
    near_crop.save(source)  # lossless: the very pixels the other tests protect
    target.parent.mkdir()
    options = [
        "--model",
        "brisque",
        "--mode",
        "enhance",
        "--views",
        "center",
        "--platforms",
        "task",
    ]
    options += ["--target", str(NEAR_TARGET)]
    code = main(["protect", str(source), "-o", str(target), *options, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out.splitlines()[0])
    assert report["verdict"] == "protected" and report["mode"] == "enhance"
    assert report["file_check"]["task"]["brisque"]["center"] > brisque.threshold
    assert f"filter: {report['enhancement']['description']}" in captured.err
    with Image.open(target) as written:
        rejudged = judged_as_task(written.convert("RGB"), brisque, ("center",))
    assert rejudged["center"] > brisque.threshold


# -- the daemon -----------------------------------------------------------------------------------


def test_the_daemon_records_the_filter_in_words_and_parameters(tmp_path, near_crop, brisque):
    config = make_config(tmp_path, mode="enhance", target=NEAR_TARGET)
    near_crop.save(config.inbox / "near.png")
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["near.png"]), 120, "the photo")
    row = ledger_rows(config)["near.png"]
    assert row["state"] == "done" and row["verdict"] == "protected"
    report = json.loads(row["report"])
    assert report["mode"] == "enhance" and report["epsilon"] == 0
    description = report["enhancement"]["description"]
    assert len(report["enhancement"]["filter"]["knots"]) == 3
    protected = [e for e in events(config) if e["event"] == "protected"]
    assert protected[0]["filter"] == description
    assert f"filter: {description}" in protected[0]["message"]
    with Image.open(config.outbox / "near.jpg") as written:
        rejudged = judged_as_task(written.convert("RGB"), brisque, ("center",))
    assert rejudged["center"] > brisque.threshold


def test_a_black_and_white_photo_is_never_tinted(hard_photo, tiny_biqa):
    """One tone curve for R, G and B: the filter edits a B&W photo's tones, never its colour."""
    grey = hard_photo.convert("L")
    result = protect(grey, [tiny_biqa], Settings(mode="enhance", views=("center",), platforms=TASK))
    curves = result.enhancement["filter"]["knots"]
    assert curves[0] == curves[1] == curves[2]
    assert curves[0] != pytest.approx(identity_knots(len(curves[0]) - 1)[0].tolist())  # an edit
    pixels = np.asarray(result.image).astype(int)
    assert np.array_equal(pixels[..., 0], pixels[..., 1])
    assert np.array_equal(pixels[..., 1], pixels[..., 2])
