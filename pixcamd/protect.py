"""``protect()``: photo + models + settings → protected pixels and the evidence that they work.

The one function at the heart of pixcamd; the CLI and the daemon call it unchanged. It is pure in
the sense that matters: no files, no global state — it takes an image and returns a result.

1. Check the photo as it is: if every view of every model already scores low after the output
   encoding and the platform's JPEG-90, the photo passes through untouched.
2. Optimize (``pixcamd.optimizer``) towards each model's target — a safety margin beyond the
   threshold (KonCept512: ≤ 30 where "good" is > 50).
3. Whenever the loop estimate reaches the targets, run the real check on the encoded output
   (``pixcamd.check``); stop as soon as every view reaches its target there. If the check falls
   short, tighten the in-loop targets and go on.
4. Escalate along the schedule: more steps at the same ε, then larger ε up to the cap.
5. Verdict from the real check only: protected iff every view of every model is on the
   low-quality side of its threshold after JPEG-90. Otherwise ``protected = False``, with scores.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from PIL import Image

from pixcamd.check import Check, check_output, platform_scores, psnr_ssim, score_image_views
from pixcamd.jpeg import Chain, decode
from pixcamd.models.base import QualityModel
from pixcamd.optimizer import Attack, StepReport
from pixcamd.photo import to_image, to_tensor
from pixcamd.views import DEFAULT_VIEWS, parse_views

TIGHTEN = 5.0  # in-loop targets move this far when the real check disagrees with the loop


@dataclass(frozen=True)
class Settings:
    views: tuple[str, ...] = DEFAULT_VIEWS
    epsilon: float = 4 / 255  # L∞ budget per pixel (in texture; flat areas get less)
    epsilon_cap: float = 8 / 255  # escalation never goes beyond this
    targets: dict[str, float] = field(default_factory=dict)  # per model; default: its own
    steps: int = 40  # per round of the schedule
    seed: int = 0
    output_quality: int = 95
    output_subsampling: str = "4:4:4"
    platform_quality: int = 90
    masking: bool = True
    platform_checks: bool = True
    batch_size: int = 2
    device: str = "cpu"

    def schedule(self) -> list[float]:
        """ε per round: twice the base (more steps), then ×1.5 up to the cap."""
        rounds, eps = [self.epsilon, self.epsilon], self.epsilon
        while self.epsilon > 0 and eps < self.epsilon_cap:
            eps = min(self.epsilon_cap, eps * 1.5)
            rounds.append(eps)
        return rounds

    def chain(self) -> Chain:
        return Chain(self.output_quality, self.output_subsampling, self.platform_quality)


@dataclass
class Result:
    image: Image.Image  # the protected pixels, exactly the input's size (encode as output_jpeg)
    output_jpeg: bytes  # the encoding the check was run on (pixels only, no metadata)
    protected: bool
    untouched: bool  # already low quality: passed through without changes
    margin_met: bool  # every view reached its target, not only the threshold
    models: list[dict]
    targets: dict[str, float]
    before: dict[str, dict[str, float]]  # after JPEG-90 of the unprotected photo
    after: dict[str, dict[str, float]]  # the protected pixels, no JPEG
    after_jpeg: dict[str, dict[str, float]]  # the output file after the platform's JPEG-90
    platform: dict[str, dict[str, dict[str, float]]]  # information: resize + JPEG-85
    psnr: float  # of the output file's pixels against the original, dB
    ssim: float  # same, mean SSIM on luma
    linf: int  # largest change we made to any channel, in 8-bit grey levels (before encoding)
    epsilon: float  # the budget of the round that ended, in 8-bit grey levels
    steps: int
    seconds: float

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
    views = parse_views(settings.views)
    targets = _targets(models, settings)
    chain = settings.chain()
    image = image.convert("RGB")

    data, before = check_output(image, models, views, chain)
    if before.all_low:
        return _result(
            image,
            image,
            data,
            before,
            before,
            models,
            targets,
            settings,
            0,
            0.0,
            started,
            untouched=True,
        )

    attack = Attack(
        to_tensor(image).to(settings.device),
        models,
        views,
        dict(targets),
        chain,
        seed=settings.seed,
        batch_size=settings.batch_size,
        masking=settings.masking,
    )
    best: tuple[Image.Image, bytes, Check, float] | None = None

    def on_step(report: StepReport) -> bool:
        nonlocal best
        if progress is not None:
            first = models[0]
            values = report.scores[first.name].values()
            progress(report.step, max(values) if first.higher_is_better else min(values))
        if not report.reached:
            return False
        candidate = to_image(attack.pixels())
        encoded, check = check_output(candidate, models, views, chain)
        if _meets(check, models, targets):
            best = (candidate, encoded, check, current_eps)
            return True
        if check.all_low:
            best = (candidate, encoded, check, current_eps)  # protected; aim for the margin
        for m in models:  # the loop was optimistic: aim further
            attack.targets[m.name] += -TIGHTEN if m.higher_is_better else TIGHTEN
        return False

    current_eps = 0.0
    for current_eps in settings.schedule():
        if current_eps == 0:
            continue  # a zero budget cannot move a pixel: nothing to optimize
        attack.run(current_eps, settings.steps, on_step)
        if best is not None and _meets(best[2], models, targets):
            break
    if best is None:
        candidate = to_image(attack.pixels())
        encoded, check = check_output(candidate, models, views, chain)
        best = (candidate, encoded, check, current_eps)
    pixels, encoded, check, eps_used = best
    return _result(
        image,
        pixels,
        encoded,
        before,
        check,
        models,
        targets,
        settings,
        attack.step,
        eps_used,
        started,
        untouched=False,
    )


def _meets(check: Check, models: list[QualityModel], targets: dict[str, float]) -> bool:
    for m in models:
        for s in check.scores[m.name].values():
            if (s > targets[m.name]) if m.higher_is_better else (s < targets[m.name]):
                return False
    return True


def _result(
    original: Image.Image,
    pixels: Image.Image,
    encoded: bytes,
    before: Check,
    final: Check,
    models: list[QualityModel],
    targets: dict[str, float],
    settings: Settings,
    steps: int,
    epsilon: float,
    started: float,
    untouched: bool,
) -> Result:
    output = decode(encoded)  # what the file holds
    views = parse_views(settings.views)
    after = score_image_views(pixels, models, views)
    psnr, ssim = psnr_ssim(original, output)
    diff = (to_tensor(original) - to_tensor(pixels)).abs().max().item() * 255
    return Result(
        image=pixels,
        output_jpeg=encoded,
        protected=final.all_low,
        untouched=untouched,
        margin_met=_meets(final, models, targets),
        models=[m.describe() for m in models],
        targets=targets,
        before=before.scores,
        after=after.scores,
        after_jpeg=final.scores,
        platform=platform_scores(output, models, views) if settings.platform_checks else {},
        psnr=psnr,
        ssim=ssim,
        linf=round(diff),
        epsilon=epsilon * 255,
        steps=steps,
        seconds=time.perf_counter() - started,
    )
