"""``pixcamd init``: the user's config file and folders, so that no later command needs a flag.

The config is the documented example (the same schema as config.example.toml) with the user's
inbox and outbox filled in, written where every command looks for it (``locate_config``). It is
validated before anything is written; an existing config is never replaced without ``force``,
and the write is atomic (a half-written config would stop the daemon at its next start).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pixcamd.daemon.config import (
    CONFIG_ENV,
    Config,
    ConfigError,
    locate_config,
    parse_config,
    render_example,
    user_config_path,
)

DEFAULT_INBOX = "~/Pictures/pixcamd-inbox"
DEFAULT_OUTBOX = "~/Pictures/pixcamd-outbox"
HEADER = (
    "# pixcamd daemon configuration, written by `pixcamd init`. Every command (run, status,",
    "# config check) finds it without a flag. Every key below is documented with its default;",
    "# `pixcamd config check` prints the values in force. Reload: restart `pixcamd run`.",
)


@dataclass
class Initialized:
    path: Path
    how: str  # why this path: --config, $PIXCAMD_CONFIG or the user config
    config: Config
    created: list[Path]  # folders that did not exist before, outermost first
    replaced: bool  # an existing config was overwritten (--force)


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
    target = Path(os.path.abspath(os.path.expanduser(target)))
    if target.exists() and not force:
        raise ConfigError(
            f"{target}: a config is already there; `pixcamd config check` shows it "
            "(pixcamd init --force replaces it)"
        )
    if target.exists() and not target.is_file():
        raise ConfigError(f"{target}: exists and is not a file")
    folders = {"inbox": _absolute(inbox), "outbox": _absolute(outbox)}
    for key, folder in folders.items():
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise ConfigError(f"{key}: {folder} exists and is not a folder")
    text = render_example(folders, HEADER)
    created = _make_folder(Path(folders["inbox"]))  # the check wants an inbox that exists
    try:
        config = parse_config(text, target)  # e.g. an outbox inside the inbox: refused here
        created += _make_folder(config.outbox)
        replaced = target.exists()
        _write_atomically(target, text)
    except BaseException:
        for folder in reversed(created):  # a refused init leaves nothing behind
            folder.rmdir()
        raise
    return Initialized(target, how, config, created, replaced)


def _write_atomically(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".toml", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _make_folder(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; the ones created, outermost first."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()][::-1]
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def _absolute(folder: str | os.PathLike) -> str:
    """An absolute path, so the config means the same wherever it is read from."""
    return os.path.abspath(os.path.expanduser(os.fspath(folder)))
