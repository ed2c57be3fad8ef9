"""The check: score what the BIQA will really see, never the optimizer's own estimate.

The protected pixels are encoded exactly as the output file will be and decoded; then each
platform pipeline does to them what the destination does (``Pipeline.apply``: Pillow resize, Pillow
JPEG), and every view of each pipeline's output is scored by every model in eval mode, fp32.
Protected means every (pipeline × view × model) is on the low-quality side.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import kornia
import numpy as np
import torch
from PIL import Image

from pixcamd.jpeg import decode, encode
from pixcamd.models.base import QualityModel
from pixcamd.photo import to_tensor
from pixcamd.platforms import PRESETS, Pipeline
from pixcamd.scoring import score_views
from pixcamd.views import make_views

TASK = (PRESETS["task"],)


@dataclass
class Check:
    """Scores per pipeline, model and view label, and whether each is on the low-quality side;
    ``served``: the size each pipeline served the photo at."""

    scores: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    served: dict[str, tuple[int, int]] = field(default_factory=dict)
    # how far each score is on the good-quality side of its model's threshold (> 0: judged good)
    good_by: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    @property
    def low(self) -> dict[str, dict[str, dict[str, bool]]]:
        return {
            p: {m: {v: g <= 0 for v, g in per_view.items()} for m, per_view in per_model.items()}
            for p, per_model in self.good_by.items()
        }

    @property
    def all_low(self) -> bool:
        return all(self.pipeline_low(name) for name in self.good_by)

    @property
    def protected_on(self) -> dict[str, bool]:
        """pipeline → every view of every model low after it."""
        return {name: self.pipeline_low(name) for name in self.good_by}

    def pipeline_low(self, name: str) -> bool:
        return all(g <= 0 for per_view in self.good_by[name].values() for g in per_view.values())

    def worst(self) -> dict | None:
        """The (pipeline, model, view) closest to — or furthest beyond — the good-quality side:
        what decides whether the photo passes. ``good_by`` > 0 means judged good quality."""
        rows = [
            {"pipeline": p, "model": m, "view": v, "score": self.scores[p][m][v], "good_by": g}
            for p, per_model in self.good_by.items()
            for m, per_view in per_model.items()
            for v, g in per_view.items()
        ]
        return max(rows, key=lambda r: r["good_by"]) if rows else None

    def short(self, targets: dict[str, float], models: list[QualityModel]) -> set:
        """(pipeline, model, view) triples whose score has not reached the model's target."""
        higher = {m.name: m.higher_is_better for m in models}
        return {
            (p, m, v)
            for p, per_model in self.scores.items()
            for m, per_view in per_model.items()
            for v, s in per_view.items()
            if ((s > targets[m]) if higher[m] else (s < targets[m]))
        }


def score_image_views(img: Image.Image, models: list[QualityModel], views) -> dict:
    """model → view → score of ``img`` as it is (no JPEG, no resize)."""
    photo = to_tensor(img)
    scores = {}
    for model in models:
        boxes, batch = make_views(photo, views, model.view_size)
        values = score_views(model, batch).tolist()
        scores[model.name] = {b.label: s for b, s in zip(boxes, values, strict=True)}
    return scores


def judge(
    img: Image.Image,
    models: list[QualityModel],
    views,
    pipelines: tuple[Pipeline, ...] = TASK,
    workers: int = 1,
) -> Check:
    """Each pipeline's real output of ``img`` (the file's pixels), every view, every model;
    ``workers`` pipelines at a time (Pillow's resize and JPEG keep one core each busy)."""
    result = Check()
    keys = [pipeline.serving(*img.size) for pipeline in pipelines]
    servings: dict[tuple, Pipeline] = {}  # pipelines that serve identical pixels: judged once
    for key, pipeline in zip(keys, pipelines, strict=True):
        servings.setdefault(key, pipeline)

    def serve(pipeline: Pipeline) -> tuple[tuple[int, int], dict]:
        seen = pipeline.apply(img)
        return seen.size, score_image_views(seen, models, views)

    if workers > 1 and len(servings) > 1:
        with ThreadPoolExecutor(workers, thread_name_prefix="pixcamd-check") as pool:
            served = list(pool.map(serve, servings.values()))
    else:
        served = [serve(p) for p in servings.values()]
    judged = dict(zip(servings, served, strict=True))  # serving → (size, scores)
    for key, pipeline in zip(keys, pipelines, strict=True):
        size, scores = judged[key]
        scores = {m: dict(per_view) for m, per_view in scores.items()}  # each pipeline its own
        result.served[pipeline.name] = size
        result.scores[pipeline.name] = scores
        result.good_by[pipeline.name] = {}
        for model in models:
            sign = 1.0 if model.higher_is_better else -1.0  # > 0 exactly when model.is_good
            result.good_by[pipeline.name][model.name] = {
                v: sign * (s - model.threshold) for v, s in scores[model.name].items()
            }
    return result


def check_output(
    img: Image.Image,
    models: list[QualityModel],
    views,
    pipelines: tuple[Pipeline, ...] = TASK,
    output: tuple[int, str] = (95, "4:4:4"),
    workers: int = 1,
) -> tuple[bytes, Check]:
    """Encode ``img`` as the output file (``output`` = quality, subsampling), then judge what
    every pipeline makes of that file (``workers`` pipelines at a time)."""
    data = encode(img, *output)
    return data, judge(decode(data), models, views, pipelines, workers)


@torch.no_grad()
def ssim_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The SSIM map of ``kornia.metrics.ssim(a, b, 11)`` (σ 1.5, reflected borders, range 1),
    its local moments from ``kornia.filters.gaussian_blur2d``: kornia's own SSIM convolves each
    moment through ``filter2d_separable``, which on one CPU thread took 2.9 s of every 10 MP
    photo's report; the blur's CPU path gives the same map (to float rounding) in a tenth of it."""
    c1, c2 = 0.01**2, 0.03**2
    # A reflection needs more pixels than the window's radius (5): a photo (or the last strip
    # of one) 5 px or less across repeats its edge instead — kornia's SSIM raises there.
    border = "reflect" if min(a.shape[-2:]) > 5 else "replicate"

    def blur(x: torch.Tensor) -> torch.Tensor:
        return kornia.filters.gaussian_blur2d(x, (11, 11), (1.5, 1.5), border, separable=True)

    mu_a, mu_b = blur(a), blur(b)
    mu_aa, mu_bb, mu_ab = mu_a * mu_a, mu_b * mu_b, mu_a * mu_b
    var_a, var_b, cov = blur(a * a) - mu_aa, blur(b * b) - mu_bb, blur(a * b) - mu_ab
    num = (2 * mu_ab + c1) * (2 * cov + c2)
    return num / ((mu_aa + mu_bb + c1) * (var_a + var_b + c2) + 1e-12)


@torch.no_grad()
def psnr_ssim(original: Image.Image, output: Image.Image, rows: int = 1024) -> tuple[float, float]:
    """PSNR over RGB and mean SSIM (11×11 Gaussian window) over luma, as kornia.metrics computes
    it (``ssim_map``).

    Both in horizontal strips (SSIM's overlapping by the window's radius), the same values as
    one pass over the whole image: whole-photo float copies of both images and their difference
    took 1.2 GB at 24 MP, on top of the search's own memory (docs/benchmarks.md, "Peak memory
    at 24 MP: the last metres").
    """
    original, output = _rgb(original), _rgb(output)
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    radius, (width, height) = 5, original.size
    total, count = 0.0, 0
    for top in range(0, height, rows):
        lo, hi = max(0, top - radius), min(height, top + rows + radius)
        box = (0, lo, width, hi)
        ya = (to_tensor(original.crop(box)) * weights).sum(1, keepdim=True)
        yb = (to_tensor(output.crop(box)) * weights).sum(1, keepdim=True)
        strip = ssim_map(ya, yb)
        keep = strip[..., top - lo : top - lo + min(rows, height - top), :]
        total += float(keep.sum())
        count += keep.numel()
    return psnr(original, output, rows), total / count


def psnr(original: Image.Image, output: Image.Image, rows: int = 1024) -> float:
    """PSNR over RGB in dB (infinite for identical pixels), from the exact sum of squared 8-bit
    differences."""
    squared, values = 0, 0
    for _, _, change in pixel_changes(original, output, rows):
        squared += int(np.einsum("ijk,ijk->", change, change, dtype=np.int64))
        values += change.size
    if squared == 0:
        return float("inf")
    return 10 * math.log10(255**2 * values / squared)


def pixel_changes(original: Image.Image, output: Image.Image, rows: int = 1024):
    """(first row, ``original``'s values, ``output`` − ``original``) in 16 bits, a strip of
    ``rows`` rows at a time: a 24-MP photo is never held whole in more than its 8 bits."""
    a, b = np.asarray(_rgb(original)), np.asarray(_rgb(output))
    for top in range(0, a.shape[0], rows):
        base = a[top : top + rows].astype(np.int16)
        yield top, base, b[top : top + rows] - base


def _rgb(image: Image.Image) -> Image.Image:
    """The image in RGB, without a copy when it already is (Pillow's convert copies)."""
    return image if image.mode == "RGB" else image.convert("RGB")


def verify_file(
    path, models: list[QualityModel], views, pipelines: tuple[Pipeline, ...] = TASK
) -> Check:
    """Read a written photo back from disk and judge it as every pipeline will serve it."""
    from pixcamd.photo import load_photo  # the file, decoded as any viewer would

    return judge(load_photo(path), models, views, pipelines)
