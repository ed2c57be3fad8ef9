"""The photos ``bench/evaluate.py`` runs on: found in folders, centre-cropped for quick runs,
small ones (≤ 1 MP) made from them in memory, and each photo's flattest region — where a change
shows first, cut out for the contact sheet and its own PSNR.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pixcamd.photo import load_photo

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".heic", ".heif", ".bmp"}
FLAT_SIZE = 256  # side of the flattest-region crop, native pixels
FLAT_BORDER = 0.05  # of each side, left out of the flattest-region search
SMALL_CROP = (640, 480)  # --small: centre crop ...
SMALL_LONG_SIDE = 1024  # ... or Lanczos downscale to this long side
SMALL_MAX_PIXELS = 1_000_000


def luma_of(image: Image.Image) -> np.ndarray:
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def window_stds(
    luma: np.ndarray, size: int = FLAT_SIZE, border: float = FLAT_BORDER, stride: int = 8
) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """Luma standard deviation of every ``size``×``size`` window on a ``stride`` grid inside the
    photo less its outer ``border`` (the last row and column of windows flush with that border):
    (tops, lefts, side, stds[len(tops), len(lefts)]). The side shrinks to fit a small photo."""
    height, width = luma.shape
    y0, x0 = math.ceil(border * height), math.ceil(border * width)
    y1, x1 = (
        max(y0 + 1, math.floor((1 - border) * height)),
        max(x0 + 1, math.floor((1 - border) * width)),
    )
    side = max(1, min(size, y1 - y0, x1 - x0))
    tops = np.unique(np.r_[np.arange(y0, y1 - side + 1, stride), y1 - side])
    lefts = np.unique(np.r_[np.arange(x0, x1 - side + 1, stride), x1 - side])
    window = luma[y0:y1, x0:x1].astype(np.float64)
    s1 = np.zeros((y1 - y0 + 1, x1 - x0 + 1))
    s2 = np.zeros_like(s1)
    s1[1:, 1:] = window.cumsum(0).cumsum(1)
    s2[1:, 1:] = (window * window).cumsum(0).cumsum(1)
    del window
    t, left = (tops - y0)[:, None], (lefts - x0)[None, :]

    def box_sum(s: np.ndarray) -> np.ndarray:
        return s[t + side, left + side] - s[t, left + side] - s[t + side, left] + s[t, left]

    n = side * side
    mean = box_sum(s1) / n
    var = np.clip(box_sum(s2) / n - mean * mean, 0, None)
    return tops, lefts, side, np.sqrt(var)


def flattest_box(
    image: Image.Image, size: int = FLAT_SIZE, border: float = FLAT_BORDER, stride: int = 8
) -> tuple[tuple[int, int, int, int], float]:
    """(left, top, width, height) of the window with the lowest local luma standard deviation,
    avoiding the outer ``border`` of the photo, and that deviation (grey levels)."""
    tops, lefts, side, stds = window_stds(luma_of(image), size, border, stride)
    i, j = np.unravel_index(int(np.argmin(stds)), stds.shape)
    return (int(lefts[j]), int(tops[i]), side, side), float(stds[i, j])


@dataclass
class PhotoItem:
    """One photo to evaluate: where it comes from and how to make it (in memory)."""

    name: str
    path: str
    made: str  # how the pixels were made from the file
    load: Callable[[], Image.Image]
    small: bool = False


def find_photos(inputs: list[str | Path]) -> list[Path]:
    photos: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            photos += sorted(
                p for p in item.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES
            )
        else:
            photos.append(item)
    return photos


def centre_crop(image: Image.Image, size: tuple[int, int] | None) -> Image.Image:
    if size is None or (image.width <= size[0] and image.height <= size[1]):
        return image
    w, h = min(size[0], image.width), min(size[1], image.height)
    left, top = (image.width - w) // 2, (image.height - h) // 2
    return image.crop((left, top, left + w, top + h))


def downscale_long(image: Image.Image, long_side: int) -> Image.Image:
    """Pillow Lanczos downscale to ``long_side`` px on the long side (never up)."""
    factor = long_side / max(image.size)
    if factor >= 1:
        return image
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return image.resize(size, Image.Resampling.LANCZOS)


def make_small(image: Image.Image, index: int) -> tuple[Image.Image, str]:
    """The ``index``-th small photo (≤ 1 MP) made from ``image``: even indices a 640×480 centre
    crop, odd ones a Lanczos downscale to 1024 px on the long side."""
    if index % 2 == 0:
        small, how = centre_crop(image, SMALL_CROP), "crop"
    else:
        small, how = downscale_long(image, SMALL_LONG_SIDE), f"lanczos{SMALL_LONG_SIDE}"
    if small.width * small.height > SMALL_MAX_PIXELS:  # never: both rules give ≤ 0.79 MP
        raise AssertionError(f"small photo {small.size} over 1 MP")
    return small, f"{how} {small.width}x{small.height}"


def photo_items(paths: list[Path], crop: tuple[int, int] | None, small: int) -> list[PhotoItem]:
    """The run's photos: every path (centre-cropped with ``crop``), then ``small`` small ones
    made from the same paths in turn."""
    items = [
        PhotoItem(
            p.name,
            str(p),
            f"centre crop {crop[0]}x{crop[1]}" if crop else "as is",
            lambda p=p: centre_crop(load_photo(p), crop),
        )
        for p in paths
    ]
    for k in range(small if paths else 0):
        source = paths[k % len(paths)]
        kind = "crop" if k % 2 == 0 else "down"
        made = (
            f"centre crop {SMALL_CROP[0]}x{SMALL_CROP[1]}"
            if k % 2 == 0
            else f"Lanczos downscale to {SMALL_LONG_SIDE} px long side"
        )

        def load(source=source, k=k):
            return make_small(load_photo(source), k)[0]

        items.append(
            PhotoItem(f"small{k:02d}_{kind}_{source.stem}", str(source), made, load, small=True)
        )
    return items
