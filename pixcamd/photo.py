"""Reading a photo the way every scorer and viewer sees it: decoded, upright, RGB.

The EXIF orientation is applied to the pixels first, so the views, the scores and later the
protection are all computed on the photo as a person sees it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from pixcamd.errors import PhotoError

# Default decompression-bomb guard: 200 MP is beyond any camera a photographer carries today.
DEFAULT_MAX_PIXELS = 200_000_000


def load_photo(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode ``path`` fully into an upright 8-bit RGB image, or raise a specific ``PhotoError``.

    Transparent images are composited onto white (what a social site shows); other modes
    (grayscale, palette, 16-bit, CMYK) are converted to RGB.
    """
    path = Path(path)
    if not path.exists():
        raise PhotoError(f"{path}: no such file")
    if not path.is_file():
        raise PhotoError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise PhotoError(f"{path}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise PhotoError(
                        f"{path}: {width}×{height} px is over the limit of {max_pixels:,} pixels"
                    )
                img.load()  # full decode now: a truncated file fails here, not later
                upright = ImageOps.exif_transpose(img) or img
                return _to_rgb(upright)
    except PhotoError:
        raise
    except UnidentifiedImageError as exc:
        raise PhotoError(f"{path}: not an image Pillow can read") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PhotoError(f"{path}: image dimensions are implausibly large ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise PhotoError(f"{path}: cannot decode the image ({exc})") from exc


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grayscale: scale to 8 bits instead of clipping at 255.
        array = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if array.max() > 255 else 255.0
        return Image.fromarray(np.round(array / peak * 255).astype(np.uint8)).convert("RGB")
    return img.convert("RGB")


def to_tensor(img: Image.Image) -> torch.Tensor:
    """8-bit RGB image → 1×3×H×W float32 tensor in [0, 1]."""
    array = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def to_image(tensor: torch.Tensor) -> Image.Image:
    """1×3×H×W or 3×H×W tensor in [0, 1] → 8-bit RGB image (rounded, clipped)."""
    t = tensor.detach().squeeze(0).clamp(0, 1).mul(255).round().to(torch.uint8)
    return Image.fromarray(t.permute(1, 2, 0).cpu().numpy(), "RGB")
