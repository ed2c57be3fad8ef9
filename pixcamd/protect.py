"""``protect()``: photo + models + settings → protected pixels and the evidence that they work.

The one function at the heart of pixcamd; the CLI and the daemon call it unchanged. It is pure in
the sense that matters: no files, no global state — it takes an image and returns a result.

1. Check the photo as it is: if every view of every model already scores low after the output
   encoding and every platform pipeline (``settings.platforms``: the destination's resize and
   JPEG, ``pixcamd.platforms``), the photo passes through untouched.
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
   of PSNR (the first protected candidate is kept whatever it costs).
5. Verdict from the real check only: protected iff every view of every model is on the
   low-quality side of its threshold after every pipeline. Otherwise ``protected = False``, with
   scores per pipeline and the worst (pipeline, model, view).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial

import torch
from PIL import Image

from pixcamd.check import Check, check_output, psnr, psnr_ssim, score_image_views
from pixcamd.enhance import STRENGTH, Bounds, ColourFilter, Enhancer
from pixcamd.enhance import summary as enhance_summary
from pixcamd.jpeg import Chain, decode
from pixcamd.models.base import QualityModel
from pixcamd.optimizer import FADE, Attack
from pixcamd.photo import is_monochrome, to_image, to_tensor
from pixcamd.pipeline_views import FIT_JITTER, GRID_JITTER
from pixcamd.platforms import DEFAULT_PLATFORMS, PRESETS, Pipeline
from pixcamd.view_loop import StepReport
from pixcamd.views import DEFAULT_VIEWS, parse_views

MODES = ("invisible", "enhance", "auto")
# The default budget in 8-bit grey levels (in strong texture; the mask gives less elsewhere):
# the one source of Settings', the config schema's and the command line's defaults.
EPSILON = 6.0
EPSILON_CAP = 12.0
CHECK_SPACING = 5  # steps between real checks that the loop's targets did not call for
POLISH_FLOOR = 36.0  # dB: the least PSNR the polish may take a copy to (issue #11's floor)


@dataclass(frozen=True)
class Settings:
    mode: str = "invisible"  # or "enhance" (a colour filter), "auto" (filter, then invisible)
    views: tuple[str, ...] = DEFAULT_VIEWS
    epsilon: float = EPSILON / 255  # L∞ budget per pixel (in strong texture; elsewhere less)
    epsilon_cap: float = EPSILON_CAP / 255  # escalation never goes beyond this
    enhance_strength: float = STRENGTH / 255  # largest change of the filter's tone curves
    targets: dict[str, float] = field(default_factory=dict)  # per model; default: its own
    steps: int = 40  # per round of the schedule
    seed: int = 0
    output_quality: int = 95
    output_subsampling: str = "4:4:4"
    platforms: tuple[Pipeline, ...] = tuple(PRESETS[n] for n in DEFAULT_PLATFORMS)
    masking: bool = True
    views_per_step: int = 3  # loop views evaluated per step (the cost bound; 0 = all)
    roaming: int = 2  # slots of a step for random pipelines in no preset (robustness)
    # ... and slots beside them for a downscale near full size (docs/benchmarks.md, "Near full
    # size"): where a named pipeline downscales, each step sees ``views_per_step`` + this views
    near_full: int = 1
    grid_jitter: float = GRID_JITTER  # downscaled crops evaluated at a served size ± this
    fit_jitter: float = FIT_JITTER  # fits evaluated from a box ± this
    polish_steps: int = 10  # once protected, at most this many more steps to reach the margin
    # ...and never below this PSNR (dB, the copy against the photo; 0: no floor): the margin is
    # insurance, invisibility the promise (docs/benchmarks.md, "The polish and the PSNR floor")
    polish_floor: float = POLISH_FLOOR
    # A round that is not the last ends as soon as the loop's trend says its budget will not
    # protect the photo by the round's end (``Attack.falls_short``): the budget grows sooner.
    early_escalation: bool = True
    batch_size: int = 2
    device: str = "cpu"
    # Views of a step evaluated side by side on the CPU, at most one per torch thread: the same
    # δ to the bit, sooner (docs/benchmarks.md, "Views side by side"); 1: one after the other.
    workers: int = 2

    def schedule(self) -> list[float]:
        """ε per round: the base, then ×1.5 up to the cap. No second round at the base: over the
        22 corpus photos it protected one that the first had not, while ten went through it
        unprotected and escalated anyway (docs/benchmarks.md, "The served grid")."""
        rounds, eps = [self.epsilon], self.epsilon
        while self.epsilon > 0 and eps < self.epsilon_cap:
            eps = min(self.epsilon_cap, eps * 1.5)
            rounds.append(eps)
        return rounds

    @property
    def output(self) -> tuple[int, str]:
        return self.output_quality, self.output_subsampling

    def chain(self) -> Chain:
        """Our encoding and the first pipeline's re-encode (JPEG or WebP) at full size: what the
        colour filter's loop models (the check judges every pipeline)."""
        first = next((p for p in self.platforms if p.quality is not None), PRESETS["task"])
        return Chain(
            self.output_quality,
            self.output_subsampling,
            first.quality,
            first.subsampling,
            first.codec,
        )


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


def _targets(models: list[QualityModel], settings: Settings) -> dict[str, float]:
    targets = {}
    for m in models:
        target = settings.targets.get(m.name, getattr(m, "default_target", m.threshold))
        beyond = target < m.threshold if m.higher_is_better else target > m.threshold
        if not (beyond or target == m.threshold):
            raise ValueError(
                f"target {target:g} for {m.name} is on the good-quality side of its threshold "
                f"{m.threshold:g}"
            )
        targets[m.name] = float(target)
    return targets


def make_settings(
    models: list[QualityModel],
    *,
    target: dict[str, float],
    epsilon: float,
    epsilon_cap: float,
    enhance_strength: float,
    **options,
) -> Settings:
    """Settings from what a person writes — the command line or the daemon's config: budgets in
    8-bit grey levels, ``target`` as {"*": score} for "the one model" or {model: score}. Every
    problem is a ValueError that names it; other ``options`` are Settings fields as they are."""
    names = [m.name for m in models]
    if "*" in target:
        if len(models) > 1:
            raise ValueError("several models: give the target as MODEL=SCORE for each")
        target = {names[0]: target["*"]}
    unknown = sorted(set(target) - set(names))
    if unknown:
        raise ValueError(f"the target names {unknown[0]}, which is not among {', '.join(names)}")
    settings = Settings(
        targets=dict(target),
        epsilon=epsilon / 255,
        epsilon_cap=max(epsilon, epsilon_cap) / 255,
        enhance_strength=enhance_strength / 255,
        **options,
    )
    _targets(models, settings)  # a target on the good-quality side is refused here, not later
    return settings


def protect(
    image: Image.Image,
    models: list[QualityModel],
    settings: Settings = Settings(),
    progress: Callable[[int, float], None] | None = None,
) -> Result:
    """Protect an upright RGB image; ``progress(step, worst in-loop score)`` is called per step."""
    started = time.perf_counter()
    if not models:
        raise ValueError("protect() needs at least one quality model")
    if settings.mode not in MODES:
        raise ValueError(f"unknown mode {settings.mode!r}: choose from {', '.join(MODES)}")
    views = parse_views(settings.views)
    targets = _targets(models, settings)
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

    if before.all_low:
        return finish(Found(image, data, before, 0.0), 0, untouched=True)

    search = _Search(models, views, targets, settings, progress)
    photo, start = to_tensor(image).to(settings.device), image  # what the perturbation starts from
    # A black-and-white photo gets one change for R, G and B (curve or δ): its copy stays
    # neutral, without the colour speckle or tint that per-channel changes would show there.
    monochrome = is_monochrome(image)
    steps = 0
    if settings.mode in ("enhance", "auto"):
        enhancer = Enhancer(
            photo,
            models,
            views,
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
        if settings.mode == "enhance" or _meets(found.check, models, targets):
            return finish(found, steps)
        photo = to_tensor(found.image).to(settings.device)  # auto: perturb the enhanced photo
        start = found.image
        del enhancer  # its hat maps and thumbnail: memory the perturbation can use

    attack = Attack(
        photo,
        models,
        views,
        dict(targets),
        settings.chain(),
        seed=settings.seed,
        batch_size=settings.batch_size,
        masking=settings.masking,
        platforms=settings.platforms,
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
    return finish(found, steps + attack.step)


@dataclass
class Found:
    """A candidate the real check has judged."""

    image: Image.Image
    encoded: bytes
    check: Check
    budget: float  # ε of the invisible round that produced it (0 for a filter)
    colour_filter: ColourFilter | None = None  # the enhancer's filter that produced it
    psnr: float | None = None  # of the encoded output against the photo, once asked for


class _Search:
    """Steps an optimizer (``Attack`` or ``Enhancer``) through rounds — (budget, a function that
    runs one round given the per-step callback) — with the early stop on the real check and the
    tightening of in-loop targets it may call for."""

    def __init__(self, models, views, targets, settings: Settings, progress):
        self.models, self.views, self.targets, self.settings = models, views, targets, settings
        self.progress = progress
        self.checks = 0  # real checks run, and how many of them passed at once
        self.first_check_passed: bool | None = None
        self.first_check_protected: bool | None = None  # of the loop's estimate, see Result

    def run(
        self, loop, rounds: list[tuple[float, Callable]], step_offset: int = 0, start=None
    ) -> Found:
        """``start``: the image the invisible perturbation starts from (in auto mode the filtered
        photo), against which the polish's floor holds; None for the colour filter, which changes
        the photo visibly by design and has no floor."""
        self.loop, self.offset, self.best, self.budget = loop, step_offset, None, 0.0
        self.start, self.encoding_mse = start, 0.0
        self.floor = self.settings.polish_floor if start is not None else 0.0
        self.protected_at: int | None = None  # the loop's step at the first protected check
        self.checked_at = -CHECK_SPACING
        ended = None
        for index, (self.budget, run_round) in enumerate(rounds):
            # a round that is not the last may end early when the loop sees it falling short
            self.last_round = index == len(rounds) - 1
            run_round(self._on_step)
            if self.best is None:
                # Judge where the round ended before escalating: the loop aims past the verdict
                # (a margin; served sizes and fit boxes drawn around the named ones), so it may
                # not call a check although the verdict holds — and a larger ε costs
                # invisibility (docs/benchmarks.md, "Crops to another aspect").
                ended = self._count(self._judge())
                self._keep(ended)
            # Escalate only while unprotected: a larger ε costs invisibility and time, and the
            # margin beyond the threshold is sought within the round that reached protection.
            if self.best is not None:
                break
        if self.best is not None:
            return self.best
        return ended or self._count(self._judge())  # never protected: judge where it ended

    def _judge(self) -> Found:
        pixels, colour_filter = self.loop.candidate()
        candidate = to_image(pixels)
        s = self.settings
        encoded, check = check_output(
            candidate, self.models, self.views, s.platforms, s.output, view_workers(s)
        )
        return Found(candidate, encoded, check, self.budget, colour_filter)

    def _meets(self, found: Found) -> bool:
        return _meets(found.check, self.models, self.targets)

    def _count(self, found: Found, agreed: bool = False) -> Found:
        """Count a real check; ``agreed``: the loop called for it, sure the targets were met —
        the first such check tells how well the loop's estimate agrees with the real one."""
        self.checks += 1
        if agreed and self.first_check_passed is None:
            self.first_check_passed = self._meets(found)
        return found

    def _keep(self, found: Found) -> None:
        """Keep the protected candidate with the widest margin on its worst (pipeline, view) —
        the first one whatever its PSNR (protection first), later ones only if they are at or
        above the polish's floor or the kept one is below it too."""
        if not found.check.all_low:
            return
        if self.best is not None:
            if found.check.worst()["good_by"] > self.best.check.worst()["good_by"]:
                return
            if self.floor and self._psnr(found) < self.floor <= self._psnr(self.best):
                return
        self.best = found
        if self.protected_at is None:
            self.protected_at = self.loop.step
            if self.floor:
                # What the output's encoding adds to the loop's own change, in squared error:
                # the loop's figure is before it (the candidate is the loop's present δ).
                self.encoding_mse = max(0.0, _mse(self._psnr(found)) - _mse(self.loop.psnr()))

    def _psnr(self, found: Found) -> float:
        if found.psnr is None:
            found.psnr = psnr(self.start, decode(found.encoded))
        return found.psnr

    def _below_floor(self) -> bool:
        """The output of the loop's present δ would be below the polish's floor: its own PSNR
        with the encoding's share as measured at the first protected check."""
        mse = _mse(self.loop.psnr()) + self.encoding_mse
        return mse > 0 and -10 * math.log10(mse) < self.floor

    def _on_step(self, report: StepReport) -> bool:
        if self.progress is not None:
            first = self.models[0]
            values = report.scores[first.name].values()
            worst = max(values) if first.higher_is_better else min(values)
            self.progress(self.offset + report.step, worst)
        polishing = self.protected_at is not None
        # The margin is not bought below the floor: the polish ends where the change crosses it.
        if polishing and self.floor and self._below_floor():
            return True
        polished = polishing and self.loop.step - self.protected_at >= self.settings.polish_steps
        # The check runs when the loop thinks the targets are met; and, while no candidate is
        # protected yet, every few steps once the loop sees every view beyond the threshold —
        # the margin is then sought for at most ``polish_steps`` more, not a whole round.
        early = (
            report.low and self.best is None and self.loop.step - self.checked_at >= CHECK_SPACING
        )
        if not (report.reached or polished or early):
            return self._hopeless()
        self.checked_at = self.loop.step
        found = self._count(self._judge(), agreed=report.reached)
        if self.first_check_protected is None:
            self.first_check_protected = found.check.all_low
        self._keep(found)  # protected; stop if the margin is met too, else aim for it a while
        if self._meets(found) or polished:
            return True
        if report.reached:  # the loop was optimistic: aim further where the check fell short
            self.loop.tighten(found.check.short(self.targets, self.models))
        return False

    def _hopeless(self) -> bool:
        """Not protected yet, and the loop's trend says this round's budget will not get there
        by the round's end: escalate now instead of spending the rest of the round (not in the
        last round: nothing is left to escalate to)."""
        return (
            self.settings.early_escalation
            and self.best is None
            and not self.last_round
            and self.loop.falls_short()
        )


def view_workers(settings: Settings) -> int:
    """Views evaluated side by side: on the CPU, ``settings.workers`` but never more than the
    torch threads the caller allows (``--threads``, the daemon's ``threads``); on a GPU one."""
    if not settings.device.startswith("cpu"):
        return 1
    return max(1, min(settings.workers, torch.get_num_threads()))


def _mse(psnr_db: float) -> float:
    """Mean squared error in [0, 1]² units of a PSNR in dB."""
    return 10 ** (-psnr_db / 10)


def _meets(check: Check, models: list[QualityModel], targets: dict[str, float]) -> bool:
    return not check.short(targets, models)


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
    diff = (to_tensor(original) - to_tensor(found.image)).abs().max().item() * 255
    return Result(
        image=found.image,
        output_jpeg=found.encoded,
        protected=found.check.all_low,
        untouched=untouched,
        margin_met=_meets(found.check, models, targets),
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
        linf=round(diff),
        epsilon=found.budget * 255,
        steps=steps,
        seconds=time.perf_counter() - started,
        mode=settings.mode,
        enhancement=enhancement,
    )
