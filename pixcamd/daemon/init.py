"""``pixcamd init``: the user's config file and folders, so that no later command needs a flag.

The config is the documented example (the same schema as config.example.toml) with the user's
inbox and outbox filled in, written where every command looks for it (``locate_config``). It is
validated before anything is written; an existing config is never replaced without ``force``,
and the write is atomic (a half-written config would stop the daemon at its next start).
"""

from __future__ import annotations

import contextlib
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from pixcamd.daemon.config import (
    CONFIG_ENV,
    LEDGER,
    SYSTEM_CONFIG,
    Config,
    ConfigError,
    load_config,
    locate_config,
    parse_config,
    read_toml,
    state_home,
    user_config_path,
)
from pixcamd.daemon.config_checks import parse_web
from pixcamd.daemon.config_toml import render_example
from pixcamd.daemon.schema import KEYS
from pixcamd.daemon.user_units import (
    config_run_by,
    config_tag,
    installed_units,
    unit_of,
    unit_path,
    user_config,
    write_atomically,
)
from pixcamd.defaults import expand_home
from pixcamd.errors import PixcamdError

DEFAULT_INBOX = "~/Pictures/pixcamd-inbox"
DEFAULT_OUTBOX = "~/Pictures/pixcamd-outbox"
HEADER = (
    "# pixcamd daemon configuration, written by `pixcamd init`. Every command (run, status,",
    "# config check) finds it without a flag. Every key below is documented with its default;",
    "# `pixcamd config check` prints the values in force. A running daemon applies edits on",
    "# `systemctl --user reload @UNIT@` (or SIGHUP); folder changes need a restart.",
)
# a file commands do not find by themselves (written with --config elsewhere)
HEADER_NAMED = (
    "# pixcamd daemon configuration, written by `pixcamd init`. Commands read it only when",
    "# told: --config and this file's path (or $PIXCAMD_CONFIG set to it). Every key below is",
    "# documented with its default; `pixcamd config check --config FILE` prints the values in",
    "# force. A running daemon applies edits on SIGHUP (`systemctl --user reload @UNIT@`, the",
    "# unit `pixcamd init --config FILE --systemd-user` installs); folder changes need a restart.",
)

# the system config: found without a flag by a user with no config of their own (the system
# service's), reloaded through the system unit
HEADER_SYSTEM = (
    "# pixcamd daemon configuration, written by `pixcamd init`: the system config. Commands",
    "# find it without a flag when the user running them has no config of their own (as the",
    "# system service's user has none). Every key below is documented with its default;",
    "# `pixcamd config check` prints the values in force. A running daemon applies edits on",
    "# `systemctl reload pixcamd` (or SIGHUP); folder changes need a restart.",
)


SERVICE_STATE_DIR = Path("/var/lib/pixcamd")  # systemd/pixcamd.service's StateDirectory=


@dataclass
class Initialized:
    path: Path
    how: str  # why this path: --config, $PIXCAMD_CONFIG or the user config
    config: Config
    created: list[Path]  # folders that did not exist before, outermost first
    replaced: bool  # an existing config was overwritten (--force)
    named: bool = False  # found only with --config (elsewhere than init writes by itself)
    system: bool = False  # the system config, /etc/pixcamd/config.toml: a server's service

    @property
    def record(self) -> Path:
        """The ledger the daemon of this config keeps: a system config that names no state_dir
        is run by the system unit, whose StateDirectory= it is, not the shell's default."""
        if self.system and not self.config.values()["state_dir"]:
            return SERVICE_STATE_DIR / LEDGER
        return self.config.ledger_path


def target_path(path: str | os.PathLike | None = None) -> tuple[Path, str]:
    """Where ``init`` writes: the file later commands will read first — ``--config``, else
    $PIXCAMD_CONFIG, else the user's config (never the system one: that is for servers)."""
    if path is not None or os.environ.get(CONFIG_ENV):
        return locate_config(path)
    return user_config_path(), "your user config"


def init_config(
    path: str | os.PathLike | None = None,
    inbox: str | os.PathLike = DEFAULT_INBOX,
    outbox: str | os.PathLike = DEFAULT_OUTBOX,
    force: bool = False,
) -> Initialized:
    """Write the config and create the inbox and outbox; ``ConfigError`` says why not (and then
    nothing is written)."""
    target, how = target_path(path)
    # ~name/… of a user with no passwd entry (a $PIXCAMD_CONFIG no shell expanded): refused,
    # not made as a folder named ~name under the current one, as the folders are (``_folder``)
    target = Path(os.path.abspath(expand_home(os.fspath(target), how)))
    if os.path.exists(target) and not target.is_file():
        raise ConfigError(f"{target}: exists and is not a file")
    # found by every command without a flag, or only with --config
    try:
        default = os.path.realpath(target_path()[0])
    except PixcamdError:  # no home folder, no $PIXCAMD_CONFIG: a flag finds every config
        default = None
    named = how == "--config" and os.path.realpath(target) != default
    if target.exists() and not force:
        flag = f" --config {shlex.quote(str(target))}" if named else ""
        raise ConfigError(
            f"{target}: a config is already there; `pixcamd config check{flag}` shows it "
            f"(pixcamd init{flag} --force replaces it)"
        )
    folders = {"inbox": _absolute(inbox, "inbox"), "outbox": _absolute(outbox, "outbox")}
    real = Path(os.path.realpath(target))  # one file however it is spelt
    user = user_config()
    if str(real) != user and not real.is_relative_to(SYSTEM_CONFIG.parent):
        # a second config (--config, $PIXCAMD_CONFIG) gets a state dir of its own, named after
        # it: with the default one two daemons would share one ledger, each taking the other's
        # photos (a system config keeps its service's StateDirectory=)
        folders["state_dir"] = str(state_home() / f"pixcamd-{target.stem}-{config_tag(real)}")
    for key, folder in folders.items():
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise ConfigError(f"{key}: {folder} exists and is not a folder")
    others = {other: _read_raw(other) for other in _other_configs(real)}
    _outbox_of_its_own(folders["outbox"], others)
    system = real == Path(os.path.realpath(SYSTEM_CONFIG))
    header = HEADER_SYSTEM if system else HEADER_NAMED if named else HEADER
    unit = unit_of(target)  # the one `init --systemd-user` writes, or keeps, for this file
    web = None if system else _web_of_its_own(others)  # a server's: no page (PrivateNetwork=)
    values = folders if web is None else {**folders, "web": web}
    text = render_example(values, tuple(line.replace("@UNIT@", unit) for line in header))
    created: list[Path] = []
    try:
        created += _make_folder(Path(folders["inbox"]), "inbox")  # the check wants it there
        config = parse_config(text, target)  # e.g. an outbox inside the inbox: refused here
        created += _make_folder(config.outbox, "outbox")
        replaced = target.exists()
        # a config that is a link (dotfiles) is written where it leads: the link stays
        write_atomically(Path(os.path.realpath(target)), text, "the config")
    except BaseException:
        for folder in reversed(created):  # a refused init leaves nothing behind
            folder.rmdir()
        raise
    return Initialized(target, how, config, created, replaced, named, system)


def _other_configs(config: Path) -> set[Path]:
    """The other configs whose daemons run here: the user config and those pixcamd user units
    run (``config``, a real path, left out)."""
    others = {user_config(), *_configs_units_run()}
    return {Path(other) for other in others - {None, str(config)}}


def inboxes_here() -> dict[Path, Path]:
    """The inbox of each config a daemon here watches — the one ``run`` reads and those the
    pixcamd user units run — as that config reads it: {its real path: the config}. A config
    that does not load now (an inbox not mounted, a typo) cannot say: passed over."""
    configs = [locate_config(None)[0]] + [Path(ran) for ran in _configs_units_run() if ran]
    found: dict[Path, Path] = {}
    for config in dict.fromkeys(Path(os.path.realpath(c)) for c in configs):
        with contextlib.suppress(PixcamdError, OSError):
            found.setdefault(Path(os.path.realpath(load_config(config).inbox)), config)
    return found


def _configs_units_run() -> list[str | None]:
    return [config_run_by(unit_path(name)) for name in installed_units()]


def _read_raw(config: Path) -> dict:
    """The config's keys as written, unchecked: one that does not validate now — its inbox on
    a drive not mounted yet, a typo in another key — still has them when its daemon starts.
    Empty where it is not there or not TOML."""
    try:
        return read_toml(config.read_text(encoding="utf-8-sig"), config)
    except (PixcamdError, OSError, UnicodeDecodeError):
        return {}


def _outbox_of_its_own(outbox: str, others: dict[Path, dict]) -> None:
    """Refuse the outbox of another config here (``init --config camera.toml`` without
    --outbox: the default, the user config's): its daemon would be refused at every start,
    another one publishing there."""
    for other, raw in others.items():
        value = raw.get("outbox")
        if not isinstance(value, str) or not value:  # none, or not a path: its start says so
            continue
        try:  # relative to its file's folder, as the config reads it
            theirs = other.parent / expand_home(value, "outbox")
        except PixcamdError:
            continue
        if os.path.realpath(theirs) == os.path.realpath(outbox):
            raise ConfigError(
                f"outbox: {outbox} is the outbox of {other} too: the daemon started second "
                "would be refused (both would ship a copy of every photo); give this config "
                "an outbox of its own (--outbox DIR)"
            )


def _web_of_its_own(others: dict[Path, dict]) -> str | None:
    """The page's address for a config where another config here (``_other_configs``, as
    written) has the default port: the next port none of them has. Two daemons on one port:
    the one started second had no page (a warning in its log), and which inbox's page
    answered changed with the order they started in. None: the default."""
    host, port = parse_web(KEYS["web"].default)
    ports = set()
    for raw in others.values():
        web = raw.get("web", KEYS["web"].default)
        if isinstance(web, str) and web:  # "": that config's page is off
            with contextlib.suppress(ValueError):
                ports.add(parse_web(web)[1])
    if port not in ports:
        return None
    while port in ports:
        port += 1
    return f"{host}:{port}"


def _make_folder(folder: Path, key: str) -> list[Path]:
    """Create ``folder`` and its missing parents; the ones created, outermost first. A folder
    that cannot be made is a ``ConfigError`` naming ``key``, the parents made removed again."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()][::-1]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        for made in reversed(missing):
            with contextlib.suppress(OSError):
                made.rmdir()
        raise ConfigError(f"{key}: cannot create {folder} ({exc.strerror or exc})") from None
    return missing


def _absolute(folder: str | os.PathLike, key: str) -> str:
    """An absolute path, so the config means the same wherever it is read from."""
    if not os.fspath(folder).strip():
        raise ConfigError(f"{key}: an empty path; name a folder")
    return os.path.abspath(expand_home(os.fspath(folder), f"{key} (--{key})"))
