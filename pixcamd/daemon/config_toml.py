"""The config as TOML: ``config.example.toml`` from the schema (every key documented with its
default) and the values in force, as ``pixcamd config check`` prints them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pixcamd.daemon.schema import SCHEMA


def toml_key(key: str) -> str:
    """``key`` as TOML reads it back: bare when it can be, else quoted (``"sp ace"``, ``"a.b"``,
    where a bare dot would make a dotted key)."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_value(key)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:_}" if abs(value) >= 100_000 else str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        # a valid TOML basic string once DEL, which JSON leaves raw, is escaped too
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, Path):
        return toml_value(str(value))
    if isinstance(value, dict):
        if not value:
            return "{}"
        if "*" in value:
            return toml_value(value["*"])
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        inner = ", ".join(toml_value(v) for v in value)
        return f"[{inner}]"
    raise TypeError(f"cannot write {value!r} as TOML")


def _wrap(text: str, width: int = 98) -> list[str]:
    lines, line = [], "#"
    for word in text.split():
        if len(line) + 1 + len(word) > width:
            lines.append(line)
            line = "#"
        line += " " + word
    lines.append(line)
    return lines


EXAMPLE_HEADER = (
    "# pixcamd daemon configuration (`pixcamd run --config FILE`).",
    "# Generated from the schema in pixcamd/daemon/schema.py; every key is optional except",
    "# inbox and outbox. `pixcamd config check --config FILE` prints the effective values.",
)


def render_example(values: dict[str, Any] | None = None, header=EXAMPLE_HEADER) -> str:
    """The text of config.example.toml: every key, documented, with its default — or, for the
    keys in ``values``, that value (``pixcamd init`` writes the user's config so)."""
    values = values or {}
    out = list(header)
    section = None
    for option in SCHEMA:
        if option.section != section:
            section = option.section
            out += ["", f"# ---- {section} " + "-" * (90 - len(section))]
        value = option.example if option.example is not None else option.default
        value = values.get(option.key, value)
        if option.key == "pipelines":  # tables: an example to copy, commented out
            body = []
            for name, table in value.items():
                body += [f"# [pipelines.{toml_key(name)}]"]
                body += [f"# {k} = {toml_value(v)}" for k, v in table.items()]
            out += ["", *_wrap(option.doc), *body]
            continue
        if isinstance(value, list) and len(toml_value(value)) > 90:
            body = [f"{option.key} = ["] + [f"    {toml_value(v)}," for v in value] + ["]"]
        else:
            body = [f"{option.key} = {toml_value(value)}"]
        out += ["", *_wrap(option.doc), *body]
    return "\n".join(out) + "\n"


SECRETS = ("web_token",)


def render_effective(config: Any, derived: dict[str, Any] | None = None) -> str:
    """``key = value`` for every key of ``config`` (a ``daemon.config.Config``) as the daemon will
    use it; ``derived`` replaces the automatic values ("" in the file) with what they resolve
    to, marked ``# auto``."""
    out = [f"# effective configuration from {config.source}"]
    derived = derived or {}
    for option in SCHEMA:
        value = config.values()[option.key]
        if option.key in SECRETS and value:  # said to be set, never printed
            out.append(f'{option.key} = "…"  # set ({len(value)} characters), not shown')
        elif option.key in derived and derived[option.key] != value:
            auto = value in ("", "auto", ["auto"])
            note = "auto" if auto else f"as written: {toml_value(value)}"
            out.append(f"{option.key} = {toml_value(derived[option.key])}  # {note}")
        else:
            out.append(f"{option.key} = {toml_value(value)}")
    return "\n".join(out) + "\n"
