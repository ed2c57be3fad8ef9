"""``protect()`` on real pixels, judged by each platform pipeline's real Pillow resize and JPEG of
the encoded output (most tests: the task's pipeline only, Pillow JPEG-90 at full size)."""

from __future__ import annotations

import io
import json
import threading
from dataclasses import replace

import kornia
import numpy as np
import pytest
import torch
from PIL import Image
from tinybiqa import synthetic_photo

from pixcamd.check import psnr_ssim
from pixcamd.photo import to_tensor
from pixcamd.platform_specs import parse_platforms
from pixcamd.platforms import PRESETS
from pixcamd.protect import Settings, protect
from pixcamd.scoring import score_image, score_views
from pixcamd.views import make_views

TASK = (PRESETS["task"],)  # the task's own pipeline: what these tests are about, and fast


def judged_after(result, model, views, pipeline=PRESETS["task"]) -> dict[str, float]:
    """Score the output bytes as the pipeline + BIQA would, independently of protect()."""
    with Image.open(io.BytesIO(result.output_jpeg)) as f:
        assert f.format == "JPEG"
        written = f.convert("RGB")
    boxes, batch = make_views(to_tensor(pipeline.apply(written)), views, model.view_size)
    return {b.label: s for b, s in zip(boxes, score_views(model, batch).tolist(), strict=True)}


def judged_after_jpeg90(result, model, views) -> dict[str, float]:
    return judged_after(result, model, views, PRESETS["task"])


@pytest.fixture(scope="module")
def dragonfly_crop(corpus_dir):
    with Image.open(corpus_dir / "photos" / "Dragonfly_by_Bolly.jpg") as img:
        left, top = (img.width - 1024) // 2, (img.height - 768) // 2
        return img.convert("RGB").crop((left, top, left + 1024, top + 768))


def test_protects_a_real_photo_against_brisque(dragonfly_crop, brisque):
    views = ("center", "resize")
    (task,) = score_image(dragonfly_crop, brisque, views, TASK).platforms
    before = {v.view: v.score for v in task.views}
    assert all(s < brisque.threshold for s in before.values())  # judged good to start with
    result = protect(dragonfly_crop, [brisque], Settings(views=views, platforms=TASK))
    assert result.protected and result.verdict == "protected"
    assert result.image.size == dragonfly_crop.size
    after = judged_after_jpeg90(result, brisque, views)
    assert all(s > brisque.threshold for s in after.values()), after
    assert after == pytest.approx(result.after_jpeg["task"]["brisque"], abs=1e-3)
    assert result.psnr > 36 and result.ssim > 0.95
    assert result.linf <= round(result.epsilon) + 1
    changed = np.asarray(result.image, dtype=int) - np.asarray(dragonfly_crop, dtype=int)
    assert result.linf == np.abs(changed).max() > 0


def test_the_reported_ssim_and_psnr_are_the_standard_ones(dragonfly_crop):
    """The report's figures, computed in strips for memory, against one pass of kornia's SSIM
    and the PSNR formula over the whole photo and a real JPEG-80 copy of it."""
    buffer = io.BytesIO()
    dragonfly_crop.save(buffer, "JPEG", quality=80)
    copy = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    a, b = to_tensor(dragonfly_crop), to_tensor(copy)
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    luma_a, luma_b = (a * weights).sum(1, keepdim=True), (b * weights).sum(1, keepdim=True)
    expected_ssim = float(kornia.metrics.ssim(luma_a, luma_b, 11).mean())
    expected_psnr = float(-10 * torch.log10(torch.mean((a - b) ** 2)))
    psnr, ssim = psnr_ssim(dragonfly_crop, copy, rows=200)  # four strips and a remainder
    assert psnr == pytest.approx(expected_psnr, abs=1e-4)
    assert ssim == pytest.approx(expected_ssim, abs=1e-6)
    assert 0.9 < ssim < 0.999  # a real difference was measured


def test_protects_against_a_trained_network(tiny_biqa):
    photo = synthetic_photo(1024, 768, 103)
    result = protect(photo, [tiny_biqa], Settings(views=("center",), platforms=TASK))
    assert result.before["task"]["tiny"]["center"] > 50
    assert result.protected
    after = judged_after_jpeg90(result, tiny_biqa, ("center",))
    assert after["center"] <= 50
    assert result.image.size == photo.size
    assert result.psnr > 30


def test_several_models_must_all_agree(tiny_biqa, brisque):
    photo = synthetic_photo(640, 480, 104)
    settings = Settings(views=("center",), platforms=TASK, epsilon_cap=12 / 255)
    result = protect(photo, [tiny_biqa, brisque], settings)
    assert set(result.after_jpeg["task"]) == {"tiny", "brisque"}
    verdicts = [
        judged_after_jpeg90(result, tiny_biqa, ("center",))["center"] <= 50,
        judged_after_jpeg90(result, brisque, ("center",))["center"] >= brisque.threshold,
    ]
    assert result.protected == all(verdicts)
    assert result.protected


def test_zero_budget_reports_unprotected_and_changes_nothing(tiny_biqa):
    photo = synthetic_photo(640, 480, 7)
    settings = Settings(views=("center",), epsilon=0.0, epsilon_cap=0.0, platforms=TASK)
    result = protect(photo, [tiny_biqa], settings)
    assert result.before["task"]["tiny"]["center"] > 50  # it had work to do
    assert not result.protected and result.verdict == "unprotected"
    assert np.array_equal(np.asarray(result.image), np.asarray(photo))
    assert result.steps == 0 and result.linf == 0


def test_same_seed_same_output(tiny_biqa):
    photo = synthetic_photo(640, 480, 11)
    settings = Settings(views=("center",), steps=6, epsilon_cap=4 / 255, platforms=TASK)
    first = protect(photo, [tiny_biqa], settings)
    second = protect(photo, [tiny_biqa], settings)
    assert first.output_jpeg == second.output_jpeg
    other = protect(photo, [tiny_biqa], Settings(**{**settings.__dict__, "seed": 1}))
    assert other.output_jpeg != first.output_jpeg


def test_a_photo_already_judged_low_passes_through_untouched(brisque):
    # at the view's size, noise scores about 85 on both views: past the target (80), untouched
    noisy = np.random.default_rng(0).integers(0, 256, (384, 512, 3), dtype=np.uint8)
    photo = Image.fromarray(noisy, "RGB")
    result = protect(photo, [brisque], Settings(platforms=TASK))
    assert result.untouched and result.protected and result.margin_met
    assert result.verdict == "already low quality"
    assert result.steps == 0
    assert np.array_equal(np.asarray(result.image), noisy)
    # larger, its whole-photo view is smoothed to 67: low, short of the target (80), so the
    # search tries; it cannot widen that margin, and the photo is kept as it was
    noisy = np.random.default_rng(0).integers(0, 256, (500, 700, 3), dtype=np.uint8)
    result = protect(Image.fromarray(noisy, "RGB"), [brisque], Settings(platforms=TASK))
    assert result.untouched and result.protected and not result.margin_met
    assert result.verdict == "already low quality" and result.steps > 0
    assert np.array_equal(np.asarray(result.image), noisy)


def test_small_photos_are_protected_at_their_own_size(brisque):
    photo = synthetic_photo(300, 200, 12)
    result = protect(photo, [brisque], Settings(platforms=TASK))
    assert result.image.size == (300, 200)
    assert result.protected


def test_the_schedule_escalates_after_one_round_at_the_base_budget():
    levels = [round(e * 255, 6) for e in Settings().schedule()]
    assert levels == [6, 9, 12]  # the defaults: EPSILON, ×1.5, EPSILON_CAP
    custom = Settings(epsilon=4 / 255, epsilon_cap=10 / 255).schedule()
    assert [round(e * 255, 6) for e in custom] == [4, 6, 9, 10]  # the cap ends it, never passed
    assert Settings(epsilon=8 / 255, epsilon_cap=8 / 255).schedule() == [8 / 255]


def test_escalation_is_reported_honestly(tiny_biqa):
    photo = synthetic_photo(640, 480, 13)
    hard = Settings(views=("center",), steps=2, targets={"tiny": 0.5}, platforms=TASK)
    result = protect(photo, [tiny_biqa], hard)
    # 6, 9, 12, then 12 again without the fade (the last chance of a photo still unprotected)
    rounds = [round(e * 255, 6) for e in hard.schedule()] + [12.0]
    assert not result.margin_met  # the target is out of reach
    if result.protected:  # escalation stops at the round that protected the photo
        ends = [2 * (k + 1) for k, e in enumerate(rounds) if e == pytest.approx(result.epsilon)]
        assert result.steps in ends, (result.steps, result.epsilon)
    else:  # never protected: every round ran, up to the cap, and the cap is what it says
        assert result.epsilon == pytest.approx(12.0)
        assert result.steps == 2 * len(rounds)
    assert result.protected == all(s <= 50 for s in result.after_jpeg["task"]["tiny"].values())


def test_a_photo_unprotected_at_the_cap_gets_one_more_round_there_without_the_fade(
    tiny_biqa, monkeypatch
):
    """The fade trades a little of the steps' reach for invisibility: where the faded rounds
    could not protect a photo, a last round at the cap runs without it."""
    from pixcamd.optimizer import Attack

    rounds = []
    monkeypatch.setattr(
        Attack, "run", lambda self, eps, steps, on_step, fade=None: rounds.append((eps, fade))
    )
    photo = synthetic_photo(640, 480, 13)
    result = protect(photo, [tiny_biqa], Settings(views=("center",), platforms=TASK))
    assert not result.protected  # no round moved a pixel
    assert [(round(e * 255, 6), fade) for e, fade in rounds] == [
        (6, None),
        (9, None),
        (12, None),
        (12, 0.0),
    ]


def test_a_round_is_judged_where_it_ends_before_the_budget_grows(tiny_biqa, monkeypatch):
    """The loop may never call a check in a round (its aims lie past the verdict); the real
    check then judges where the round ended, and a photo protected there keeps that round's ε
    instead of escalating to a more visible one."""
    from pixcamd.optimizer import Attack

    monkeypatch.setattr(Attack, "low", lambda self: False)  # the loop never calls a check
    photo = synthetic_photo(640, 480, 13)
    settings = Settings(views=("center",), steps=12, targets={"tiny": 0.5}, platforms=TASK)
    result = protect(photo, [tiny_biqa], settings)
    assert result.protected and not result.margin_met  # the target is out of reach
    # one check where each round ended, and the rounds stopped at the first one found
    # protected there (which one depends on the tiny model trained on this machine)
    rounds = result.checks
    assert 1 <= rounds < len(settings.schedule()) + 1  # the last, unfaded round not needed
    assert result.steps == 12 * rounds
    assert result.epsilon == pytest.approx(settings.schedule()[rounds - 1] * 255)


def test_a_round_whose_budget_falls_short_ends_early_and_the_budget_grows(tiny_biqa, monkeypatch):
    """A budget far too small for the photo: the loop's scores stay flat, their trend says the
    round cannot protect it, so each round but the last ends early and the next, larger budget
    starts; the last round (nothing left to escalate to) runs in full."""
    from pixcamd.optimizer import TREND_SPAN, Attack

    ran, run = [], Attack.run

    def spy(self, epsilon, steps, on_step=None, **kwargs):
        first = self.step
        run(self, epsilon, steps, on_step, **kwargs)
        ran.append((round(epsilon * 255, 6), self.step - first))

    monkeypatch.setattr(Attack, "run", spy)
    photo = synthetic_photo(640, 480, 13)
    tiny = dict(views=("center",), platforms=TASK, epsilon=0.25 / 255, epsilon_cap=0.5 / 255)
    result = protect(photo, [tiny_biqa], Settings(**tiny))
    assert not result.protected
    budgets = [round(e * 255, 6) for e in Settings(**tiny).schedule()] + [0.5]  # + unfaded
    assert [eps for eps, _ in ran] == budgets
    *early, last = [steps for _, steps in ran]
    assert all(TREND_SPAN < steps < 40 for steps in early), ran
    assert last == 40
    assert result.steps == sum(steps for _, steps in ran)

    ran.clear()  # the same photo without it: every round runs its 40 steps
    patient = protect(photo, [tiny_biqa], Settings(early_escalation=False, **tiny))
    assert not patient.protected and [steps for _, steps in ran] == [40] * len(budgets)


def test_the_result_says_whether_the_first_check_the_loop_called_for_found_it_protected(
    tiny_biqa, monkeypatch
):
    """How well the loop's estimate agrees with the real pipelines: the first real check it
    calls for (every view low, or every target met, in the loop) — here before any round ended."""
    import pixcamd.check
    import pixcamd.protect
    import pixcamd.search

    verdicts, check = [], pixcamd.check.check_output

    def spy(*args, **kwargs):
        encoded, result = check(*args, **kwargs)
        verdicts.append(result.all_low)
        return encoded, result

    for module in (pixcamd.protect, pixcamd.search):  # the original's check; the search's
        monkeypatch.setattr(module, "check_output", spy)
    photo = synthetic_photo(640, 480, 13)
    wide = Settings(views=("center",), platforms=TASK, epsilon=12 / 255, epsilon_cap=12 / 255)
    result = protect(photo, [tiny_biqa], wide)
    assert result.protected and result.steps < wide.steps  # within the first round
    assert verdicts[0] is False  # the original, judged before the search
    assert result.checks == len(verdicts) - 1
    assert result.first_check_protected is verdicts[1]


def test_once_protected_the_margin_is_sought_for_a_bounded_number_of_steps(tiny_biqa):
    """A margin out of reach does not cost a whole round, nor a larger ε, once the real check
    finds the photo protected: ``polish_steps`` more steps, then the best protected candidate."""
    photo = synthetic_photo(640, 480, 13)
    # no PSNR floor: this is about the number of steps alone
    base = dict(views=("center",), targets={"tiny": 0.5}, platforms=TASK, polish_floor=0)
    short = protect(photo, [tiny_biqa], Settings(polish_steps=2, **base))
    long = protect(photo, [tiny_biqa], Settings(polish_steps=25, **base))
    for result in (short, long):
        assert result.protected and not result.margin_met
        assert result.checks >= 2  # the one that found protection, the one that ended it
    # the same seed walks the same path: the longer polish ran on from the same first step,
    # within the same round (no escalation once protected)
    assert long.epsilon == short.epsilon
    end_of_round = -(-short.steps // Settings().steps) * Settings().steps
    assert short.steps < end_of_round
    assert long.steps == min(short.steps + 23, end_of_round)
    assert max(long.after_jpeg["task"]["tiny"].values()) <= max(
        short.after_jpeg["task"]["tiny"].values()
    )


def test_the_polish_never_buys_margin_below_its_psnr_floor(tiny_biqa):
    """Protection first, whatever it costs; the margin after it only while the copy stays at or
    above ``polish_floor`` dB: the polish ends where the loop's change crosses the floor, and a
    candidate below it never replaces a kept one above it."""
    photo = synthetic_photo(640, 480, 13)
    base = dict(views=("center",), targets={"tiny": 0.5}, platforms=TASK, polish_steps=25)
    free = protect(photo, [tiny_biqa], Settings(polish_floor=0, **base))
    # an unreachable floor: the first protected candidate is kept, one step later the polish ends
    first = protect(photo, [tiny_biqa], Settings(polish_floor=99, **base))
    assert free.protected and first.protected
    assert first.steps < free.steps and first.checks < free.checks
    assert first.psnr > free.psnr  # the margin the polish bought cost invisibility
    between = (first.psnr + free.psnr) / 2
    held = protect(photo, [tiny_biqa], Settings(polish_floor=between, **base))
    assert held.protected and held.psnr >= between
    assert first.steps <= held.steps < free.steps
    assert psnr_ssim(photo, Image.open(io.BytesIO(held.output_jpeg)))[0] == held.psnr
    # a colour filter changes the photo visibly by design: no floor for it
    look = dict(mode="enhance", views=("center",), platforms=TASK, steps=6)
    assert (
        protect(photo, [tiny_biqa], Settings(polish_floor=99, **look)).steps
        == protect(photo, [tiny_biqa], Settings(polish_floor=0, **look)).steps
    )


def test_a_copy_below_the_floor_is_drawn_to_it_while_the_verdict_holds(dragonfly_crop, brisque):
    """Protection lands where it lands; when that is below ``polish_floor`` dB, the same change
    is drawn toward the photo up to the floor and kept if the real check still finds it
    protected — else halfway, else the copy as it was."""
    views = ("center", "resize")
    base = dict(views=views, platforms=TASK)
    first = protect(dragonfly_crop, [brisque], Settings(polish_floor=99, **base))  # kept as is
    assert first.protected and first.psnr < 99
    floor = first.psnr + 0.05
    drawn = protect(dragonfly_crop, [brisque], Settings(polish_floor=floor, **base))
    assert drawn.protected and drawn.steps == first.steps  # the same search, then the draw
    assert drawn.checks == first.checks + 1
    assert floor <= drawn.psnr < floor + 0.2
    assert drawn.linf <= first.linf  # drawn toward the photo, never past the change made
    after = judged_after_jpeg90(drawn, brisque, views)  # the written file, judged afresh
    assert all(s > brisque.threshold for s in after.values()), after
    # a floor the verdict does not hold at, nor halfway to it: the protected copy as it was
    far = protect(dragonfly_crop, [brisque], Settings(polish_floor=first.psnr + 2, **base))
    assert far.protected and far.checks == first.checks + 2
    assert far.output_jpeg == first.output_jpeg and far.psnr == first.psnr


def test_results_are_recorded_per_pipeline(tiny_biqa):
    """Each pipeline's served size, scores before and after, its own verdict and the worst one,
    and the after scores agree with an independent judgement of the output bytes."""
    photo = synthetic_photo(1600, 1200, 14)
    pipelines = parse_platforms("task,width1080-q80,scale0.5-q85-bicubic,long2048-q85")
    settings = Settings(views=("center", "resize"), steps=3, platforms=pipelines)
    result = protect(photo, [tiny_biqa], settings)
    names = ["task", "width1080-q80", "scale0.5-q85-bicubic", "long2048-q85"]
    assert [p["name"] for p in result.platforms] == names
    assert [p["spec"] for p in result.platforms] == ["none-q90", *names[1:]]
    served = {p["name"]: tuple(p["served"]) for p in result.platforms}
    # long side 2048 is larger than the photo: served at its own size, never enlarged
    assert served == {
        "task": (1600, 1200),
        "width1080-q80": (1080, 810),
        "scale0.5-q85-bicubic": (800, 600),
        "long2048-q85": (1600, 1200),
    }
    assert "width 1080 px" in result.platforms[1]["description"]
    for scores in (result.before, result.after_jpeg):
        assert list(scores) == names
        assert all(set(per_model["tiny"]) == {"center", "resize"} for per_model in scores.values())
    assert set(result.after["tiny"]) == {"center", "resize"}  # the pixels, no pipeline
    for pipeline in pipelines:
        after = result.after_jpeg[pipeline.name]["tiny"]
        assert after == pytest.approx(
            judged_after(result, tiny_biqa, ("center", "resize"), pipeline), abs=1e-3
        )
        assert result.protected_on[pipeline.name] == all(s <= 50 for s in after.values())
    assert result.protected == all(result.protected_on.values())
    every = [
        (p, v, s)
        for p, per_model in result.after_jpeg.items()
        for v, s in per_model["tiny"].items()
    ]
    pipeline, view, score = max(every, key=lambda r: r[2])  # tiny: higher is better
    assert result.worst["pipeline"] == pipeline and result.worst["view"] == view
    assert result.worst["model"] == "tiny" and result.worst["score"] == pytest.approx(score)
    assert result.worst["good_by"] == pytest.approx(score - tiny_biqa.threshold)
    if result.first_check_passed is not None:  # a check the loop called for ran
        assert result.checks >= 1
    summary = json.loads(json.dumps(result.summary()))  # report- and ledger-ready
    assert summary["protected_on"] == result.protected_on
    assert summary["platforms"][2]["served"] == [800, 600]


def test_targets_on_the_wrong_side_are_refused(brisque):
    with pytest.raises(ValueError, match="good-quality side"):
        protect(synthetic_photo(640, 480, 1), [brisque], Settings(targets={"brisque": 20.0}))


def test_views_side_by_side_give_the_same_copy_to_the_bit(corpus_dir, brisque, monkeypatch):
    """On the CPU a step's small views and a check's pipelines run on two threads: the copy, its
    steps and every score are those of one after the other, and the threads are really used."""
    with Image.open(corpus_dir / "photos" / "Dragonfly_by_Bolly.jpg") as img:
        left, top = (img.width - 1800) // 2, (img.height - 1350) // 2
        photo = img.convert("RGB").crop((left, top, left + 1800, top + 1350))  # 2 downscales
    threads: set[str] = set()
    forward = brisque.forward

    def recorded(views):
        threads.add(threading.current_thread().name.split("_")[0])
        return forward(views)

    monkeypatch.setattr(brisque, "forward", recorded)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        base = dict(steps=4, epsilon_cap=6 / 255)  # one round, then the unfaded one at the cap
        one = protect(photo, [brisque], Settings(workers=1, **base))
        alone = set(threads)
        threads.clear()
        two = protect(photo, [brisque], Settings(workers=2, **base))
    finally:
        torch.set_num_threads(before)
    assert alone == {threading.current_thread().name.split("_")[0]}
    assert {"pixcamd-view", "pixcamd-check"} <= threads
    assert two.output_jpeg == one.output_jpeg
    assert (two.steps, two.checks, two.epsilon) == (one.steps, one.checks, one.epsilon)
    assert two.before == one.before and two.after_jpeg == one.after_jpeg


def test_the_same_pipelines_and_views_named_in_another_order_make_the_same_copy(brisque):
    # a folder run or the daemon takes a reordered list for the same settings: it must be
    photo = synthetic_photo(800, 600, 5)
    given = Settings(views=("center", "resize"), steps=4, polish_steps=2)
    first = protect(
        photo, [brisque], replace(given, platforms=parse_platforms("task,width700-q75,instagram"))
    )
    again = protect(
        photo,
        [brisque],
        replace(
            given,
            views=("resize", "center"),
            platforms=parse_platforms("instagram,width700-q75,task"),
        ),
    )
    assert first.steps == again.steps > 0
    assert first.output_jpeg == again.output_jpeg
    assert [p["name"] for p in again.platforms] == ["instagram", "width700-q75", "task"]  # as given
