"""``pixcamd init``: the user's config file and folders, so that no later command needs a flag.

The config is the documented example (the same schema as config.example.toml) with the user's
inbox and outbox filled in, written where every command looks for it (``locate_config``). It is
validated before anything is written; an existing config is never replaced without ``force``,
and the write is atomic (a half-written config would stop the daemon at its next start).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from pixcamd.daemon.config import (
    CONFIG_ENV,
    LEDGER,
    SYSTEM_CONFIG,
    Config,
    ConfigError,
    config_home,
    locate_config,
    parse_config,
    read_toml,
    state_home,
    user_config_path,
)
from pixcamd.daemon.config_checks import parse_web
from pixcamd.daemon.config_toml import render_example
from pixcamd.daemon.schema import KEYS
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


# The user unit; systemd/user/pixcamd.service is this with the ExecStart of a checkout's venv
# (a test keeps the two identical: regenerate with `render_user_unit()`).
USER_UNIT = """\
# pixcamd for one desktop user: photos synced into your inbox come out protected in the outbox.
# `pixcamd init --systemd-user` installs it (ExecStart set to the pixcamd that ran it) into
# ~/.config/systemd/user/; then `systemctl --user enable --now @UNIT@`. See systemd/README.md.
# The system unit (systemd/pixcamd.service) is for servers.

[Unit]
Description=pixcamd watch-folder daemon (protected copies of your photos)
Documentation=https://github.com/pixcamd/pixcamd/blob/main/docs/daemon.md
StartLimitIntervalSec=15min
StartLimitBurst=5

[Service]
Type=notify
NotifyAccess=main
# ADAPT: where pixcamd is installed (`pixcamd init --systemd-user` writes it for you). The config
# is your user config, ~/.config/pixcamd/config.toml (`pixcamd init`): no --config needed.
ExecStart=@EXEC_START@
# Reload (systemctl reload): the config and the weights are read again without dropping the
# queue; a config that does not validate is refused and the one in force stays (see the log).
ExecReload=/bin/kill -HUP $MAINPID

# READY=1 comes after the model is loaded and the start-up scan is queued; WATCHDOG=1 only while
# the worker makes progress (see the system unit for the reasoning behind the figures).
TimeoutStartSec=10min
WatchdogSec=5min
Restart=on-failure
RestartSec=10s
# Exit status 2 is a configuration or weights error: restarting would not fix it.
RestartPreventExitStatus=2
TimeoutStopSec=90s

# The XDG folders a shell's `pixcamd status` reads too: ledger and log in ~/.local/state/pixcamd
# (the daemon's own default: no StateDirectory=, which in a user unit meant ~/.config/pixcamd
# before systemd 254, beside config.toml and away from the shell's), KonCept512's weights in
# ~/.cache/pixcamd ($CACHE_DIRECTORY).
CacheDirectory=pixcamd

# A quiet neighbour on a laptop: only CPU and disk time nobody else wants.
CPUSchedulingPolicy=idle
IOSchedulingClass=idle
Nice=19
# OpenMP threads that spin while the CPU is busy elsewhere make torch many times slower.
Environment=OMP_WAIT_POLICY=PASSIVE

# Hardening that works in a user manager without user namespaces: seccomp filters and
# no-new-privileges. (ProtectSystem=, PrivateTmp= and friends need mount namespaces, which an
# unprivileged user manager only has where unprivileged user namespaces are enabled; IPAddressDeny=
# needs a privileged cgroup. The system unit has them all.) IP sockets for the web page only:
# the config refuses any address but loopback unless web_token is set.
NoNewPrivileges=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM

[Install]
WantedBy=default.target
"""
EXAMPLE_EXEC_START = "%h/pixcamd/.venv/bin/pixcamd run"
USER_UNIT_NAME = "pixcamd"  # the user config's unit; another config's is pixcamd-NAME


def render_user_unit(exec_start: str = EXAMPLE_EXEC_START, name: str = USER_UNIT_NAME) -> str:
    return USER_UNIT.replace("@EXEC_START@", exec_start).replace("@UNIT@", name)


def unit_name(config: Path | None = None) -> str:
    """The user unit that runs ``config`` (an absolute path; None: the user config):
    ``pixcamd`` for the user config, ``pixcamd-NAME`` after any other file's name — one unit
    per config, so that a second inbox's never replaces the first's. NAME keeps letters,
    digits and _ (systemd's own escapes, \\x2d…, would have to be typed), else the hash the
    state dir is named with."""
    if config is None or os.path.realpath(config) == _user_config():
        return USER_UNIT_NAME
    safe = re.sub(r"[^A-Za-z0-9_]+", "-", config.stem)[:64].strip("-")
    return f"{USER_UNIT_NAME}-{safe or config_tag(config)}"


def unit_of(config: Path) -> str:
    """The user unit that runs ``config`` (an absolute path): ``unit_name``'s, unless another
    pixcamd unit installed here runs it — an earlier pixcamd wrote pixcamd.service for a
    config elsewhere too. That one keeps running it: a second unit for one config would start
    a second daemon on its state dir, refused, and the commands would name the wrong one."""
    name = unit_name(config)
    if name == USER_UNIT_NAME:
        return name
    real = os.path.realpath(config)
    runs = {other: _runs(_unit_path(other)) for other in installed_units()}
    if runs.get(name) == real or real not in runs.values():
        return name
    return next(other for other, ran in runs.items() if ran == real)


def config_tag(config: Path) -> str:
    """A short hash of the config's real path: its state dir's name, one per file."""
    return hashlib.sha256(os.path.realpath(config).encode()).hexdigest()[:8]


@dataclass(frozen=True)
class UserUnit:
    name: str  # what systemctl --user and journalctl --user -u take
    path: Path  # $XDG_CONFIG_HOME/systemd/user/NAME.service: where systemctl --user finds it
    config: Path | None  # the config its ExecStart names; None: the one a service finds itself
    flag: str  # --config FILE for the commands it suggests, where only the flag finds the file

    def text(self) -> str:
        """The unit this pixcamd writes for its config."""
        command = this_pixcamd()
        if self.config is not None:
            command += " --config " + shlex.quote(str(self.config)).replace("%", "%%")
        return render_user_unit(command, self.name)


def user_unit(path: Path, how: str) -> UserUnit:
    """The user unit for the config ``init`` writes at ``path`` (``how``: why that file)."""
    if how == "your user config":
        return UserUnit(USER_UNIT_NAME, _unit_path(USER_UNIT_NAME), None, "")
    # a service does not see $PIXCAMD_CONFIG or --config: the file is named in its ExecStart
    target = Path(os.path.abspath(expand_home(os.fspath(path), how)))
    name = unit_of(target)
    flag = f" --config {shlex.quote(str(target))}" if how == "--config" else ""
    return UserUnit(name, _unit_path(name), target.resolve(), flag)


def _unit_path(name: str) -> Path:
    return config_home() / "systemd" / "user" / f"{name}.service"


def reload_command(config: Path | None) -> str:
    """What reloads the daemon that runs ``config``: the system service's for the system
    config, else the user unit named after it (``unit_name``; None: the user config's)."""
    if config is None:
        return f"systemctl --user reload {USER_UNIT_NAME}"
    if os.path.realpath(config) == os.path.realpath(SYSTEM_CONFIG):
        return "systemctl reload pixcamd"
    return f"systemctl --user reload {unit_of(Path(os.path.abspath(config)))}"


def installed_units() -> list[str]:
    """The pixcamd user units installed here, the user config's first: ``pixcamd``,
    ``pixcamd-camera``…; none where there is no home folder to look in."""
    try:
        folder = config_home() / "systemd" / "user"
    except PixcamdError:
        return []
    names = [p.name.removesuffix(".service") for p in folder.glob("pixcamd-*.service")]
    return [USER_UNIT_NAME] * (folder / "pixcamd.service").exists() + sorted(names)


def this_pixcamd() -> str:
    """The command that runs this very pixcamd: its console script beside the interpreter
    (a venv's bin/), else the interpreter with ``-m pixcamd``."""
    script = Path(sys.executable).parent / "pixcamd"
    if script.is_file() and os.access(script, os.X_OK):
        command = shlex.quote(str(script)) + " run"
    else:
        command = f"{shlex.quote(sys.executable)} -m pixcamd run"
    return command.replace("%", "%%")  # systemd reads % as a specifier


def unit_in_the_way(unit: UserUnit, force: bool, keep: bool = False) -> None:
    """Refuse, before anything is written, a unit of the same name that runs another config
    (even with ``force``: that config's photos would stop being protected at its next start),
    and one that runs this config without ``force`` or ``keep`` (--if-missing)."""
    if not os.path.lexists(unit.path):
        return
    runs = _runs(unit.path)
    this = os.path.realpath(unit.config) if unit.config is not None else _user_config()
    if runs is not None and runs != this:
        # e.g. an earlier pixcamd's one unit, which init --force pointed at a second config
        own = unit_name(Path(runs))
        if own != unit.name:
            # in this order: while this unit runs that config, init keeps it as its unit
            how = (
                f"to keep both, `systemctl --user disable --now {unit.name}` and remove this "
                f"unit; then `pixcamd init --config {shlex.quote(runs)} --systemd-user "
                f"--if-missing` gives that config a unit of its own ({own}: enable it as it "
                "says), and run this command again"
            )
        else:  # two files of one name: the unit's name cannot tell them apart
            how = (
                "a unit is named after its config's file: give this config a file name of its "
                f"own (--config), or, where {runs} is no longer used, `systemctl --user disable "
                f"--now {unit.name}`, remove this unit and run this command again"
            )
        raise ConfigError(
            f"{unit.path}: this unit runs another config, {runs}: replacing it would stop that "
            f"config's inbox being watched; {how}"
        )
    if not force and not keep:
        again = f"pixcamd init{unit.flag} --systemd-user"
        raise ConfigError(
            f"{unit.path}: a unit is already there. `{again} --force` replaces it and your "
            f"config; to write a new unit and keep your config, `systemctl --user disable "
            f"--now {unit.name}`, remove this file and run `{again} --if-missing`"
        )


def _runs(unit: Path) -> str | None:
    """The real path of the config the unit's ExecStart runs (no --config: the user config);
    None where that cannot be told (unreadable, no ExecStart, quotes that do not parse)."""
    try:
        text = unit.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    for line in text.splitlines():
        if line.startswith("ExecStart="):
            try:
                words = shlex.split(_specifiers(line.removeprefix("ExecStart=")))
            except (ValueError, KeyError, PixcamdError):
                return None
            for i, word in enumerate(words):
                if word == "--config" and i + 1 < len(words):
                    return os.path.realpath(words[i + 1])
                if word.startswith("--config="):
                    return os.path.realpath(word.removeprefix("--config="))
            return _user_config()
    return None


def _specifiers(command: str) -> str:
    """``command`` with the systemd specifiers a hand-written user unit puts in a path
    resolved: %h (--config %h/photos/camera.toml is that file), %E; KeyError for another."""
    known = {"%": "%", "h": os.path.expanduser("~"), "E": str(config_home())}
    return re.sub(r"%(.)", lambda found: known[found[1]], command)


def install_user_unit(unit: UserUnit, force: bool = False) -> bool:
    """Write the user unit for this pixcamd; whether it replaced one."""
    unit_in_the_way(unit, force)
    replaced = unit.path.exists()
    _write_atomically(unit.path, unit.text(), "the user service")
    return replaced


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


def _user_config() -> str | None:
    """The user config's real path; None where this user has no home folder to find it in
    (then any file named is a config of its own)."""
    try:
        return os.path.realpath(user_config_path())
    except PixcamdError:
        return None


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
    user = _user_config()
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
        _write_atomically(Path(os.path.realpath(target)), text, "the config")
    except BaseException:
        for folder in reversed(created):  # a refused init leaves nothing behind
            folder.rmdir()
        raise
    return Initialized(target, how, config, created, replaced, named, system)


def _other_configs(config: Path) -> set[Path]:
    """The other configs whose daemons run here: the user config and those pixcamd user units
    run (``config``, a real path, left out)."""
    others = {_user_config(), *_configs_units_run()}
    return {Path(other) for other in others - {None, str(config)}}


def inboxes_here() -> dict[Path, Path]:
    """The inbox of each config a daemon here watches — the one ``run`` reads and those the
    pixcamd user units run — as that config reads it: {its real path: the config}. A config
    that does not load now (an inbox not mounted, a typo) cannot say: passed over."""
    from pixcamd.daemon.config import load_config

    configs = [locate_config(None)[0]] + [Path(ran) for ran in _configs_units_run() if ran]
    found: dict[Path, Path] = {}
    for config in dict.fromkeys(Path(os.path.realpath(c)) for c in configs):
        with contextlib.suppress(PixcamdError, OSError):
            found.setdefault(Path(os.path.realpath(load_config(config).inbox)), config)
    return found


def _configs_units_run() -> list[str | None]:
    return [_runs(_unit_path(name)) for name in installed_units()]


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


def _write_atomically(target: Path, text: str, what: str) -> None:
    """The output module's atomic write (temp file, fsync, rename, fsync the folder), its
    temp file beside the target: a half-written config or unit is never read."""
    from pixcamd.output import atomic_write

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(text.encode("utf-8"), target, target.parent)
    except OSError as exc:
        raise ConfigError(f"{target}: cannot write {what} ({exc.strerror or exc})") from None


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
