"""Choosing where the models run."""

from __future__ import annotations

import torch


def resolve_device(name: str = "auto") -> str:
    """``auto`` → CUDA when available, else CPU; an explicit choice is checked, not trusted."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but this machine has no usable CUDA GPU")
    try:
        torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {name!r}: use auto, cpu or cuda[:N]") from exc
    return name
