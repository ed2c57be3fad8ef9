"""The JPEG check: score what the BIQA will really see, never the optimizer's own estimate.

The protected pixels are encoded exactly as the output file will be, decoded, recompressed by
Pillow at quality 90 (the platform), and every view is scored by every model in eval mode, fp32.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import kornia
import torch
from PIL import Image

from pixcamd.jpeg import Chain, decode, encode, recompress
from pixcamd.models.base import QualityModel
from pixcamd.photo import to_tensor
from pixcamd.scoring import score_views
from pixcamd.views import make_views

# Information only: what common platform pipelines do on top of the JPEG-90 of the task.
PLATFORM_TRANSFORMS = {
    "jpeg85": (None, 85),
    "long2048_jpeg85": (2048, 85),
    "long1080_jpeg85": (1080, 85),
}


@dataclass
class Check:
    """Scores per model name and view label, and whether each view is on the low-quality side."""

    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    low: dict[str, dict[str, bool]] = field(default_factory=dict)

    @property
    def all_low(self) -> bool:
        return all(all(v.values()) for v in self.low.values())


def score_image_views(
    img: Image.Image,
    models: list[QualityModel],
    views,
) -> Check:
    """Score every view of ``img`` with every model; ``low``: on the low side of the threshold."""
    result = Check()
    photo = to_tensor(img)
    for model in models:
        boxes, batch = make_views(photo, views, model.view_size)
        scores = score_views(model, batch).tolist()
        result.scores[model.name] = {b.label: s for b, s in zip(boxes, scores, strict=True)}
        result.low[model.name] = {
            b.label: not model.is_good(s) for b, s in zip(boxes, scores, strict=True)
        }
    return result


def check_output(
    img: Image.Image, models: list[QualityModel], views, chain: Chain
) -> tuple[bytes, Check]:
    """Encode ``img`` as the output file, then score the platform's JPEG of that file."""
    data = chain.output(img)
    seen = recompress(decode(data), chain.platform_quality)
    return data, score_image_views(seen, models, views)


def platform_scores(
    output: Image.Image, models: list[QualityModel], views
) -> dict[str, dict[str, dict[str, float]]]:
    """Scores after resizing to a long side (if larger) and a JPEG at quality 85."""
    report = {}
    for name, (long_side, quality) in PLATFORM_TRANSFORMS.items():
        img = output
        if long_side is not None and max(img.size) > long_side:
            scale = long_side / max(img.size)
            size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
            img = img.resize(size, Image.Resampling.LANCZOS)
        report[name] = score_image_views(decode(encode(img, quality)), models, views).scores
    return report


@torch.no_grad()
def psnr_ssim(original: Image.Image, output: Image.Image, rows: int = 1024) -> tuple[float, float]:
    """PSNR over RGB and mean SSIM (11×11 Gaussian window) over luma, from kornia.metrics.

    SSIM is computed in horizontal strips that overlap by the window's radius, keeping memory
    flat for 24 MP photos while giving the same value as one pass over the whole image.
    """
    a, b = to_tensor(original), to_tensor(output)
    mse = torch.mean((a - b) ** 2)
    psnr = float("inf") if mse == 0 else float(-10 * torch.log10(mse))
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    ya, yb = (a * weights).sum(1, keepdim=True), (b * weights).sum(1, keepdim=True)
    del a, b
    radius, height = 5, ya.shape[-2]
    total, count = 0.0, 0
    for top in range(0, height, rows):
        lo, hi = max(0, top - radius), min(height, top + rows + radius)
        strip = kornia.metrics.ssim(ya[..., lo:hi, :], yb[..., lo:hi, :], 11)
        keep = strip[..., top - lo : top - lo + min(rows, height - top), :]
        total += float(keep.sum())
        count += keep.numel()
    return psnr, total / count


def verify_file(path, models: list[QualityModel], views, platform_quality: int = 90) -> Check:
    """Read a written photo back from disk and judge it after the platform's recompression."""
    from pixcamd.photo import load_photo  # the file, decoded as any viewer would

    return score_image_views(recompress(load_photo(path), platform_quality), models, views)
