"""Scoring a photo exactly as the task judged it: JPEG-90 of the full photo → views → BIQA."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from PIL import Image

from pixcamd.jpeg import recompress
from pixcamd.models.base import QualityModel
from pixcamd.photo import load_photo, to_tensor
from pixcamd.views import DEFAULT_VIEWS, make_views


@dataclass
class ViewScore:
    view: str
    score: float
    good: bool

    @property
    def verdict(self) -> str:
        return "good quality" if self.good else "low quality"


@dataclass
class PhotoScore:
    """Scores of one photo under one model; the photo counts as good if any view says so."""

    path: str
    size: tuple[int, int]
    model: dict
    jpeg_quality: int | None
    views: list[ViewScore] = field(default_factory=list)

    @property
    def good(self) -> bool:
        return any(v.good for v in self.views)

    @property
    def verdict(self) -> str:
        return "good quality" if self.good else "low quality"

    def as_dict(self) -> dict:
        return {
            "path": self.path,
            "width": self.size[0],
            "height": self.size[1],
            **self.model,
            "jpeg_quality": self.jpeg_quality,
            "views": {v.view: {"score": v.score, "verdict": v.verdict} for v in self.views},
            "verdict": self.verdict,
        }


@torch.inference_mode()
def score_views(model: QualityModel, views: torch.Tensor, batch_size: int = 8) -> torch.Tensor:
    """Scores of an N×3×h×w batch of views, computed ``batch_size`` at a time (bounded memory)."""
    device = next(iter(model.buffers()), torch.empty(0)).device
    chunks = [model(chunk.to(device)).float().cpu() for chunk in views.split(batch_size)]
    return torch.cat(chunks)


def score_image(
    img: Image.Image,
    model: QualityModel,
    views=DEFAULT_VIEWS,
    jpeg_quality: int | None = 90,
    path: str = "",
) -> PhotoScore:
    """Score an upright RGB image, JPEG-recompressed first unless ``jpeg_quality`` is None."""
    judged = recompress(img, jpeg_quality) if jpeg_quality is not None else img
    boxes, batch = make_views(to_tensor(judged), views, model.view_size)
    scores = score_views(model, batch)
    result = PhotoScore(path, img.size, model.describe(), jpeg_quality)
    for view, score in zip(boxes, scores.tolist(), strict=True):
        result.views.append(ViewScore(view.label, score, bool(model.is_good(score))))
    return result


def score_file(
    path: str | os.PathLike,
    model: QualityModel,
    views=DEFAULT_VIEWS,
    jpeg_quality: int | None = 90,
) -> PhotoScore:
    """Load a photo (EXIF orientation applied) and score it; raises ``PhotoError`` if unreadable."""
    return score_image(load_photo(path), model, views, jpeg_quality, path=str(path))
