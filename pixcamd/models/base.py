"""The one interface every quality model (BIQA) in pixcamd offers.

A model maps a batch of RGB views in [0, 1] (shape B×3×H×W, float32) to one score per view,
differentiably, so the optimizer can push the scores across the model's "good quality" threshold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import torch
from torch import nn


class QualityModel(nn.Module):
    """Base class: subclasses set the attributes below and implement ``forward``.

    Attributes:
        name: registry name ("koncept512", "brisque").
        higher_is_better: True when a larger score means better quality (KonCept512); False for
            BRISQUE, where lower is better.
        threshold: default boundary of "good quality". A score is good iff it lies strictly on the
            better side of it (KonCept512: score > 50).
        view_size: (height, width) of the views the model expects, e.g. (384, 512).
        fingerprint: architecture + weights hash, recorded in ledgers and reports.
    """

    name: str = ""
    higher_is_better: bool = True
    threshold: float = 50.0
    view_size: tuple[int, int] = (384, 512)
    fingerprint: str = ""

    def forward(self, views: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def is_good(self, scores: torch.Tensor | float) -> torch.Tensor | bool:
        """The verdict the scorer would give: good quality (True) or not."""
        if self.higher_is_better:
            return scores > self.threshold
        return scores < self.threshold

    def train(self, mode: bool = True) -> QualityModel:
        # A scorer is always evaluated as deployed: BatchNorm on running stats, no Dropout.
        return super().train(False)

    @property
    def direction(self) -> str:
        return "higher_is_better" if self.higher_is_better else "lower_is_better"

    def describe(self) -> dict:
        """The facts a report or ledger records about the model."""
        return {
            "model": self.name,
            "fingerprint": self.fingerprint,
            "threshold": self.threshold,
            "direction": self.direction,
            "view_size": list(self.view_size),
        }


def check_views(views: torch.Tensor, min_side: int = 1, max_side: int | None = None) -> None:
    """Reject input the model was never meant to see, with a message that says what is wrong."""
    if not isinstance(views, torch.Tensor) or views.dim() != 4 or views.shape[1] != 3:
        shape = tuple(views.shape) if isinstance(views, torch.Tensor) else type(views).__name__
        raise ValueError(f"expected a batch of RGB views shaped B×3×H×W, got {shape}")
    h, w = views.shape[-2:]
    if min(h, w) < min_side or (max_side is not None and max(h, w) > max_side):
        limit = f"{min_side}–{max_side}" if max_side is not None else f"≥ {min_side}"
        raise ValueError(f"view of {w}×{h} px (width×height): both sides must be {limit} px")


def tensors_sha256(tensors: Iterable[torch.Tensor]) -> str:
    """sha256 over the raw bytes of tensors, in order: a weights hash independent of file format."""
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
