"""Where KonCept512's weights live and how the official ``KonCept512.pth`` is read.

The checkpoint is a plain state dict (keys ``base.0…`` / ``fc.0…``, optionally prefixed
``module.`` when it was saved from ``nn.DataParallel``). It is loaded with
``torch.load(weights_only=True)`` so a tampered file cannot run code, and strictly, so a file of
another network is refused rather than half-loaded.
"""

from __future__ import annotations

import os
import stat
import warnings
import zipfile
from pathlib import Path

import torch

# Where the weights live needs no torch (`auto` asks it): in pixcamd.defaults, re-exported here.
from pixcamd.defaults import WEIGHTS_FILENAME as WEIGHTS_FILENAME
from pixcamd.defaults import WEIGHTS_URL as WEIGHTS_URL
from pixcamd.defaults import cache_dir as cache_dir
from pixcamd.defaults import default_weights_path
from pixcamd.defaults import present as present
from pixcamd.errors import NotACheckpoint, TruncatedCheckpoint, WeightsMissing, WrongArchitecture

# torch's legacy (non-zip) format starts with the pickled magic number 0x1950a86a20f9469cfc6c.
_LEGACY_MAGIC = bytes.fromhex("80028a0a6cfc9c46f9206aa85019")


def fetch_command(path: str | os.PathLike | None = None) -> str:
    """`pixcamd model fetch`, told where (``--to``) when the weights are read from elsewhere
    than where it installs them by default."""
    if path is None or Path(path).expanduser() == default_weights_path():
        return "pixcamd model fetch"
    return f"pixcamd model fetch --to {path}"


def fetch_advice(path: str | os.PathLike | None = None) -> str:
    """What to do about missing or unusable weights read from ``path``."""
    command = fetch_command(path)
    copy = command.replace("fetch", "fetch --from FILE", 1)
    return (
        f"get them with `{command}` (downloads KonCept512.pth, about 229 MB) or install a copy "
        f"you already have with `{copy}`"
    )


def expected_layout() -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Key → (shape, dtype) of the official checkpoint, taken from our own network."""
    from pixcamd.models.koncept512 import KonCept512

    with torch.device("meta"):
        model = KonCept512()
    return {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}


def load_checkpoint(
    path: str | os.PathLike, name: str | None = None, how_to_get: str | None = None
) -> dict[str, torch.Tensor]:
    """Read and validate a KonCept512 checkpoint; raise a specific ``WeightsError`` if unusable.
    ``name``: what the errors call the file (default its path), e.g. the source a copy came from;
    ``how_to_get``: what the errors advise (default: fetching them to ``path``; ``model fetch``
    itself advises no ``model fetch``)."""
    path = Path(path)
    shown = name or path
    how_to_get = fetch_advice(path) if how_to_get is None else how_to_get
    try:
        try:
            mode = os.stat(path).st_mode  # a closed folder raises (Path.exists: False in 3.14)
        except (FileNotFoundError, NotADirectoryError):
            raise WeightsMissing(f"KonCept512 weights not found at {shown}: {how_to_get}") from None
        if not stat.S_ISREG(mode):
            raise NotACheckpoint(f"{shown} is not a file")
        with path.open("rb") as f:
            head = f.read(len(_LEGACY_MAGIC))
    except OSError as exc:  # another user's file or folder (sudo under umask 077), a service's
        raise WeightsMissing(
            f"{shown}: cannot read it ({exc.strerror or exc}); the user running pixcamd must "
            "be able to read it and open every folder on its path (chmod 644 the file, 755 its "
            "folders, or chown them to that user)"
        ) from None
    if not head:
        raise TruncatedCheckpoint(f"{shown} is empty (an interrupted download?): {how_to_get}")
    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols mean nothing here
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if "weights only load failed" in str(exc).lower() and (
            zipfile.is_zipfile(path) or head.startswith(_LEGACY_MAGIC)
        ):
            raise NotACheckpoint(
                f"{shown} holds pickled Python objects, not just tensors; refusing to run them "
                "(KonCept512.pth is a plain state dict)"
            ) from exc
        if (head.startswith(b"PK\x03\x04") and not zipfile.is_zipfile(path)) or head.startswith(
            _LEGACY_MAGIC
        ):
            raise TruncatedCheckpoint(
                f"{shown} is a cut-off PyTorch checkpoint ({path.stat().st_size} bytes): "
                f"{how_to_get}"
            ) from exc
        # torch's own words ("invalid load key", a byte's number) mean nothing to a user
        raise NotACheckpoint(f"{shown} is not a PyTorch checkpoint: {how_to_get}") from exc
    return _check_layout(obj, shown, how_to_get)


def _check_layout(obj, path: Path | str, how_to_get: str) -> dict[str, torch.Tensor]:
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise NotACheckpoint(f"{path} is a PyTorch file but not a state dict of tensors")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k.removeprefix("module."): v for k, v in obj.items()}
    expected = expected_layout()
    missing = [k for k in expected if k not in obj]
    unexpected = [k for k in obj if k not in expected]
    wrong = [
        f"{k} {tuple(obj[k].shape)} (expected {expected[k][0]})"
        for k in expected
        if k in obj and tuple(obj[k].shape) != expected[k][0]
    ]
    if missing or unexpected or wrong:
        problems = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", wrong)):
            if items:
                shown = ", ".join(items[:3]) + (" …" if len(items) > 3 else "")
                problems.append(f"{len(items)} {label}: {shown}")
        raise WrongArchitecture(
            f"{path} is not a KonCept512 checkpoint ({len(obj)} tensors; "
            + "; ".join(problems)
            + f"): {how_to_get}"
        )
    # The official file is float32 throughout (tests/data/koncept512_manifest.tsv): another
    # type is a converted copy whose scores are not the task's
    types = [f"{k} {obj[k].dtype}" for k in expected if obj[k].dtype != expected[k][1]]
    if types:
        raise WrongArchitecture(
            f"{path} holds {len(types)} tensors of another type than KonCept512.pth's "
            f"({', '.join(types[:3])}{' …' if len(types) > 3 else ''}; float32 expected): "
            f"{how_to_get}"
        )
    damaged = [k for k in expected if obj[k].is_floating_point() and not obj[k].isfinite().all()]
    if damaged:  # a download damaged on the way, or a diverged training run's
        raise NotACheckpoint(
            f"{path} is damaged: {len(damaged)} tensors hold NaN or infinite values "
            f"({', '.join(damaged[:3])}{' …' if len(damaged) > 3 else ''}): {how_to_get}"
        )
    return obj
