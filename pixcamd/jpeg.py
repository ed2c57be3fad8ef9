"""JPEG as the BIQA meets it: our output file, then a platform's recompression (JPEG, or WebP or
AVIF where a platform serves that).

Two faces of the same thing:

* the real chain, with Pillow (libjpeg): what the check and the scorer see;
* an in-loop estimate for the optimizer: forward values from the real chain (so the loop scores
  exactly what the check will), gradients from kornia's differentiable JPEG — a straight-through
  estimator. It is applied to a window aligned to the full photo's 16-pixel MCU grid with a
  16-pixel margin, so its 8×8 blocks, 4:2:0 chroma pairs and libjpeg's "fancy" chroma
  upsampling see the same neighbours as a JPEG of the whole photo.

And the way back: ``served_as`` reads how a downloaded JPEG was encoded (its libjpeg quality and
chroma subsampling), so that a platform's pipeline can be written down from a copy of it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import kornia
import torch
from PIL import Image

from pixcamd.photo import to_image, to_tensor

TASK_QUALITY = 90  # MediaEval 2020 Pixel Privacy scored photos after a JPEG-90 round trip
MCU = 16  # 4:2:0 minimum coded unit: the grid every JPEG of the full photo uses
# AVIF as Pillow writes it by default (libaom at speed 6), on one thread: libaom's bitstream
# depends on its thread count, and a verdict must not depend on the machine's cores.
AVIF_SPEED = 6
AVIF_THREADS = 1


def encode(img: Image.Image, quality: int, subsampling: str | int = -1) -> bytes:
    """Pillow JPEG bytes; ``subsampling`` -1 = Pillow's default (4:2:0), or "4:4:4" etc."""
    buffer = io.BytesIO()
    img.convert("RGB").save(buffer, format="JPEG", quality=quality, subsampling=subsampling)
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as decoded:
        return decoded.convert("RGB")


def recompress(
    img: Image.Image, quality: int, subsampling: str = "4:2:0", codec: str = "jpeg"
) -> Image.Image:
    """A platform's re-encode, decoded: Pillow's JPEG; its lossy WebP (libwebp's defaults:
    method 4, always 4:2:0 — ``subsampling`` does not apply) for ``codec`` "webp"; its AVIF
    (libavif, ``AVIF_SPEED``, ``AVIF_THREADS``, ``subsampling`` as given) for "avif"."""
    if codec == "jpeg":
        return decode(encode(img, quality, subsampling))
    buffer = io.BytesIO()
    if codec == "webp":
        img.convert("RGB").save(buffer, format="WEBP", quality=quality)
    elif codec == "avif":
        img.convert("RGB").save(
            buffer,
            format="AVIF",
            quality=quality,
            subsampling=subsampling,
            speed=AVIF_SPEED,
            max_threads=AVIF_THREADS,
        )
    else:
        raise ValueError(f"unknown codec {codec!r}")
    return decode(buffer.getvalue())


@dataclass(frozen=True)
class Chain:
    """Our output file's encoding followed by the platform's recompression. ``output_quality``
    None skips our encoding (a window of a downscaled photo: the downscale averages it away).
    ``platform_codec`` "webp" or "avif": the platform re-encodes as that (``recompress``)."""

    output_quality: int | None = 95
    output_subsampling: str = "4:4:4"
    platform_quality: int = TASK_QUALITY
    platform_subsampling: str = "4:2:0"
    platform_codec: str = "jpeg"

    def output(self, img: Image.Image) -> bytes:
        assert self.output_quality is not None
        return encode(img, self.output_quality, self.output_subsampling)

    def __call__(self, img: Image.Image) -> Image.Image:
        """What the BIQA sees of ``img`` once we saved it and the platform recompressed it."""
        if self.output_quality is not None:
            img = decode(self.output(img))
        return recompress(
            img, self.platform_quality, self.platform_subsampling, self.platform_codec
        )


def aligned_window(box, width: int, height: int, margin: int = MCU) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) around ``box`` = (left, top, w, h), on the MCU grid, in-image."""
    left, top, w, h = box
    x0 = max(0, (left - margin) // MCU * MCU)
    y0 = max(0, (top - margin) // MCU * MCU)
    x1 = min(width, -(-(left + w + margin) // MCU) * MCU)
    y1 = min(height, -(-(top + h + margin) // MCU) * MCU)
    return x0, y0, x1, y1


def _pad_to_mcu(x: torch.Tensor) -> torch.Tensor:
    """Replicate the last row/column up to a multiple of 16, as a JPEG encoder pads edges."""
    h, w = x.shape[-2:]
    ph, pw = -h % MCU, -w % MCU
    if ph or pw:
        x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")
    return x


def straight_through_jpeg(window: torch.Tensor, chain: Chain, soft: bool = True) -> torch.Tensor:
    """1×3×h×w window (grid-aligned, 8-bit values) → the chain's real output, with gradients of
    kornia's differentiable JPEG at the platform quality (``soft``), or passed through as if
    there were no JPEG (for large windows, where kornia's codec costs more than it tells).

    A WebP platform: the value is libwebp's encode of the window — its 16-pixel macroblocks on
    the same grid, but its segment and filter choices are the window's, not the whole photo's
    (BRISQUE of a centre crop 0.1–0.75 points from the whole photo's encode by the median, 5 at
    worst: docs/benchmarks.md) — and the gradient kornia's JPEG at the same quality, a stand-in
    for a block transform codec that only shapes the step's direction; the check encodes the
    whole photo. An AVIF platform likewise: libavif's encode of the window (its blocks and
    partitions chosen from the window) and kornia's JPEG for the gradient."""
    h, w = window.shape[-2:]
    with torch.no_grad():
        real = to_tensor(chain(to_image(window))).to(window.device, window.dtype)
    if not soft:
        return window + (real - window).detach()
    quality = torch.tensor([float(chain.platform_quality)], device=window.device)
    soft = kornia.enhance.jpeg_codec_differentiable(_pad_to_mcu(window), quality)[..., :h, :w]
    return soft + (real - soft).detach()


def straight_through_round(x: torch.Tensor) -> torch.Tensor:
    """Round to the 8-bit values the file will hold; gradients pass as if unrounded."""
    return x + (torch.round(x * 255) / 255 - x).detach()


# libjpeg's (IJG) luminance quantization table at quality 50, natural order (Annex K of T.81).
_IJG_LUMA = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
_SAMPLING = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}


def _ijg_table(quality: int) -> list[int]:
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return [min(255, max(1, (v * scale + 50) // 100)) for row in _IJG_LUMA for v in row]


def served_as(img: Image.Image) -> dict | None:
    """How a JPEG file was encoded, to write a platform's pipeline down from a copy downloaded
    back: size, chroma subsampling, and the libjpeg quality whose luminance table is nearest
    (``exact`` when it is that table: other encoders' tables only approximate a quality)."""
    if getattr(img, "format", None) != "JPEG" or not getattr(img, "quantization", None):
        return None
    from PIL import JpegImagePlugin

    table = list(img.quantization[0])
    if len(table) != 64:
        return None

    def error(quality: int) -> int:
        return sum(abs(a - b) for a, b in zip(table, _ijg_table(quality), strict=True))

    errors = {q: error(q) for q in range(1, 101)}
    quality = min(errors, key=lambda q: (errors[q], -q))
    return {
        "size": list(img.size),
        "quality": quality,
        "exact": errors[quality] == 0,
        "subsampling": _subsampling(img, JpegImagePlugin.get_sampling(img)),
    }


def _subsampling(img: Image.Image, sampling: int) -> str:
    """One component has nothing to subsample; Pillow tells no sampling for four (CMYK, a
    print file no platform serves): both said by what they are, not as "other"."""
    layers = getattr(img, "layers", 3)
    if layers == 1:
        return "grayscale"
    if layers == 4:
        return "CMYK (4 components)"
    return _SAMPLING.get(sampling, "other")
