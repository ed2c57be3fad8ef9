"""The recompression every platform applies before a BIQA sees a photo."""

from __future__ import annotations

import io

from PIL import Image

TASK_QUALITY = 90  # MediaEval 2020 Pixel Privacy scored photos after a JPEG-90 round trip


def recompress(img: Image.Image, quality: int = TASK_QUALITY) -> Image.Image:
    """A real Pillow JPEG encode/decode at ``quality`` with Pillow's defaults (4:2:0 chroma)."""
    buffer = io.BytesIO()
    img.convert("RGB").save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")
