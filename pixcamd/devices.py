"""Choosing where the models run, and giving memory back between photos."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

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


def release_memory() -> None:
    """Hand what one photo's tensors left cached back to the system: Python's garbage, torch's
    CUDA cache, and glibc's free lists (``malloc_trim``) — a 24 MP photo leaves ~1 GB in them,
    which an idle daemon on a laptop should not sit on. A no-op where there is nothing to trim."""
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None
