"""The optimizer's view of each platform pipeline, against the real pipeline (Pillow)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from tinybiqa import synthetic_photo

import pixcamd.optimizer
from pixcamd.budget import perceptual_mask
from pixcamd.check import judge
from pixcamd.jpeg import Chain
from pixcamd.optimizer import FADE, STEP_CLIP, Attack
from pixcamd.photo import to_tensor
from pixcamd.pipeline_views import (
    DownscaledCrop,
    NativeCrop,
    NativeFit,
    Whole,
    plan_loop_views,
    straight_through_resize,
)
from pixcamd.platform_specs import parse_platforms
from pixcamd.platforms import DEFAULT_PLATFORMS, PRESETS
from pixcamd.views import make_views, plan_views


@pytest.fixture(scope="module")
def photo(corpus_dir) -> Image.Image:
    """A 2400×1800 piece of a real photo: real texture, sky and edges, quick to process."""
    with Image.open(corpus_dir / "photos" / "sunset_by_Aitzol_Berasategi.jpg") as img:
        left, top = (img.width - 2400) // 2, (img.height - 1800) // 2
        return img.convert("RGB").crop((left, top, left + 2400, top + 1800))


def pushed(photo: Image.Image, brisque, platforms, views=("center",), **options) -> Attack:
    """An attack on ``photo`` seen through ``platforms``, aiming BRISQUE at 200 (beyond any score
    reached, so every step moves δ)."""
    return Attack(
        to_tensor(photo),
        [brisque],
        views,
        {"brisque": 200.0},
        Chain(),
        platforms=platforms,
        **options,
    )


@pytest.mark.parametrize(
    "spec", ["long1600-q80", "width1080-q75-bicubic", "scale0.37-q85-bilinear"]
)
def test_the_loops_resize_is_pillows_on_the_region_it_reads(photo, spec):
    """The forward value of a downscaled crop is Pillow's resize of the whole photo, cut — from
    only the native region the loop view declares (so gradients land where they belong)."""
    pipeline = parse_platforms(spec)[0]
    served = pipeline.output_size(*photo.size)
    full = np.asarray(photo.resize(served, Image.Resampling[pipeline.filter.upper()]))
    views = plan_loop_views(*photo.size, ("center",), (pipeline,))
    (view,) = views
    assert isinstance(view, DownscaledCrop)
    x0, y0, x1, y1 = view.region
    region = to_tensor(photo)[..., y0:y1, x0:x1]
    scale = (photo.width / served[0], photo.height / served[1])
    out = straight_through_resize(region, (x0, y0), view.window, scale, pipeline.filter)
    got = np.asarray(out.squeeze(0).permute(1, 2, 0).mul(255).round().byte())
    left, top, right, bottom = view.window
    want = full[top:bottom, left:right].astype(int)
    assert got.shape == want.shape
    diff = np.abs(got.astype(int) - want)
    assert diff.max() <= 1 and diff.mean() < 0.01  # float box coordinates: at most a rounding


def test_every_pipeline_and_view_is_modelled_once(photo):
    pipelines = parse_platforms([*DEFAULT_PLATFORMS, "long4000-q70", "scale0.2-q80"])
    views = ("center", "resize", "tiles")
    planned = plan_loop_views(*photo.size, views, pipelines)
    pairs = [pair for v in planned for pair in v.stands_for]
    assert len(pairs) == len(set(pairs))
    expected = set()
    for p in pipelines:
        served = p.output_size(*photo.size)
        image = Image.new("RGB", served)
        boxes, _ = make_views(to_tensor(image), views)
        expected |= {(p.name, b.label) for b in boxes}
    assert set(pairs) == expected
    kinds = {type(v) for v in planned}
    # task and long4000 (larger than the photo) are native; the others downscale; scale 0.2
    # serves 480×360, smaller than the view: the whole photo, enlarged as the check does.
    assert {NativeCrop, NativeFit, DownscaledCrop, Whole} <= kinds
    # One fit of the native photo serves the pipelines that do not resize it (web's 2560 px is
    # more than this photo's); each downscaling
    # pipeline's fit is its own (its resize and JPEG shape what the fit sees: instagram's JPEG 80
    # at 1080 px took 20 BRISQUE points off a fit that the native one put at 99).
    (fit,) = [v for v in planned if isinstance(v, NativeFit)]
    assert set(fit.stands_for) == {
        ("task", "resize"),
        ("web", "resize"),
        ("long4000-q70", "resize"),
    }
    for p in pipelines:
        if p.output_size(*photo.size) != photo.size:
            (own,) = [v for v in planned if (p.name, "resize") in v.stands_for]
            assert isinstance(own, Whole) and own.stands_for == [(p.name, "resize")]


def test_a_photo_smaller_than_every_pipeline_is_never_downscaled():
    pipelines = parse_platforms(DEFAULT_PLATFORMS)
    planned = plan_loop_views(640, 480, ("center", "resize"), pipelines)
    assert not any(isinstance(v, DownscaledCrop) for v in planned)
    for p in pipelines:
        assert p.output_size(640, 480) == (640, 480)


def test_web_costs_nothing_on_a_photo_it_does_not_shrink():
    """`web` (long side 2560, JPEG 90) serves a photo of at most 2560 px as `task` does: the loop
    plans no view of its own for it, and one view stands for both; on a larger photo it is a
    downscale of its own, the two views the default set adds."""
    without = parse_platforms([n for n in DEFAULT_PLATFORMS if n != "web"])
    with_web = parse_platforms(DEFAULT_PLATFORMS)
    views = ("center", "resize")
    for size in [(2560, 1600), (1920, 2560), (1024, 768)]:
        planned = plan_loop_views(*size, views, with_web)
        assert [v.label for v in planned] == [
            v.label for v in plan_loop_views(*size, views, without)
        ]
        for view in ("center", "resize"):
            (shared,) = [v for v in planned if ("web", view) in v.stands_for]
            assert ("task", view) in shared.stands_for
        assert PRESETS["web"].serving(*size) == PRESETS["task"].serving(*size)
    planned = plan_loop_views(5312, 2988, views, with_web)
    assert len(planned) == len(plan_loop_views(5312, 2988, views, without)) + 2
    (crop,) = [v for v in planned if v.stands_for == [("web", "center")]]
    assert isinstance(crop, DownscaledCrop)
    assert PRESETS["web"].output_size(5312, 2988) == (2560, 1440)


def test_in_loop_scores_agree_with_the_real_pipelines(photo, brisque):
    """Unperturbed, each loop view scores what the check scores on the real pipeline's output,
    up to our own output encoding (JPEG 95 4:4:4, which the loop leaves out under a downscale)."""
    pipelines = parse_platforms(DEFAULT_PLATFORMS)
    views = ("center", "resize")
    attack = Attack(
        to_tensor(photo), [brisque], views, {"brisque": 80.0}, Chain(), platforms=pipelines
    )
    loop = attack.evaluate(backward=False)["brisque"]
    real = judge(Image.open(_as_output(photo)), [brisque], views, pipelines).scores
    compared = {}
    for view in attack.loop_views:
        for pipeline, label in view.stands_for:
            compared[view.label, pipeline] = (loop[view.label], real[pipeline]["brisque"][label])
    print(compared)
    for (label, pipeline), (in_loop, checked) in compared.items():
        # The native fit leaves out the task's JPEG, which its downscale mostly averages away,
        # and a downscaling pipeline's fit our own JPEG 95 (measured: within 3 BRISQUE points
        # here); crops agree closely.
        tolerance = 3.0 if label.endswith("resize") else 1.0
        assert in_loop == pytest.approx(checked, abs=tolerance), (label, pipeline)


def test_a_photo_up_to_1_mp_is_fitted_through_each_pipelines_jpeg(photo, brisque):
    """A 1024-px photo: no default pipeline downscales it, and its fit (2×) still shows their
    JPEG — one fit per JPEG quality (task, bluesky and web all serve it at full size in JPEG 90:
    one view stands for the three), scoring in the loop what the check scores."""
    small = photo.resize((1024, 768), Image.Resampling.LANCZOS)
    pipelines = parse_platforms(DEFAULT_PLATFORMS)
    views = ("center", "resize")
    attack = Attack(
        to_tensor(small), [brisque], views, {"brisque": 80.0}, Chain(), platforms=pipelines
    )
    fits = [v for v in attack.loop_views if isinstance(v, NativeFit)]
    assert sorted(pair for v in fits for pair in v.stands_for) == sorted(
        (p.name, "resize") for p in pipelines
    )
    quality = {p.name: p.quality for p in pipelines}
    assert sorted(sorted(quality[name] for name, _ in v.stands_for) for v in fits) == [
        [75],
        [80],
        [85],
        [90, 90, 90],
    ]
    loop = attack.evaluate(backward=False)["brisque"]
    real = judge(Image.open(_as_output(small)), [brisque], views, pipelines).scores
    for view in fits:
        for pipeline, label in view.stands_for:
            assert loop[view.label] == pytest.approx(real[pipeline]["brisque"][label], abs=0.5)
    # the qualities differ enough to matter: the fits do not all score alike
    assert max(loop[v.label] for v in fits) - min(loop[v.label] for v in fits) > 1.0


@pytest.mark.parametrize(
    "spec",
    [
        "crop1:1-long1080-q80",
        "width1080-crop3:4-q80",
        "crop4:5-q85",
        "crop16:9-width1280-q80-bicubic",
    ],
)
def test_a_crop_to_another_aspect_is_seen_in_the_loop_as_the_check_serves_it(photo, spec):
    """A cropping pipeline's views read only the native box it serves: its centre crop renders
    the real pipeline's pixels (a crop after the resize lands up to a fraction of a native
    pixel off the box the loop resizes); its fit leaves out our own JPEG 95, as every fit."""
    (pipeline,) = parse_platforms(spec)
    real = to_tensor(pipeline.apply(Image.open(_as_output(photo)).convert("RGB")))
    boxes, batch = make_views(real, ("center", "resize"))
    planned = plan_loop_views(*photo.size, ("center", "resize"), (pipeline,))
    assert sorted(p for v in planned for p in v.stands_for) == sorted(
        (spec, b.label) for b in boxes
    )
    (left, top, w, h), _ = pipeline.geometry(*photo.size)
    source = to_tensor(photo)
    for view in planned:
        a, b, c, d = view.footprint  # what moves for it lies in the crop
        assert left <= a < c <= left + w and top <= b < d <= top + h, view
        x0, y0, x1, y1 = view.region
        with torch.no_grad():
            got = view.render(source[..., y0:y1, x0:x1])
        ((_, label),) = view.stands_for
        want = batch[[b.label for b in boxes].index(label)]
        diff = (got[0] - want).abs() * 255
        if label == "center" and not pipeline.crop_after_resize:
            assert diff.max() <= 3 and diff.mean() < 0.02, (spec, diff.max(), diff.mean())
        else:
            assert diff.mean() < 1.0, (spec, label, diff.mean())


def _as_output(photo: Image.Image):
    import io

    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=95, subsampling="4:4:4")
    buffer.seek(0)
    return buffer


def test_gradients_of_a_downscaled_view_stay_in_its_region(photo, brisque):
    pipelines = parse_platforms("width1080-q80")
    attack = pushed(photo, brisque, pipelines)
    (view,) = attack.loop_views
    attack.evaluate(backward=True)
    x0, y0, x1, y1 = view.region
    inside = attack.grad[..., y0:y1, x0:x1]
    assert inside.abs().sum() > 0
    assert attack.grad.abs().sum() == pytest.approx(inside.abs().sum())
    # the downscale's gradient is coarse: neighbours within one downscaled pixel move together
    sign = inside.sign()
    same = (sign[..., :, 1:] == sign[..., :, :-1]).float().mean()
    assert same > 0.6


def test_a_downscaled_fit_has_the_exact_value_and_the_direction_of_the_full_chain(photo, brisque):
    """A downscaling pipeline's fit takes its gradient from one downscale straight to the view:
    the value is still the exact chain's (Pillow resize, JPEG, fit), and the gradient points
    where differentiating through the served size does."""
    (pipeline,) = parse_platforms("width1080-q80")
    views = plan_loop_views(*photo.size, ("resize",), (pipeline,))
    (fit,) = [v for v in views if isinstance(v, Whole)]
    region = to_tensor(photo)

    def score_and_gradient(render):
        leaf = region.clone().requires_grad_(True)
        score = brisque(render(leaf))
        (grad,) = torch.autograd.grad(score.sum(), leaf)
        return score.item(), grad.flatten()

    fast, fast_grad = score_and_gradient(fit.render)
    chain, chain_grad = score_and_gradient(lambda r: fit._served_view(r, None))
    assert fast == chain  # the same forward value, bit for bit
    cosine = torch.nn.functional.cosine_similarity(fast_grad, chain_grad, dim=0)
    assert cosine > 0.9, cosine  # 0.987 when written


def test_the_mask_also_asks_for_texture_at_the_coarse_scale():
    """Fine grain on a smooth ramp (a noisy sky): full budget for a fine perturbation, the flat
    floor once the perturbation is as coarse as a 4× downscale needs."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(90, 130, 512)[None, :, None].repeat(384, 0).repeat(3, 2)
    grain = rng.normal(0, 9, (384, 512, 1)).repeat(3, 2)
    photo = to_tensor(Image.fromarray(np.clip(ramp + grain, 0, 255).astype(np.uint8)))
    fine = perceptual_mask(photo)
    coarse = perceptual_mask(photo, coarse=4.0)
    assert fine.median() > 0.9
    assert coarse.median() < 0.5
    assert torch.all(coarse <= fine)


def test_a_synthetic_photo_is_judged_on_every_default_pipeline(brisque):
    """The check serves each pipeline's own size and never enlarges a small photo."""
    small = synthetic_photo(800, 600, 3)
    check = judge(small, [brisque], ("center",), parse_platforms(DEFAULT_PLATFORMS))
    assert set(check.served.values()) == {(800, 600)}
    big = synthetic_photo(2400, 1800, 3)
    check = judge(big, [brisque], ("center",), parse_platforms(DEFAULT_PLATFORMS))
    assert check.served == {
        "task": (2400, 1800),
        "facebook": (2048, 1536),
        "instagram": (1080, 810),
        "whatsapp": (1600, 1200),
        "bluesky": (2000, 1500),
        "web": (2400, 1800),  # within its 2560 px: served as it is
    }
    assert PRESETS["instagram"].output_size(2400, 1800) == (1080, 810)


def test_roaming_views_are_pipelines_in_no_preset_within_bounds(photo):
    """The random extra views of each step: mostly a downscale between 1.1× and 1.5× the
    largest named one (never below the view size), a real filter, JPEG 85–98; one in eight the
    photo at its own size re-encoded at JPEG 75–95 (a destination that keeps the size); the
    same seed draws the same."""
    from pixcamd.roaming import (
        ROAM_CROP_SHARE,
        ROAM_NATIVE_QUALITY,
        ROAM_NATIVE_SHARE,
        ROAM_QUALITY,
        roaming_view,
    )

    draws, native, crops = [], [], []
    generator = torch.Generator().manual_seed(7)
    for _ in range(160):
        view = roaming_view(*photo.size, 2.2, generator)
        draws.append(view.label)
        if "/crop" in view.label:
            crops.append(view)
            continue
        if isinstance(view, NativeCrop):
            native.append(view.chain.platform_quality)
            assert view.box == plan_views(*photo.size, ["center"])[0].box  # the task's crop
            assert view.chain.output_quality == 95  # our file first, then their re-encode
            continue
        assert isinstance(view, DownscaledCrop)
        served = (round(photo.width / view.scale[0]), round(photo.height / view.scale[1]))
        factor = photo.width / served[0]
        assert 1.1 - 0.01 <= factor <= 1.5 * 2.2 + 0.01
        assert served[0] >= 512 and served[1] >= 384
        assert ROAM_QUALITY[0] <= view.chain.platform_quality <= ROAM_QUALITY[1]
    assert ROAM_NATIVE_SHARE / 2 < len(native) / 160 < ROAM_NATIVE_SHARE * 2
    assert ROAM_CROP_SHARE / 2 < len(crops) / 160 < ROAM_CROP_SHARE * 2
    assert all(ROAM_NATIVE_QUALITY[0] <= q <= ROAM_NATIVE_QUALITY[1] for q in native)
    assert min(native) < 85 < max(native)  # below the downscales' qualities too
    assert len(set(draws)) > 80  # the draws do vary
    again = torch.Generator().manual_seed(7)
    assert [roaming_view(*photo.size, 2.2, again).label for _ in range(160)] == draws
    # a photo barely larger than the view cannot be downscaled at all
    assert roaming_view(540, 400, 3.0, torch.Generator().manual_seed(0)) is None


def test_roaming_crops_are_other_aspects_seen_as_their_pipeline_serves_them(photo):
    """Some roaming views crop the photo to another aspect (never its own), serve the crop at
    a drawn size at JPEG 75–95, and show its fit or its centre — each rendered as a named
    pipeline with that crop would be."""
    from pixcamd.roaming import ROAM_ASPECTS, ROAM_NATIVE_QUALITY, roaming_view

    generator = torch.Generator().manual_seed(11)
    crops = [v for v in (roaming_view(*photo.size, 2.2, generator) for _ in range(400))]
    crops = [v for v in crops if "/crop" in v.label]
    assert len(crops) > 50
    seen = set()
    source = to_tensor(photo)
    for view in crops[:40]:
        spec, which = view.label.removeprefix("roaming/").split("/")
        aspect = tuple(int(n) for n in spec.split("-")[0].removeprefix("crop").split(":"))
        assert aspect in ROAM_ASPECTS and aspect != (4, 3)  # the photo is 4:3 already
        quality = int(spec.split("-")[2].removeprefix("q"))
        assert ROAM_NATIVE_QUALITY[0] <= quality <= ROAM_NATIVE_QUALITY[1]
        assert view.stands_for == []  # the check never judges it
        x0, y0, x1, y1 = view.region
        assert 0 <= x0 < x1 <= photo.width and 0 <= y0 < y1 <= photo.height
        with torch.no_grad():
            assert view.render(source[..., y0:y1, x0:x1]).shape[-2:] == (384, 512)
        seen.add((aspect, which, isinstance(view, Whole)))
    assert {which for _, which, _ in seen} == {"center", "resize"}
    assert all(is_whole == (which == "resize") for _, which, is_whole in seen)
    assert len({aspect for aspect, _, _ in seen}) >= 5


def test_a_roaming_view_moves_pixels_but_never_the_verdict_books(photo, brisque):
    """Its gradient counts in the step; its score is forgotten (not a view the check judges)."""
    pipelines = parse_platforms("width1080-q80")
    # one named view: two slots free for roaming ones
    attack = pushed(photo, brisque, pipelines, views_per_step=3)
    assert attack.roaming
    attack.run(4 / 255, 1)
    assert set(attack.last["brisque"]) == {v.label for v in attack.loop_views}
    still = pushed(photo, brisque, pipelines, views_per_step=3, roaming=0)
    still.run(4 / 255, 1)
    assert not torch.equal(attack.delta, still.delta)  # the roaming view had its say


def test_a_photo_no_destination_shrinks_still_sees_destinations_in_no_preset(photo, brisque):
    """A 960×720 photo is served at its size by every default pipeline, but other destinations
    still downscale it: its steps see roaming views as a large photo's do (their scores
    forgotten; no near-full slot beside them, their draws reach near full size here); with
    `task` alone, which never resizes, a step sees the named views only."""
    small = photo.resize((960, 720), Image.Resampling.LANCZOS)
    defaults = parse_platforms(DEFAULT_PLATFORMS)
    assert all(p.output_size(960, 720) == (960, 720) for p in defaults)

    def seen(attack: Attack, steps: int) -> list[str]:
        labels, evaluate = [], attack.evaluate

        def recording(*args, chosen=None, **kwargs):
            labels.extend(v.label for v in chosen)
            return evaluate(*args, chosen=chosen, **kwargs)

        attack.evaluate = recording
        attack.run(4 / 255, steps)
        return labels

    options = dict(views=("center", "resize"), views_per_step=3, roaming=2, near_full=1)
    attack = pushed(small, brisque, defaults, **options)
    labels = seen(attack, 3)
    assert attack.roaming == 2 and attack.near_full == 0
    roaming = [label for label in labels if label.startswith("roaming/")]
    assert len(labels) - len(roaming) == 3  # one named slot a step
    # two roaming slots a step (a draw of a crop too thin for the view is left out)
    assert 3 <= len(roaming) <= 3 * 2
    assert set(attack.last["brisque"]) <= {v.label for v in attack.loop_views}  # forgotten
    task = pushed(small, brisque, parse_platforms("task"), **options)
    assert not [label for label in seen(task, 3) if label.startswith("roaming/")]


def test_near_full_views_are_downscales_of_a_few_per_cent_to_forty(photo):
    """The slot near full size: the photo served 2–41 % smaller (a factor from ``NEAR_FULL``),
    never below the view size, a real filter, JPEG 85–98 at 4:2:0 or, a quarter of them, 4:4:4;
    rendered as the pipeline serves it; the same seed draws the same; none from a photo that
    cannot be downscaled that little."""
    from pixcamd.roaming import NEAR_FULL, NEAR_FULL_444_SHARE, ROAM_QUALITY, near_full_view

    generator = torch.Generator().manual_seed(5)
    views = [near_full_view(*photo.size, generator) for _ in range(200)]
    factors, chroma = [], []
    for view in views:
        assert isinstance(view, DownscaledCrop) and view.stands_for == []
        served = (round(photo.width / view.scale[0]), round(photo.height / view.scale[1]))
        factors.append(photo.width / served[0])
        assert NEAR_FULL[0] - 0.01 <= factors[-1] <= NEAR_FULL[1] + 0.01
        assert view.box == plan_views(*served, ["center"])[0].box  # the served photo's centre
        assert ROAM_QUALITY[0] <= view.chain.platform_quality <= ROAM_QUALITY[1]
        assert view.output == (95, "4:4:4")  # our file first, then their resize and JPEG
        chroma.append(view.chain.platform_subsampling)
    assert min(factors) < 1.1 and max(factors) > 1.5  # from a few per cent to about 40
    assert NEAR_FULL_444_SHARE / 2 < chroma.count("4:4:4") / 200 < NEAR_FULL_444_SHARE * 2
    assert set(chroma) == {"4:2:0", "4:4:4"}
    x0, y0, x1, y1 = views[0].region
    with torch.no_grad():
        rendered = views[0].render(to_tensor(photo)[..., y0:y1, x0:x1])
    assert rendered.shape[-2:] == (384, 512)
    again = torch.Generator().manual_seed(5)
    assert [near_full_view(*photo.size, again).label for _ in range(200)] == [
        v.label for v in views
    ]
    # a photo the view nearly covers: downscaled up to what still covers it, or not at all
    small = near_full_view(600, 450, torch.Generator().manual_seed(0))
    assert small.scale[0] <= 600 / 512 + 0.01
    assert near_full_view(520, 390, torch.Generator().manual_seed(0)) is None


def test_a_near_full_view_each_step_where_a_pipeline_downscales(photo, brisque, monkeypatch):
    """``near_full`` views each step beside the named and roaming ones, whatever slots those
    take; moving pixels, never booked as a named view's score; none where nothing downscales
    (`--platforms task` keeps the task's behaviour) or when switched off."""
    import pixcamd.optimizer

    drawn = []
    real = pixcamd.optimizer.near_full_view
    monkeypatch.setattr(
        pixcamd.optimizer, "near_full_view", lambda *a, **k: drawn.append(1) or real(*a, **k)
    )
    for platforms, near_full in ((parse_platforms("task"), 1), (parse_platforms("whatsapp"), 0)):
        pushed(photo, brisque, platforms, views_per_step=3, near_full=near_full).run(4 / 255, 2)
    assert drawn == []
    attack = pushed(photo, brisque, parse_platforms("whatsapp"), views_per_step=3, near_full=1)
    attack.run(4 / 255, 2)
    assert len(drawn) == 2  # one a step
    assert set(attack.last["brisque"]) == {v.label for v in attack.loop_views}
    without = pushed(photo, brisque, parse_platforms("whatsapp"), views_per_step=3, near_full=0)
    without.run(4 / 255, 2)
    assert not torch.equal(attack.delta, without.delta)  # the near-full view had its say


EPSILON = 4 / 255
STEP = EPSILON / 8  # Attack.run's step: an eighth of ε (times the mask)


def last_update(attack: Attack, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``steps`` steps at ``EPSILON``; the summed gradient and δ just before the last
    step's update."""
    seen = {}

    def before_the_update(report):
        seen["grad"], seen["delta"] = attack.grad.clone(), attack.delta.clone()
        return False

    attack.run(EPSILON, steps, on_step=before_the_update)
    return seen["grad"], seen["delta"]


def test_a_step_moves_pixels_with_small_gradients_less(photo, brisque, monkeypatch):
    """The full step where the summed gradient is large, proportionally less where it is small:
    not a sign step, which would move every pixel the view shows by the whole step."""
    monkeypatch.setattr(pixcamd.optimizer, "FADE", 0.0)  # the step alone (the fade: below)
    attack = pushed(photo, brisque, parse_platforms("task"), masking=False)
    grad, before = last_update(attack, 1)
    moved = attack.delta - before
    alpha = STEP  # no mask: the same everywhere
    (view,) = attack.loop_views
    a, b, c, d = view.footprint
    grad, moved = grad[..., b:d, a:c], moved[..., b:d, a:c]
    assert moved.abs().max() <= alpha + 1e-7  # never more than the step ...
    large = grad.abs() >= STEP_CLIP * grad.abs().mean()  # the view's gradient has mean 1
    assert large.any()
    assert moved[large].abs().min() >= alpha - 1e-7  # ... the whole step where it is large
    some = grad.abs() > 1e-3  # (a smaller move would vanish in δ's float32 rounding)
    assert torch.equal(moved[some].sign(), -grad[some].sign())  # downhill everywhere
    # most gradients are small: the median pixel moves well under half the step
    assert moved.abs().median() < alpha / 2


def test_delta_fades_where_the_step_barely_pushes(photo, brisque):
    """A pixel the views push the whole step keeps its δ and moves the step; one no view
    pushes fades by FADE a step instead of keeping what earlier steps (here: the seeded start)
    left there — energy no view asks for."""
    attack = pushed(photo, brisque, parse_platforms("task"), masking=False)
    grad, before = last_update(attack, 2)
    after = attack.delta
    (view,) = attack.loop_views
    a, b, c, d = view.footprint
    outside = torch.ones_like(before, dtype=torch.bool)
    outside[..., b:d, a:c] = False
    assert before[outside].abs().min() > 0  # the seeded start is everywhere
    assert torch.allclose(after[outside], before[outside] * (1 - FADE), atol=1e-9)
    full = torch.zeros_like(outside)
    full[..., b:d, a:c] = grad[..., b:d, a:c].abs() >= STEP_CLIP * grad[..., b:d, a:c].abs().mean()
    assert full.any()
    expected = before[full] - STEP * grad[full].sign()  # the whole step, nothing faded
    assert torch.allclose(after[full], expected, atol=1e-7)


def test_no_roaming_view_without_a_downscale_or_when_switched_off(photo, brisque, monkeypatch):
    """`--platforms task` (nothing downscales) and roaming = 0 mean no random pipelines: the
    task's behaviour stays the task's, whatever slots the step leaves free."""
    import pixcamd.optimizer

    drawn = []
    real = pixcamd.optimizer.roaming_view
    monkeypatch.setattr(
        pixcamd.optimizer, "roaming_view", lambda *a, **k: drawn.append(1) or real(*a, **k)
    )
    for platforms, roaming in ((parse_platforms("task"), 1), (parse_platforms("whatsapp"), 0)):
        attack = pushed(
            photo,
            brisque,
            platforms,
            views=("center", "resize"),
            views_per_step=3,
            roaming=roaming,
        )
        attack.run(4 / 255, 2)
    assert drawn == []
    attack = pushed(photo, brisque, parse_platforms("whatsapp"), views_per_step=3, roaming=1)
    attack.run(4 / 255, 2)
    assert len(drawn) == 2 * 2  # one named view a step: the two free slots roam


@pytest.mark.parametrize("name", ["center", "tiles"])
def test_a_nearby_view_is_the_same_crop_of_the_photo_served_a_little_off_size(photo, name):
    """``nearby``: the same pipeline's view from a served size drawn within ±spread, exactly
    as Pillow serves that size — the loop's way of not leaning on the one exact grid."""
    from pixcamd.jpeg import decode, encode

    pipeline = parse_platforms("long1600-q80")[0]
    served = pipeline.output_size(*photo.size)
    views = plan_loop_views(*photo.size, (name,), (pipeline,))
    named = views[len(views) // 2]
    assert isinstance(named, DownscaledCrop)
    generator = torch.Generator().manual_seed(3)
    drawn = []
    for _ in range(30):
        view = named.nearby(photo.size, generator, 0.005)
        assert (view.label, view.stands_for) == (named.label, named.stands_for)
        assert (view.filter, view.chain, view.output) == (named.filter, named.chain, named.output)
        size = (round(photo.width / view.scale[0]), round(photo.height / view.scale[1]))
        assert abs(size[0] / served[0] - 1) <= 0.005 + 1 / served[0]
        assert size[0] <= photo.width and size[1] <= photo.height
        left, top, w, h = view.box
        assert (w, h) == named.box[2:] and 0 <= left <= size[0] - w and 0 <= top <= size[1] - h
        # the crop keeps its place in the served photo (the centre crop stays the centre crop)
        assert abs((left + w / 2) / size[0] - (named.box[0] + w / 2) / served[0]) < 1 / w
        drawn.append((size, view.box))
    assert len({size for size, _ in drawn}) > 5  # the sizes do vary
    again = torch.Generator().manual_seed(3)
    assert named.nearby(photo.size, again, 0.005).box == drawn[0][1]  # seeded
    # Its value is what the real chain makes of the photo at that size: our JPEG 95, Pillow's
    # resize, the pipeline's JPEG 80, the crop.
    x0, y0, x1, y1 = view.region
    got = view.render(to_tensor(photo)[..., y0:y1, x0:x1]).squeeze(0)
    ours = decode(encode(photo, 95, "4:4:4"))
    real = decode(encode(ours.resize(size, Image.Resampling.LANCZOS), 80, "4:2:0"))
    want = to_tensor(real).squeeze(0)[:, top : top + h, left : left + w]
    assert (got - want).abs().mean() < 0.5 / 255


def evaluated_views(monkeypatch, kinds) -> list:
    """The loop views of ``kinds`` that each ``Attack.evaluate`` call from now on is given, in
    order (a list that fills as the loop runs)."""
    seen = []
    real = Attack.evaluate

    def spy(self, backward, chosen=None):
        seen.extend(v for v in chosen if isinstance(v, kinds))
        return real(self, backward, chosen)

    monkeypatch.setattr(Attack, "evaluate", spy)
    return seen


def test_the_loop_evaluates_fits_from_boxes_off_their_exact_one(photo, brisque, monkeypatch):
    """Each time a named fit is evaluated its box is drawn a little off the exact one — the
    native fit's and a downscaling pipeline's in its served photo — so δ cannot lean on one
    resampling phase; the score is remembered under the fit's own label, the check judges the
    exact box, and fit_jitter = 0 keeps it."""
    from pixcamd.pipeline_views import nearby_box

    seen = evaluated_views(monkeypatch, (NativeFit, Whole))
    for jitter in (0.1, 0.0):
        seen.clear()
        attack = pushed(
            photo,
            brisque,
            parse_platforms("task,width1080-q75"),
            ("resize",),
            roaming=0,
            fit_jitter=jitter,
            views_per_step=2,
        )
        exact = {
            v.label: (v.box if isinstance(v, NativeFit) else v.view.box) for v in attack.loop_views
        }
        attack.run(4 / 255, 3)
        assert len(seen) == 6 and {v.label for v in seen} == set(exact)
        boxes = [(v.label, v.box if isinstance(v, NativeFit) else v.view.box) for v in seen]
        off = [box != exact[label] for label, box in boxes]
        # (a 4:3 photo's native fit is the whole photo: a box drawn larger stays as it is)
        assert sum(off) >= 4 if jitter else not any(off)
        for v in seen:  # a native fit reads only the pixels of its box
            if isinstance(v, NativeFit):
                assert v.region == (v.box[0], v.box[1], v.box[0] + v.box[2], v.box[1] + v.box[3])
        assert set(attack.last["brisque"]) == set(exact)
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):  # within the bounds and within the spread, never degenerate
        left, top, w, h = nearby_box((100, 0, 2400, 1800), (2600, 1800), generator, 0.1)
        assert left >= 0 and left + w <= 2600 and top >= 0 and top + h <= 1800 and h >= 1620
        assert 2160 <= w <= 2600


def test_the_loop_evaluates_downscaled_crops_off_their_exact_grid(photo, brisque, monkeypatch):
    """Each step sees a named downscaled crop at a served size a little off the exact one (the
    check still judges the exact one); grid_jitter = 0 keeps the exact grid."""
    seen = evaluated_views(monkeypatch, DownscaledCrop)
    for jitter in (0.005, 0.0):
        seen.clear()
        attack = pushed(
            photo,
            brisque,
            parse_platforms("long1600-q80,width1080-q75"),
            views_per_step=2,
            roaming=0,
            grid_jitter=jitter,
        )
        exact = {v.label: v.scale for v in attack.loop_views}
        attack.run(4 / 255, 4)
        assert len(seen) == 8 and {v.label for v in seen} == set(exact)
        off = [v.scale != exact[v.label] for v in seen]
        # (a draw may land on the exact size now and then)
        assert sum(off) >= 6 if jitter else not any(off)
        assert set(attack.last["brisque"]) == set(exact)  # remembered under the named label
