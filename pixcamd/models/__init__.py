"""Registry of quality models (BIQA): one name → one ``QualityModel``.

``auto`` picks KonCept512 — the scorer of the MediaEval 2020 Pixel Privacy task — when its
weights are installed, otherwise the embedded BRISQUE, which works offline out of the box.
"""

from __future__ import annotations

import os
from pathlib import Path

from pixcamd.defaults import CHOICES, MODEL_NAMES, resolve_name
from pixcamd.models.base import QualityModel
from pixcamd.models.weights import default_weights_path, load_checkpoint


def model_class(name: str) -> type:
    """The class of a model named in MODEL_NAMES: its name, threshold and default target,
    without loading anything (``pixcamd config check`` judges targets with them)."""
    if name == "brisque":
        from pixcamd.models.brisque import Brisque

        return Brisque
    from pixcamd.models.koncept512 import KonCept512

    return KonCept512


def load_model(
    name: str = "auto", weights: str | os.PathLike | None = None, device: str = "cpu"
) -> QualityModel:
    """Build a model in eval mode on ``device``; KonCept512 needs real weights, never random."""
    name = resolve_name(name, weights)
    if name == "brisque":
        from pixcamd.models.brisque import Brisque

        model: QualityModel = Brisque()
    else:
        from pixcamd.models.koncept512 import KonCept512

        path = Path(weights) if weights is not None else default_weights_path()
        model = KonCept512(load_checkpoint(path))
    return model.to(device).eval()


__all__ = ["CHOICES", "MODEL_NAMES", "QualityModel", "load_model", "model_class", "resolve_name"]
