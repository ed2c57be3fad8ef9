"""The optimizer: a perturbation δ on the full-resolution photo, driven by every view's score.

Each step builds views of round₈(photo + δ) as the BIQA will see them after each platform
pipeline — the loop views of ``pixcamd.pipeline_views``: crops through the straight-through
resize and JPEG of the pipeline, the whole photo fitted to the view — scores them, and moves δ
by a clipped-gradient step (PGD under an L∞ budget: a signed step where the gradient is large,
a proportionally smaller one where it is small) on the sum of the views' gradients, each
normalized to an equal say; where the step barely pushes, δ fades a little. The budget is
shaped per pixel by a perceptual mask (``pixcamd.budget``): full ε in strong texture, down to
a sixth of it in flat areas, where a change would show — texture at the scale of the largest
downscale too. Only pixels that some view shows ever move.

``pixcamd.view_loop.ViewLoop`` holds what every optimizer here shares — the views, the in-loop
JPEG, the hinge loss and its targets; ``Attack`` is the invisible perturbation,
``pixcamd.enhance.Enhancer`` the colour filter of enhancement mode (which models the native views
of the first pipeline; the check judges it on every pipeline).
"""

from __future__ import annotations

import math
import statistics
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F

from pixcamd.budget import perceptual_mask
from pixcamd.jpeg import Chain
from pixcamd.models.base import QualityModel
from pixcamd.photo import to_image
from pixcamd.pipeline_views import (
    FIT_JITTER,
    GRID_JITTER,
    DownscaledCrop,
    LoopView,
    NativeFit,
    Whole,
    plan_loop_views,
)
from pixcamd.platforms import Pipeline
from pixcamd.roaming import near_full_view, roaming_view
from pixcamd.view_loop import TIGHTEN, StepReport, ViewLoop

# A step moves a pixel the whole step where the summed gradient is at least STEP_CLIP times a
# view's mean (each view's is normalized to mean 1), proportionally less below. A plain sign step
# moves every pixel a view shows by the whole step, though most gradients are small (the median
# pixel's is under half the mean): in textured photos it filled the budget everywhere, PSNR 34 dB.
# Clipped at 2, over the 22 corpus photos: PSNR 41.7 → 43.8 dB mean, 34.2 → 36.2 at the least,
# the default set as protected, a few nearby/unseen pairs fewer where a photo now gets by on a
# smaller ε; at 1 half the gain, at 4 more escalation (docs/benchmarks.md, "The step").
STEP_CLIP = 2.0
# And δ fades where the step barely pushes: δ ← δ·(1 − FADE·(1 − |u|)), u the clipped step in
# [−1, 1]. A pixel the views push the whole step keeps its δ; one whose gradients change sign
# from step to step (a fit drawn off its box, a roaming view now and then) would otherwise walk
# to the budget and stay there, energy no view needs. Over the 22 corpus photos: PSNR 42.9 →
# 44.3 dB mean, 33.6 → 35.7 at the least, as many nearby and unseen pipelines held or more, more
# photos escalated (docs/benchmarks.md, "δ fades"). A fade of every pixel alike lost more
# protection for the same PSNR; at 0.08 the most textured photo held by a point.
FADE = 0.06
# A round ends before its last step when some named view's trend (at least TREND_POINTS scores
# over TREND_SPAN steps) will not take it past the threshold by then: a budget too small for a
# view plateaus below it (docs/benchmarks.md, "Escalating sooner").
TREND_POINTS = 3
TREND_SPAN = 12
LARGE_REGION = 4_000_000  # native pixels above which a loop view is evaluated on its own


class Attack(ViewLoop):
    """The invisible perturbation δ on one photo, seen through every platform pipeline.

    ``platforms`` (with ``output``, our file's JPEG quality and subsampling) gives the loop views
    (``pixcamd.pipeline_views``); without it the loop sees ``views`` through ``chain`` alone, as
    the task's pipeline. Each step evaluates at most ``views_per_step`` loop views — those
    furthest from their targets, the stalest first among equals — so the cost per step stays
    bounded however many pipelines there are; the slots they leave free go to up to ``roaming``
    random pipelines in no preset, and ``near_full`` more slots to random downscales near full
    size. A downscaling pipeline's crop is evaluated each time at a served size drawn within
    ±``grid_jitter`` of its own (``DownscaledCrop.nearby``), and a fit from a box within
    ±``fit_jitter`` of its own, so δ cannot lean on the one exact grid the check uses. A step
    whose views all look done by their last scores evaluates every view afresh before it
    reports the targets reached.

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
        platforms: tuple[Pipeline, ...] | None = None,
        output: tuple[int, str] = (95, "4:4:4"),
        views_per_step: int = 0,
        roaming: int = 1,
        near_full: int = 0,
        grid_jitter: float = GRID_JITTER,
        fit_jitter: float = FIT_JITTER,
        monochrome: bool = False,
        workers: int = 1,
    ):
        super().__init__(photo, models, views, targets, chain, batch_size, monochrome)
        height, width = photo.shape[-2:]
        size = models[0].view_size
        if platforms is None:
            task = Pipeline("task", quality=chain.platform_quality)
            platforms = (task,)
            output = (chain.output_quality, chain.output_subsampling)
        self.loop_views = plan_loop_views(width, height, views, platforms, output, size)
        self.views_per_step = views_per_step or len(self.loop_views)
        self.offsets = {v.label: 0.0 for v in self.loop_views}  # per-view tightening
        self.last: dict[str, dict[str, float]] = {m.name: {} for m in models}
        self.seen_at = {v.label: -1 for v in self.loop_views}
        # (step, score) of every evaluation of a named view in this round, per model: its trend
        self.history: dict[str, dict[str, list[tuple[int, float]]]] = {
            m.name: {v.label: [] for v in self.loop_views} for m in models
        }
        self.round_end = 0  # the step this round of ``run`` would end at
        geometries = [p.geometry(width, height) for p in platforms]
        scales = [box[2] / served[0] for box, served in geometries if box[2:] != served]
        self.largest = max(scales, default=1.0)  # the strongest downscale a pipeline does
        self.output = output
        # Roaming views wherever a named pipeline resizes or crops — also on a photo none of
        # them shrinks (≤ 1080 px wide with the defaults): other destinations still downscale
        # it, and without them two 1024-px copies scored 37 and 38 served a tenth smaller.
        # The near-full slot only where a named pipeline shrinks the photo: on one none does,
        # the roaming draws (1.1× to the view size) land near full size anyway, and the slot
        # cost half again the time there for one judged pair in 192 (docs/benchmarks.md,
        # "Small photos: roaming views"). `task` alone has neither.
        roams = any(p.resize != "none" or p.crop is not None for p in platforms)
        self.roaming = roaming if roams else 0  # views per step
        self.near_full = near_full if self.largest > 1.0 else 0  # views per step, beside them
        self.generator = torch.Generator().manual_seed(seed + 1)
        self.grid_jitter = grid_jitter  # served sizes of downscaled crops drawn from ± this
        self.fit_jitter = fit_jitter  # the boxes of fits drawn from ± this
        self.jitter_generator = torch.Generator().manual_seed(seed + 2)
        if masking:
            self.mask = perceptual_mask(photo, coarse=self.largest)
        else:
            self.mask = torch.ones_like(photo[:, :1])
        self.seed = seed
        self.delta = torch.zeros_like(photo)
        self.grad = torch.zeros_like(photo)
        self._whole: tuple | None = None  # (region, 8-bit image) of this step's photo + δ
        self._whole_lock = threading.Lock()
        self.workers = workers  # small views evaluated side by side, one a thread

    def target(self, model: QualityModel, label: str) -> float:
        offset = self.offsets.get(label, 0.0)  # a roaming view: the plain target
        return self.targets[model.name] + (-offset if model.higher_is_better else offset)

    def _deficit(self, label: str) -> float:
        """How far the view's last scores are from their targets, relative to each model's
        margin; views never scored come first."""
        worst = 0.0
        for m in self.models:
            score = self.last[m.name].get(label)
            if score is None:
                return math.inf
            target = self.target(m, label)
            excess = score - target if m.higher_is_better else target - score
            worst = max(worst, excess / (abs(m.threshold - target) + 1.0))
        return worst

    def _choose(self, limit: int | None = None) -> list[LoopView]:
        pending = [v for v in self.loop_views if self._deficit(v.label) > 0]
        if not pending:  # all done by their last scores: look at every view afresh
            return list(self.loop_views)
        pending.sort(key=lambda v: (-self._deficit(v.label), self.seen_at[v.label]))
        return pending[: self.views_per_step if limit is None else limit]

    def evaluate(self, backward: bool, chosen: list[LoopView] | None = None) -> dict:
        """In-loop scores of ``chosen`` (default: every) loop view, remembered in ``last``; with
        ``backward``, ∂loss/∂δ into ``self.grad``. Returns the last scores of every view."""
        chosen = self.loop_views if chosen is None else chosen
        if backward:
            self.grad.zero_()
        for model in self.models:
            for chunk, out, grads in self._chunk_results(model, chosen, backward):
                for v, g in zip(chunk, grads, strict=True):
                    if g is None:
                        continue
                    a, b, c, d = v.footprint
                    # Each view an equal say: the sum's sign would otherwise follow the view
                    # with the largest gradients (a native crop's, where a downscale spreads
                    # its own over many pixels).
                    size = g.abs().mean().clamp_min(1e-12)
                    self.grad[..., b:d, a:c].addcdiv_(g, size)  # no quotient temporary
                for v, s in zip(chunk, out.tolist(), strict=True):
                    if v.label in self.seen_at:  # a roaming view is forgotten once used
                        self.last[model.name][v.label] = s
                        self.history[model.name][v.label].append((self.step, s))
        self._whole = None  # δ moves after this: the next step converts afresh
        for v in chosen:
            if v.label in self.seen_at:
                self.seen_at[v.label] = self.step
        return {m: dict(per_view) for m, per_view in self.last.items()}

    def _chunk_results(self, model: QualityModel, chosen: list[LoopView], backward: bool):
        """(chunk, scores, each view's gradient over its footprint or None) for every chunk of
        ``chosen``, in order. With ``workers`` > 1, small views run side by side, one a thread:
        much of a view's cost is Pillow's resize and JPEG and small tensor operations that keep
        one core busy however many torch threads there are (Kite, default set: 1.4 of 2 cores
        busy one after the other). Their results are added up in the same order as one after
        the other, so δ is the same to the bit. A view that reads a large photo whole runs
        alone, after the others, as before (its memory)."""
        if self.workers < 2 or sum(not _large(v) for v in chosen) < 2:
            for chunk in self._chunks(chosen):
                yield chunk, *self._chunk(model, chunk, backward)
            return
        with ThreadPoolExecutor(self.workers, thread_name_prefix="pixcamd-view") as pool:
            pending: list = []
            for view in chosen:  # a view a thread: the threads are the batch
                if not _large(view):
                    pending.append(([view], pool.submit(self._chunk, model, [view], backward)))
                    continue
                for done, future in pending:  # what ran side by side ends before a large one
                    yield done, *future.result()
                pending = []
                yield [view], *self._chunk(model, [view], backward)
            for done, future in pending:
                yield done, *future.result()

    def _chunk(self, model: QualityModel, chunk: list[LoopView], backward: bool):
        """One batch of views: their scores and, with ``backward``, each view's gradient over
        its footprint (None where it has none)."""
        leaves = [
            (self.photo[..., y0:y1, x0:x1] + self.delta[..., y0:y1, x0:x1])
            .clamp_(0, 1)
            .requires_grad_(backward)
            for x0, y0, x1, y1 in (v.region for v in chunk)
        ]
        with torch.set_grad_enabled(backward):
            batch = torch.cat([self._render(v, r) for v, r in zip(chunk, leaves, strict=True)])
            out = model(batch)
            if not backward:
                return out.detach().float(), [None] * len(chunk)
            goal = torch.tensor([self.target(model, v.label) for v in chunk])
            excess = out - goal if model.higher_is_better else goal - out
            grads = torch.autograd.grad(F.relu(excess).sum(), leaves, allow_unused=True)
        footprints = []
        for v, g in zip(chunk, grads, strict=True):
            if g is not None:
                x0, y0, _, _ = v.region
                a, b, c, d = v.footprint  # only the pixels the view shows move
                g = g[..., b - y0 : d - y0, a - x0 : c - x0]
            footprints.append(g)
        return out.detach().float(), footprints

    def _render(self, view: LoopView, leaf: torch.Tensor) -> torch.Tensor:
        """``view.render``; the downscaling pipelines' fits of one step all read the whole
        photo + δ: it is converted to an 8-bit image once for them (≈ 0.1 s at 10 MP each)."""
        if not isinstance(view, Whole) or view.scale == (1.0, 1.0):
            return view.render(leaf)
        with self._whole_lock:  # views of one step may render side by side
            if self._whole is None or self._whole[0] != view.region:
                self._whole = (view.region, to_image(leaf.detach()))
            image = self._whole[1]
        return view.render(leaf, image=image)

    def reached(self, scores: dict[str, dict[str, float]]) -> bool:
        return all(self._deficit(v.label) <= 0 for v in self.loop_views)

    def _chunks(self, chosen: list[LoopView]) -> list[list[LoopView]]:
        """Batches of at most ``batch_size`` views; a view that reads the whole of a large photo
        (a downscaling pipeline's fit) goes alone: two of them at once would hold two
        full-resolution leaves, their gradients and resize buffers (over 4 GB at 24 MP)."""
        chunks: list[list[LoopView]] = []
        for view in chosen:
            if _large(view):
                chunks.append([view])
            elif chunks and len(chunks[-1]) < self.batch_size and not any(map(_large, chunks[-1])):
                chunks[-1].append(view)
            else:
                chunks.append([view])
        return chunks

    def falls_short(self) -> bool:
        """Some named view's trend in this round — a least-squares line through at least
        ``TREND_POINTS`` of its scores spanning ``TREND_SPAN`` steps or more — stays on the good
        side of its model's threshold at the round's last step: this budget will not reach it in
        time. Scores rise ever slower within a budget, so the line is optimistic and the call
        errs towards going on."""
        for m in self.models:
            for points in self.history[m.name].values():
                if len(points) < TREND_POINTS or points[-1][0] - points[0][0] < TREND_SPAN:
                    continue
                steps, scores = zip(*points, strict=True)
                slope, intercept = statistics.linear_regression(steps, scores)
                if (intercept + slope * self.round_end > m.threshold) == m.higher_is_better:
                    return True
        return False

    def low(self) -> bool:
        """Every view's last in-loop score on the low-quality side of the model's threshold."""
        for m in self.models:
            for v in self.loop_views:
                score = self.last[m.name].get(v.label)
                if score is None or ((score > m.threshold) == m.higher_is_better):
                    return False
        return True

    def tighten(self, short: set) -> None:
        """The check found these (pipeline, model, view) short of their targets: aim the loop
        views that stand for them further (all of them when none does)."""
        pairs = {(p, v) for p, _, v in short}
        hit = [lv for lv in self.loop_views if pairs & set(lv.stands_for)]
        for lv in hit or self.loop_views:
            self.offsets[lv.label] += TIGHTEN

    def run(
        self,
        epsilon: float,
        steps: int,
        on_step: Callable[[StepReport], bool] | None = None,
        step_fraction: float = 0.125,
        fade: float | None = None,
    ) -> None:
        """Up to ``steps`` clipped-gradient steps of ε·mask·``step_fraction`` within ±ε·mask,
        δ fading by up to ``fade`` (default ``FADE``) where a step barely pushes; ``on_step``
        True stops."""
        fade = FADE if fade is None else fade
        self.round_end = self.step + steps
        for per_view in self.history.values():  # the trend is this round's alone
            for points in per_view.values():
                points.clear()
        bound = epsilon * self.mask  # 1×1×H×W, broadcast over the channels
        alpha, floor = step_fraction * bound, -bound
        if self.step == 0:
            # A small seeded start (up to half a grey level, within the budget) breaks ties
            # where the gradient is flat.
            generator = torch.Generator().manual_seed(self.seed)
            shape = (1, 1, *self.photo.shape[-2:]) if self.monochrome else self.photo.shape
            start = torch.rand(shape, generator=generator).to(self.photo.device)  # broadcast
            self.delta.copy_(start.mul_(2).sub_(1).mul_(bound.clamp(max=0.5 / 255)))
            del start
        height, width = self.photo.shape[-2:]
        size = self.models[0].view_size
        for _ in range(steps):
            # Pipelines in no preset, for robustness beyond the presets' numbers: ``roaming``
            # slots of the step's budget are theirs, and so are the slots the named views leave
            # free — the cost per step stays bounded.
            reserved = min(self.roaming, self.views_per_step - 1)
            chosen = self._choose(self.views_per_step - reserved)
            free = self.views_per_step - len(chosen) if self.roaming else 0
            for _ in range(max(0, free)):
                extra = roaming_view(width, height, self.largest, self.generator, self.output, size)
                chosen = chosen + ([extra] if extra is not None else [])
            # ... and a downscale near full size has slots of its own: the roaming draws seldom
            # land there, and taking them from those draws cost the deep downscales.
            for _ in range(self.near_full):
                extra = near_full_view(width, height, self.generator, self.output, size)
                chosen = chosen + ([extra] if extra is not None else [])
            scores = self.evaluate(backward=True, chosen=[self._nearby(v) for v in chosen])
            reached = self.reached(scores)
            self.step += 1
            report = StepReport(self.step, scores, reached, reached or self.low())
            if on_step is not None and on_step(report):
                return
            if self.monochrome:  # one δ for R, G and B: the channels' mean gradient (their sum
                # moved more pixels the whole step: 1.4 dB less PSNR on a B&W photo, same steps)
                self.grad.copy_(self.grad.mean(1, keepdim=True).expand_as(self.grad))
            step = self.grad.div_(STEP_CLIP).clamp_(-1.0, 1.0)
            self.delta.addcmul_(step, alpha, value=-1.0)
            # δ·(1 − fade·(1 − |u|)) as δ + fade·δ·(|u| − 1), in place on the step's buffer
            # (the next step zeroes it before adding its gradients)
            if fade:
                self.delta.addcmul_(self.delta, step.abs_().sub_(1.0), value=fade)
            # The budget only; the valid range [0, 1] is applied wherever δ is used. Two in-place
            # passes cost a third less than a clamp to tensor bounds (13 ms a step at 10 MP).
            torch.minimum(self.delta, bound, out=self.delta)
            torch.maximum(self.delta, floor, out=self.delta)

    def _nearby(self, view: LoopView) -> LoopView:
        """A named downscaled crop at a served size a little off the exact one, a named fit
        from a box a little off its own (the step's gradient and the score the loop remembers
        for it); every other view as it is."""
        if view.label not in self.seen_at:  # a roaming view is off every named grid already
            return view
        if isinstance(view, DownscaledCrop):
            spread = self.grid_jitter
        elif isinstance(view, (NativeFit, Whole)):
            spread = self.fit_jitter
        else:
            return view
        if not spread:
            return view
        height, width = self.photo.shape[-2:]
        return view.nearby((width, height), self.jitter_generator, spread)

    def pixels(self) -> torch.Tensor:
        """The 8-bit protected photo, 1×3×H×W."""
        return torch.round((self.photo + self.delta).clamp(0, 1) * 255) / 255

    def psnr(self, rows: int = 512) -> float:
        """PSNR (dB, RGB) of ``pixels()`` against the photo, before any encoding — the loop's
        own figure for what its change costs, in strips: no full-size temporary."""
        total, height = 0.0, self.photo.shape[-2]
        for top in range(0, height, rows):
            photo = self.photo[..., top : top + rows, :] * 255
            changed = (photo + self.delta[..., top : top + rows, :] * 255).clamp_(0, 255)
            total += float(changed.round_().sub_(torch.round(photo)).square_().sum())
        return float("inf") if total == 0 else 10 * math.log10(255**2 * self.photo.numel() / total)


def _large(view: LoopView) -> bool:
    """A view that reads more native pixels than ``LARGE_REGION``: evaluated alone."""
    x0, y0, x1, y1 = view.region
    return (x1 - x0) * (y1 - y0) > LARGE_REGION
