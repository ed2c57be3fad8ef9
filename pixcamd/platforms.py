"""Platform pipelines: what a destination does to a photo before anyone's BIQA sees it.

A pipeline is a resize rule (none; long side L; width W; height H; a scale factor; at most N
megapixels — only ever downscaling, a photo smaller than the rule is left at its size), the
resampling filter, then a re-encode at the destination's quality: JPEG (with its chroma
subsampling), lossy WebP or AVIF. Optionally a centre crop to another aspect, before the resize (a
square post) or after it (a profile grid's thumbnail of the served copy).
``Pipeline.apply`` is the real thing (Pillow); ``pixcamd.optimizer`` holds its differentiable
stand-in.

Presets approximate common destinations (figures and where they come from: docs/platforms.md;
platforms change them without notice). Anything else is written inline — ``long1600-q75``,
``width1280-q70-bicubic-444``, ``long2048-webp80``, ``long1600-avif60`` — or defined by name in
the daemon's config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from PIL import Image, features

from pixcamd.errors import ServedTooLarge, ServedTooSmall

FILTERS = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
    "box": Image.Resampling.BOX,
    "nearest": Image.Resampling.NEAREST,
}
RESIZE_RULES = ("none", "long", "width", "height", "scale", "mp")
SUBSAMPLINGS = ("4:2:0", "4:2:2", "4:4:4")
# AVIF through Pillow's own plugin (libavif): a window's encode 0.07–0.1 s, a served 2048-px
# photo's 0.6 s on one thread (docs/platforms.md), so the loop can re-encode it as it does JPEG.
CODECS = ("jpeg", "webp", "avif")
CODEC_NAMES = {"jpeg": "JPEG", "webp": "WebP", "avif": "AVIF"}
MIN_SIZE = 16  # a side smaller than one JPEG block pair is no destination
# the most a side each codec takes (libjpeg, libwebp; libavif's decoder, which reads the served
# copy back, refuses sides over 32,768 by default)
MAX_SIDE = {"jpeg": 65_500, "webp": 16_383, "avif": 32_768}
MIN_MEGAPIXELS = MIN_SIZE * MIN_SIZE / 1e6  # the same, for a rule by area
MAX_ASPECT = 10  # a crop aspect beyond 10:1 is a strip, not a photo


class PipelineError(ValueError):
    """A pipeline that cannot be used; the message says which part and why. A config table's
    problems are found all at once: ``problems`` lists each, as ``key: problem``."""

    def __init__(self, *problems: str):
        super().__init__("; ".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class Pipeline:
    """One destination: resize (never up), then a JPEG, WebP or AVIF re-encode. ``quality``
    None = no re-encode."""

    name: str
    resize: str = "none"  # one of RESIZE_RULES
    size: float = 0  # pixels for long/width/height, the factor for scale, megapixels for mp
    filter: str = "lanczos"
    quality: int | None = 90
    subsampling: str = "4:2:0"
    codec: str = "jpeg"  # one of CODECS
    crop: tuple[int, int] | None = None  # aspect (width, height) of a centre crop, e.g. (3, 4)
    crop_after_resize: bool = False  # True: the crop is of the resized photo

    def __post_init__(self):
        if self.resize != "none" and (
            isinstance(self.size, bool)
            or not isinstance(self.size, int | float)
            or not math.isfinite(self.size)
        ):
            raise PipelineError(f"{self.resize} {self.size!r}: give a finite number")
        if self.crop is not None:
            if (
                not isinstance(self.crop, tuple)
                or len(self.crop) != 2
                or not all(isinstance(n, int) and not isinstance(n, bool) for n in self.crop)
                or min(self.crop) < 1
                or max(self.crop) > MAX_ASPECT * min(self.crop)
            ):
                shown = ":".join(map(str, self.crop)) if isinstance(self.crop, tuple) else self.crop
                raise PipelineError(
                    f"crop to {shown!r} is no aspect: give two whole numbers ≥ 1, width:height, "
                    f'e.g. "1:1" or "3:4", within {MAX_ASPECT}:1'
                )
            if self.quality is None:
                raise PipelineError("a pipeline that crops must re-encode: give a JPEG quality")
        if self.resize == "none" and self.crop_after_resize:
            object.__setattr__(self, "crop_after_resize", False)  # one order, one pipeline
        if self.resize not in RESIZE_RULES:
            raise PipelineError(
                f"unknown resize rule {self.resize!r}: use none, long N, width N, height N, "
                "scale F or mp M"
            )
        if self.resize == "scale":
            if not 0 < self.size <= 1:
                raise PipelineError(
                    f"scale {number(self.size)} would enlarge or vanish: give a factor in (0, 1] "
                    "(pipelines only downscale)"
                )
        elif self.resize == "mp":
            if self.size < MIN_MEGAPIXELS:
                raise PipelineError(
                    f"mp {number(self.size)}: give the megapixels a photo is fitted in, at least "
                    f"{MIN_MEGAPIXELS:g} (e.g. 8.3)"
                )
        elif self.resize != "none" and (self.size != int(self.size) or self.size < MIN_SIZE):
            raise PipelineError(
                f"{self.resize} {number(self.size)}: give a whole number of pixels ≥ {MIN_SIZE}"
            )
        if self.filter not in FILTERS:
            raise PipelineError(
                f"unknown resampling filter {self.filter!r}: choose from {', '.join(FILTERS)}"
            )
        if self.quality is None and self.resize != "none":
            raise PipelineError("a pipeline that resizes must re-encode: give a JPEG quality")
        if self.codec not in CODECS:
            raise PipelineError(f"unknown codec {self.codec!r}: choose from {', '.join(CODECS)}")
        if self.codec == "avif" and not features.check("avif"):
            raise PipelineError(
                "codec avif: this Pillow cannot write AVIF (it was built without libavif): "
                "install a Pillow wheel from PyPI that has it (python -m PIL.features lists AVIF)"
            )
        if self.quality is not None and not (
            isinstance(self.quality, int) and 1 <= self.quality <= 100
        ):
            what = CODEC_NAMES[self.codec]
            raise PipelineError(f"{what} quality {self.quality!r} is out of range: give 1–100")
        if self.codec == "webp" and self.subsampling != "4:2:0":
            raise PipelineError(
                f"chroma subsampling {self.subsampling} with WebP: lossy WebP is always 4:2:0 "
                "(leave the subsampling out)"
            )
        if self.subsampling not in SUBSAMPLINGS:
            raise PipelineError(
                f"unknown chroma subsampling {self.subsampling!r}: choose from "
                f"{', '.join(SUBSAMPLINGS)}"
            )

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """The size this pipeline serves a ``width``×``height`` photo at (never larger)."""
        return self.geometry(width, height)[1]

    def geometry(
        self, width: int, height: int
    ) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
        """``(box, served)``: the box (left, top, width, height) of a ``width``×``height`` photo
        that this pipeline serves, and the size it serves it at. After a crop of the resized
        photo the box is that crop in native pixels, rounded to whole ones."""
        if self.crop is None:
            box, served = (0, 0, width, height), self._resized(width, height)
        elif not self.crop_after_resize:
            box = centre_box(width, height, self.crop)
            served = self._resized(*box[2:])
        else:
            resized = self._resized(width, height)
            left, top, w, h = centre_box(*resized, self.crop)
            sx, sy = width / resized[0], height / resized[1]
            x0, y0 = round(left * sx), round(top * sy)
            x1, y1 = round((left + w) * sx), round((top + h) * sy)
            box, served = (x0, y0, x1 - x0, y1 - y0), (w, h)
        return box, self._served(width, height, served)

    def _served(self, width: int, height: int, served: tuple[int, int]) -> tuple[int, int]:
        """``served``, unless this pipeline makes a side of the photo smaller than any
        destination serves (a scale or crop meant for larger photos): said, never judged."""
        if min(served) < min(MIN_SIZE, width, height):  # a photo as small is not its fault
            raise ServedTooSmall(
                f"{self.name} would serve this {width}×{height} photo at {served[0]}×"
                f"{served[1]}: no destination serves a side under {MIN_SIZE} px (give it a "
                "larger size, or leave it out for such photos)"
            )
        most = MAX_SIDE[self.codec] if self.quality is not None else None
        if most is not None and max(served) > most:  # a long strip from a scanner, a stitcher
            raise ServedTooLarge(
                f"{self.name} would serve this {width}×{height} photo at {served[0]}×"
                f"{served[1]}: {CODEC_NAMES[self.codec]} takes at most {most:,} px a side "
                "(use a smaller copy of it, or leave this pipeline out for such photos)"
            )
        return served

    def serving(self, width: int, height: int) -> tuple:
        """What ``apply`` does to a ``width``×``height`` photo, as a hashable value: two
        pipelines with equal values serve identical pixels (e.g. ``task`` and a downscale whose
        size the photo is already within, at the same quality), so a check judges them once."""
        crop_first = self.crop is not None and not self.crop_after_resize
        box = centre_box(width, height, self.crop) if crop_first else (0, 0, width, height)
        size = self._resized(box[2], box[3])
        resized = size != (box[2], box[3])
        after = centre_box(*size, self.crop) if self.crop is not None and not crop_first else None
        self._served(width, height, after[2:] if after is not None else size)
        encode = (self.quality, self.subsampling, self.codec) if self.quality is not None else None
        return box, size, self.filter if resized else None, after, encode

    def _resized(self, width: int, height: int) -> tuple[int, int]:
        """The resize rule alone."""
        if self.resize == "none":
            return width, height
        if self.resize == "mp":
            # Mastodon's rule (lib/paperclip/lazy_thumbnail.rb), rounded as it rounds: each
            # side from the area and the aspect, not from one factor
            area = self.size * 1e6
            if width * height <= area:
                return width, height
            return max(1, round(math.sqrt(area * width / height))), max(
                1, round(math.sqrt(area * height / width))
            )
        if self.resize == "scale":
            factor = self.size
        else:
            side = {"long": max(width, height), "width": width, "height": height}[self.resize]
            factor = self.size / side
        if factor >= 1:
            return width, height
        return max(1, round(width * factor)), max(1, round(height * factor))

    def apply(self, img: Image.Image) -> Image.Image:
        """The real pipeline on an RGB image: Pillow resize, then Pillow's JPEG (libjpeg), WebP
        (libwebp) or AVIF (libavif) encode and decode; a crop is Pillow's too. Each step is the
        one ``serving`` names, so equal servings are equal pixels by construction."""
        box, size, filter_name, after, encode = self.serving(*img.size)
        if box != (0, 0, *img.size):
            img = img.crop(_corners(box))
        if filter_name is not None:
            img = img.resize(size, FILTERS[filter_name])
        if after is not None:
            img = img.crop(_corners(after))
        if encode is None:
            return img.convert("RGB")
        from pixcamd.jpeg import recompress  # torch stays out of config-only commands

        return recompress(img, *encode)

    def describe(self) -> str:
        """In words, e.g. ``long side 2048 px (Lanczos), JPEG 85 4:2:0``."""
        if self.resize == "none":
            size = "full size"
        elif self.resize == "scale":
            size = f"scaled ×{number(self.size)} ({self.filter})"
        elif self.resize == "mp":
            size = f"at most {number(self.size)} megapixels ({self.filter})"
        else:
            what = "long side" if self.resize == "long" else self.resize
            size = f"{what} {int(self.size)} px ({self.filter})"
        if self.crop is not None:
            crop = f"centre crop {self.crop[0]}:{self.crop[1]}"
            if self.resize == "none":
                size = f"{crop} at full size"
            else:
                size = f"{size}, then {crop}" if self.crop_after_resize else f"{crop}, then {size}"
        if self.quality is None:
            code = "no re-encode"
        elif self.codec == "webp":
            code = f"WebP {self.quality}"
        else:
            code = f"{CODEC_NAMES[self.codec]} {self.quality} {self.subsampling}"
        return f"{size}, {code}"

    def spec(self) -> str:
        """The inline form that parses back to this pipeline (name aside)."""
        if self.quality is None:
            return "as-is"
        parts = ["none" if self.resize == "none" else f"{self.resize}{number(self.size)}"]
        if self.crop is not None:  # the tokens' order is the steps' order
            crop = f"crop{self.crop[0]}:{self.crop[1]}"
            if self.resize == "none":
                parts = [crop]
            else:
                parts.insert(1 if self.crop_after_resize else 0, crop)
        parts.append(f"{'q' if self.codec == 'jpeg' else self.codec}{self.quality}")
        if self.filter != "lanczos":
            parts.append(self.filter)
        if self.subsampling != "4:2:0":
            parts.append(self.subsampling.replace(":", ""))
        return "-".join(parts)

    def as_dict(self) -> dict:
        return {"name": self.name, "spec": self.spec(), "description": self.describe()}


def loop_order(pipelines) -> tuple[Pipeline, ...]:
    """The order the optimizer sees ``pipelines`` in, whatever order they were named in, so the
    same set makes the same copy (and the same settings fingerprint: a reordered list redoes
    nothing). The default set keeps its own order, the one its figures were measured in; any
    other pipeline follows it, by spec."""
    rank = {name: i for i, name in enumerate(DEFAULT_PLATFORMS)}
    return tuple(sorted(pipelines, key=lambda p: (rank.get(p.name, len(rank)), p.spec(), p.name)))


def number(value: float) -> str:
    """A size as written back into a spec: whole numbers without a point, the rest exactly
    (``{:g}``'s six digits made two pipelines one, and ``1.23457e+06`` that does not parse)."""
    value = float(value)
    return str(int(value)) if value.is_integer() else format(Decimal(repr(value)), "f")


def centre_box(width: int, height: int, aspect: tuple[int, int]) -> tuple[int, int, int, int]:
    """The largest centred box (left, top, width, height) of ``aspect`` (width, height) in a
    ``width``×``height`` photo, as ``ImageOps.fit`` centres it."""
    aw, ah = aspect
    if width * ah > height * aw:  # the photo is wider than the aspect
        w, h = max(1, round(height * aw / ah)), height
    else:
        w, h = width, max(1, round(width * ah / aw))
    return (width - w) // 2, (height - h) // 2, w, h


def _corners(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    left, top, w, h = box
    return left, top, left + w, top + h


PRESETS: dict[str, Pipeline] = {
    p.name: p
    for p in (
        Pipeline("task"),  # MediaEval 2020 Pixel Privacy: Pillow JPEG-90 of the full photo
        Pipeline("facebook", "long", 2048, quality=85),
        Pipeline("instagram", "width", 1080, quality=80),
        Pipeline("whatsapp", "long", 1600, quality=75),
        Pipeline("telegram", "long", 1280, quality=87),
        # Bluesky's app: fit in 2000 px, then JPEG at quality 100, 90, 80… until under its
        # upload limit (docs/platforms.md). The one preset that downscales and keeps a high
        # quality: there the JPEG's own artefacts cannot carry the protection.
        Pipeline("bluesky", "long", 2000, quality=90),
        # Mastodon's server: a photo over 3840×2160 worth of pixels fitted in that many, and
        # every local upload re-encoded (metadata stripped) at JPEG 90 by libvips, which keeps
        # full chroma at quality 90 and above (docs/platforms.md)
        Pipeline("mastodon", "mp", 8.2944, quality=90, subsampling="4:4:4"),
        # WordPress: an upload over 2560 px on a side becomes the "scaled" full-size image the
        # site serves — Imagick's triangle (bilinear) filter, JPEG 82 (docs/platforms.md)
        Pipeline("wordpress", "long", 2560, "bilinear", quality=82),
        # A web page's full-size image at WordPress's size and the task's quality: a stand-in,
        # in the default set, for the scales between full size and the social sizes, where a
        # large photo was weakest (docs/platforms.md). No cost on a photo it does not shrink:
        # there it serves what `task` serves, and the loop and the check see that once.
        Pipeline("web", "long", 2560, quality=90),
        Pipeline("as-is", quality=None),  # judge a file exactly as it is (one downloaded back)
    )
}
DEFAULT_PLATFORMS = ("task", "facebook", "instagram", "whatsapp", "bluesky", "web")
