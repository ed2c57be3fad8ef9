"""The checks of the daemon's configuration that read several keys together, for
``pixcamd.daemon.config.validate`` (which prefixes each problem with the file): the platforms
and their ``[pipelines.NAME]`` tables, the cluster keys, the web page's address and token (read
by the page too: ``parse_web``, ``is_loopback``), and the folders' layout — none overlapping,
each of its kind, a temp folder that holds nothing of value. The folders' checks read a
``pixcamd.daemon.config.Folders``: the folder settings as absolute paths.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pixcamd.daemon.config_toml import toml_value
from pixcamd.daemon.schema import KEYS
from pixcamd.errors import PixcamdError
from pixcamd.output import nearest_existing
from pixcamd.platform_specs import from_table, parse_platforms
from pixcamd.platforms import PRESETS, Pipeline, PipelineError


def custom_pipelines(values: dict[str, Any]) -> dict[str, Pipeline]:
    """The ``[pipelines.NAME]`` tables that validated, as pipelines."""
    return {name: from_table(name, table) for name, table in values.get("pipelines", {}).items()}


def platform_problems(values: dict[str, Any], tables: Any) -> list[str]:
    """Every entry of ``platforms`` resolves (each reported), and every ``[pipelines.NAME]`` is
    named there. A table that does not validate has its own problems, under its keys."""
    tables = tables if isinstance(tables, dict) else {}
    custom = custom_pipelines(values)
    problems = []
    unusable = {n.lower() for n in tables if n not in custom}  # their own problems are said
    for name in values["platforms"]:
        if name.lower() in unusable:
            continue
        try:
            parse_platforms([name], custom)
        except PipelineError as exc:
            problems.append(f"platforms: {exc}")
    named = {n.lower() for n in values["platforms"]}
    for name in tables:  # nothing configured is silently left unused
        if name.lower() not in named and name.lower() not in PRESETS:  # (a preset's: said)
            problems.append(
                f"pipelines.{name}: defined but not named in platforms; add "
                f"{toml_value(name)} to platforms, or remove the table"
            )
    return problems


RAY_KEYS = ("ray_address", "ray_workers", "ray_threads", "ray_fallback")


def cluster_problems(values: dict[str, Any]) -> list[str]:
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


def _kind_problems(config) -> list[str]:
    """A folder setting that names a file (or a folder under a file), a log file that names a
    folder: said here, by key, not as an OSError when the daemon starts (or a photo is held)."""
    problems = []
    for key, path, folder in (
        ("outbox", config.outbox, True),
        ("state_dir", config.state_dir, True),
        ("tmp_dir", config.tmp_dir_setting, True),
        ("hold_dir", config.hold_dir, True),
        ("log_file", config.log_file, False),
    ):
        if path is None:
            continue
        if folder and os.path.exists(path) and not os.path.isdir(path):
            problems.append(f"{key}: {path} exists and is not a folder")
        elif not folder and os.path.isdir(path):
            problems.append(f"{key}: {path} is a folder; name a file")
        elif not os.path.exists(path):
            above = nearest_existing(path)
            if not os.path.isdir(above):
                problems.append(f"{key}: {path} cannot be created: {above} is not a folder")
    return problems


def layout_problems(config) -> list[str]:
    """The folders must not overlap: outputs are never re-ingested, originals never shipped."""
    problems = []
    if not config.inbox.is_dir():
        what = "is not a folder" if config.inbox.exists() else "does not exist"
        problems.append(f"inbox: {config.inbox} {what}")
    problems += _kind_problems(config)
    # realpath, not resolve(): a symlink loop is an overlap question answered, not a crash
    inbox, outbox = Path(os.path.realpath(config.inbox)), Path(os.path.realpath(config.outbox))
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
        real = Path(os.path.realpath(path))
        if _inside(real, inbox):
            problems.append(f"{key}: {path} is inside the inbox {config.inbox}")
        if _inside(real, outbox):
            problems.append(
                f"{key}: {path} is inside the outbox {config.outbox}; the uploader must see "
                "nothing there but finished copies"
            )
    problems += _tmp_dir_problems(config)
    return problems


def _tmp_dir_problems(config) -> list[str]:
    """The temp folder is emptied of dead attempts at every start: a folder that holds the
    photos or the record (the folder above the inbox and outbox, the state dir) is refused."""
    if config.tmp_dir_setting is None:
        return []
    tmp = Path(os.path.realpath(config.tmp_dir_setting))
    problems = []
    for key, path in (
        ("inbox", config.inbox),
        ("outbox", config.outbox),
        ("state_dir", config.state_dir),
        ("hold_dir", config.hold_dir),
        ("log_file", config.log_file),
    ):
        real = Path(os.path.realpath(path)) if path is not None else None
        said = key in ("inbox", "outbox") and real is not None and _inside(tmp, real)
        if real is not None and _inside(real, tmp) and not said:  # said: "is inside the …"
            problems.append(
                f"tmp_dir: {config.tmp_dir_setting} holds the {key.replace('_', ' ')} {path}; "
                "it is a work folder of its own (for copies being written, on the outbox's "
                "mount): name an empty folder beside them, e.g. "
                f"{Path(config.tmp_dir_setting) / 'pixcamd-tmp'}"
            )
    return problems
