"""Enhancement mode: a colour filter a person reads as a photo edit and the BIQA as low quality.

After Zhao, Liu & Larson, "Adversarial Color Enhancement" (BMVC 2020), the approach of the
RU-DS run of MediaEval 2020 Pixel Privacy. The filter has a few dozen parameters whatever the
photo's resolution:

* a tone curve per channel (R, G, B): piecewise-linear with ``pieces`` equal pieces, black and
  white points fixed (0 → 0, 1 → 1), monotone with every slope in [1/2, 2] (no crushed or
  posterised tones), and never further than ``shift`` from the identity;
* global contrast around the photo's mean luma (Pillow's ``ImageEnhance.Contrast``);
* global saturation: a blend with the luma (Pillow's ``ImageEnhance.Color``).

Optimization starts at the identity and is regularized towards it, so the filter goes no further
than the BIQA needs. The edit is held to ``Guards`` — no flatter, no duller, no colour cast —
because the way to "low quality" a BIQA takes on its own is a worse photo: a penalty in the loss
teaches the steps where the guards are, and every candidate is checked against them. Each
step sees the same views, in-loop JPEG and targets as the invisible mode
(``pixcamd.view_loop.ViewLoop``); the verdict comes from the same real check.

What it can do depends on the BIQA. BRISQUE works on luma alone and divides out the local mean
and contrast (MSCN), so a global colour filter barely moves it: against BRISQUE the filter
rarely protects on its own and ``auto`` falls back to the invisible perturbation (measured in
docs/benchmarks.md). Deep BIQAs such as KonCept512 see colour; how far the filter takes them is
unmeasured here without the real weights.

Cheap at any size, because the filter is pointwise and, before clipping, linear in its curve
knots: a curve is Σₖ yₖ·φₖ(x) with hat functions φₖ, and contrast and saturation are affine. The
``resize`` view of the filtered photo is therefore Σₖ yₖ·resize(φₖ(x)) followed by the affine
steps — the K + 1 downscaled hat maps are computed once, and a step never touches the
full-resolution photo. Native views (``center``, ``tiles``) filter their own region directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import kornia
import torch
import torch.nn.functional as F

from pixcamd.defaults import STRENGTH
from pixcamd.models.base import QualityModel
from pixcamd.view_loop import StepReport, ViewLoop
from pixcamd.views import View, rescale

PIECES = 8
SLOPES = (0.5, 2.0)
# At the default strength; they scale with it. Lopsided on purpose: an edit that makes a photo
# flatter or duller would fool BRISQUE more easily (it reads low contrast as low quality) but is
# no enhancement; the tone curves can still lift shadows or tame highlights within ±strength.
CONTRAST_RANGE = (-0.05, 0.25)
SATURATION_RANGE = (-0.10, 0.40)
LEARNING_RATE = 0.01  # Adam, per step: about 2.5 grey levels of knot movement
REGULARIZATION = 2.0  # score points the full bound costs: the filter goes only as far as needed
PCT_FLOOR = {"lightness": 5.0, "spread": 5.0, "chroma": 10.0}  # CIELAB units
GUARD_HALVINGS = 8  # then the identity
GUARD_TOLERANCE = 0.05  # % or CIELAB units: rounding, not a visible difference
GUARD_WEIGHT = 5.0  # score points per unit outside the guards: the loss learns where they are


@dataclass(frozen=True)
class Bounds:
    """How far the filter may go; ``for_strength`` derives all of it from one number."""

    pieces: int = PIECES
    shift: float = STRENGTH / 255  # |curve(x) − x| ≤ shift
    slopes: tuple[float, float] = SLOPES
    contrast: tuple[float, float] = (1 + CONTRAST_RANGE[0], 1 + CONTRAST_RANGE[1])
    saturation: tuple[float, float] = (1 + SATURATION_RANGE[0], 1 + SATURATION_RANGE[1])

    @classmethod
    def for_strength(cls, grey_levels: float, pieces: int = PIECES) -> Bounds:
        """Curves within ±``grey_levels``; contrast and saturation ranges in proportion."""
        if not 0 <= grey_levels <= 64:
            raise ValueError(f"enhance strength {grey_levels:g} must be 0–64 grey levels")
        if pieces < 2:
            raise ValueError("a tone curve needs at least 2 pieces")
        scale = grey_levels / STRENGTH
        return cls(
            pieces=pieces,
            shift=grey_levels / 255,
            contrast=(max(0.0, 1 + CONTRAST_RANGE[0] * scale), 1 + CONTRAST_RANGE[1] * scale),
            saturation=(
                max(0.0, 1 + SATURATION_RANGE[0] * scale),
                1 + SATURATION_RANGE[1] * scale,
            ),
        )


# -- the filter, as functions on tensors ----------------------------------------------------------


def identity_knots(pieces: int = PIECES, channels: int = 3) -> torch.Tensor:
    """channels × (pieces + 1) knot values of the identity curve."""
    return torch.linspace(0, 1, pieces + 1).repeat(channels, 1)


def tone_curve(x: torch.Tensor, knots: torch.Tensor) -> torch.Tensor:
    """Per-channel piecewise-linear curves: N×C×H×W in [0, 1], knots C×(K+1) at 0, 1/K, …, 1.

    Two evaluations of the same function. With gradients for the knots: Σₖ knots[:, k]·φₖ(x),
    whose gradients are plain reductions — a table lookup's gradient is an index-accumulate
    that CPU threads sum in a varying order, and the same photo would not give the same bytes
    twice. Without: the lookup, several times faster on a full-resolution photo.
    """
    pieces = knots.shape[1] - 1
    if knots.requires_grad and torch.is_grad_enabled():
        out = torch.zeros_like(x)
        for k, phi in enumerate(hat_maps(x, pieces)):
            out = out + knots[:, k].view(1, -1, 1, 1) * phi
        return out
    t = x * pieces
    index = t.floor().clamp_(0, pieces - 1).long()
    frac = t - index
    offsets = (torch.arange(knots.shape[0], device=x.device) * (pieces + 1)).view(1, -1, 1, 1)
    flat = knots.reshape(-1)
    index += offsets
    low = flat[index]
    return low + (flat[index + 1] - low) * frac


def finish(curved: torch.Tensor, contrast, saturation, pivot: float) -> torch.Tensor:
    """Contrast around ``pivot`` then saturation (blend with luma), clipped to [0, 1]."""
    y = pivot + contrast * (curved - pivot)
    luma = kornia.color.rgb_to_grayscale(y)
    return (luma + saturation * (y - luma)).clamp(0, 1)


def apply_filter(x: torch.Tensor, knots, contrast, saturation, pivot: float) -> torch.Tensor:
    """The whole filter on an N×3×H×W batch in [0, 1], differentiably."""
    return finish(tone_curve(x, knots), contrast, saturation, pivot)


def hat_maps(x: torch.Tensor, pieces: int) -> Iterator[torch.Tensor]:
    """φₖ(x) for k = 0…K, one at a time (each is as large as ``x``: at 24 MP, 290 MB):
    tone_curve(x, knots) = Σₖ knots[:, k]·φₖ(x)."""
    t = x * pieces
    for k in range(pieces + 1):
        yield (1 - (t - k).abs()).clamp_(min=0)


def mean_luma(x: torch.Tensor) -> float:
    return float(kornia.color.rgb_to_grayscale(x).mean())


def project_knots(knots: torch.Tensor, bounds: Bounds) -> torch.Tensor:
    """Pull C×(K+1) knots (in place) onto the allowed curves: ends fixed, slopes within
    ``bounds.slopes``, within ``bounds.shift`` of the identity. Walking left to right, each
    knot is clamped to the interval that keeps the rest of the curve reachable; that interval
    is never empty when the previous knot was allowed, so the result always is."""
    pieces = knots.shape[1] - 1
    low_slope, high_slope = (s / pieces for s in bounds.slopes)
    with torch.no_grad():
        knots[:, 0], knots[:, -1] = 0.0, 1.0
        for k in range(1, pieces):
            x = k / pieces
            floor = max(x - bounds.shift, 1 - high_slope * (pieces - k))
            ceiling = min(x + bounds.shift, 1 - low_slope * (pieces - k))
            lo = (knots[:, k - 1] + low_slope).clamp(min=floor)
            hi = (knots[:, k - 1] + high_slope).clamp(max=ceiling)
            knots[:, k] = torch.minimum(torch.maximum(knots[:, k], lo), hi)
    return knots


@dataclass(frozen=True)
class ColourFilter:
    """A filter's parameters: everything needed to apply it again to the same photo."""

    knots: tuple[tuple[float, ...], ...]  # R, G, B curves: values at 0, 1/K, …, 1
    contrast: float = 1.0
    saturation: float = 1.0
    pivot: float = 0.5  # the photo's mean luma, around which contrast turns

    @classmethod
    def identity(cls, pieces: int = PIECES, pivot: float = 0.5) -> ColourFilter:
        return cls(tuple(tuple(row) for row in identity_knots(pieces).tolist()), pivot=pivot)

    @property
    def is_identity(self) -> bool:
        ident = identity_knots(len(self.knots[0]) - 1)
        close = torch.allclose(torch.tensor(self.knots), ident, atol=1e-6)
        return close and self.contrast == 1.0 and self.saturation == 1.0

    @torch.no_grad()
    def apply(self, photo: torch.Tensor, rows: int = 512) -> torch.Tensor:
        """Filter a 1×3×H×W photo in strips of ``rows`` (memory stays flat at 24 MP)."""
        knots = torch.tensor(self.knots, dtype=photo.dtype, device=photo.device)
        out = torch.empty_like(photo)
        for top in range(0, photo.shape[-2], rows):
            strip = photo[..., top : top + rows, :]
            out[..., top : top + rows, :] = apply_filter(
                strip, knots, self.contrast, self.saturation, self.pivot
            )
        return out

    def to_dict(self) -> dict:
        data = asdict(self)
        data["knots"] = [list(row) for row in self.knots]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ColourFilter:
        """Back from ``to_dict`` (a report or the ledger): the same filter, the same pixels."""
        knots = tuple(tuple(float(v) for v in row) for row in data["knots"])
        return cls(knots, float(data["contrast"]), float(data["saturation"]), float(data["pivot"]))


def look(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """A photo's statistics in CIELAB, as an editor would judge it (differentiable): mean L*,
    spread of L*, mean chroma, mean a* (green → magenta) and mean b* (blue → yellow)."""
    lab = kornia.color.rgb_to_lab(x.clamp(0, 1))
    light, a, b = lab[:, 0], lab[:, 1], lab[:, 2]
    return {
        "lightness": light.mean(),
        "spread": light.std(),
        "chroma": torch.sqrt(a * a + b * b + 1e-12).mean(),
        "a": a.mean(),
        "b": b.mean(),
    }


def change(old: dict[str, torch.Tensor], new: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Two ``look``s → brightness/contrast/saturation in % of the photo's own, warmth (Δb*) and
    tint (Δa*) in CIELAB units."""

    def pct(key: str) -> torch.Tensor:
        # A floor under the base: on a near-grey or near-flat photo a tiny absolute change is
        # not "+100 % saturation" to the eye.
        return 100 * (new[key] - old[key]) / old[key].clamp_min(PCT_FLOOR[key])

    return {
        "brightness_pct": pct("lightness"),
        "contrast_pct": pct("spread"),
        "saturation_pct": pct("chroma"),
        "warmth": new["b"] - old["b"],
        "tint": new["a"] - old["a"],
    }


def describe(before: torch.Tensor, after: torch.Tensor) -> dict:
    """What a filter did, from a photo and its filtered version (1×3×H×W; a thumbnail will do):
    the numbers of ``change`` and ``text``, a line a photographer reads."""
    with torch.no_grad():
        numbers = {k: round(float(v), 2) for k, v in change(look(before), look(after)).items()}
    return {"text": describe_text(numbers), **numbers}


@dataclass(frozen=True)
class Guards:
    """What keeps the filter an enhancement. Left alone, every BIQA pulls the same way — flatter,
    duller, a colour cast, washed out: that is what low quality looks like — so the filter is
    held to the edits a person would choose: no less contrast or colour than the original and
    not much more, no visible green/magenta cast, a modest warm/cool shift and exposure change.
    """

    min_contrast_pct: float = 0.0
    max_contrast_pct: float = 40.0  # beyond, an edit turns harsh
    min_saturation_pct: float = 0.0
    max_saturation_pct: float = 40.0  # beyond, garish (a first corpus run reached +85 %)
    max_tint: float = 2.0  # |Δa*|
    max_warmth: float = 6.0  # |Δb*|
    max_brightness_pct: float = 10.0  # |Δ mean L*|

    def excess(self, n: dict[str, torch.Tensor]) -> torch.Tensor:
        """How far a ``change`` lies outside the guards (0 inside), in % and CIELAB units."""
        return (
            F.relu(self.min_contrast_pct - n["contrast_pct"])
            + F.relu(n["contrast_pct"] - self.max_contrast_pct)
            + F.relu(self.min_saturation_pct - n["saturation_pct"])
            + F.relu(n["saturation_pct"] - self.max_saturation_pct)
            + F.relu(n["tint"].abs() - self.max_tint)
            + F.relu(n["warmth"].abs() - self.max_warmth)
            + F.relu(n["brightness_pct"].abs() - self.max_brightness_pct)
        )

    def allow(self, n: dict[str, torch.Tensor]) -> bool:
        return float(self.excess(n)) <= GUARD_TOLERANCE


def describe_text(n: dict) -> str:
    """``+8 % contrast, 3 % darker, slightly warmer`` — what a person would notice."""
    parts = []
    for key, name in (("contrast_pct", "contrast"), ("saturation_pct", "saturation")):
        if abs(n[key]) >= 1.5:
            parts.append(f"{n[key]:+.0f} % {name}".replace("-", "−"))
    if abs(n["brightness_pct"]) >= 1.5:
        word = "brighter" if n["brightness_pct"] > 0 else "darker"
        parts.append(f"{abs(n['brightness_pct']):.0f} % {word}")
    for key, up, down in (("warmth", "warmer", "cooler"), ("tint", "more magenta", "greener")):
        if abs(n[key]) >= 1.0:
            word = up if n[key] > 0 else down
            parts.append(word if abs(n[key]) >= 3.0 else f"slightly {word}")
    return ", ".join(parts) if parts else "no visible colour change"


def thumbnail(photo: torch.Tensor, long_side: int = 512) -> torch.Tensor:
    """An antialiased downscale for statistics (filters are pointwise: thumbnails suffice)."""
    height, width = photo.shape[-2:]
    scale = long_side / max(height, width)
    if scale >= 1:
        return photo
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return F.interpolate(photo, size=size, mode="area")


# -- the optimizer --------------------------------------------------------------------------------


class Enhancer(ViewLoop):
    """The colour filter of one photo, optimized with Adam and projected onto ``bounds``."""

    def __init__(
        self,
        photo: torch.Tensor,
        models: list[QualityModel],
        views,
        targets: dict[str, float],
        chain,
        bounds: Bounds = Bounds(),
        batch_size: int = 2,
        guards: Guards = Guards(),
        monochrome: bool = False,
    ):
        super().__init__(photo, models, views, targets, chain, batch_size, monochrome)
        self.bounds, self.guards = bounds, guards
        self.pivot = mean_luma(photo)
        self.thumb = thumbnail(photo)
        self.thumb_look = {k: v.detach() for k, v in look(self.thumb).items()}
        self.knots = identity_knots(bounds.pieces).to(photo).requires_grad_(True)
        self.contrast = torch.ones((), dtype=photo.dtype, device=photo.device, requires_grad=True)
        self.saturation = torch.ones_like(self.contrast, requires_grad=True)
        self.optimizer = torch.optim.Adam(
            [self.knots, self.contrast, self.saturation], lr=LEARNING_RATE
        )
        # Downscaled hat maps of the resize views (see the module docstring): K+1 × 1×3×h×w.
        self.hats: dict[str, torch.Tensor] = {}
        if not self.small:
            for view in self.views:
                if view.resized:
                    left, top, w, h = view.box
                    box = self.photo[..., top : top + h, left : left + w]
                    size = models[0].view_size
                    with torch.no_grad():  # unclipped, or the sum would not be linear
                        self.hats[view.label] = torch.stack(
                            [rescale(phi, size) for phi in hat_maps(box, bounds.pieces)]
                        )

    def filter(self) -> ColourFilter:
        """The current filter, held to the guards: the optimizer may stray a little outside
        them (its penalty pulls it back), a candidate never does. Outside, the edit is halved
        towards the identity until its look is allowed — the identity always is, so this ends.
        """
        with torch.no_grad():
            knots = self.knots.detach().clone()
            contrast, saturation = self.contrast.detach().clone(), self.saturation.detach().clone()
            identity = identity_knots(self.bounds.pieces).to(knots)
            for _ in range(GUARD_HALVINGS):
                edited = apply_filter(self.thumb, knots, contrast, saturation, self.pivot)
                if self.guards.allow(change(self.thumb_look, look(edited))):
                    break
                knots.lerp_(identity, 0.5)
                contrast.lerp_(torch.ones_like(contrast), 0.5)
                saturation.lerp_(torch.ones_like(saturation), 0.5)
            else:
                knots, contrast, saturation = identity, torch.ones(()), torch.ones(())
        return ColourFilter(
            knots=tuple(tuple(row) for row in knots.cpu().tolist()),
            contrast=float(contrast),
            saturation=float(saturation),
            pivot=self.pivot,
        )

    def _filtered_view(self, view: View) -> torch.Tensor:
        if view.label in self.hats:  # exact before clipping: the curve is linear in its knots
            weights = self.knots.t().reshape(-1, 1, 3, 1, 1)
            curved = (self.hats[view.label] * weights).sum(0)
            return finish(curved, self.contrast, self.saturation, self.pivot)
        x0, y0, x1, y1 = self._region(view)
        region = apply_filter(
            self.photo[..., y0:y1, x0:x1], self.knots, self.contrast, self.saturation, self.pivot
        )
        return self._view(view, region, (x0, y0))

    def _penalty(self) -> torch.Tensor:
        """Distance from the identity, normalized so the edge of the bounds costs
        ``REGULARIZATION`` score points (the BIQA has to be worth the edit), plus a steep cost
        outside the guards, so the steps learn to slide along them instead of being cut back."""
        b = self.bounds
        shift = (self.knots - identity_knots(b.pieces).to(self.knots)) / max(b.shift, 1e-6)
        spans = [max(hi - lo, 1e-6) / 2 for lo, hi in (b.contrast, b.saturation)]
        terms = (
            shift.pow(2).mean()
            + ((self.contrast - 1) / spans[0]).pow(2)
            + ((self.saturation - 1) / spans[1]).pow(2)
        )
        edited = apply_filter(self.thumb, self.knots, self.contrast, self.saturation, self.pivot)
        outside = self.guards.excess(change(self.thumb_look, look(edited)))
        return REGULARIZATION * terms / 3 + GUARD_WEIGHT * outside

    def evaluate(self, backward: bool) -> dict[str, dict[str, float]]:
        scores: dict[str, dict[str, float]] = {}
        if backward:
            self.optimizer.zero_grad(set_to_none=False)
        for model in self.models:
            scores[model.name] = {}
            for i in range(0, len(self.views), self.batch_size):
                chunk = self.views[i : i + self.batch_size]
                with torch.set_grad_enabled(backward):
                    out = model(torch.cat([self._filtered_view(v) for v in chunk]))
                    if backward:
                        self._loss(model, out).backward()
                for v, s in zip(chunk, out.detach().float().tolist(), strict=True):
                    scores[model.name][v.label] = s
        if backward:
            self._penalty().backward()
        return scores

    def _project(self) -> None:
        """Onto the bounds: convex, and holding the identity."""
        if self.monochrome:
            self.knots.data.copy_(self.knots.data.mean(0, keepdim=True).expand_as(self.knots))
        project_knots(self.knots.data, self.bounds)
        with torch.no_grad():
            self.contrast.clamp_(*self.bounds.contrast)
            self.saturation.clamp_(*self.bounds.saturation)

    def run(self, steps: int, on_step: Callable[[StepReport], bool] | None = None) -> None:
        """Up to ``steps`` Adam steps, each projected onto the bounds; ``on_step`` True stops."""
        self._project()  # a zero strength pins the filter to the identity
        for _ in range(steps):
            scores = self.evaluate(backward=True)
            reached = self.reached(scores)
            self.step += 1
            if on_step is not None and on_step(StepReport(self.step, scores, reached)):
                return
            self.optimizer.step()
            self._project()

    def candidate(self) -> tuple[torch.Tensor, ColourFilter]:
        """The filtered photo at full resolution (8-bit values, 1×3×H×W) and its filter: the
        guards are applied once for both."""
        colour_filter = self.filter()
        return torch.round(colour_filter.apply(self.photo) * 255) / 255, colour_filter

    def pixels(self) -> torch.Tensor:
        return self.candidate()[0]


def summary(colour_filter: ColourFilter, photo: torch.Tensor) -> dict:
    """The record of an enhancement: what a person sees, and the parameters to reproduce it."""
    small = thumbnail(photo)
    change = describe(small, colour_filter.apply(small))
    knots = colour_filter.to_dict()
    return {
        "description": change.pop("text"),
        "change": change,
        "filter": knots,
        "curve_grey_levels": [[round(v * 255, 2) for v in row] for row in colour_filter.knots],
    }


__all__ = [
    "Bounds",
    "ColourFilter",
    "Enhancer",
    "Guards",
    "apply_filter",
    "describe",
    "describe_text",
    "identity_knots",
    "project_knots",
    "summary",
    "tone_curve",
]
