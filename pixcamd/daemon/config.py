"""The daemon's configuration: ONE schema that produces config.example.toml, the validation and
``pixcamd config check``.

Every key lives in ``SCHEMA`` with its default, its documentation and its parser. Parsers take
the raw TOML value and return the effective value or raise ``ValueError`` with the problem in
words; ``load_config`` prefixes each problem with the file and key and reports them all at once.
The file is flat (no tables) except for ``target``, which may be a table of model → score.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pixcamd.errors import PixcamdError
from pixcamd.models import CHOICES, MODEL_NAMES
from pixcamd.platforms import (
    DEFAULT_PLATFORMS,
    PRESETS,
    Pipeline,
    PipelineError,
    from_table,
    parse_platforms,
)
from pixcamd.views import DEFAULT_VIEWS, VIEW_NAMES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# Sync tools' temporary and bookkeeping files; matched against every part of the path relative to
# the inbox, so a pattern naming a folder (.stversions, @eaDir) also hides everything inside it.
DEFAULT_IGNORE = (
    ".*",  # dotfiles and dot-folders (covers most of the names below; listed for clarity)
    ".syncthing.*.tmp",  # Syncthing temp file
    "~syncthing~*",  # Syncthing temp file (Windows-style name)
    "*.~*",  # Nextcloud / ownCloud partial download
    ".*.??????",  # rsync temp file: .name.XXXXXX (also a dotfile)
    "*.part",  # Firefox, KIO, curl partial downloads
    "*.crdownload",  # Chromium partial download
    ".stfolder",  # Syncthing folder marker
    ".stversions",  # Syncthing versioning folder
    "@eaDir",  # Synology thumbnails
    ".DS_Store",  # macOS Finder
    "._*",  # macOS resource forks (AppleDouble)
    "Thumbs.db",  # Windows thumbnails
    "desktop.ini",  # Windows folder settings
)
DEFAULT_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".jpe",
    ".png",
    ".webp",
    ".tif",
    ".tiff",
    ".heic",
    ".heif",
    ".gif",
    ".bmp",
)
CONFIG_ENV = "PIXCAMD_CONFIG"


class ConfigError(PixcamdError):
    """A configuration that cannot be used; the message names each key and its problem."""


# --------------------------------------------------------------------------------------------
# Parsers: raw TOML value → effective value, or ValueError("the problem")


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {_describe(value)}")
    return value


def _path(required: bool) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = _string(value).strip()
        if required and not text:
            raise ValueError("required: give a folder")
        return text

    return parse


def _number(lo: float, hi: float, unit: str = "", integer: bool = False):
    def parse(value: Any) -> float | int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number, got {_describe(value)}")
        if integer and not isinstance(value, int):
            raise ValueError(f"expected a whole number, got {value!r}")
        if not (lo <= value <= hi) or (isinstance(value, float) and math.isnan(value)):
            top = "" if hi == math.inf else f"–{hi:g}"
            rng = f"{lo:g}{top}" if top else f"≥ {lo:g}"
            raise ValueError(f"{value!r} is out of range: give {rng}{unit}")
        return int(value) if integer else float(value)

    return parse


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {_describe(value)}")
    return value


def _choice(*choices: str):
    def parse(value: Any) -> str:
        text = _string(value)
        if text not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return text

    return parse


def _string_list(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of strings, got {_describe(value)}")
    return list(value)


def _models(value: Any) -> list[str]:
    names = list(dict.fromkeys(_string_list(value)))
    if not names:
        raise ValueError("give at least one model")
    for name in names:
        if name not in CHOICES:
            raise ValueError(f"unknown model {name!r}: choose from {', '.join(CHOICES)}")
    if "auto" in names and len(names) > 1:
        raise ValueError("auto stands alone: name the models to combine")
    return names


def _views(value: Any) -> list[str]:
    names = _string_list(value)
    if not names:
        raise ValueError(f"give at least one view from {', '.join(VIEW_NAMES)}")
    for name in names:
        if name not in VIEW_NAMES:
            raise ValueError(f"unknown view {name!r}: choose from {', '.join(VIEW_NAMES)}")
    return list(dict.fromkeys(names))


def _targets(value: Any) -> dict[str, float]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"*": float(value)}
    if not isinstance(value, dict):
        raise ValueError(f"expected a score or a table of model = score, got {_describe(value)}")
    targets = {}
    for name, score in value.items():
        if name not in MODEL_NAMES:
            raise ValueError(f"unknown model {name!r}: choose from {', '.join(MODEL_NAMES)}")
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise ValueError(f"{name}: expected a score, got {_describe(score)}")
        targets[name] = float(score)
    return targets


def _platform_names(value: Any) -> list[str]:
    """Syntax only here; names are resolved against presets and ``pipelines`` in ``validate``."""
    names = [n.strip() for n in _string_list(value)]
    if not names or not all(names):
        raise ValueError('give at least one platform, e.g. ["task", "instagram"]')
    return list(dict.fromkeys(names))


def _pipelines(value: Any) -> dict[str, dict]:
    """``[pipelines.NAME]`` tables, each checked as a pipeline (kept as written, so the file can
    be re-rendered); a problem is reported as ``.NAME.key: …``."""
    if not isinstance(value, dict):
        raise ValueError(f"expected tables [pipelines.NAME], got {_describe(value)}")
    out = {}
    for name, table in value.items():
        if name in PRESETS:
            raise ValueError(f".{name}: a preset has this name; choose another")
        if not isinstance(table, dict):
            raise ValueError(f".{name}: expected a table of resize, filter, quality, subsampling")
        try:
            from_table(name, table)
            out[name] = dict(table)
        except PipelineError as exc:
            raise ValueError(f".{name}.{exc}") from None
    return out


def _device(value: Any) -> str:
    text = _string(value)
    if text not in ("auto", "cpu") and not (
        text == "cuda" or (text.startswith("cuda:") and text[5:].isdigit())
    ):
        raise ValueError(f"{text!r} is not a device: use auto, cpu, cuda or cuda:N")
    return text


def _extensions(value: Any) -> list[str]:
    items = _string_list(value)
    if not items:
        raise ValueError("give at least one extension, e.g. .jpg")
    out = []
    for item in items:
        if not item.startswith(".") or len(item) < 2 or "/" in item:
            raise ValueError(f"{item!r}: write extensions with their dot, e.g. .jpg")
        out.append(item.lower())
    return list(dict.fromkeys(out))


def _patterns(value: Any) -> list[str]:
    items = _string_list(value)
    for item in items:
        if not item or "/" in item:
            raise ValueError(f"{item!r}: a pattern matches one file or folder name, without '/'")
    return items


# --------------------------------------------------------------------------------------------
# The schema


@dataclass(frozen=True)
class Option:
    key: str
    section: str  # heading in config.example.toml
    default: Any
    doc: str
    parse: Callable[[Any], Any]
    example: Any = None  # shown in config.example.toml instead of the default, when given


SCHEMA: tuple[Option, ...] = (
    Option(
        "inbox",
        "Folders",
        "",
        "Folder to watch, recursively (your synced camera folder). Required. Relative paths in "
        "this file are relative to the file's own folder; ~ is expanded.",
        _path(True),
        example="/srv/pixcamd/inbox",
    ),
    Option(
        "outbox",
        "Folders",
        "",
        "Folder the protected copies go to, mirroring the inbox's sub-folders (IMG_1.heic → "
        "IMG_1.jpg). Required; must not be inside the inbox nor contain it. Files appear there "
        "only complete, by an atomic rename.",
        _path(True),
        example="/srv/pixcamd/outbox",
    ),
    Option(
        "state_dir",
        "Folders",
        "",
        'Ledger (SQLite), lock and working files. "" = $STATE_DIRECTORY (systemd) or '
        "$XDG_STATE_HOME/pixcamd (~/.local/state/pixcamd).",
        _path(False),
    ),
    Option(
        "tmp_dir",
        "Folders",
        "",
        "Where copies are written and checked before they are renamed into the outbox; it must "
        'be on the same mount as the outbox and is emptied at start-up. "" = <state_dir>/tmp '
        "when that is on the outbox's mount, else .pixcamd-tmp beside the outbox "
        "(<outbox>/../.pixcamd-tmp).",
        _path(False),
    ),
    Option(
        "log_file",
        "Folders",
        "",
        'Status log, one JSON object per line. "" = $LOGS_DIRECTORY/pixcamd.jsonl (systemd) or '
        "<state_dir>/pixcamd.jsonl. Human-readable lines go to stderr (the journal) as well.",
        _path(False),
    ),
    Option(
        "model",
        "Quality model",
        ["auto"],
        "Quality model(s) to fool: auto, koncept512, brisque, or a list of several (protected "
        "only when every one agrees). auto = KonCept512 when its weights are installed "
        "(`pixcamd model fetch`), otherwise the embedded BRISQUE — said loudly at start-up and "
        "recorded per photo.",
        _models,
    ),
    Option(
        "weights",
        "Quality model",
        "",
        'KonCept512.pth to use; "" = the cache folder ($CACHE_DIRECTORY or ~/.cache/pixcamd).',
        _path(False),
    ),
    Option(
        "device",
        "Quality model",
        "auto",
        "auto (a CUDA GPU when there is one, else the CPU), cpu, cuda or cuda:N. On GPU "
        "out-of-memory a photo is retried with smaller batches, then on the CPU.",
        _device,
    ),
    Option(
        "threads",
        "Quality model",
        0,
        "CPU threads for torch; 0 = torch's default (all cores).",
        _number(0, 1024, integer=True),
    ),
    Option(
        "priority",
        "Quality model",
        "background",
        '"background" = the daemon only takes CPU time nothing else wants (nice 19 and the '
        "idle CPU scheduling class), so it can use every core and the desktop stays "
        'responsive; "normal" = like any program (a dedicated server). systemd units set '
        "their own priority.",
        _choice("background", "normal"),
    ),
    Option(
        "mode",
        "Protection",
        "invisible",
        '"invisible": a perturbation too small to see. "enhance": a colour filter (tone '
        "curves, contrast, saturation) a person reads as an edit, kept from looking flatter, "
        'duller or tinted. "auto": the filter, plus the invisible perturbation only where the '
        "filter falls short. The filter is recorded per photo in words and parameters.",
        _choice("invisible", "enhance", "auto"),
    ),
    Option(
        "enhance_strength",
        "Protection",
        24.0,
        "enhance/auto: largest change of the filter's tone curves in 8-bit grey levels; its "
        "contrast and saturation ranges scale with it.",
        _number(0, 64, " grey levels"),
    ),
    Option(
        "views",
        "Protection",
        list(DEFAULT_VIEWS),
        f"Views to protect, from {', '.join(VIEW_NAMES)} (see README).",
        _views,
    ),
    Option(
        "platforms",
        "Protection",
        list(DEFAULT_PLATFORMS),
        "Where your photos go: each is a platform pipeline (a downscale, then the platform's JPEG) "
        "and a photo is protected only when every view is judged low quality after every one. "
        "Presets: "
        + ", ".join(f"{n} ({p.describe()})" for n, p in PRESETS.items())
        + ". Also your own, named in [pipelines.NAME] at the end of this file, or written inline "
        'as e.g. "long1600-q75" or "width1080-q80-bicubic-444". See docs/platforms.md.',
        _platform_names,
    ),
    Option(
        "epsilon",
        "Protection",
        4.0,
        "Largest change per pixel in 8-bit grey levels before escalation.",
        _number(0, 64, " grey levels"),
    ),
    Option(
        "epsilon_cap",
        "Protection",
        8.0,
        "Escalation never exceeds this many grey levels.",
        _number(0, 64, " grey levels"),
    ),
    Option(
        "target",
        "Protection",
        {},
        "Score to reach after JPEG-90: one number for a single model, or a table "
        "{ koncept512 = 30, brisque = 80 }. {} = each model's default (KonCept512 30, "
        "BRISQUE 80).",
        _targets,
    ),
    Option(
        "steps",
        "Protection",
        40,
        "Optimizer steps per round before escalating.",
        _number(1, 100000, integer=True),
    ),
    Option(
        "seed",
        "Protection",
        0,
        "Random seed (same seed, same output).",
        _number(0, 2**31, integer=True),
    ),
    Option(
        "max_pixels",
        "Protection",
        200_000_000,
        "Photos with more pixels are refused (failed) instead of exhausting memory.",
        _number(1, 10**10, " pixels", integer=True),
    ),
    Option(
        "output_quality",
        "Output",
        95,
        "JPEG quality of the protected copies (4:4:4 chroma).",
        _number(1, 100, integer=True),
    ),
    Option(
        "strip_gps",
        "Output",
        True,
        "Remove GPS position tags from the copies (they go public); other metadata is kept.",
        _bool,
    ),
    Option(
        "on_unprotected",
        "Output",
        "hold",
        'Photos that cannot be protected: "hold" = never in the outbox; state unprotected, '
        'listed by `pixcamd status` (and a copy in hold_dir if set). "ship" = write them to '
        "the outbox anyway, with a warning in the log and the ledger.",
        _choice("hold", "ship"),
    ),
    Option(
        "hold_dir",
        "Output",
        "",
        'With on_unprotected = "hold": write the best attempt here (mirrored path) for you to '
        'review. "" = write nothing. Must not be inside the inbox or the outbox.',
        _path(False),
    ),
    Option(
        "settle_time",
        "Watching",
        5.0,
        "Seconds a file must stay unchanged (size and mtime, seen twice) before it is decoded "
        "and queued: a file still being written is never processed.",
        _number(0.05, 3600, " s"),
    ),
    Option(
        "settle_timeout",
        "Watching",
        120.0,
        "A file unchanged this long that still does not decode is queued anyway and fails with "
        "the decoder's reason (a corrupt file, not one being written).",
        _number(0.05, 86400, " s"),
    ),
    Option(
        "rescan_interval",
        "Watching",
        600.0,
        "Seconds between full rescans of the inbox for what the watcher missed (network "
        "filesystems, inotify overflow, downtime); 0 = only the start-up scan.",
        _number(0, 7 * 86400, " s"),
    ),
    Option(
        "extensions",
        "Watching",
        list(DEFAULT_EXTENSIONS),
        "File name extensions taken as photos (case-insensitive); other files are left alone.",
        _extensions,
    ),
    Option(
        "ignore",
        "Watching",
        list(DEFAULT_IGNORE),
        "Glob patterns of names to ignore, matched against each file and folder name under the "
        "inbox (a matching folder hides its contents). The default covers sync tools' temp "
        "files: Syncthing, Nextcloud, rsync, browsers, macOS, Windows, Synology.",
        _patterns,
    ),
    Option(
        "max_attempts",
        "Retries",
        5,
        "Attempts per photo before it is marked failed for good (transient failures: disk "
        "full, out of memory, a crash mid-photo).",
        _number(1, 1000, integer=True),
    ),
    Option(
        "retry_backoff",
        "Retries",
        30.0,
        "Seconds before the first retry; doubled on each further attempt.",
        _number(0, 86400, " s"),
    ),
    Option(
        "retry_backoff_max",
        "Retries",
        3600.0,
        "Longest wait between retries, in seconds.",
        _number(0, 7 * 86400, " s"),
    ),
    Option(
        "executor",
        "Cluster",
        "local",
        'Where photos are protected: "local" = in the daemon; "ray" = on the Ray cluster at '
        "ray_address (pip install 'pixcamd[ray]'). The daemon stays the only writer of the "
        "outbox and the ledger either way.",
        _choice("local", "ray"),  # LocalExecutor here, RayExecutor on a cluster
    ),
    Option(
        "ray_address",
        "Cluster",
        "127.0.0.1:6379",
        'With executor = "ray": the head node, host:port (started with `ray start --head '
        '--node-ip-address 127.0.0.1`), or "local" for a private Ray on this machine. Ray has '
        "no authentication of its own: keep a cluster on loopback or a trusted network "
        "(docs/folder-runs.md).",
        _string,
    ),
    Option(
        "ray_workers",
        "Cluster",
        0,
        "Workers on the cluster; 0 = one per GPU, or the cluster's CPUs ÷ ray_threads.",
        _number(0, 4096, integer=True),
    ),
    Option(
        "ray_threads",
        "Cluster",
        1,
        "CPU threads per worker (without GPUs).",
        _number(1, 256, integer=True),
    ),
    Option(
        "ray_fallback",
        "Cluster",
        "wait",
        'When the cluster goes away: "wait" = keep the queue for when it returns (said loudly '
        'in the log, tried again every minute); "local" = protect here meanwhile.',
        _choice("wait", "local"),
    ),
    Option(
        "grace_time",
        "Service",
        30.0,
        "On SIGTERM/SIGINT, seconds the current photo may take to finish; after that it is "
        "abandoned cleanly (nothing written, queued again). Keep TimeoutStopSec above it.",
        _number(0, 3600, " s"),
    ),
    Option(
        "web",
        "Web page",
        "127.0.0.1:8765",
        "Address of the local web page (`pixcamd run` serves it; `pixcamd web` alone): "
        'host:port, e.g. "127.0.0.1:8765", "[::1]:8765", "localhost:8765"; "" = no web page. '
        "Any address other than loopback is refused unless web_token is set.",
        _string,
    ),
    Option(
        "web_token",
        "Web page",
        "",
        "Password of the web page (HTTP Basic, any user name; or Authorization: Bearer TOKEN). "
        '"" = none, only allowed on a loopback address. Required to serve on the network; '
        "keep the config file private (chmod 600) when it holds one.",
        _string,
    ),
    # Tables must come after every plain key in a TOML file: keep this one last.
    Option(
        "pipelines",
        "Your own platforms",
        {},
        "Platform pipelines of your own, one table each, then named in `platforms`. resize: "
        '"none", "long 2048" (long side), "width 1080", "height 1080" or "scale 0.5" — only '
        "ever down, a smaller photo is left at its size; filter: lanczos (default), bicubic, "
        "bilinear, hamming, box, nearest; quality: the JPEG quality 1–100; subsampling: "
        '"4:2:0" (default), "4:2:2" or "4:4:4".',
        _pipelines,
        example={"myblog": {"resize": "long 1600", "filter": "lanczos", "quality": 80}},
    ),
)
KEYS = {o.key: o for o in SCHEMA}


# --------------------------------------------------------------------------------------------
# The effective configuration


class Config:
    """Validated values, by key (``config.inbox``), plus the derived absolute paths."""

    def __init__(self, values: dict[str, Any], source: Path | None = None):
        self._values = dict(values)
        self.source = source
        base = source.parent if source is not None else Path.cwd()
        env = os.environ
        self.inbox = _abs(values["inbox"], base)
        self.outbox = _abs(values["outbox"], base)
        if values["state_dir"]:
            self.state_dir = _abs(values["state_dir"], base)
        elif env.get("STATE_DIRECTORY"):  # StateDirectory= in the systemd unit
            self.state_dir = Path(env["STATE_DIRECTORY"].split(":")[0])
        else:
            xdg = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
            self.state_dir = Path(xdg) / "pixcamd"
        if values["log_file"]:
            self.log_file = _abs(values["log_file"], base)
        elif env.get("LOGS_DIRECTORY"):  # LogsDirectory= in the systemd unit
            self.log_file = Path(env["LOGS_DIRECTORY"].split(":")[0]) / "pixcamd.jsonl"
        else:
            self.log_file = self.state_dir / "pixcamd.jsonl"
        self.tmp_dir_setting = _abs(values["tmp_dir"], base) if values["tmp_dir"] else None
        self.hold_dir = _abs(values["hold_dir"], base) if values["hold_dir"] else None
        self.weights_path = _abs(values["weights"], base) if values["weights"] else None
        self.ledger_path = self.state_dir / "ledger.sqlite3"
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
        return validate(values, self.source)


def resolve_platforms(values: dict[str, Any]) -> tuple[Pipeline, ...]:
    """The configured ``platforms`` as pipelines: presets, ``[pipelines.NAME]``, inline specs."""
    custom = {name: from_table(name, table) for name, table in values["pipelines"].items()}
    return parse_platforms(values["platforms"], custom)


def _abs(text: str, base: Path) -> Path:
    path = Path(os.path.expanduser(text))
    return Path(os.path.abspath(base / path))


SYSTEM_CONFIG = Path("/etc/pixcamd/config.toml")


def config_home() -> Path:
    """$XDG_CONFIG_HOME, else ~/.config."""
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


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
    user = user_config_path()
    if user.is_file():
        return user, "your user config"
    if SYSTEM_CONFIG.is_file():
        return SYSTEM_CONFIG, "the system config"
    return user, "your user config (not created yet)"


def default_config_path() -> Path:
    """$PIXCAMD_CONFIG, else the user config if it exists, else /etc/pixcamd/config.toml if it
    exists, else the user config (to be created by ``pixcamd init``)."""
    return locate_config()[0]


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Read and validate a TOML file; ``ConfigError`` lists every problem as ``FILE: key: …``."""
    path, how = locate_config(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if how.endswith("(not created yet)"):
            raise ConfigError(
                f"no config file: looked for ${CONFIG_ENV}, {path} and {SYSTEM_CONFIG}; "
                "create yours with `pixcamd init` (or pass --config FILE)"
            ) from None
        raise ConfigError(
            f"{path}: no such config file (named by {how}; `pixcamd init` writes one, "
            "config.example.toml documents every key)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc})") from None
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> Config:
    """Validate the TOML ``text`` of the config file at ``path`` (relative paths in it are
    relative to that file's folder)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return validate(raw, path.resolve())


def validate(raw: dict[str, Any], source: Path | None = None) -> Config:
    where = f"{source}: " if source is not None else ""
    problems, values = [], {}
    for key in raw:
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{where}{key}: unknown key{hint}")
    for option in SCHEMA:
        value = raw.get(option.key, option.default)
        try:
            values[option.key] = option.parse(value)
        except ValueError as exc:
            text = str(exc)
            sep = "" if text.startswith(".") else ": "  # ".NAME.key: …" names a nested key
            problems.append(f"{where}{option.key}{sep}{text}")
    if not problems:
        if values["epsilon_cap"] < values["epsilon"]:
            problems.append(
                f"{where}epsilon_cap: {values['epsilon_cap']:g} is below epsilon "
                f"{values['epsilon']:g}; the cap must be at least the starting budget"
            )
        if "*" in values["target"] and len(values["model"]) > 1:
            problems.append(
                f"{where}target: several models: give a table {{ model = score, … }} for each"
            )
        try:
            resolve_platforms(values)
        except PipelineError as exc:
            problems.append(f"{where}platforms: {exc}")
        for name in values["pipelines"]:  # nothing configured is silently left unused
            if name not in values["platforms"]:
                problems.append(
                    f"{where}pipelines.{name}: defined but not named in platforms; add "
                    f'"{name}" to platforms, or remove the table'
                )
        if values["hold_dir"] and values["on_unprotected"] != "hold":
            problems.append(f'{where}hold_dir: only used with on_unprotected = "hold"')
        problems += [f"{where}{p}" for p in _cluster_problems(values)]
        problems += [f"{where}{p}" for p in web_problems(values)]
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    config = Config(values, source)
    problems = [f"{where}{p}" for p in layout_problems(config)]
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return config


RAY_KEYS = ("ray_address", "ray_workers", "ray_threads", "ray_fallback")


def _cluster_problems(values: dict[str, Any]) -> list[str]:
    """The cluster keys make sense together, and Ray is there to use them. (Whether the
    cluster answers is `config check`'s and start-up's question: it can change any time.)"""
    problems = []
    if values["executor"] != "ray":
        for key in RAY_KEYS:  # nothing configured is silently left unused
            if values[key] != KEYS[key].default:
                problems.append(f'{key}: only used with executor = "ray"')
        return problems
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        problems.append("executor: \"ray\" needs Ray: pip install 'pixcamd[ray]'")
    from pixcamd.executors.ray_link import split_address  # the executor's own reading of it

    try:
        split_address(values["ray_address"])
    except PixcamdError as exc:
        problems.append(f"ray_address: {exc}")
    return problems


def parse_web(text: str) -> tuple[str, int]:
    """``host:port`` → (host, port); IPv6 in brackets. ValueError with the problem in words."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(
            f'{text!r} is not host:port (e.g. "127.0.0.1:8765"; "" turns the web page off)'
        )
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError(f"{text!r}: an IPv6 address goes in brackets, e.g. [::1]:8765")
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:8765")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """Only this machine can connect (a name other than localhost is not trusted to be)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def web_problems(values: dict[str, Any]) -> list[str]:
    """The web page's address parses, and it is on loopback unless a token guards it."""
    if not values["web"]:
        return []
    try:
        host, _port = parse_web(values["web"])
    except ValueError as exc:
        return [f"web: {exc}"]
    if not is_loopback(host) and not values["web_token"]:
        return [
            f"web: {values['web']!r} is reachable from other machines; set web_token (the "
            'page\'s password) to serve there, or keep web = "127.0.0.1:8765"'
        ]
    return []


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def layout_problems(config: Config) -> list[str]:
    """The folders must not overlap: outputs are never re-ingested, originals never shipped."""
    problems = []
    if not config.inbox.is_dir():
        what = "is not a folder" if config.inbox.exists() else "does not exist"
        problems.append(f"inbox: {config.inbox} {what}")
    inbox, outbox = config.inbox.resolve(), config.outbox.resolve()
    if _inside(outbox, inbox):
        problems.append(
            f"outbox: {config.outbox} is inside the inbox {config.inbox}; the daemon would "
            "re-ingest its own output — put it beside the inbox"
        )
    elif _inside(inbox, outbox):
        problems.append(
            f"outbox: {config.outbox} contains the inbox {config.inbox}; the uploader would "
            "ship the originals — put them side by side"
        )
    for key, path in (
        ("state_dir", config.state_dir),
        ("tmp_dir", config.tmp_dir_setting),
        ("hold_dir", config.hold_dir),
        ("log_file", config.log_file),
    ):
        if path is None:
            continue
        real = path.resolve()
        if _inside(real, inbox):
            problems.append(f"{key}: {path} is inside the inbox {config.inbox}")
        if _inside(real, outbox):
            problems.append(
                f"{key}: {path} is inside the outbox {config.outbox}; the uploader must see "
                "nothing there but finished copies"
            )
    return problems


# --------------------------------------------------------------------------------------------
# TOML rendering: config.example.toml and `pixcamd config check`


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:_}" if abs(value) >= 100_000 else str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a valid TOML basic string
    if isinstance(value, Path):
        return toml_value(str(value))
    if isinstance(value, dict):
        if not value:
            return "{}"
        if "*" in value:
            return toml_value(value["*"])
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
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
    "# Generated from the schema in pixcamd/daemon/config.py; every key is optional except",
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
                body += [f"# [pipelines.{name}]"]
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


def render_effective(config: Config, derived: dict[str, Any] | None = None) -> str:
    """``key = value`` for every key as the daemon will use it; ``derived`` replaces the automatic
    values ("" in the file) with what they resolve to, marked ``# auto``."""
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
