"""The optimizer: a perturbation δ on the full-resolution photo, driven by every view's score.

Each step builds the views of round₈(photo + δ) as the BIQA will see them — native-resolution
crops (``center``, ``tiles``) through the straight-through JPEG of ``pixcamd.jpeg`` on an
MCU-aligned window, the ``resize`` view by the thumbnailer's downscale — scores them, and moves δ
by a signed-gradient step (I-FGSM / PGD under an L∞ budget). The budget is shaped per pixel by a
perceptual mask: full ε in texture, down to a quarter of it in flat areas, where a change would
show. Only pixels that some view sees ever move.

``ViewLoop`` holds what every optimizer here shares — the views, the in-loop JPEG, the hinge
loss and its targets; ``Attack`` is the invisible perturbation, ``pixcamd.enhance.Enhancer``
the colour filter of enhancement mode.

The ``resize`` view skips the in-loop JPEG: a downscale by the factor of a multi-megapixel photo
averages JPEG-90's 8×8 quantization error away (well under one grey level), and running the
codec over the whole photo every step would cost more than the model. The real check decides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pixcamd.jpeg import Chain, aligned_window, straight_through_jpeg, straight_through_round
from pixcamd.models.base import QualityModel
from pixcamd.views import View, cover_scale, enlarge_to_cover, extract, plan_views

MASK_FLOOR = 0.25  # flat areas get a quarter of the budget
MASK_TEXTURE = 6 / 255  # local luma deviation at which a pixel gets the full budget


def perceptual_mask(photo: torch.Tensor, floor: float = MASK_FLOOR) -> torch.Tensor:
    """1×1×H×W weights in [floor, 1]: the local (7×7) luma standard deviation, saturating."""
    luma = (photo * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1).to(photo)).sum(1, True)
    pool = dict(kernel_size=7, stride=1, padding=3, count_include_pad=False)
    mean = F.avg_pool2d(luma, **pool)
    var = (F.avg_pool2d(luma * luma, **pool) - mean * mean).clamp_min(0)
    return (var.sqrt() / MASK_TEXTURE).clamp(floor, 1.0)


@dataclass
class StepReport:
    step: int
    scores: dict[str, dict[str, float]]  # model → view → in-loop score
    reached: bool  # every view of every model at or beyond its target in the loop


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
    ):
        self.photo = photo
        self.models, self.targets, self.chain = models, targets, chain
        self.batch_size = max(1, batch_size)
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

    def reached(self, scores: dict[str, dict[str, float]]) -> bool:
        for model in self.models:
            target = self.targets[model.name]
            for s in scores[model.name].values():
                if (s > target) if model.higher_is_better else (s < target):
                    return False
        return True


class Attack(ViewLoop):
    """The invisible perturbation δ on one photo.

    Cost matters more than elegance here: at 12–24 MP every full-resolution tensor operation
    costs tens of milliseconds on a CPU and every full-resolution float tensor 100–300 MB, so δ
    is a plain tensor updated in place with three full-size operations per step, the budget is
    one broadcast channel, and gradients are taken with respect to each view's own region (a
    leaf tensor) and added into one reused buffer.
    """

    def __init__(
        self,
        photo: torch.Tensor,
        models: list[QualityModel],
        views,
        targets: dict[str, float],
        chain: Chain,
        seed: int = 0,
        batch_size: int = 2,
        masking: bool = True,
    ):
        super().__init__(photo, models, views, targets, chain, batch_size)
        self.mask = perceptual_mask(photo) if masking else torch.ones_like(photo[:, :1])
        self.seed = seed
        self.delta = torch.zeros_like(photo)
        self.grad = torch.zeros_like(photo)

    def evaluate(self, backward: bool) -> dict[str, dict[str, float]]:
        """In-loop scores of every view; with ``backward``, ∂loss/∂δ into ``self.grad``."""
        scores: dict[str, dict[str, float]] = {}
        if backward:
            self.grad.zero_()
        for model in self.models:
            scores[model.name] = {}
            for i in range(0, len(self.views), self.batch_size):
                chunk = self.views[i : i + self.batch_size]
                boxes = [self._region(v) for v in chunk]
                leaves = [
                    (self.photo[..., y0:y1, x0:x1] + self.delta[..., y0:y1, x0:x1])
                    .clamp_(0, 1)
                    .requires_grad_(backward)
                    for x0, y0, x1, y1 in boxes
                ]
                with torch.set_grad_enabled(backward):
                    batch = torch.cat(
                        [
                            self._view(v, r, b[:2])
                            for v, r, b in zip(chunk, leaves, boxes, strict=True)
                        ]
                    )
                    out = model(batch)
                    if backward:
                        grads = torch.autograd.grad(
                            self._loss(model, out), leaves, allow_unused=True
                        )
                        for (x0, y0, x1, y1), g in zip(boxes, grads, strict=True):
                            if g is not None:
                                self.grad[..., y0:y1, x0:x1] += g
                for v, s in zip(chunk, out.detach().float().tolist(), strict=True):
                    scores[model.name][v.label] = s
        return scores

    def run(
        self,
        epsilon: float,
        steps: int,
        on_step: Callable[[StepReport], bool] | None = None,
        step_fraction: float = 0.125,
    ) -> None:
        """Up to ``steps`` signed-gradient steps within ±ε·mask; ``on_step`` True stops."""
        bound = epsilon * self.mask  # 1×1×H×W, broadcast over the channels
        alpha = step_fraction * bound
        if self.step == 0:
            # A small seeded start (up to half a grey level, within the budget) breaks ties
            # where the gradient is flat.
            generator = torch.Generator().manual_seed(self.seed)
            start = torch.rand(self.photo.shape, generator=generator).to(self.photo.device)
            self.delta.copy_(start.mul_(2).sub_(1).mul_(bound.clamp(max=0.5 / 255)))
            del start
        for _ in range(steps):
            scores = self.evaluate(backward=True)
            reached = self.reached(scores)
            self.step += 1
            if on_step is not None and on_step(StepReport(self.step, scores, reached)):
                return
            self.delta.addcmul_(self.grad.sign_(), alpha, value=-1.0)
            # The budget only; the valid range [0, 1] is applied wherever δ is used.
            torch.clamp(self.delta, -bound, bound, out=self.delta)

    def pixels(self) -> torch.Tensor:
        """The 8-bit protected photo, 1×3×H×W."""
        return torch.round((self.photo + self.delta).clamp(0, 1) * 255) / 255
