"""Views: the 512×384 windows through which a BIQA sees a high-resolution photo.

All views are differentiable functions of the full-resolution photo tensor, so the optimizer can
push gradients from any view back onto the photo's own pixels.

* ``center`` — the task protocol: the centre crop 512 wide × 384 high at native resolution,
  left = (W − 512) // 2, top = (H − 384) // 2.
* ``resize`` — the whole photo as a thumbnailer shows it: the largest centred 4:3 box
  (aspect preserved, nothing stretched), resized to 512×384 with antialiased bicubic
  filtering, like Pillow's ``ImageOps.fit``.
* ``tiles`` — 512×384 tiles covering every pixel: laid from the top-left corner on the photo's
  own 16-pixel JPEG grid, with the last column and row flush with the right and bottom edges
  (overlapping their neighbours) so no tile is padded.

Photos smaller than a view (either side under 512 × 384) are first enlarged, aspect preserved,
by the smallest factor that makes them cover 512×384; then the rules above apply. A scorer that
wants a 512×384 input has to do something of the kind, and enlarging never invents a crop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pixcamd.defaults import DEFAULT_VIEWS, parse_views
from pixcamd.defaults import VIEW_NAMES as VIEW_NAMES  # the names, kept without torch
from pixcamd.defaults import in_order as in_order
from pixcamd.errors import PhotoError
from pixcamd.platforms import centre_box

VIEW_HEIGHT, VIEW_WIDTH = 384, 512
MAX_COVER_PIXELS = (
    50_000_000  # a small photo enlarged to cover a view: a strip past this is refused
)


@dataclass(frozen=True)
class View:
    """One window: ``label`` for reports; ``box`` = (left, top, width, height) in photo pixels."""

    label: str
    box: tuple[int, int, int, int]
    resized: bool = False


def cover_scale(width: int, height: int, size=(VIEW_HEIGHT, VIEW_WIDTH)) -> float:
    """Factor (≥ 1) that makes a photo cover the view; 1 for photos at least as large."""
    return max(1.0, size[1] / width, size[0] / height)


def cover_size(width: int, height: int, size=(VIEW_HEIGHT, VIEW_WIDTH)) -> tuple[int, int]:
    """(height, width) of the photo once enlarged to cover the view (its own where it does)."""
    scale = cover_scale(width, height, size)
    if scale == 1.0:
        return height, width
    return max(size[0], math.ceil(height * scale)), max(size[1], math.ceil(width * scale))


def check_cover(width: int, height: int, size=(VIEW_HEIGHT, VIEW_WIDTH)) -> int:
    """The pixels the photo is judged at, enlarged to cover the view; a strip so thin that this
    passes ``MAX_COVER_PIXELS`` is refused (a 1×3000 line: 512×1,536,000 px, gigabytes for a
    photo of a few bytes)."""
    cover_height, cover_width = cover_size(width, height, size)
    pixels = cover_height * cover_width
    if pixels > MAX_COVER_PIXELS and pixels > width * height:
        raise PhotoError(
            f"{width}×{height} px is too thin to judge: the quality model's {size[1]}×{size[0]} "
            f"view would enlarge it to {pixels / 1e6:,.0f} MP; crop it to a less extreme shape"
        )
    return pixels


def tile_origins(length: int, tile: int, grid: int = 16) -> list[int]:
    """Origins along one side: every ``tile`` pixels (a multiple of ``grid``), last one flush."""
    if length <= tile:
        return [0]
    step = max(grid, tile // grid * grid)
    origins = list(range(0, length - tile, step))
    return [*origins, length - tile]


def plan_views(width: int, height: int, names, size=(VIEW_HEIGHT, VIEW_WIDTH)) -> list[View]:
    """Boxes of the requested views on a ``width``×``height`` photo (already enlarged to cover)."""
    vh, vw = size
    if width < vw or height < vh:
        raise ValueError(
            f"photo {width}×{height} is smaller than the {vw}×{vh} view: enlarge first"
        )
    views: list[View] = []
    for name in parse_views(names):
        if name == "center":
            views.append(View("center", ((width - vw) // 2, (height - vh) // 2, vw, vh)))
        elif name == "resize":
            box = centre_box(width, height, (vw, vh))
            views.append(View("resize", box, resized=box[2:] != (vw, vh)))
        else:
            for top in tile_origins(height, vh):
                for left in tile_origins(width, vw):
                    views.append(View(f"tile@{left},{top}", (left, top, vw, vh)))
    return views


def enlarge_to_cover(photo: torch.Tensor, size=(VIEW_HEIGHT, VIEW_WIDTH)) -> torch.Tensor:
    """Bicubic enlargement of a too-small photo so it covers the view; others pass unchanged."""
    height, width = photo.shape[-2:]
    new_size = cover_size(width, height, size)
    if new_size == (height, width):
        return photo
    out = F.interpolate(photo, size=new_size, mode="bicubic", align_corners=False)
    return out.clamp(0, 1)


def extract(photo: torch.Tensor, view: View, size=(VIEW_HEIGHT, VIEW_WIDTH)) -> torch.Tensor:
    """Cut (and for ``resize`` scale) one view out of a 1×3×H×W photo: 1×3×h×w."""
    left, top, w, h = view.box
    window = photo[..., top : top + h, left : left + w]
    if not view.resized:
        return window
    return rescale(window, size).clamp(0, 1)


def rescale(window: torch.Tensor, size=(VIEW_HEIGHT, VIEW_WIDTH)) -> torch.Tensor:
    """The ``resize`` view's antialiased bicubic scaling, before ``extract`` clips its overshoot."""
    return F.interpolate(window, size=size, mode="bicubic", antialias=True, align_corners=False)


def make_views(
    photo: torch.Tensor, names=DEFAULT_VIEWS, size=(VIEW_HEIGHT, VIEW_WIDTH)
) -> tuple[list[View], torch.Tensor]:
    """All requested views of a 1×3×H×W photo in [0, 1], stacked into an N×3×h×w batch."""
    if photo.dim() != 4 or photo.shape[0] != 1 or photo.shape[1] != 3:
        raise ValueError(f"expected one RGB photo shaped 1×3×H×W, got {tuple(photo.shape)}")
    photo = enlarge_to_cover(photo, size)
    height, width = photo.shape[-2:]
    views = plan_views(width, height, names, size)
    return views, torch.cat([extract(photo, v, size) for v in views], dim=0)
