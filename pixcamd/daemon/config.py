"""The daemon's configuration: found, read and validated against ONE schema
(``pixcamd.daemon.schema``: every key with its default, documentation and parser), which also
produces config.example.toml and ``pixcamd config check``.

``load_config`` prefixes each problem with the file and key and reports them all at once, the
schema's per-key problems, the few checks between keys made here (epsilon_cap, target, mode,
hold_dir) and those of ``pixcamd.daemon.config_checks`` (the platforms and their tables, the
cluster keys, the web page's address and token, the folders' layout). Here too: where the
config file and its record (state dir, log) are, and ``record_folders``, the start's check that
a record follows its outbox. The file is flat (no tables) except for ``target`` (model → score)
and ``pipelines`` (name → pipeline).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pixcamd.daemon.config_checks import (
    RAY_KEYS,
    cluster_problems,
    custom_pipelines,
    layout_problems,
    platform_problems,
    web_problems,
)
from pixcamd.daemon.config_hints import line_of, misplaced, toml_hint, unknown_key, unquoted
from pixcamd.daemon.schema import KEYS, SCHEMA
from pixcamd.defaults import expand_home, home, xdg_home
from pixcamd.errors import PixcamdError
from pixcamd.platform_specs import parse_platforms
from pixcamd.platforms import Pipeline

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CONFIG_ENV = "PIXCAMD_CONFIG"
LEDGER = "ledger.sqlite3"  # in the state dir


class ConfigError(PixcamdError):
    """A configuration that cannot be used; the message names each key and its problem —
    several ``problems`` one per line under ``message``."""

    def __init__(self, message: str, problems: list[str] | tuple[str, ...] = ()):
        super().__init__(message + "".join(f"\n  {problem}" for problem in problems))
        self.problems = list(problems)
        self.head = message

    def lines(self) -> list[str]:
        return [self.head, *(f"  {problem}" for problem in self.problems)]


# --------------------------------------------------------------------------------------------
# The effective configuration


FOLDER_KEYS = ("inbox", "outbox", "state_dir", "log_file", "tmp_dir", "hold_dir")


class Folders:
    """The folder settings as absolute paths: what the layout checks read, also while other
    keys of the config have problems (they are all said at once)."""

    def __init__(self, values: dict[str, Any], source: Path | None = None):
        base = source.parent if source is not None else Path.cwd()
        self.inbox = _abs(values["inbox"], base, "inbox")
        self.outbox = _abs(values["outbox"], base, "outbox")
        self.state_dir, self.log_file = record_paths(values["state_dir"], values["log_file"], base)
        self.tmp_dir_setting = (
            _abs(values["tmp_dir"], base, "tmp_dir") if values["tmp_dir"] else None
        )
        self.hold_dir = _abs(values["hold_dir"], base, "hold_dir") if values["hold_dir"] else None


class Config(Folders):
    """Validated values, by key (``config.inbox``), plus the derived absolute paths."""

    def __init__(self, values: dict[str, Any], source: Path | None = None):
        self._values = dict(values)
        self.source = source  # resolved: relative paths in it are relative to its folder
        self.named = source  # the path as named, links kept: where a reload reads it again
        super().__init__(values, source)
        base = source.parent if source is not None else Path.cwd()
        self.weights_path = _abs(values["weights"], base, "weights") if values["weights"] else None
        self.ledger_path = self.state_dir / LEDGER
        self.platform_pipelines = resolve_platforms(values)

    def __getattr__(self, key: str) -> Any:
        try:
            return self.__dict__["_values"][key]
        except KeyError:
            raise AttributeError(key) from None

    def values(self) -> dict[str, Any]:
        return dict(self._values)

    def replace(self, **changes: Any) -> Config:
        """A copy with some raw values changed (tests, tools); validated like a file."""
        values = {**self._values, **changes}
        config = validate(values, self.source)
        config.named = self.named
        return config


def record_paths(state_dir: str, log_file: str, base: Path) -> tuple[Path, Path]:
    """The state dir and the log file the config's values name (empty: systemd's, else the
    XDG defaults)."""
    env = os.environ
    if state_dir:
        state = _abs(state_dir, base, "state_dir")
    elif env.get("STATE_DIRECTORY"):  # StateDirectory= in the systemd unit
        state = Path(env["STATE_DIRECTORY"].split(":")[0])
    else:
        state = _or_legacy(state_home() / "pixcamd")
    if log_file:
        return state, _abs(log_file, base, "log_file")
    if env.get("LOGS_DIRECTORY"):  # LogsDirectory= in the systemd unit
        return state, Path(env["LOGS_DIRECTORY"].split(":")[0]) / "pixcamd.jsonl"
    return state, state / "pixcamd.jsonl"


@dataclass
class Record:
    """Where a config's record is: what ``pixcamd status`` needs of it."""

    ledger_path: Path
    log_file: Path


def record_of(path: str | os.PathLike | None = None) -> Record:
    """The ledger and log a config names, read from its ``state_dir`` and ``log_file`` alone:
    ``pixcamd status`` shows a running daemon's record while the file has a problem elsewhere
    (an edit its reload refused). ``ConfigError`` when even those cannot be read."""
    path, how = locate_config(path)
    text = read_config_text(path, how)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError:  # a typo elsewhere: those two keys' own lines alone
        raw = {}
        for line in text.splitlines():
            if line.lstrip().startswith("["):
                break  # tables follow the flat keys
            if line.partition("=")[0].strip().strip("\"'") in ("state_dir", "log_file"):
                try:
                    raw.update(tomllib.loads(line))
                except tomllib.TOMLDecodeError as exc:
                    raise ConfigError(f"{path}: cannot read the line {line!r} ({exc})") from None
    named = []
    for key in ("state_dir", "log_file"):  # read as validate reads them
        option = KEYS[key]
        try:
            named.append(option.parse(raw.get(key, option.default)))
        except ValueError as exc:
            raise ConfigError(f"{path}: {key}: {exc}") from None
    state, log = record_paths(*named, path.resolve().parent)
    return Record(state / LEDGER, log)


def resolve_platforms(values: dict[str, Any]) -> tuple[Pipeline, ...]:
    """The configured ``platforms`` as pipelines: presets, ``[pipelines.NAME]``, inline specs."""
    return parse_platforms(values["platforms"], custom_pipelines(values))


def _or_legacy(state_dir: Path) -> Path:
    """``state_dir``, unless it holds no ledger and the user service's old place does: before
    systemd 254 a user unit's StateDirectory= was under $XDG_CONFIG_HOME, where the ledger of
    an earlier ``init --systemd-user`` lies — its photos, decisions and copies' names."""
    try:
        legacy = config_home() / "pixcamd"
    except PixcamdError:  # no home folder: no earlier state dir under it either
        return state_dir
    # os.path's: a state dir that cannot be looked into is no crash (the daemon's start says it)
    if not os.path.exists(state_dir / LEDGER) and os.path.isfile(legacy / LEDGER):
        return legacy
    return state_dir


def _abs(text: str, base: Path, key: str) -> Path:
    if "\0" in text:
        raise ConfigError(f"{text!r}: a path cannot hold a NUL character")
    path = Path(expand_home(text, key))
    return Path(os.path.abspath(base / path))


SYSTEM_CONFIG = Path("/etc/pixcamd/config.toml")


def state_home() -> Path:
    """$XDG_STATE_HOME (~/.local/state)."""
    return (
        xdg_home("XDG_STATE_HOME")
        or home("set state_dir in the config, or XDG_STATE_HOME") / ".local" / "state"
    )


def config_home() -> Path:
    """$XDG_CONFIG_HOME, else ~/.config."""
    return (
        xdg_home("XDG_CONFIG_HOME")
        or home(f"give --config, or set ${CONFIG_ENV} or XDG_CONFIG_HOME") / ".config"
    )


def user_config_path() -> Path:
    """$XDG_CONFIG_HOME/pixcamd/config.toml (~/.config/pixcamd/config.toml)."""
    return config_home() / "pixcamd" / "config.toml"


def locate_config(path: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The config file every command reads, and why that one: ``--config``, else
    $PIXCAMD_CONFIG, else the user's config, else the system one (servers). The first that is
    named or exists wins; with none, the user config is the one to create (``pixcamd init``)."""
    if path is not None:
        return Path(path), "--config"
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]), f"${CONFIG_ENV}"
    try:
        user = user_config_path()
    except PixcamdError:  # no home folder: the system config is still found
        if SYSTEM_CONFIG.is_file():
            return SYSTEM_CONFIG, "the system config"
        raise
    if user.is_file():
        return user, "your user config"
    if SYSTEM_CONFIG.is_file():
        return SYSTEM_CONFIG, "the system config"
    return user, "your user config (not created yet)"


def load_config(path: str | os.PathLike | None = None, missing: str | None = None) -> Config:
    """Read and validate a TOML file; ``ConfigError`` lists every problem as ``FILE: key: …``
    (``missing``: what to say when the file is not there, instead of where it was named)."""
    path, how = locate_config(path)
    return parse_config(read_config_text(path, how, missing), path)


def read_config_text(path: Path, how: str, missing: str | None = None) -> str:
    """The text of the config file ``locate_config`` found (``how``: why that one). A leading
    byte-order mark — what Windows Notepad put before UTF-8 — is dropped: TOML refuses it as
    an "invalid statement at line 1, column 1" no one can see in the file."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        if how.endswith("(not created yet)"):
            raise ConfigError(
                f"no config file: looked for ${CONFIG_ENV}, {path} and {SYSTEM_CONFIG}; "
                "create yours with `pixcamd init` (or pass --config FILE)"
            ) from None
        raise ConfigError(
            f"{path}: no such config file ("
            + (missing or f"named by {how}; `pixcamd init` writes one")
            + ", config.example.toml documents every key)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc})") from None


def parse_config(text: str, path: Path) -> Config:
    """Validate the TOML ``text`` of the config file at ``path`` (relative paths in it are
    relative to that file's folder)."""
    config = validate(read_toml(text, path), path.resolve(), text)
    # a dotfiles link re-pointed, or replaced by a file, is what the next reload reads
    config.named = Path(os.path.abspath(path))
    return config


def read_toml(text: str, path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        hint = toml_hint(text, str(exc))
        raise ConfigError(f"{path}: not valid TOML: {exc}{hint}") from None


def validate(raw: dict[str, Any], source: Path | None = None, text: str | None = None) -> Config:
    """The values of ``raw``, read from the file at ``source`` (``text``: its TOML, where the
    lines problems name are found), as a ``Config``; ``ConfigError`` lists every problem."""
    where = f"{source}: " if source is not None else ""
    problems, values = [], {}
    raw, placed, origin = misplaced(raw, text)
    problems += [f"{where}{problem}" for problem in placed]
    unknown = (unknown_key(key, text, origin.get(key, ())) for key in raw if key not in KEYS)
    problems += [f"{where}{problem}" for problem in unknown]
    for option in SCHEMA:
        value = raw.get(option.key, option.default)
        try:
            values[option.key] = option.parse(value)
        except (ValueError, ArithmeticError) as exc:  # a number no parser foresaw: a problem too
            line = line_of(text, option.key, origin.get(option.key, ()))
            hint = unquoted(option, value, line)
            for said in [hint] if hint else getattr(exc, "problems", None) or [str(exc)]:
                sep = "" if said.startswith(".") else ": "  # ".NAME.key: …" names a nested key
                problems.append(f"{where}{option.key}{sep}{said}")
    if "platforms" in values:  # beside the other problems, a bad table's included
        problems += [f"{where}{p}" for p in platform_problems(values, raw.get("pipelines"))]

    # Problems between keys, each judged where the keys it reads are valid: every problem
    # is said at once, not one round at a time
    def parsed(*keys: str) -> bool:
        return all(key in values for key in keys)

    if parsed("epsilon_cap", "epsilon") and values["epsilon_cap"] < values["epsilon"]:
        problems.append(
            f"{where}epsilon_cap: {values['epsilon_cap']:g} is below epsilon "
            f"{values['epsilon']:g}; the cap must be at least the starting budget"
        )
    if "*" in values.get("target", {}) and len(values.get("model", ())) > 1:
        problems.append(
            f"{where}target: several models: give a table {{ model = score, … }} for each"
        )
    if values.get("mode") == "enhance" and values.get("enhance_strength") == 0:  # as protect
        problems.append(
            f'{where}enhance_strength: 0 leaves the colour filter of mode = "enhance" nothing '
            'to change: give a strength above 0, or mode = "invisible"'
        )
    if values.get("strip_metadata") and values.get("strip_gps") is False:  # as protect refuses
        problems.append(  # --keep-gps --strip-metadata: never one of them silently unused
            f"{where}strip_gps: false contradicts strip_metadata = true, which removes the GPS "
            "position with all other metadata; remove strip_gps = false, or set "
            "strip_metadata = false to keep the position"
        )
    if values.get("hold_dir") and values.get("on_unprotected", "hold") != "hold":
        problems.append(f'{where}hold_dir: only used with on_unprotected = "hold"')
    if parsed("executor", *RAY_KEYS):
        problems += [f"{where}{p}" for p in cluster_problems(values)]
    if parsed("web", "web_token"):
        problems += [f"{where}{p}" for p in web_problems(values)]
    if parsed(*FOLDER_KEYS):
        problems += [f"{where}{p}" for p in layout_problems(Folders(values, source))]
    if problems:
        raise ConfigError("invalid configuration:", problems)
    return Config(values, source)


def record_folders(config: Config, facts: dict, outputs: list[str]) -> list[tuple[str, str]]:
    """The ledger is the record of the copies in one outbox (``outputs``: the last it wrote).
    Another config on the same state dir with another outbox (two hand-written configs with
    state_dir = "", which share the default) would take photos done for the other outbox as
    done and skip them in silence: refused while that outbox is still there and none of its
    copies is in this one. An outbox moved or copied here (its copies with it) takes the record
    along, as an inbox that changed does (a sync folder moved): (key, old path) to say so."""
    moved = []
    for key in ("inbox", "outbox"):
        was, now = facts.get(key), getattr(config, key)
        if not was or was == str(now):
            continue
        if os.path.isdir(was) and os.path.isdir(now) and os.path.samefile(was, now):
            continue  # the same folder by another path
        if (
            key == "outbox"
            and os.path.isdir(was)
            and outputs
            and not any(os.path.lexists(os.path.join(now, name)) for name in outputs)
        ):
            raise PixcamdError(
                f"the state dir {config.state_dir} keeps the record of the copies in the outbox "
                f"{was}, a folder still there, and none of them is in this config's outbox "
                f"{now}: give this config a state_dir of its own (photos done for that outbox "
                "would be skipped as done here), or move that outbox here"
            )
        moved.append((key, was))
    return moved
