"""Scoring a photo as its destinations serve it: each platform pipeline (resize, JPEG) → views
→ BIQA. The task's own protocol is the ``task`` pipeline: JPEG-90 of the full photo."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from PIL import Image

from pixcamd.errors import WeightsError
from pixcamd.jpeg import served_as
from pixcamd.models.base import QualityModel
from pixcamd.photo import open_photo, to_tensor
from pixcamd.platforms import PRESETS, Pipeline
from pixcamd.views import DEFAULT_VIEWS, check_cover, make_views


@dataclass
class ViewScore:
    view: str
    score: float
    good: bool

    @property
    def verdict(self) -> str:
        return "good quality" if self.good else "low quality"


@dataclass
class PipelineScore:
    """One pipeline's output of the photo, view by view."""

    pipeline: Pipeline
    served: tuple[int, int]
    views: list[ViewScore] = field(default_factory=list)

    @property
    def good(self) -> bool:
        return any(v.good for v in self.views)


@dataclass
class PhotoScore:
    """Scores of one photo under one model, per pipeline; the photo counts as good if any view
    of any pipeline says so — a filter needs only one way to see it well."""

    path: str
    size: tuple[int, int]
    model: dict
    platforms: list[PipelineScore] = field(default_factory=list)
    encoding: dict | None = None  # a JPEG's quality and subsampling (``jpeg.served_as``)
    warnings: list[str] = field(default_factory=list)  # what reading the file changed or met

    @property
    def good(self) -> bool:
        return any(p.good for p in self.platforms)

    @property
    def verdict(self) -> str:
        return "good quality" if self.good else "low quality"

    def worst(self) -> dict:
        """The (pipeline, view) that scores best: the one that decides the verdict."""
        sign = 1.0 if self.model["direction"] == "higher_is_better" else -1.0
        rows = [(p.pipeline.name, v) for p in self.platforms for v in p.views]
        name, view = max(rows, key=lambda r: sign * r[1].score)
        good_by = sign * (view.score - self.model["threshold"])
        return {
            "pipeline": name,
            "model": self.model["model"],
            "view": view.view,
            "score": view.score,
            "good_by": good_by,
        }

    def as_dict(self) -> dict:
        return {
            "path": self.path,
            "width": self.size[0],
            "height": self.size[1],
            **self.model,
            "platforms": {
                p.pipeline.name: {
                    **p.pipeline.as_dict(),
                    "served": list(p.served),
                    "views": {v.view: {"score": v.score, "verdict": v.verdict} for v in p.views},
                    "verdict": "good quality" if p.good else "low quality",
                }
                for p in self.platforms
            },
            "verdict": self.verdict,
            "worst": self.worst(),
            "encoding": self.encoding,
            "warnings": self.warnings,
        }


@torch.inference_mode()
def score_views(model: QualityModel, views: torch.Tensor, batch_size: int = 8) -> torch.Tensor:
    """Scores of an N×3×h×w batch of views, computed ``batch_size`` at a time (bounded memory)."""
    device = next(iter(model.buffers()), torch.empty(0)).device
    chunks = [model(chunk.to(device)).float().cpu() for chunk in views.split(batch_size)]
    scores = torch.cat(chunks)
    if not scores.isfinite().all():  # NaN is on neither side of a threshold: never "low"
        raise WeightsError(
            f"{model.name} gave no score (NaN or infinite) for a view: its weights are damaged "
            "or not its own; `pixcamd model fetch` installs them again"
        )
    return scores


def score_image(
    img: Image.Image,
    model: QualityModel,
    views=DEFAULT_VIEWS,
    pipelines: tuple[Pipeline, ...] = (PRESETS["task"],),
    path: str = "",
) -> PhotoScore:
    """Score an upright RGB image as each pipeline serves it."""
    check_cover(*img.size, model.view_size)
    result = PhotoScore(path, img.size, model.describe())
    judged: dict[tuple, tuple] = {}  # Pipeline.serving → (size, labels, scores): each once
    for pipeline in pipelines:
        key = pipeline.serving(*img.size)
        if key not in judged:
            served = pipeline.apply(img)
            boxes, batch = make_views(to_tensor(served), views, model.view_size)
            judged[key] = served.size, [b.label for b in boxes], score_views(model, batch).tolist()
        size, labels, scores = judged[key]
        scored = PipelineScore(pipeline, size)
        for label, score in zip(labels, scores, strict=True):
            scored.views.append(ViewScore(label, score, bool(model.is_good(score))))
        result.platforms.append(scored)
    return result


def score_file(
    path: str | os.PathLike,
    model: QualityModel,
    views=DEFAULT_VIEWS,
    pipelines: tuple[Pipeline, ...] = (PRESETS["task"],),
) -> PhotoScore:
    """Load a photo (EXIF orientation applied) and score it; raises ``PhotoError`` if unreadable.
    A JPEG's own encoding is reported too: a copy downloaded back from a platform tells its
    pipeline's quality and subsampling."""
    photo = open_photo(path)
    result = score_image(photo.image, model, views, pipelines, path=str(path))
    # what the decoder changed (transparency flattened, colours converted, frames left out) is
    # part of what was judged; what a copy would not carry is not: score writes none
    result.warnings = [w for w in photo.warnings if "not carried" not in w]
    try:
        with Image.open(path) as raw:
            result.encoding = served_as(raw)
    except OSError:  # decoded above by other means (HEIC): no JPEG tables to read
        pass
    return result
