"""The config's own pipelines for the command line: ``pixcamd score --platforms myblog`` and
``pixcamd protect --platforms myblog`` find ``[pipelines.myblog]`` in the config ``pixcamd run``
reads, and ``--config FILE`` with no ``--platforms`` judges for that file's ``platforms``. Only
those two are judged here, so a config whose folders are on another machine, or a file that
holds nothing but pipelines, still names its pipelines."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pixcamd.daemon import values as read
from pixcamd.daemon.config import ConfigError, locate_config, read_config_text, read_toml
from pixcamd.daemon.config_hints import misplaced
from pixcamd.daemon.schema import KEYS
from pixcamd.platform_specs import from_table
from pixcamd.platforms import Pipeline


@dataclass(frozen=True)
class ConfigPipelines:
    custom: dict[str, Pipeline]  # the [pipelines.NAME] tables
    platforms: list[str]  # its platforms list (the daemon's default set where none is given)
    source: Path
    how: str  # why that file: --config, $PIXCAMD_CONFIG, your user config, the system config


def config_pipelines(
    path: str | os.PathLike | None = None, optional: bool = False
) -> ConfigPipelines | None:
    """The pipelines of the config found as ``run`` finds it (``path``: the ``--config``
    given); None where ``optional`` and there is no config at all. ``ConfigError`` names each
    problem of those keys."""
    where, how = locate_config(path)
    if optional and how.endswith("(not created yet)"):
        return None
    text = read_config_text(where, how)
    # `platforms` written below a [pipelines.NAME] is that table's to TOML: said where it goes
    raw, placed, _ = misplaced(read_toml(text, where), text)
    problems = [p for p in placed if p.partition(":")[0] in ("pipelines", "platforms")]
    try:
        tables = read.pipelines(raw.get("pipelines", {}))
    except ValueError as exc:
        tables = {}
        for p in getattr(exc, "problems", None) or [str(exc)]:
            problems.append(f"pipelines{'' if p.startswith('.') else ': '}{p}")
    try:
        platforms = read.platform_names(raw.get("platforms", KEYS["platforms"].default))
    except ValueError as exc:
        platforms = []
        problems.append(f"platforms: {exc}")
    if problems:
        raise ConfigError(f"{where}: its pipelines cannot be used:", problems)
    custom = {name: from_table(name, table) for name, table in tables.items()}
    return ConfigPipelines(custom, platforms, where, how)
