"""How the daemon's config reads each raw TOML value: parsers that return the effective value or
raise ``ValueError`` with the problem in words (a ``PipelineError`` may hold several, in its
``problems``). ``pixcamd.daemon.schema`` names one per key; used as ``read.number(0, 1)``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from pixcamd.defaults import CHOICES, MODEL_NAMES, VIEW_NAMES, parse_views
from pixcamd.platform_specs import from_table, parse_inline
from pixcamd.platforms import PRESETS, Pipeline, PipelineError


def describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {describe(value)}")
    return value


_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
# What TOML made of a Windows path's backslash between double quotes ("C:\temp": a tab): no
# folder a person names holds one of these
_ESCAPED = {"\t": ("\\t", "tab"), "\n": ("\\n", "line break"), "\r": ("\\r", "carriage return")}
_ESCAPED |= {"\b": ("\\b", "backspace"), "\f": ("\\f", "form feed")}


def path(required: bool) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        # white space around the path was always dropped: a path alone on its line between
        # triple quotes ends in a line break, and one pasted may end in a tab
        text = string(value).strip()
        if escaped := [c for c in _ESCAPED if c in text]:
            meant = text.translate({ord(c): _ESCAPED[c][0] for c in _ESCAPED})
            raise ValueError(
                f"{_ESCAPED[escaped[0]][0]} between double quotes is an escape, read as a "
                f"{_ESCAPED[escaped[0]][1]}: write '{meant}' in single quotes, or "
                f'"{meant.replace(chr(92), "/")}" with forward slashes'
            )
        if required and not text:
            raise ValueError("required: give a folder")
        if found := _VARIABLE.search(text):  # as a folder named "$HOME", made in silence
            home = found.start() == 0 and found.group(1) == "HOME"
            write = "~" + text[found.end() :] if home else "the folder's full path"
            raise ValueError(f"${found.group(1)} is not expanded in the config: write {write}")
        return text

    return parse


_SECONDS = {"": 1, "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1}
_SECONDS |= {k: 60 for k in ("m", "min", "mins", "minute", "minutes")}
_SECONDS |= {k: 3600 for k in ("h", "hr", "hrs", "hour", "hours")}
_WITH_UNIT = re.compile(r"([+-]?\d+(?:[.,]\d+)?)\s*([A-Za-z]*)")


def seconds(text: str) -> str | None:
    """The number of seconds ``text`` means as TOML writes it ("10 minutes": "600", "1,5":
    "1.5"); None where it is no duration."""
    found = _WITH_UNIT.fullmatch(text.strip())
    if not found or found.group(2).lower() not in _SECONDS:
        return None
    value = float(found.group(1).replace(",", ".")) * _SECONDS[found.group(2).lower()]
    return str(int(value)) if value.is_integer() else repr(value)


def number(lo: float, hi: float, unit: str = "", integer: bool = False):
    timed = unit == " s"

    def parse(value: Any) -> float | int:
        if timed and isinstance(value, str) and (meant := seconds(value)) is not None:
            raise ValueError(f"{value!r}: durations are numbers of seconds: write {meant}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number, got {describe(value)}")
        if integer and not isinstance(value, int):
            raise ValueError(f"expected a whole number, got {value!r}")
        if not (lo <= value <= hi) or (isinstance(value, float) and math.isnan(value)):
            top = "" if hi == math.inf else f"–{hi:g}"
            rng = f"{lo:g}{top}" if top else f"≥ {lo:g}"
            raise ValueError(f"{value!r} is out of range: give {rng}{unit}")
        return int(value) if integer else float(value)

    parse.seconds = timed  # type: ignore[attr-defined]  # read by the TOML error's hint
    return parse


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {describe(value)}")
    return value


def choice(*choices: str):
    def parse(value: Any) -> str:
        text = string(value)
        if text not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return text

    return parse


def string_list(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of strings, got {describe(value)}")
    return list(value)


def models(value: Any) -> list[str]:
    names = list(dict.fromkeys(n.strip().lower() for n in string_list(value)))
    if not names:
        raise ValueError("give at least one model")
    for name in names:
        if name not in CHOICES:
            raise ValueError(f"unknown model {name!r}: choose from {', '.join(CHOICES)}")
    if "auto" in names and len(names) > 1:
        raise ValueError("auto stands alone: name the models to combine")
    return names


def views(value: Any) -> list[str]:
    names = string_list(value)
    if not names:
        raise ValueError(f"give at least one view from {', '.join(VIEW_NAMES)}")
    return list(parse_views(names))


def targets(value: Any) -> dict[str, float]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"*": score(value)}
    if not isinstance(value, dict):
        raise ValueError(f"expected a score or a table of model = score, got {describe(value)}")
    targets = {}
    for name, given in value.items():
        name = name.strip().lower()
        if name not in MODEL_NAMES:
            raise ValueError(f"unknown model {name!r}: choose from {', '.join(MODEL_NAMES)}")
        if isinstance(given, bool) or not isinstance(given, int | float):
            raise ValueError(f"{name}: expected a score, got {describe(given)}")
        targets[name] = score(given, f"{name}: ")
    return targets


def score(value: float, where: str = "") -> float:
    """A target on the models' 0–100 scale (NaN and infinities are no score)."""
    value = float(value)
    if not 0 <= value <= 100:  # False for NaN too
        raise ValueError(f"{where}a target is a score from 0 to 100, got {value:g}")
    return value


def platform_names(value: Any) -> list[str]:
    """Syntax only here; names are resolved against presets and ``pipelines`` in ``validate``."""
    given = value
    if isinstance(value, str):  # "task,instagram", as --platforms takes it
        value = value.split(",")
    names = [n.strip() for n in string_list(value)]
    if not any(names):
        raise ValueError('give at least one platform, e.g. ["task", "instagram"]')
    if not all(names):
        hint = "a stray comma?" if isinstance(given, str) else "remove it"
        raise ValueError(f"an empty platform name in {given!r}: {hint}")
    return list(dict.fromkeys(names))


def pipelines(value: Any) -> dict[str, dict]:
    """``[pipelines.NAME]`` tables, each checked as a pipeline (kept as written, so the file can
    be re-rendered); every problem of every table is reported, each as ``.NAME.key: …``."""
    if not isinstance(value, dict):
        raise ValueError(f"expected tables [pipelines.NAME], got {describe(value)}")
    problems = []
    folded = [name.lower() for name in value]
    for name, table in value.items():
        if folded.count(name.lower()) > 1:  # names are read whatever their case
            problems.append(f".{name}: another table has this name but for its case; rename one")
        if name.lower() in PRESETS:  # it would silently change what the preset's name means
            problems.append(
                f".{name}: a preset has this name; a custom pipeline needs a name of its own"
            )
        elif (inline := _inline(name)) is not None:
            problems.append(
                f".{name}: written inline this name already means {inline.describe()}; a "
                "custom pipeline needs a name of its own"
            )
        if not isinstance(table, dict):
            problems.append(
                f".{name}: expected a table of resize, filter, quality, subsampling, codec, "
                "crop, crop_after_resize"
            )
            continue
        try:
            from_table(name, table)
        except PipelineError as exc:
            problems += [f".{name}.{problem}" for problem in exc.problems]
    if problems:
        raise PipelineError(*problems)
    return {name: dict(table) for name, table in value.items()}


def _inline(name: str) -> Pipeline | None:
    try:
        return parse_inline(name)
    except PipelineError:
        return None


def device(value: Any) -> str:
    text = string(value)
    if text not in ("auto", "cpu") and not (
        text == "cuda" or (text.startswith("cuda:") and text[5:].isdigit())
    ):
        raise ValueError(f"{text!r} is not a device: use auto, cpu, cuda or cuda:N")
    return text


def extensions(value: Any) -> list[str]:
    items = string_list(value)
    if not items:
        raise ValueError("give at least one extension, e.g. .jpg")
    out = []
    for item in items:
        if "," in item or any(c.isspace() for c in item):  # ".jpg, .png": would match nothing
            raise ValueError(f'{item!r}: one extension per item, e.g. [".jpg", ".png"]')
        if not item.startswith(".") or len(item) < 2 or "/" in item:
            raise ValueError(f"{item!r}: write extensions with their dot, e.g. .jpg")
        out.append(item.lower())
    return list(dict.fromkeys(out))


def patterns(value: Any) -> list[str]:
    # A comma is legal in a file name, so an item of a list is one pattern as written, commas
    # and all. One string with a comma, ignore = "*.tmp, *.part", is a list written the way a
    # person writes one: read as a single pattern it hid neither, in silence. Refused, as
    # extensions = ".jpg, .png" is, with the list to write — and, for the rare name that holds a
    # comma, the list of one that says so.
    if isinstance(value, str) and "," in value:
        items = [item.strip() for item in value.split(",") if item.strip()]
        raise ValueError(
            f"{value!r}: several patterns go in a list, {json.dumps(items, ensure_ascii=False)}; "
            f"one name with a comma in it, in a list of its own: "
            f"{json.dumps([value], ensure_ascii=False)}"
        )
    items = string_list(value)
    for item in items:
        if not item or "/" in item:
            raise ValueError(f"{item!r}: a pattern matches one file or folder name, without '/'")
    return items


# --------------------------------------------------------------------------------------------
# The schema
