"""What a reload (SIGHUP, ``systemctl reload``) may change, and how to say what it changed.

Settings that shape protection — the model and its weights, device and threads, the mode,
views, platforms and budget, targets, output and retry settings — take effect from the next
photo; the queue is kept and the photo being protected finishes with the settings it started
with. Folders and what is watched (inbox, outbox, state, temp, log and hold folders, settling
times, rescans, extensions, ignore patterns) shape the watcher and the ledger themselves, the
web page's socket and token are set up once, and the process priority can only be lowered: a
reload that changes one of them is refused as a whole, naming them, and a restart applies them.
"""

from __future__ import annotations

from typing import Any

from pixcamd.daemon.config import Config, ConfigError, load_config
from pixcamd.daemon.config_toml import toml_value
from pixcamd.daemon.schema import SCHEMA
from pixcamd.daemon.settings import build_settings, load_models, model_device
from pixcamd.errors import PixcamdError


class Refused(Exception):
    """A reload that cannot be applied, and why: the settings in force stay."""


def prepare(old: Config, injected_models=None) -> tuple:
    """Everything a reload asks for, in hand before anything changes: ``(config, changes,
    models, note, fallback, settings)``; ``Refused`` says why not."""
    try:
        new = load_config(old.named, missing="the daemon started with it: moved or deleted since")
    except ConfigError as exc:
        raise Refused(f"the config does not validate: {exc}") from None
    except Exception as exc:  # a reload never takes a running daemon down
        raise Refused(f"the config could not be read: {exc!r}") from None
    changed = changes(old, new)
    restart = needs_restart(changed)
    if restart:
        raise Refused(
            f"{', '.join(restart)} changed: a restart applies "
            f"{'that' if len(restart) == 1 else 'those'} (nothing was changed now)"
        )
    try:
        models, note, fallback = load_models(new, injected_models)
    except (PixcamdError, OSError, RuntimeError, ValueError) as exc:
        raise Refused(f"the models could not be loaded: {exc}") from None
    try:
        settings = build_settings(new, models, model_device(models))
    except ConfigError as exc:
        raise Refused(str(exc)) from None
    return new, changed, models, note, fallback, settings


RESTART_KEYS = (
    "inbox",
    "outbox",
    "state_dir",
    "tmp_dir",
    "log_file",
    "hold_dir",
    "settle_time",
    "settle_timeout",
    "rescan_interval",
    "extensions",
    "ignore",
    "priority",  # an unprivileged process can lower its priority, never raise it again
    "executor",  # another kind of worker thread (the ray_* keys apply on a reload)
    "web",  # the page's socket is bound once
    "web_token",
)


# path keys → the folder or file each names: "in/" and "in", "~/x" and "/home/me/x", an
# empty state_dir and its default spelled out are the same place, no change to restart for
PLACES = {
    "inbox": "inbox",
    "outbox": "outbox",
    "state_dir": "state_dir",
    "log_file": "log_file",
    "tmp_dir": "tmp_dir_setting",
    "hold_dir": "hold_dir",
    "weights": "weights_path",
}


def changes(old: Config, new: Config) -> dict[str, tuple[Any, Any]]:
    """key → (old, new) for every key whose value differs, in the schema's order."""
    before, after = old.values(), new.values()

    def same(key: str) -> bool:
        if key == "log_file" and not before[key] and not after[key]:
            return True  # beside the state dir, wherever that is: its own change is said
        if key in PLACES:
            return getattr(old, PLACES[key]) == getattr(new, PLACES[key])
        return before.get(key) == after.get(key)

    return {o.key: (before[o.key], after[o.key]) for o in SCHEMA if not same(o.key)}


def needs_restart(changed: dict[str, tuple[Any, Any]]) -> list[str]:
    return [key for key in changed if key in RESTART_KEYS]


def one_line(why: str) -> str:
    """A config's problems come one per line; a log line is one line: "…: a; b; c"."""
    first, *rest = [line.strip() for line in why.splitlines() if line.strip()] or [""]
    return " ".join([first, "; ".join(rest)]) if rest else first


def describe(
    changed: dict[str, tuple[Any, Any]],
    models: tuple[list, list] = ([], []),
    added: list[str] = (),
) -> str:
    """``model "auto" → "koncept512"; epsilon 4 → 6`` — or that nothing in the file changed.
    ``models``: the models' fingerprints before and after; an unchanged file can still bring
    others (``auto`` finding weights installed since, weights replaced at the same path).
    ``added``: platforms protected for now that were not before (by what they do, not how
    they are written): the copies already shipped were not judged on them."""
    before, after = models
    swapped = (
        f"the models changed: {', '.join(before)} → {', '.join(after)} (copies already shipped "
        "were made against the models before: `pixcamd retry --model-changed` protects them "
        "again)"
    )
    if not changed:
        if before != after:
            return f"the config is unchanged, {swapped}"
        return "the config is unchanged (the models and weights were read again)"
    said = "; ".join(f"{k} {toml_value(a)} → {toml_value(b)}" for k, (a, b) in changed.items())
    if added:
        said += (
            f" (copies already shipped were not judged on {', '.join(added)}: `pixcamd retry "
            "--platforms-changed` protects them for the platforms now)"
        )
    if {"strip_gps", "strip_metadata"} & changed.keys():
        said += (
            " (copies already shipped keep the metadata they were made with: `pixcamd retry "
            "--metadata-changed` makes them again with the settings now)"
        )
    return said if before == after else f"{said}; {swapped}"
