"""Loop views: every (platform pipeline × view) pair as the optimizer computes it.

The check (``pixcamd.check``) judges each pipeline's real output: our file, then the pipeline's
Pillow resize and JPEG, then the views. The optimizer needs the same thing as a differentiable
function of the few native pixels each view depends on. A ``LoopView`` knows its ``region`` (native
pixels, left, top, right, bottom) and ``render``s the view from them:

* ``NativeCrop`` — a crop at the photo's own resolution (``center``, ``tiles`` of a pipeline that
  does not resize this photo): the real JPEG chain on an MCU-aligned window (straight-through).
* ``NativeFit`` — the whole photo fitted to the view (``resize``). One such view stands for the
  ``resize`` view of every pipeline when the photo is over 1 MP (``SMALL_FIT_PIXELS``): the fit
  downscales by more than 2× per side, which averages most of the JPEG error away; from a smaller
  photo the pipeline's JPEG goes first (its gradient from kornia's JPEG up to
  ``JPEG_FIT_PIXELS``, 640×480 say, straight through above).
* ``DownscaledCrop`` — a crop of the pipeline's downscaled photo (or of its crop to another
  aspect, served as a downscale of that box): straight-through resize (the
  forward value is Pillow's own resize of the region, exact up to our output encoding; gradients
  from torch's antialiased bilinear downscale), then the pipeline's JPEG on an MCU-aligned window of
  the downscaled photo, then the crop. Only the native region under that window is touched.
* ``Whole`` — photos (or downscales) smaller than the view: the whole photo, through the pipeline,
  then enlarged as the check enlarges it.

Pairs that compute the same thing (two pipelines without a resize at one JPEG quality) share one
loop view; ``stands_for`` lists every (pipeline, view) pair the check will judge for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from PIL import Image

from pixcamd.jpeg import (
    Chain,
    aligned_window,
    decode,
    encode,
    straight_through_jpeg,
    straight_through_round,
)
from pixcamd.photo import to_image, to_tensor
from pixcamd.platforms import FILTERS, Pipeline
from pixcamd.views import (
    VIEW_HEIGHT,
    VIEW_WIDTH,
    View,
    cover_scale,
    enlarge_to_cover,
    extract,
    plan_views,
    rescale,
)

JPEG_FIT_PIXELS = 2 * VIEW_HEIGHT * VIEW_WIDTH  # fits from at most √2× per side model the JPEG
# A native fit from up to 1 MP (a downscale of about 2× or less) still shows the pipeline's JPEG:
# 1024-px photos passed the shared fit in the loop and failed it after JPEG 75 in the real check,
# 4–8 checks a photo. There the fit takes each pipeline's real JPEG as its value (the gradient
# passes straight through it: kornia's JPEG on the whole photo would cost more than it saves).
SMALL_FIT_PIXELS = 1_000_000
# How far (a fraction of the served size, either way) the loop moves a downscaling pipeline's
# served size each time it evaluates one of its crops. Fitted to the exact size alone, the
# perturbation leans on that one grid (its JPEG blocks, the filter's phase): a 2048×1536 crop
# protected for long 1024 + JPEG 80 scored 81 there and 38–44 at 1008–1040 px. Drawn from ±2 %,
# it scored 62–68 at every one of those sizes (±0.5 %: 55–70) — docs/benchmarks.md, "The
# served grid".
GRID_JITTER = 0.02
# How far (a fraction of each side) the loop resizes and moves the box of a named fit each time
# it evaluates one. Fitted to the exact box alone, the perturbation leaned on the fit's one
# resampling phase: ten protected photos scored 80–90 on the exact fit and 31–61 on a box 0.5 %
# smaller; a thumbnailer whose box differs by a pixel saw them unprotected. Drawn from ±10 %
# (with the roaming crops as shipped), fits 1–15 % off the box were low on 68 of 80 (photo, fit)
# pairs instead of 42, crops to other aspects on 143 of 160 instead of 130 — for 11 % more
# steps and more escalation (docs/benchmarks.md, "Crops to another aspect, and the fit's box").
FIT_JITTER = 0.10
SUPPORT = {"lanczos": 3.0, "bicubic": 2.0, "bilinear": 1.0, "hamming": 1.0, "box": 0.5}


def pillow_resize(
    region: torch.Tensor,
    origin: tuple[int, int],
    box: tuple[int, int, int, int],
    scale: tuple[float, float],
    filter_name: str,
    output: tuple[int, str] | None = None,
    image: Image.Image | None = None,
) -> torch.Tensor:
    """Pixels ``box`` = (left, top, right, bottom) of the photo resized by 1/``scale``, from the
    native ``region`` whose top-left pixel is ``origin``: Pillow's resize of the 8-bit region
    (the same coefficients as resizing the whole photo, given a margin of the filter's
    support), after our ``output`` encoding (quality, subsampling) when given — the region must
    then lie on the photo's MCU grid. No gradient. ``image``: the region already as an 8-bit
    image (several views of one step share the conversion of a whole large photo)."""
    (x0, y0), (left, top, right, bottom), (sx, sy) = origin, box, scale
    with torch.no_grad():
        source = (left * sx - x0, top * sy - y0, right * sx - x0, bottom * sy - y0)
        image = to_image(region) if image is None else image
        if output is not None:  # what the platform receives: our file
            image = decode(encode(image, *output))
        exact = image.resize((right - left, bottom - top), FILTERS[filter_name], box=source)
        return to_tensor(exact).to(region)


def straight_through_resize(
    region: torch.Tensor,
    origin: tuple[int, int],
    box: tuple[int, int, int, int],
    scale: tuple[float, float],
    filter_name: str,
    output: tuple[int, str] | None = None,
    image: Image.Image | None = None,
) -> torch.Tensor:
    """``pillow_resize`` forward; gradient: torch's antialiased bilinear downscale of the
    matching native box."""
    exact = pillow_resize(region, origin, box, scale, filter_name, output, image)
    return bilinear_through(exact, region, origin, box, scale)


def bilinear_through(
    exact: torch.Tensor,
    region: torch.Tensor,
    origin: tuple[int, int],
    box: tuple[int, int, int, int],
    scale: tuple[float, float],
) -> torch.Tensor:
    """``exact``'s value; gradient: torch's antialiased bilinear downscale, to ``exact``'s
    size, of the native pixels under ``box`` = (left, top, right, bottom) of the photo resized
    by 1/``scale``, from the ``region`` whose top-left pixel is ``origin``."""
    (x0, y0), (left, top, right, bottom), (sx, sy) = origin, box, scale
    a, b = round(left * sx) - x0, round(right * sx) - x0
    c, d = round(top * sy) - y0, round(bottom * sy) - y0
    sub = region[..., max(0, c) : d, max(0, a) : b]
    soft = F.interpolate(sub, size=exact.shape[-2:], mode="bilinear", antialias=True)
    return soft + (exact - soft).detach()


@dataclass
class LoopView:
    label: str
    region: tuple[int, int, int, int]  # native (left, top, right, bottom) the view depends on
    stands_for: list[tuple[str, str]] = field(default_factory=list)  # (pipeline, view) pairs

    def render(self, region: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def footprint(self) -> tuple[int, int, int, int]:
        """The native pixels the view shows (left, top, right, bottom): the only ones the
        optimizer moves for it. The region around them (JPEG blocks, filter taps) counts for the
        value, but a change there would be a seam around the view in a flat sky."""
        return self.region


@dataclass
class NativeCrop(LoopView):
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  # (left, top, width, height)
    chain: Chain | None = None

    @classmethod
    def of(cls, label, box, photo, chain) -> NativeCrop:
        """``box`` of the ``photo`` (width, height) through ``chain``, its region the
        MCU-aligned window around it (the JPEG of the whole photo sees the same blocks)."""
        return cls(label, aligned_window(box, *photo), [], box, chain)

    @property
    def footprint(self) -> tuple[int, int, int, int]:
        return _corners(self.box)

    def _cut(self, region: torch.Tensor, rounded: bool = True, soft: bool = True) -> torch.Tensor:
        """The box from ``region``: 8-bit values, through the chain when there is one (its
        gradient from kornia's JPEG with ``soft``, else passed straight through)."""
        left, top, w, h = self.box
        x0, y0 = self.region[:2]
        pixels = straight_through_round(region) if rounded or self.chain else region
        if self.chain is not None:
            pixels = straight_through_jpeg(pixels, self.chain, soft)
        return pixels[..., top - y0 : top - y0 + h, left - x0 : left - x0 + w]

    def render(self, region: torch.Tensor) -> torch.Tensor:
        return self._cut(region)


def nearby_box(
    box: tuple[int, int, int, int],
    bounds: tuple[int, int],
    generator: torch.Generator,
    spread: float,
) -> tuple[int, int, int, int]:
    """``box`` (left, top, width, height) with each side scaled by a factor drawn from
    1 ± ``spread`` and its centre moved by up to ``spread``/2 of each side, kept within
    ``bounds`` (width, height): the box of a fit a thumbnailer might take instead."""
    left, top, w, h = box
    width, height = bounds
    u, v, a, b = torch.rand(4, generator=generator).tolist()
    w2 = min(width, max(16, round(w * (1 + spread * (2 * u - 1)))))
    h2 = min(height, max(16, round(h * (1 + spread * (2 * v - 1)))))
    x = round(left + (w - w2) / 2 + (a - 0.5) * spread * w)
    y = round(top + (h - h2) / 2 + (b - 0.5) * spread * h)
    return min(max(0, x), width - w2), min(max(0, y), height - h2), w2, h2


@dataclass
class NativeFit(NativeCrop):
    size: tuple[int, int] = (VIEW_HEIGHT, VIEW_WIDTH)

    def nearby(self, photo: tuple[int, int], generator: torch.Generator, spread: float):
        """The same fit of a box a little off this one (``nearby_box``); same label and pairs."""
        box = nearby_box(self.box, photo, generator, spread)
        region = _corners(box) if self.chain is None else aligned_window(box, *photo)
        return replace(self, box=box, region=region)

    def render(self, region: torch.Tensor) -> torch.Tensor:
        # Without a chain, no 8-bit rounding: the downscale averages it far below a grey level.
        # The chain's gradient from kornia's JPEG up to JPEG_FIT_PIXELS, straight through above.
        soft = self.box[2] * self.box[3] <= JPEG_FIT_PIXELS
        window = self._cut(region, rounded=False, soft=soft)
        with torch.no_grad():  # the value as the check computes it ...
            exact = rescale(window, self.size).clamp(0, 1)
        # ... the gradient from the antialiased bilinear downscale, a third of bicubic's backward
        soft = F.interpolate(window, size=self.size, mode="bilinear", antialias=True)
        return soft + (exact - soft).detach()


@dataclass
class DownscaledCrop(LoopView):
    window: tuple[int, int, int, int] = (0, 0, 0, 0)  # MCU-aligned, in the downscaled photo
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  # the view, in the downscaled photo
    scale: tuple[float, float] = (1.0, 1.0)  # native pixels per downscaled pixel
    filter: str = "lanczos"
    chain: Chain | None = None
    output: tuple[int, str] | None = None  # our file's encoding, under the downscale
    source: tuple[int, int, int, int] = (0, 0, 0, 0)  # the native box served: all, or a crop

    @classmethod
    def of(
        cls, label, view: View, photo, served, filter_name, chain, output, source=None
    ) -> DownscaledCrop:
        """``view`` (a crop of the photo's ``source`` box — all of it when None — served at
        ``served``) and the native region under it."""
        width, height = photo
        source = source or (0, 0, width, height)
        left, top, w, h = source
        scale = (w / served[0], h / served[1])
        window = aligned_window(view.box, *served)
        margin = SUPPORT.get(filter_name, 0.0)
        x0 = left + max(0, math.floor((window[0] - margin) * scale[0]))
        y0 = top + max(0, math.floor((window[1] - margin) * scale[1]))
        x1 = left + min(w, math.ceil((window[2] + margin) * scale[0]))
        y1 = top + min(h, math.ceil((window[3] + margin) * scale[1]))
        # on our file's MCU grid, with a margin, so its encoding is the whole file's (a view at
        # a crop's edge sees a few pixels beyond it under its filter: the check crops first)
        region = aligned_window((x0, y0, x1 - x0, y1 - y0), width, height)
        return cls(label, region, [], window, view.box, scale, filter_name, chain, output, source)

    @property
    def _origin(self) -> tuple[int, int]:
        """The region's top-left pixel, counted from the served box's."""
        return self.region[0] - self.source[0], self.region[1] - self.source[1]

    def nearby(
        self, photo: tuple[int, int], generator: torch.Generator, spread: float
    ) -> DownscaledCrop:
        """The same view of the same pipeline from a photo served up to ±``spread`` (a
        fraction) larger or smaller, drawn from ``generator``; same label, same pairs stood for.
        The exact served grid is Pillow's; a platform's own resizer lands a fraction of a pixel
        off it, and a perturbation fitted to the exact grid (its JPEG blocks and filter phase)
        loses most of its effect one pixel away (docs/platforms.md)."""
        width, height = self.source[2:]
        served = (round(width / self.scale[0]), round(height / self.scale[1]))
        factor = 1.0 + spread * (2.0 * float(torch.rand(1, generator=generator)) - 1.0)
        left, top, w, h = self.box
        size = (
            min(width, max(w, round(served[0] * factor))),
            min(height, max(h, round(served[1] * factor))),
        )
        # the box keeps its centre's relative place (a centre crop stays the centre crop)
        x = round((left + w / 2) * size[0] / served[0] - w / 2)
        y = round((top + h / 2) * size[1] / served[1] - h / 2)
        box = (min(max(0, x), size[0] - w), min(max(0, y), size[1] - h), w, h)
        view = DownscaledCrop.of(
            self.label,
            View(self.label, box),
            photo,
            size,
            self.filter,
            self.chain,
            self.output,
            self.source,
        )
        view.stands_for = self.stands_for
        return view

    @property
    def footprint(self) -> tuple[int, int, int, int]:
        left, top, w, h = self.box
        (sx, sy), (x0, y0, x1, y1) = self.scale, self.region
        ox, oy = self.source[:2]
        return (
            max(x0, ox + math.floor(left * sx)),
            max(y0, oy + math.floor(top * sy)),
            min(x1, ox + math.ceil((left + w) * sx)),
            min(y1, oy + math.ceil((top + h) * sy)),
        )

    def render(self, region: torch.Tensor) -> torch.Tensor:
        small = straight_through_resize(
            straight_through_round(region),
            self._origin,
            self.window,
            self.scale,
            self.filter,
            self.output,
        )
        if self.chain is not None:
            small = straight_through_jpeg(small, self.chain)
        left, top, w, h = self.box
        x0, y0 = self.window[:2]
        return small[..., top - y0 : top - y0 + h, left - x0 : left - x0 + w]


@dataclass
class Whole(LoopView):
    """The whole photo through a pipeline, then the view: the fit of a downscaling pipeline,
    and photos (or downscales) smaller than the view, enlarged as the check enlarges them."""

    view: View | None = None  # in the enlarged photo
    served: tuple[int, int] = (0, 0)  # the pipeline's output size
    scale: tuple[float, float] = (1.0, 1.0)
    filter: str = "lanczos"
    chain: Chain | None = None
    size: tuple[int, int] = (VIEW_HEIGHT, VIEW_WIDTH)

    def nearby(self, photo: tuple[int, int], generator: torch.Generator, spread: float):
        """A fit: the same fit of the served photo from a box a little off its own
        (``nearby_box``); any other view (and a served photo enlarged to cover) as it is."""
        if not self.view.resized or cover_scale(*self.served, self.size) > 1.0:
            return self
        box = nearby_box(self.view.box, self.served, generator, spread)
        return replace(self, view=View(self.view.label, box, True))

    def render(self, region: torch.Tensor, image: Image.Image | None = None) -> torch.Tensor:
        """``image``: ``region`` as an 8-bit image, when the caller has it already."""
        gentle = self.served[0] * self.served[1] <= JPEG_FIT_PIXELS
        enlarged = cover_scale(*self.served, self.size) > 1.0
        if self.scale == (1.0, 1.0) or not self.view.resized or gentle or enlarged:
            return self._served_view(region, image)
        # A downscaling pipeline's fit from a served photo larger than a gentle fit: the value
        # through Pillow's resize, the JPEG and the fit, exactly as the check computes it; the
        # gradient from one antialiased bilinear downscale of the native pixels under the view
        # straight to the view's size — two downscales compose into one (the JPEG between them
        # is straight-through here anyway), and differentiating one costs 10–48 % less per
        # view than through both at the served size (docs/benchmarks.md).
        with torch.no_grad():
            exact = self._served_view(region, image)
        return bilinear_through(exact, region, (0, 0), _corners(self.view.box), self.scale)

    def _served_view(self, region: torch.Tensor, image: Image.Image | None) -> torch.Tensor:
        if self.scale != (1.0, 1.0):
            # The forward value rounds to 8 bits on its way to Pillow; a straight-through round
            # here would only add full-size temporaries (~300 MB each at 24 MP).
            box = (0, 0, *self.served)
            if torch.is_grad_enabled():
                pixels = straight_through_resize(
                    region, (0, 0), box, self.scale, self.filter, image=image
                )
            else:
                pixels = pillow_resize(region, (0, 0), box, self.scale, self.filter, image=image)
        else:
            pixels = straight_through_round(region)
        if self.chain is not None:
            soft = pixels.shape[-1] * pixels.shape[-2] <= JPEG_FIT_PIXELS
            pixels = straight_through_jpeg(pixels, self.chain, soft)
        return extract(enlarge_to_cover(pixels, self.size), self.view, self.size)


def _chain(pipeline: Pipeline, output: tuple[int, str] | None) -> Chain | None:
    if pipeline.quality is None:
        return None
    quality, subsampling = output if output is not None else (None, "4:4:4")
    return Chain(quality, subsampling, pipeline.quality, pipeline.subsampling, pipeline.codec)


def plan_loop_views(
    width: int,
    height: int,
    views,
    pipelines: tuple[Pipeline, ...],
    output: tuple[int, str] = (95, "4:4:4"),
    size: tuple[int, int] = (VIEW_HEIGHT, VIEW_WIDTH),
) -> list[LoopView]:
    """The loop views of a ``width``×``height`` photo for ``pipelines`` × ``views``; ``output``
    = our file's JPEG quality and subsampling (what a pipeline that does not resize receives)."""
    planned: dict[tuple, LoopView] = {}

    def add(key: tuple, view: LoopView, pair: tuple[str, str]) -> None:
        planned.setdefault(key, view).stands_for.append(pair)

    for pipeline in pipelines:
        source, served = pipeline.geometry(width, height)
        scale = (source[2] / served[0], source[3] / served[1])
        # a crop to another aspect is served like a downscale of its box (by 1 when it is not
        # resized): a box of the photo through Pillow's resize, then the pipeline's JPEG
        resized = served != (width, height)  # or cropped: served otherwise than the photo is
        served_from = _corners(source)  # the native pixels the served photo is made of
        chain = _chain(pipeline, None if resized else output)
        how = (source, served, pipeline.filter if resized else "", chain)  # what it does here
        cover = cover_scale(*served, size)
        if cover > 1.0:  # smaller than the view once served: the check enlarges it
            big = (math.ceil(served[0] * cover), math.ceil(served[1] * cover))
            for v in plan_views(max(size[1], big[0]), max(size[0], big[1]), views, size):
                label = f"{pipeline.name}/{v.label}"
                view = Whole(label, served_from, [], v, served, scale, pipeline.filter, chain, size)
                add(("whole", v, *how), view, (pipeline.name, v.label))
            continue
        for v in plan_views(*served, views, size):
            pair, label = (pipeline.name, v.label), f"{pipeline.name}/{v.label}"
            if not v.resized and not resized:
                view = NativeCrop.of(label, v.box, (width, height), chain)
                add(("crop", v.box, chain), view, pair)
            elif not v.resized:
                view = DownscaledCrop.of(
                    label, v, (width, height), served, pipeline.filter, chain, output, source
                )
                add(("down", v.box, *how), view, pair)
            else:
                # The fit to the view. From a photo over 1 MP it is a downscale of more than
                # 2× that averages the JPEG away: one shared fit of the native photo stands for
                # every pipeline's. Gentler fits model this pipeline's JPEG.
                native = plan_views(width, height, [v.label], size)[0]
                if resized:
                    view = Whole(
                        label, served_from, [], v, served, scale, pipeline.filter, chain, size
                    )
                    add(("whole", v, *how), view, pair)
                elif native.box[2] * native.box[3] > SMALL_FIT_PIXELS:
                    view = NativeFit(native.label, _corners(native.box), [], native.box)
                    add(("fit", native.box), view, pair)
                else:
                    region = aligned_window(native.box, width, height)
                    view = NativeFit(label, region, [], native.box, chain, size)
                    add(("fit", native.box, chain), view, pair)
    return list(planned.values())


def _corners(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    left, top, w, h = box
    return left, top, left + w, top + h
