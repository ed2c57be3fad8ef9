"""The search: an optimizer (``pixcamd.optimizer.Attack`` or ``pixcamd.enhance.Enhancer``)
stepped through the rounds of its budget, the real check run where the loop calls for it (or
every few steps once every view looks low), the targets tightened where the check disagrees,
escalation when a round falls short, and the protected candidate with the widest margin kept
(``Search``). ``pixcamd.protect.protect`` builds the optimizer and the rounds and calls it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from pixcamd.check import Check, check_output, pixel_changes, psnr
from pixcamd.enhance import ColourFilter
from pixcamd.jpeg import decode
from pixcamd.models.base import QualityModel
from pixcamd.photo import to_image
from pixcamd.settings import Settings, view_workers
from pixcamd.view_loop import StepReport

CHECK_SPACING = 5  # steps between real checks that the loop's targets did not call for
# A protected copy below the polish's floor is drawn toward the photo until its PSNR is this far
# above the floor (the realized change and the output's encoding land within a few hundredths
# of the estimate), if the verdict holds there (``Search._trim``).
TRIM_MARGIN = 0.02  # dB


@dataclass
class Found:
    """A candidate the real check has judged."""

    image: Image.Image
    encoded: bytes
    check: Check
    budget: float  # ε of the invisible round that produced it (0 for a filter)
    colour_filter: ColourFilter | None = None  # the enhancer's filter that produced it
    psnr: float | None = None  # of the encoded output against the photo, once asked for


class Search:
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
            return self._trim(self.best)
        return ended or self._count(self._judge())  # never protected: judge where it ended

    def _judge(self) -> Found:
        pixels, colour_filter = self.loop.candidate()
        return self._judge_image(to_image(pixels), colour_filter)

    def _judge_image(self, candidate: Image.Image, colour_filter=None) -> Found:
        s = self.settings
        encoded, check = check_output(
            candidate, self.models, self.views, s.platforms, s.output, view_workers(s)
        )
        return Found(candidate, encoded, check, self.budget, colour_filter)

    def _trim(self, found: Found) -> Found:
        """The protected copy, or — when it is below the polish's floor — the same change drawn
        toward the photo just enough to reach the floor, if the real check still finds it
        protected there (else halfway back, else the copy as it is). The first protected
        candidate is kept whatever it costs and the loop's δ swings by tenths of a dB from step
        to step: on the most textured photos protection can land just below the floor with
        margin to spare (docs/benchmarks.md, "The floor, reached afterwards")."""
        if not self.floor or self._psnr(found) >= self.floor:
            return found
        counts = change_counts(self.start, found.image)
        encoding = max(0.0, _mse(self._psnr(found)) - expected_mse(counts, 1.0))
        goal = _mse(self.floor + TRIM_MARGIN) - encoding
        if goal <= 0:  # the output's encoding alone is below the floor: nothing to trim
            return found
        scale = scale_for(counts, goal)
        for tried in (scale, (1.0 + scale) / 2):
            image = trimmed(self.start, found.image, tried, self.settings.seed)
            candidate = self._count(self._judge_image(image, found.colour_filter))
            if candidate.check.all_low:  # (the round's budget: the search stopped in it)
                return candidate
        return found

    def _meets(self, found: Found) -> bool:
        return meets(found.check, self.models, self.targets)

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


def change_counts(start: Image.Image, candidate: Image.Image) -> np.ndarray:
    """How many channel values ``candidate`` changed from ``start`` by 0, 1, … 255 levels."""
    counts = np.zeros(256, dtype=np.int64)
    for _, _, change in pixel_changes(start, candidate):
        counts += np.bincount(np.abs(change).ravel(), minlength=256)
    return counts


def expected_mse(counts: np.ndarray, scale: float) -> float:
    """The mean squared error (in [0, 1]² units) that ``trimmed`` by ``scale`` leaves, on
    average over its draws: a change of m levels becomes ⌊scale·m⌋ or one more."""
    levels = np.arange(256, dtype=np.float64) * scale
    whole = np.floor(levels)
    square = whole**2 + (levels - whole) * (2 * whole + 1)
    return float((counts * square).sum() / counts.sum()) / 255**2


def scale_for(counts: np.ndarray, goal: float) -> float:
    """The largest scale whose ``expected_mse`` is at most ``goal`` (bisection: it grows with
    the scale)."""
    low, high = 0.0, 1.0
    for _ in range(30):
        middle = (low + high) / 2
        low, high = (middle, high) if expected_mse(counts, middle) <= goal else (low, middle)
    return low


def trimmed(start: Image.Image, candidate: Image.Image, scale: float, seed: int) -> Image.Image:
    """``candidate`` with its change from ``start`` scaled by ``scale`` (at most 1), rounded
    stochastically — ⌊scale·m + u⌋ levels, u one seeded draw per pixel, alike for R, G and B —
    so a change of a level or two shrinks on average too, as plain rounding would not (it keeps
    every change under 1 / (2·(1 − scale)) levels as it is), and a grey change stays grey."""
    out = np.empty((candidate.height, candidate.width, 3), dtype=np.uint8)
    generator = np.random.default_rng(seed)
    for top, base, change in pixel_changes(start, candidate):
        draw = generator.random((*change.shape[:2], 1), dtype=np.float32)
        kept = np.floor(np.abs(change) * np.float32(scale) + draw).astype(np.int16)
        out[top : top + len(change)] = base + np.sign(change) * kept
    return Image.fromarray(out, "RGB")


def _mse(psnr_db: float) -> float:
    """Mean squared error in [0, 1]² units of a PSNR in dB."""
    return 10 ** (-psnr_db / 10)


def meets(check: Check, models: list[QualityModel], targets: dict[str, float]) -> bool:
    """Every (pipeline, model, view) at or beyond its target, not only past the threshold."""
    return not check.short(targets, models)
