"""What every optimizer here shares: the views of one photo as the BIQA will see them, the
in-loop JPEG, the hinge loss and its targets (``ViewLoop``), and what each step reports
(``StepReport``). ``pixcamd.optimizer.Attack`` (the invisible perturbation) and
``pixcamd.enhance.Enhancer`` (the colour filter) build on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pixcamd.jpeg import Chain, aligned_window, straight_through_jpeg, straight_through_round
from pixcamd.models.base import QualityModel
from pixcamd.views import View, cover_scale, enlarge_to_cover, extract, plan_views

TIGHTEN = 5.0  # in-loop targets move this far when the real check disagrees with the loop


@dataclass
class StepReport:
    step: int
    scores: dict[str, dict[str, float]]  # model → view → in-loop score
    reached: bool  # every view of every model at or beyond its target in the loop
    low: bool = False  # every view of every model on the low side of the threshold in the loop


class ViewLoop:
    """What every optimizer here shares: the views of one photo as the BIQA will see them, the
    in-loop JPEG, the hinge loss and the targets. ``photo`` is 1×3×H×W in [0, 1] (8-bit values).
    """

    def __init__(
        self,
        photo: torch.Tensor,
        models: list[QualityModel],
        views,
        targets: dict[str, float],
        chain: Chain,
        batch_size: int = 2,
        monochrome: bool = False,
    ):
        self.photo = photo
        self.models, self.targets, self.chain = models, targets, chain
        self.batch_size = max(1, batch_size)
        # A black-and-white photo: one change for R, G and B (δ or tone curve), so that its copy
        # stays neutral instead of speckled or tinted with colour.
        self.monochrome = monochrome
        height, width = photo.shape[-2:]
        size = models[0].view_size
        self.small = cover_scale(width, height, size) > 1.0
        if self.small:
            enlarged = enlarge_to_cover(photo, size)
            self.views = plan_views(enlarged.shape[-1], enlarged.shape[-2], views, size)
        else:
            self.views = plan_views(width, height, views, size)
        self.step = 0

    def _region(self, view: View) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of the pixels one view depends on."""
        height, width = self.photo.shape[-2:]
        if self.small:
            return 0, 0, width, height
        if view.resized:
            left, top, w, h = view.box
            return left, top, left + w, top + h
        return aligned_window(view.box, width, height)

    def _view(self, view: View, region: torch.Tensor, origin: tuple[int, int]) -> torch.Tensor:
        """One view from ``region`` (the edited photo's pixels at ``_region(view)``)."""
        size = self.models[0].view_size
        if self.small:  # the platform recompresses the small photo itself, then it is enlarged
            whole = straight_through_jpeg(straight_through_round(region), self.chain)
            return extract(enlarge_to_cover(whole, size), view, size)
        left, top, w, h = view.box
        if view.resized:
            # No 8-bit rounding here: the downscale averages its error far below a grey level.
            return extract(region, View(view.label, (0, 0, w, h), True), size)
        jpeg = straight_through_jpeg(straight_through_round(region), self.chain)
        x0, y0 = origin
        return jpeg[..., top - y0 : top - y0 + h, left - x0 : left - x0 + w]

    def _loss(self, model: QualityModel, scores: torch.Tensor) -> torch.Tensor:
        target = self.targets[model.name]
        excess = scores - target if model.higher_is_better else target - scores
        return F.relu(excess).sum()

    def pixels(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def candidate(self) -> tuple[torch.Tensor, object | None]:
        """The 8-bit photo to judge, and what produced it beyond the pixels (the enhancer's
        filter; nothing for the perturbation)."""
        return self.pixels(), None

    def tighten(self, short: set) -> None:
        """The check found (pipeline, model, view) triples short of their targets while the loop
        thought them reached: the loop was optimistic, so aim further."""
        for m in self.models:
            self.targets[m.name] += -TIGHTEN if m.higher_is_better else TIGHTEN

    def falls_short(self) -> bool:
        """Whether this round's trend says its budget will not protect the photo in time; the
        colour filter has no budget to escalate."""
        return False

    def reached(self, scores: dict[str, dict[str, float]]) -> bool:
        for model in self.models:
            target = self.targets[model.name]
            for s in scores[model.name].values():
                if (s > target) if model.higher_is_better else (s < target):
                    return False
        return True
