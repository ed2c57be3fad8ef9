"""The task's published baseline for ``bench/evaluate.py``: I-FGSM on the 512×384 centre view,
re-implemented (``baseline_ifgsm``), with its settings and target.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image

from pixcamd.models.base import QualityModel
from pixcamd.photo import to_image, to_tensor
from pixcamd.views import plan_views


@dataclass(frozen=True)
class BaselineSettings:
    """The task's I-FGSM. ε and α are in the task's [−1, 1] input space (x − 0.5) / 0.5."""

    epsilon: float = 0.05
    alpha: float = 0.05
    steps: int = 20
    target: float | None = None  # MSE target; None = the far (worst) end of the model's scale
    png_compress_level: int = 1  # lossless either way; the fastest level keeps zlib out of it

    def target_for(self, model: QualityModel) -> float:
        return self.target if self.target is not None else far_end(model)


def far_end(model: QualityModel) -> float:
    """The MSE target: the worst end of the model's scale, as the task pulled KonCept512 to 0.

    BRISQUE is lower-is-better and unbounded above in practice: nominally 0–100 (the LIVE DMOS
    range its SVR regresses), yet attacked views score up to ~170. A target of 100 would turn the
    attack back whenever it overshoots 100 (seen: 167 after one step, then swings between 24 and
    138), a handicap the task's baseline never had against KonCept512. So the far end is 1000,
    beyond any score reached: the loss then always pushes towards lower quality. With signed
    steps only the sign of (score − target) matters, so any target above the reachable scores
    gives the same attack.
    """
    return 0.0 if model.higher_is_better else 1000.0


def centre_box(width: int, height: int, model: QualityModel) -> tuple[int, int, int, int]:
    """(left, top, width, height) of the task's centre view, as ``pixcamd.views`` places it."""
    return plan_views(width, height, ("center",), model.view_size)[0].box


def baseline_ifgsm(
    image: Image.Image,
    model: QualityModel,
    settings: BaselineSettings = BaselineSettings(),
    device: str = "cpu",
) -> tuple[Image.Image, dict]:
    """The task's baseline on the centre view, lifted back into the full photo.

    x ← clip_{x₀±ε}(x − α·sign(∇ₓ MSE(score(x), target))), 20 times, on the 512×384 centre crop
    at native resolution, in [0, 1] with ε and α halved from the [−1, 1] space (the model
    normalizes inside); no JPEG in the loop. The crop is rounded to 8 bits and pasted back:
    every pixel outside the centre view is the original's.
    """
    width, height = image.size
    vh, vw = model.view_size
    if width < vw or height < vh:
        raise ValueError(f"photo {width}×{height} is smaller than the {vw}×{vh} centre view")
    left, top, w, h = centre_box(width, height, model)
    crop = image.crop((left, top, left + w, top + h))
    x0 = to_tensor(crop).to(device)
    eps, alpha = settings.epsilon / 2, settings.alpha / 2
    target = torch.full((1,), settings.target_for(model), device=device)
    x = x0.clone()
    for _ in range(settings.steps):
        x.requires_grad_(True)
        loss = F.mse_loss(model(x).float(), target)
        (grad,) = torch.autograd.grad(loss, x)
        with torch.no_grad():
            x = x - alpha * grad.sign()
            x = torch.minimum(torch.maximum(x, x0 - eps), x0 + eps).clamp(0, 1)
    out = image.copy()
    out.paste(to_image(x.detach().cpu()), (left, top))
    return out, {"box": [left, top, w, h], "target": settings.target_for(model)}
