"""The config's own pipelines for the command line: ``pixcamd score --platforms myblog`` and
``pixcamd protect --platforms myblog`` find ``[pipelines.myblog]`` in the config ``pixcamd run``
reads. Only those tables are judged here, so a config whose folders are on another machine, or
one half edited elsewhere, still names its pipelines."""

from __future__ import annotations

import os
from pathlib import Path

from pixcamd.daemon import values as read
from pixcamd.daemon.config import ConfigError, locate_config, read_config_text, read_toml
from pixcamd.platform_specs import from_table
from pixcamd.platforms import Pipeline


def config_pipelines(path: str | os.PathLike | None = None) -> tuple[dict[str, Pipeline], Path]:
    """The ``[pipelines.NAME]`` tables of the config found as ``run`` finds it (``path``: the
    ``--config`` given), as pipelines, and that file; ``ConfigError`` names each problem."""
    where, how = locate_config(path)
    raw = read_toml(read_config_text(where, how), where)
    try:
        tables = read.pipelines(raw.get("pipelines", {}))
    except ValueError as exc:
        problems = getattr(exc, "problems", None) or [str(exc)]
        raise ConfigError(
            f"{where}: its pipelines cannot be used:",
            [f"pipelines{'' if p.startswith('.') else ': '}{p}" for p in problems],
        ) from None
    return {name: from_table(name, table) for name, table in tables.items()}, where
