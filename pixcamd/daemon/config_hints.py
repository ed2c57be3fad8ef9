"""What to write instead, where a person typing the config by hand meets only a parser's words:
TOML's errors, whose line is read again here and said as it should read (an unquoted folder, a
yes, a decimal comma, a duration with a unit, a Windows path, a key with no value); a key the
schema does not know (the one meant, its line); the file's own keys under a table header; a
number or true in quotes. ``pixcamd.daemon.config`` adds each hint to the problem it is about."""

from __future__ import annotations

import re
import sys
from typing import Any

from pixcamd.daemon.config_toml import toml_value
from pixcamd.daemon.schema import KEYS, Option
from pixcamd.daemon.values import seconds
from pixcamd.defaults import meant

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# TOML's messages that name no cause a person can act on, and the line they are about
_TOML_SAYS = re.compile(
    r"^(Invalid value|Expected newline or end of document after a statement"
    r"|Unescaped '\\' in a string|Invalid hex value"
    r"|Escaped character is not a Unicode scalar value) \(at line (\d+),"
)
# a key or a table given twice: TOML names the second line only
_TWICE = re.compile(r"^Cannot (?:overwrite a value|declare \(.*\) twice) \(at line (\d+),")
_ESCAPE = ("Unescaped", "Invalid hex", "Escaped character")  # a backslash between double quotes


# A table's header, [pipelines.myblog], and the key a line gives a value (also a dotted one's first)
_HEADER = re.compile(r"\s*\[\s*([^\[\]]*?)\s*\]\s*(?:#.*)?$")
_ASSIGN = re.compile(r"""\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*[=.]""")


def _table(header: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in header.split("."))


def line_of(text: str | None, key: str, table: tuple[str, ...] = ()) -> str:
    """`` on line N`` where ``text`` gives ``key`` its value in ``table`` (() the file's top),
    or "" where it is not found."""
    current: tuple[str, ...] = ()
    names = (key, f'"{key}"', f"'{key}'")
    for number, line in enumerate((text or "").split("\n"), 1):
        if header := _HEADER.match(line):
            current = _table(header.group(1))
            if current == (*table, key):  # [general]: a key whose value is a table
                return f" on line {number}"
        elif current == table and (found := _ASSIGN.match(line)) and found.group(1) in names:
            return f" on line {number}"
    return ""


def _headers(text: str | None) -> list[tuple[int, tuple[str, ...]]]:
    """Each table header of ``text``: its line and the table it opens."""
    lines = enumerate((text or "").split("\n"), 1)
    return [(n, _table(found.group(1))) for n, line in lines if (found := _HEADER.match(line))]


def unknown_key(key: str, text: str | None, table: tuple[str, ...] = ()) -> str:
    """``INBOX``, ``setle_time``: a key the schema does not know, with the one that was meant."""
    close = meant(key, KEYS)
    hint = f" (did you mean {close!r}?)" if close else ""
    return f"{key}: unknown key{line_of(text, key, table)}{hint}"


def _section(table: tuple[str, ...]) -> str:
    return "[" + ".".join(table) + "]"


def misplaced(raw: dict[str, Any], text: str | None):
    """The file's own keys (inbox, steps…) written under a table header, where TOML reads them
    as that table's: under a ``[daemon]``, ``[general]`` or ``[Folders]`` this config has no use
    for (said as "daemon: unknown key"), or after a ``[pipelines.NAME]`` or ``[target]`` table
    (said as that table's unknown key). Returns ``raw`` with those keys back at the top — their
    own problems said too, at once, and an inbox written there no "inbox: required" — the
    problems that say where they go, and the table each came from (for an unknown one's line)."""
    raw, problems, origin = dict(raw), [], {}
    headers = _headers(text)
    first = f", above line {headers[0][0]} ({_section(headers[0][1])})" if headers else ""

    def lift(table: tuple[str, ...], keys: dict[str, Any]) -> None:
        for key, value in keys.items():
            if key not in raw:  # the top's own value wins; the table's is said as misplaced
                raw[key], origin[key] = value, table

    def stray(table: tuple[str, ...], keys: dict[str, Any]) -> dict[str, Any]:
        """``keys`` less the file's own, each said and lifted."""
        found = {k: v for k, v in keys.items() if k in KEYS and not isinstance(v, dict)}
        for key in found:
            problems.append(
                f"{key}: written{line_of(text, key, table)}, below {_section(table)}, it is read "
                f"as part of that table: move it to the top of the file{first}"
            )
        lift(table, found)
        return {k: v for k, v in keys.items() if k not in found}

    for name, value in list(raw.items()):
        option = KEYS.get(name)
        if not isinstance(value, dict):
            continue
        if option is not None and isinstance(option.default, dict):  # target, pipelines
            value = stray((name,), value)
            if name == "pipelines":
                value = {
                    n: stray((name, n), t) if isinstance(t, dict) else t for n, t in value.items()
                }
            raw[name] = value
            continue
        keys = [k for k in value if k in KEYS]
        if not keys:  # a key unknown, its value a table: said as such
            continue
        del raw[name]  # [daemon]: a table this config has not
        lift((name,), value)
        at = next((n for n, t in headers if t == (name,)), None)
        listed = ", ".join(keys[:-1][:4]) + f" and {keys[-1]}" if len(keys) > 1 else keys[0]
        if len(keys) > 5:
            listed = f"{', '.join(keys[:4])} and {len(keys) - 4} more"
        them, go = ("them", "go") if len(keys) > 1 else ("it", "goes")
        if at is not None and headers[0][0] == at:  # the first table: its line goes, no more
            fix = f"delete the line {_section((name,))}"
        else:
            fix = f"move {them} to the top{first}"
        a_key = f" ({name} is a key, not a table)" if option is not None else ""
        problems.append(
            f"{name}: {_section((name,))}{f' on line {at}' if at else ''} is no section of this "
            f"config{a_key}; {listed} {go} at the top of the file, outside any [section]: {fix}"
        )
    return raw, problems, origin


def toml_hint(text: str, message: str) -> str:
    """``inbox = ~/Pictures/inbox``: TOML says only "Invalid value"; a person needs to hear that
    a folder — any text — goes in quotes, shown on the line as it should read; a number with a
    decimal comma or a unit (``epsilon = 1,5``, ``settle_time = 5s``), where TOML says only that
    the line goes on after a value, likewise; and a Windows path between double quotes
    (``inbox = "C:\\Users\\me"``), where TOML reads each backslash as an escape and says only
    "Invalid hex value" or "Unescaped '\\' in a string"."""
    twice = _TWICE.match(message)
    if twice:
        return _twice_hint(text, int(twice.group(1)))
    found = _TOML_SAYS.match(message)
    lines = text.split("\n")  # as TOML counts lines
    if not found or int(found.group(2)) > len(lines):
        return ""
    key, equals, value = lines[int(found.group(2)) - 1].partition("=")
    if equals and found.group(1).startswith(_ESCAPE):
        return _backslash_hint(key.strip(), value.strip())
    key, value = key.strip(), value.split(" #")[0].strip()
    if equals and not value and found.group(1) == "Invalid value":
        return _empty_hint(key)
    if not equals or not value:
        return ""
    if found.group(1) == "Invalid value":
        return _text_hint(key, value)
    return _number_hint(key, value)


def _twice_hint(text: str, number: int) -> str:
    """``steps = 40`` and, further down, ``steps = 50``, or a ``[pipelines.myblog]`` header
    twice: TOML names only the second line ("Cannot overwrite a value"); both are said."""
    lines = text.split("\n")
    if number > len(lines):
        return ""
    line, headers = lines[number - 1], _headers(text)
    if header := _HEADER.match(line):
        table = _table(header.group(1))
        first = next((n for n, t in headers if t == table and n < number), None)
        if first is None:  # [pipelines.myblog] after a pipelines.myblog.quality: TOML's words
            return ""
        return (
            f"; {_section(table)} is written twice, on line {first} and on line {number}: "
            "put its keys under the first and remove the second"
        )
    key, equals, _ = line.partition("=")
    key = key.strip().strip("\"'")
    table = next((t for n, t in reversed(headers) if n < number), ())
    first = line_of("\n".join(lines[: number - 1]), key, table) if equals and "." not in key else ""
    if not first:  # a dotted key, or one an inline table gave: TOML's words stand
        return ""
    return f"; {key} is written twice,{first} and on line {number}: keep one, remove the other"


def _empty_hint(key: str) -> str:
    """``settle_time =``, a value still to come: what one looks like, from the schema."""
    option = KEYS.get(key)
    if option is None or isinstance(option.default, dict):  # no value of its own to show
        return f"; {key} needs a value after the =, or remove the line"
    if option.example is not None:  # no default to fall back on: inbox, outbox
        return f"; {key} needs a value, e.g. {key} = {toml_value(option.example)}"
    default = toml_value(option.default)
    if len(default) > 40:  # a list of extensions or patterns: not for one line
        return f"; {key} needs a value after the =, or remove the line for the default"
    return f"; {key} needs a value: write e.g. {key} = {default} (the default, as with no line)"


def _text_hint(key: str, value: str) -> str:
    if value[0] in "\"'[{+-.0123456789":
        return ""  # a number, a list, a table or a string gone wrong: TOML's words fit
    if value.split()[0] in ("true", "false", "inf", "nan"):
        return ""
    if value.lower() in ("yes", "no", "on", "off"):
        answer = "true" if value.lower() in ("yes", "on") else "false"
        return f"; yes or no is true or false: {key} = {answer}"
    # a backslash (C:\Photos) is an escape between double quotes: single ones keep it as it is
    quoted = f"'{value}'" if "\\" in value or '"' in value else f'"{value}"'
    return f"; text goes in quotes: {key} = {quoted}"


def _backslash_hint(key: str, value: str) -> str:
    found = re.match(r'"([^"]*\\[^"]*)"', value)  # one string, not a list or three quotes
    if not found:
        return ""
    text = found.group(1)
    slashes = text.replace("\\", "/")
    single = f"{key} = '{text}' in single quotes, or " if "'" not in text else ""
    return (
        "; between double quotes a backslash starts an escape (\\n, \\t, \\U…): write "
        f'{single}{key} = "{slashes}" with forward slashes'
    )


def _number_hint(key: str, value: str) -> str:
    if re.fullmatch(r"[+-]?\d+,\d+", value):
        return f"; decimals take a point: {key} = {value.replace(',', '.')}"
    option = KEYS.get(key)
    timed = option is not None and getattr(option.parse, "seconds", False)
    if timed and (meant := seconds(value)) is not None:
        return f"; durations are numbers of seconds: {key} = {meant}"
    return ""


_WORDS = {
    "true": "true",
    "yes": "true",
    "on": "true",
    "false": "false",
    "no": "false",
    "off": "false",
}


def unquoted(option: Option, value: Any, line: str = "") -> str | None:
    """``steps = "40"``, ``strip_gps = "true"``: a number or a truth in quotes is text, which the
    key's parser refuses in its own words ("expected a number, got '40' (str)"); said instead
    as the line to write without the quotes — or, where that value is refused too
    (``output_quality = "120"``), why, at once; ``line``: where (`` on line 4``). None for any
    other value."""
    if not isinstance(value, str) or isinstance(option.default, dict | list | str):
        return None
    truth, text = isinstance(option.default, bool), value.strip()
    if truth:
        text = _WORDS.get(text.lower(), text)
    elif not getattr(option.parse, "seconds", False):  # "1,5" in seconds: the parser says it
        text = re.sub(r"^([+-]?\d+),(\d+)$", r"\1.\2", text)
    if not text or any(c in text for c in "\n\r#="):  # one value, nothing more, is read
        return None
    try:
        read = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return None
    if not isinstance(read, bool | int | float) or isinstance(read, bool) != truth:
        return None
    try:
        option.parse(read)
    except (ValueError, ArithmeticError) as exc:
        return f"{value!r}{line} is text in quotes, and without them {exc}"
    return f"{value!r}{line} is text in quotes: write {option.key} = {toml_value(read)}"
