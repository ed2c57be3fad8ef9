"""A small BIQA trained inside the tests: real learned weights, seconds to train on a CPU.

It learns what a quality model learns — sharp, clean texture is good; blur, noise and heavy JPEG
are bad — from synthetic photos, so the engine can be tested against a trained network that is
not BRISQUE, wherever the suite runs.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, ImageFilter
from torch import nn

from pixcamd.models.base import QualityModel, check_views, tensors_sha256


def synthetic_photo(width: int, height: int, seed: int) -> Image.Image:
    """Smooth shapes, edges and fine texture: enough structure for a quality model to judge."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    img = np.zeros((height, width, 3))
    for _ in range(6):
        fx, fy = rng.uniform(0.002, 0.05, 2)
        phase, colour = rng.uniform(0, 6.28), rng.uniform(0.2, 1.0, 3)
        img += np.sin(fx * x + fy * y + phase)[..., None] * colour
    for _ in range(8):  # hard-edged discs
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(20, 120)
        img[(x - cx) ** 2 + (y - cy) ** 2 < r * r] += rng.uniform(-1, 1, 3)
    img = (img - img.min()) / (img.max() - img.min() + 1e-9) * 200 + 25
    img += rng.normal(0, 8, img.shape) * (rng.uniform(0.5, 1.5))  # fine texture
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def distort(img: Image.Image, kind: int, rng: np.random.Generator) -> Image.Image:
    if kind == 0:
        return img.filter(ImageFilter.GaussianBlur(rng.uniform(1.5, 4)))
    if kind == 1:
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=int(rng.integers(5, 20)))
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    noisy = np.asarray(img, np.float64) + rng.normal(
        0, rng.uniform(25, 50), (img.height, img.width, 3)
    )
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


class TinyBIQA(QualityModel):
    name = "tiny"
    higher_is_better = True
    threshold = 50.0
    default_target = 30.0
    view_size = (384, 512)

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv2d(8, 16, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(16, 1),
        )

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        check_views(views, 32)
        return 100 * torch.sigmoid(self.net((views - 0.5) / 0.5).squeeze(1))

    def finish(self) -> TinyBIQA:
        self.fingerprint = "tiny@sha256:" + tensors_sha256(self.state_dict().values())[:16]
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()


def train_tiny_biqa(steps: int = 300, seed: int = 0, crop: int = 96) -> TinyBIQA:
    """Train on random crops (the network is fully convolutional, so it judges any view size)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = TinyBIQA()
    pairs = []
    for s in range(8):  # each clean photo with one distorted copy of each kind
        img = synthetic_photo(384, 288, s)
        pairs.append((to_array(img), [to_array(distort(img, k, rng)) for k in range(3)]))
    optimizer = torch.optim.Adam(model.net.parameters(), lr=3e-3)
    for _ in range(steps):
        batch, labels = [], []
        for _ in range(32):
            clean, distorted = pairs[int(rng.integers(len(pairs)))]
            good = rng.random() < 0.5
            source = clean if good else distorted[int(rng.integers(3))]
            top, left = rng.integers(0, 288 - crop), rng.integers(0, 384 - crop)
            batch.append(source[:, top : top + crop, left : left + crop])
            labels.append(float(good))
        logits = model.net((torch.stack(batch) - 0.5) / 0.5).squeeze(1)
        loss = nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor(labels))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.finish()


def to_array(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 255
