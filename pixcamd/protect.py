"""``protect()``: photo + models + settings → protected pixels and the evidence that they work.

The one function at the heart of pixcamd; the CLI and the daemon call it unchanged. It is pure in
the sense that matters: no files, no global state — it takes an image and returns a result. What
it is asked for is ``pixcamd.settings.Settings``; the rounds, checks and keeping of steps 3–4 are
``pixcamd.search.Search``.

1. Check the photo as it is: if every view of every model already scores at its target (past
   the threshold by the model's margin) after the output encoding and every platform pipeline
   (``settings.platforms``: the destination's resize and JPEG, ``pixcamd.platforms``), the photo
   passes through untouched.
2. Optimize towards each model's target — a safety margin beyond the threshold (KonCept512:
   ≤ 30 where "good" is > 50). ``mode`` picks what moves: ``invisible`` a perturbation of the
   pixels within ±ε (``pixcamd.optimizer``); ``enhance`` a colour filter, tone curves plus
   contrast and saturation (``pixcamd.enhance``); ``auto`` the filter first, then, only if the
   check says it falls short of the targets, the invisible perturbation on the filtered photo.
3. Whenever the loop estimate reaches the targets, run the real check on the encoded output
   (``pixcamd.check``); stop as soon as every view of every pipeline reaches its target there.
   If the check falls short, tighten the in-loop targets of what fell short and go on.
4. Escalate along the schedule while unprotected: ε × 1.5 a round up to the cap, then one more
   round at the cap without the optimizer's fade (the filter: two rounds of steps within its
   fixed bounds). Once a real check finds the photo protected,
   at most ``polish_steps`` more steps seek the margin; the protected candidate with the widest
   margin on its worst view is kept — but the margin is never bought below ``polish_floor`` dB
   of PSNR (the first protected candidate is kept whatever it costs; if it is below the floor,
   its change is drawn toward the photo up to the floor where the real check still finds it
   protected).
5. Verdict from the real check only: protected iff every view of every model is on the
   low-quality side of its threshold after every pipeline. Otherwise ``protected = False``, with
   scores per pipeline and the worst (pipeline, model, view).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial

from PIL import Image, ImageChops

from pixcamd.check import Check, check_output, psnr_ssim, score_image_views
from pixcamd.enhance import Bounds, ColourFilter, Enhancer
from pixcamd.enhance import summary as enhance_summary
from pixcamd.jpeg import decode
from pixcamd.models.base import QualityModel
from pixcamd.optimizer import FADE, Attack
from pixcamd.photo import is_monochrome, to_tensor
from pixcamd.platforms import loop_order
from pixcamd.search import Found, Search, meets
from pixcamd.settings import MODES, Settings, model_targets, view_workers
from pixcamd.views import in_order, parse_views


@dataclass
class Result:
    image: Image.Image  # the protected pixels, exactly the input's size (encode as output_jpeg)
    output_jpeg: bytes  # the encoding the check was run on (pixels only, no metadata)
    protected: bool
    untouched: bool  # already low quality: passed through without changes
    margin_met: bool  # every view reached its target, not only the threshold
    models: list[dict]
    targets: dict[str, float]
    platforms: list[dict]  # the pipelines judged: name, spec, description, served size
    before: dict[str, dict[str, dict[str, float]]]  # pipeline → model → view, the original
    after: dict[str, dict[str, float]]  # model → view: the protected pixels, no pipeline
    after_jpeg: dict[str, dict[str, dict[str, float]]]  # pipeline → model → view: the output
    protected_on: dict[str, bool]  # pipeline → every view of every model low after it
    worst: dict | None  # the (pipeline, model, view) nearest the good side, with its score
    psnr: float  # of the output file's pixels against the original, dB
    ssim: float  # same, mean SSIM on luma
    linf: int  # largest change we made to any channel, in 8-bit grey levels (before encoding)
    epsilon: float  # the budget of the round that ended, in 8-bit grey levels
    steps: int
    seconds: float
    mode: str = "invisible"
    enhancement: dict | None = None  # the colour filter, in words and parameters (see enhance)
    checks: int = 0  # real checks the search ran
    # did the first check the loop called for (sure of its targets) meet every target there?
    first_check_passed: bool | None = None
    # did the first check the loop's estimate called for (every view past the threshold, or
    # every target reached, in the loop) find the photo protected? None: it never called one
    first_check_protected: bool | None = None

    @property
    def verdict(self) -> str:
        if self.untouched:
            return "already low quality"
        return "protected" if self.protected else "unprotected"

    def summary(self) -> dict:
        """Everything but the pixels, for JSON reports and ledgers."""
        data = asdict(self)
        del data["image"], data["output_jpeg"]
        data["verdict"] = self.verdict
        return data


def protect(
    image: Image.Image,
    models: list[QualityModel],
    settings: Settings | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> Result:
    """Protect an upright RGB image (``settings``: the defaults when None); ``progress(step,
    worst in-loop score)`` is called per step."""
    started = time.perf_counter()
    settings = Settings() if settings is None else settings
    if not models:
        raise ValueError("protect() needs at least one quality model")
    if settings.mode not in MODES:
        raise ValueError(f"unknown mode {settings.mode!r}: choose from {', '.join(MODES)}")
    views = parse_views(settings.views)
    targets = model_targets(models, settings)
    if not settings.platforms:
        raise ValueError("protect() needs at least one platform pipeline")
    image = image.convert("RGB")

    workers = view_workers(settings)
    data, before = check_output(image, models, views, settings.platforms, settings.output, workers)
    enhancement, search = None, None

    def finish(found: Found, steps: int, untouched: bool = False) -> Result:
        # Reads ``enhancement`` and ``search`` when called: the filter's record, the checks run.
        result = _result(
            image, found, before, models, targets, settings, steps, started, untouched, enhancement
        )
        if search is not None:
            result.checks, result.first_check_passed = search.checks, search.first_check_passed
            result.first_check_protected = search.first_check_protected
        return result

    # past each target, not only the threshold: a photo barely low (60.6 under BRISQUE's 60)
    # turns good on pipelines a little off the named ones; it is protected like any other
    if meets(before, models, targets):
        return finish(Found(image, data, before, 0.0), 0, untouched=True)

    def kept(found: Found, steps: int) -> Result:
        # A photo already low keeps its untouched self unless the search found it a wider
        # margin: a filter that made it look better to the model is not shipped in its place.
        nonlocal enhancement
        wider = found.check.all_low and found.check.worst()["good_by"] < before.worst()["good_by"]
        if before.all_low and not wider:
            enhancement = None
            return finish(Found(image, data, before, 0.0), steps, untouched=True)
        return finish(found, steps)

    search = Search(models, views, targets, settings, progress)
    photo, start = to_tensor(image).to(settings.device), image  # what the perturbation starts from
    # The loop sees views and pipelines in one order whatever order they were named in: the
    # same set makes the same copy (reports keep the order given)
    seen, platforms = in_order(views), loop_order(settings.platforms)
    # A black-and-white photo gets one change for R, G and B (curve or δ): its copy stays
    # neutral, without the colour speckle or tint that per-channel changes would show there.
    monochrome = is_monochrome(image)
    steps = 0
    if settings.mode in ("enhance", "auto"):
        enhancer = Enhancer(
            photo,
            models,
            seen,
            dict(targets),
            settings.chain(),
            Bounds.for_strength(settings.enhance_strength * 255),
            settings.batch_size,
            monochrome=monochrome,
        )
        # The filter has no budget to escalate: two rounds of steps within its bounds; none at
        # zero strength, where it can only be the identity.
        round_ = partial(enhancer.run, settings.steps)
        rounds = [(0.0, round_)] * 2 if settings.enhance_strength > 0 else []
        found = search.run(enhancer, rounds)
        steps = enhancer.step
        enhancement = enhance_summary(found.colour_filter, enhancer.thumb)  # a thumbnail will do
        if settings.mode == "enhance" or meets(found.check, models, targets):
            return kept(found, steps)
        tried = found.colour_filter
        helped = found.check.worst()["good_by"] < before.worst()["good_by"]
        if helped or tried is None or tried.is_identity:
            photo = to_tensor(found.image).to(settings.device)  # auto: perturb the enhanced photo
            start = found.image
        else:
            # auto: a filter that left the worst view no nearer low quality would make the
            # perturbation work harder, and change the look, for nothing: left out, and said so
            words = enhancement["description"]
            identity = ColourFilter.identity(pivot=tried.pivot)
            enhancement = enhance_summary(identity, enhancer.thumb)
            enhancement["description"] = (
                f"none (the filter found, {words}, left the worst view no nearer low quality)"
            )
        del enhancer  # its hat maps and thumbnail: memory the perturbation can use

    attack = Attack(
        photo,
        models,
        seen,
        dict(targets),
        settings.chain(),
        seed=settings.seed,
        batch_size=settings.batch_size,
        masking=settings.masking,
        platforms=platforms,
        output=settings.output,
        views_per_step=settings.views_per_step,
        roaming=settings.roaming,
        near_full=settings.near_full,
        grid_jitter=settings.grid_jitter,
        fit_jitter=settings.fit_jitter,
        monochrome=monochrome,
        workers=workers,
    )
    # A zero budget cannot move a pixel: nothing to optimize in that round.
    rounds = [(e, partial(attack.run, e, settings.steps)) for e in settings.schedule() if e > 0]
    if rounds and FADE:
        # The fade trades a little of the steps' reach for invisibility; a photo it leaves
        # unprotected at the cap gets one more round there without it (docs/benchmarks.md,
        # "δ fades").
        cap = rounds[-1][0]
        rounds.append((cap, partial(attack.run, cap, settings.steps, fade=0.0)))
    found = search.run(attack, rounds, step_offset=steps, start=start)
    return kept(found, steps + attack.step)


def _result(
    original: Image.Image,
    found: Found,
    before: Check,
    models: list[QualityModel],
    targets: dict[str, float],
    settings: Settings,
    steps: int,
    started: float,
    untouched: bool = False,
    enhancement: dict | None = None,
) -> Result:
    output = decode(found.encoded)  # what the file holds
    views = parse_views(settings.views)
    after = score_image_views(found.image, models, views)
    psnr, ssim = psnr_ssim(original, output)
    # in 8 bits: float copies of both photos and their difference took 1.2 GB at 24 MP
    diff = max(high for _, high in ImageChops.difference(original, found.image).getextrema())
    return Result(
        image=found.image,
        output_jpeg=found.encoded,
        protected=found.check.all_low,
        untouched=untouched,
        margin_met=meets(found.check, models, targets),
        models=[m.describe() for m in models],
        targets=targets,
        platforms=[
            {**p.as_dict(), "served": list(found.check.served[p.name])} for p in settings.platforms
        ],
        before=before.scores,
        after=after,
        after_jpeg=found.check.scores,
        protected_on=found.check.protected_on,
        worst=found.check.worst(),
        psnr=psnr,
        ssim=ssim,
        linf=diff,
        epsilon=found.budget * 255,
        steps=steps,
        seconds=time.perf_counter() - started,
        mode=settings.mode,
        enhancement=enhancement,
    )
