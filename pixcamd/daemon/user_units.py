"""The user service of a config: ``pixcamd.service`` runs the user config, ``pixcamd-NAME``
another one (``init --systemd-user``); which unit runs which config here, and the command that
reloads it. ``pixcamd.daemon.init`` writes the config and calls these for its unit."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from pixcamd.daemon.config import (
    SYSTEM_CONFIG,
    ConfigError,
    config_home,
    user_config_path,
)
from pixcamd.defaults import expand_home
from pixcamd.errors import PixcamdError

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
    if config is None or os.path.realpath(config) == user_config():
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
    runs = {other: config_run_by(unit_path(other)) for other in installed_units()}
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
        return UserUnit(USER_UNIT_NAME, unit_path(USER_UNIT_NAME), None, "")
    # a service does not see $PIXCAMD_CONFIG or --config: the file is named in its ExecStart
    target = Path(os.path.abspath(expand_home(os.fspath(path), how)))
    name = unit_of(target)
    flag = f" --config {shlex.quote(str(target))}" if how == "--config" else ""
    return UserUnit(name, unit_path(name), target.resolve(), flag)


def unit_path(name: str) -> Path:
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
    runs = config_run_by(unit.path)
    this = os.path.realpath(unit.config) if unit.config is not None else user_config()
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


def config_run_by(unit: Path) -> str | None:
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
            return user_config()
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
    write_atomically(unit.path, unit.text(), "the user service")
    return replaced


def user_config() -> str | None:
    """The user config's real path; None where this user has no home folder to find it in
    (then any file named is a config of its own)."""
    try:
        return os.path.realpath(user_config_path())
    except PixcamdError:
        return None


def write_atomically(target: Path, text: str, what: str) -> None:
    """The output module's atomic write (temp file, fsync, rename, fsync the folder), its
    temp file beside the target: a half-written config or unit is never read."""
    from pixcamd.output import atomic_write

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(text.encode("utf-8"), target, target.parent)
    except OSError as exc:
        raise ConfigError(f"{target}: cannot write {what} ({exc.strerror or exc})") from None
