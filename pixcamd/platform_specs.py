"""Pipelines as a person writes them: inline (``long1600-q75``, ``width1080-q80-bicubic-444``,
``crop1:1-long1080-q80``), as a ``[pipelines.NAME]`` table of the daemon's config, or a list of
preset names, custom names and inline specs (``--platforms``, ``platforms = [...]``). Each is
checked here, and refused naming what is wrong."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from fractions import Fraction

from pixcamd.defaults import meant
from pixcamd.platforms import FILTERS, PRESETS, RESIZE_RULES, Pipeline, PipelineError

# a side of an aspect: whole, or with the few decimals a platform's guide gives (1.91:1)
_SIDE = r"\d+(?:\.\d{1,4})?"
_TOKEN = re.compile(
    r"(?P<side>long|width|height)(?P<pixels>\d+)|(?P<ratio>scale|mp)(?P<number>\d*\.?\d+)"
    r"|(?P<codec>q|webp|avif)(?P<quality>\d+)|(?P<chroma>4:?[024]:?[024])"
    rf"|crop(?P<aw>{_SIDE})[:x](?P<ah>{_SIDE})"
)


class UnknownPlatform(PipelineError):
    """A name that is no preset, no custom pipeline given and no inline spec: the command line
    then looks for it among the config's ``[pipelines.NAME]`` tables."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name


class NotInline(PipelineError):
    """Text that does not read as an inline spec at all (a token no spec has, no quality): it
    may be the name of a custom pipeline that merely starts like one (``cropped``)."""


def parse_inline(text: str, name: str | None = None) -> Pipeline:
    """``long1600-q75``, ``width1080-q80-bicubic-444``, ``none-q90``, ``scale0.5-q85``,
    ``mp8.3-q90`` (fitted in 8.3 megapixels), ``long2048-webp80`` (WebP at quality 80 instead
    of JPEG), ``long1600-avif60`` (AVIF at quality 60), ``crop1:1-long1080-q80`` (a centre
    crop to 1:1, then the resize), ``width1080-crop3:4-q80`` (the resize, then the crop)."""
    fields: dict = {}
    for token in text.strip().lower().split("-"):
        match = _TOKEN.fullmatch(token)
        if match and match["aw"]:
            key, value = "crop", _ratio(match["aw"], match["ah"])
            fields["crop_after_resize"] = "resize" in fields
        elif token in FILTERS:
            key, value = "filter", token
        elif token == "none":
            key, value = "resize", ("none", 0)
        elif match and match["side"]:
            key, value = "resize", (match["side"], int(match["pixels"]))
        elif match and match["ratio"]:
            key, value = "resize", (match["ratio"], float(match["number"]))
        elif match and match["codec"]:
            codec = "jpeg" if match["codec"] == "q" else match["codec"]
            key, value = "quality", (int(match["quality"]), codec)
        elif match and match["chroma"]:
            digits = token.replace(":", "")
            key, value = "subsampling", f"{digits[0]}:{digits[1]}:{digits[2]}"
        elif token in ("q", "jpeg", "jpg", "webp", "avif"):  # a codec without its quality
            codec = {"jpeg": "q", "jpg": "q"}.get(token, token)
            raise PipelineError(f"{text!r}: {token!r}: give its quality too, e.g. {codec}80")
        else:
            raise NotInline(
                f"{text!r}: cannot read {token!r} (write e.g. long1600-q75, "
                "width1080-q80-bicubic-444 or crop1:1-long1080-q80; filters: "
                + ", ".join(FILTERS)
                + ")"
            )
        if key in fields:
            raise PipelineError(f"{text!r}: {key} is given twice")
        fields[key] = value
    if "quality" not in fields:
        raise NotInline(
            f"{text!r}: give the JPEG quality, e.g. {text}-q85 (or {text}-webp85 for WebP, "
            f"{text}-avif60 for AVIF)"
        )
    resize, size = fields.pop("resize", ("none", 0))
    quality, codec = fields.pop("quality")
    try:
        return Pipeline(name or text, resize, size, quality=quality, codec=codec, **fields)
    except PipelineError as exc:  # in a list of several, say which entry
        raise PipelineError(f"{text!r}: {exc}") from None


def from_table(name: str, table: dict) -> Pipeline:
    """A pipeline from the daemon config's ``[pipelines.NAME]`` table. Every problem is found,
    not only the first: ``PipelineError.problems`` lists each as ``key: problem``."""
    problems = []
    for key in (k for k in table if k not in _READERS):
        close = meant(key, _READERS)
        hint = f"did you mean {close!r}? " if close else ""
        problems.append(f"{key}: unknown key ({hint}use {', '.join(sorted(_READERS))})")
    if "quality" not in table:  # as inline, where "long1600" alone is refused: no silent 90
        problems.append(
            "quality: required: give the JPEG (or WebP, AVIF) quality, a whole number 1–100"
        )
    if table.get("crop_after_resize") is True and "crop" not in table:
        problems.append('crop_after_resize: there is no crop to place (add crop = "3:4")')
    fields: dict = {}
    for key, read in _READERS.items():
        if key in table:
            try:
                fields.update(read(table[key]))
            except PipelineError as exc:
                problems.append(f"{key}: {exc}")
    if problems:
        raise PipelineError(*problems)
    try:
        return Pipeline(name, **fields)
    except PipelineError as exc:  # keys fine alone that clash together (WebP with a subsampling)
        # the key the message is about, by a word such a message always holds
        part = next((key for key, word in _PARTS if word in str(exc)), "resize")
        raise PipelineError(f"{part}: {exc}") from None


_PARTS = (("codec", "codec"), ("filter", "filter"), ("subsampling", "chroma"), ("crop", "crop"))


def _alone(**fields) -> dict:
    """``fields`` checked by the Pipeline itself, every other part at its default: one key's
    problem is found whatever the other keys hold."""
    Pipeline("check", **fields)
    return fields


def _resize(resize) -> dict:
    if not isinstance(resize, str):
        raise PipelineError(f'expected text like "long 1600", got {resize!r}')
    words = resize.lower().split()  # "Long 2048" as "long 2048"
    rule = words[0] if words else ""
    if rule == "none" and len(words) == 1:
        return _alone(resize="none")
    try:
        size = float(words[1]) if len(words) == 2 else -1.0
    except ValueError:
        size = -1.0
    if rule not in RESIZE_RULES[1:] or not 0 <= size < math.inf:  # nan and inf are no size
        raise PipelineError(
            f'{resize!r}: write "none", "long 2048", "width 1080", "height 1080", "scale 0.5" '
            'or "mp 8.3"'
        )
    return _alone(resize=rule, size=size)


def _quality(quality) -> dict:
    if isinstance(quality, str) and quality.strip().isdigit():  # quality = "80": text in quotes
        unquoted = int(quality.strip())
        if not 1 <= unquoted <= 100:
            raise PipelineError(
                f"{quality!r} in quotes is text, and without them {unquoted} is out of range: "
                "give a whole number 1–100"
            )
        raise PipelineError(f"{quality!r} in quotes is text: write quality = {unquoted}")
    if isinstance(quality, bool) or not isinstance(quality, int):
        raise PipelineError(
            f"expected a whole number 1–100, got {quality!r} ({type(quality).__name__})"
        )
    if not 1 <= quality <= 100:
        raise PipelineError(f"{quality!r} is out of range: give a whole number 1–100")
    return {"quality": quality}


def _text(key: str):
    def read(value) -> dict:
        if not isinstance(value, str):
            raise PipelineError(f"expected text, got {value!r}")
        value = value.strip().lower()  # "Lanczos", "WEBP": any case, as inline specs
        if key == "subsampling" and re.fullmatch(r"4[024][024]", value):
            value = ":".join(value)  # "420", as inline specs write it
        return _alone(**{key: value})

    return read


def _crop_after_resize(after) -> dict:
    if isinstance(after, str) and after.strip().lower() in ("true", "false"):
        raise PipelineError(
            f"{after!r} in quotes is text: write crop_after_resize = {after.strip().lower()}"
        )
    if not isinstance(after, bool):
        raise PipelineError(f"expected true or false, got {after!r}")
    return {"crop_after_resize": after}


def _aspect(text) -> tuple[int, int]:
    """``"3:4"`` → (3, 4), ``"1.91:1"`` → (191, 100), for the config's ``crop`` key."""
    side = rf"\s*({_SIDE})\s*"
    match = re.fullmatch(f"{side}[:x]{side}", text) if isinstance(text, str) else None
    if match is None:
        raise PipelineError(
            f'{text!r}: write an aspect as width:height, e.g. "1:1", "3:4" or "1.91:1" (at '
            "most 4 decimals)"
        )
    return _ratio(match.group(1), match.group(2))


def _ratio(width: str, height: str) -> tuple[int, int]:
    """An aspect in whole numbers: as written (``3:4``), or from decimals (``1.91:1`` →
    ``191:100``, the way a platform's guide gives a link preview's aspect)."""
    if "." not in width + height:
        return int(width), int(height)
    w, h = Fraction(width), Fraction(height)
    ratio = w / h if h else Fraction(0)  # no aspect: refused by the Pipeline as 0:1
    return ratio.numerator, ratio.denominator


_READERS = {  # a [pipelines.NAME] table's keys: raw value → the Pipeline's fields
    "resize": _resize,
    "filter": _text("filter"),
    "quality": _quality,
    "subsampling": _text("subsampling"),
    "codec": _text("codec"),
    "crop": lambda text: _alone(crop=_aspect(text)),
    "crop_after_resize": _crop_after_resize,
}


def parse_platforms(
    items: str | list[str] | tuple[str, ...], custom: dict[str, Pipeline] | None = None
) -> tuple[Pipeline, ...]:
    """``"task,instagram,long1600-q75"`` or a list → pipelines: names of presets or of
    ``custom`` ones (the config's), or inline specs. Repeats are dropped; order kept."""
    custom = custom or {}
    names = [n.strip() for n in items.split(",")] if isinstance(items, str) else list(items)
    for name in names:
        if not isinstance(name, str):
            raise PipelineError(f"a platform is named by text, not {name!r}")
    if not any(n.strip() for n in names):
        raise PipelineError(
            "no platform given: name presets (" + ", ".join(PRESETS) + ") or write one as "
            "long1600-q75"
        )
    if not all(n.strip() for n in names):
        where = f"{items!r}: a stray comma?" if isinstance(items, str) else "the list"
        raise PipelineError(f"an empty platform name in {where}")
    out: dict[str, Pipeline] = {}
    folded = {n.lower(): p for n, p in custom.items()}  # "MyBlog" finds [pipelines.myblog]
    for name in (n.strip() for n in names):
        if name.lower() in folded:
            pipeline = folded[name.lower()]
            out[pipeline.name] = pipeline
        elif name.lower() in PRESETS:  # "Instagram" as "instagram", as inline specs' letters
            out[name.lower()] = PRESETS[name.lower()]
        elif (
            _TOKEN.match(first := name.split("-")[0].lower())
            or first.startswith(("none", "crop"))
            or first in FILTERS  # tokens in any order: "bicubic-width1080-q80" too
        ):
            try:
                inline = parse_inline(name)
            except NotInline:
                # "cropped", "lanczos-shop": no size, crop or quality read, so a name after all
                if any(_TOKEN.fullmatch(t) for t in name.lower().split("-")):
                    raise
                raise _unknown(name, custom) from None
            out[inline.spec()] = replace(inline, name=inline.spec())  # one spelling, one pipeline
        else:
            raise _unknown(name, custom)
    return tuple(out.values())


def _unknown(name: str, custom: dict[str, Pipeline]) -> UnknownPlatform:
    known = [*PRESETS, *custom]
    return UnknownPlatform(
        name,
        f"unknown platform {name!r}: choose from {', '.join(known)}, or write one inline as "
        "e.g. long1600-q75",
    )
