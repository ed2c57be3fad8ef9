"""The perceptual budget map: how far each pixel of a photo may move, as a share of the round's
ε — the full ε in strong texture, which hides a change, down to a floor in flat areas, where
one would show; with a downscaling pipeline, texture must be there at its scale too."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# The budget per pixel rises with the local contrast — ε·σ/MASK_TEXTURE, 2/3 of a grey level of
# change per grey level of σ at the default ε — from the floor in flat areas (one grey level at
# the default ε 6) to the full ε where σ reaches MASK_TEXTURE. Every round of the default
# schedule (ε 6, 9, 12) gives what ε 4, 6, 8 with a ceiling at σ 6 gave wherever σ ≤ 6;
# only strong texture, which hides a change, takes up to 1.5× more (docs/benchmarks.md).
MASK_FLOOR = 1 / 6
MASK_TEXTURE = 9 / 255


def _texture(luma: torch.Tensor, floor: float) -> torch.Tensor:
    pool = dict(kernel_size=7, stride=1, padding=3, count_include_pad=False)
    mean = F.avg_pool2d(luma, **pool)
    var = (F.avg_pool2d(luma * luma, **pool) - mean * mean).clamp_min(0)
    return (var.sqrt() / MASK_TEXTURE).clamp(floor, 1.0)


def perceptual_mask(
    photo: torch.Tensor, floor: float = MASK_FLOOR, coarse: float = 1.0
) -> torch.Tensor:
    """1×1×H×W weights in [floor, 1]: the local (7×7) luma standard deviation, saturating.

    With ``coarse`` > 1 (the largest downscale of a pipeline), the texture must also be there at
    that scale: a perturbation that survives a downscale is coarse, and fine grain (sensor noise
    in a sky) masks fine changes, not a mottle of ``coarse``-pixel blobs.
    """
    luma = (photo * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1).to(photo)).sum(1, True)
    mask = _texture(luma, floor)
    factor = int(coarse)
    if factor >= 2:
        small = F.avg_pool2d(luma, factor, ceil_mode=True)
        wide = _texture(small, floor).repeat_interleave(factor, -2).repeat_interleave(factor, -1)
        mask = torch.minimum(mask, wide[..., : mask.shape[-2], : mask.shape[-1]])
    return mask
