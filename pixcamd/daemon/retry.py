"""``pixcamd retry``: queue photos in the ledger again, whether the daemon runs or not.

A running daemon's worker looks at the queue at least once a second, so it picks them up at
once; a stopped one at its next start (its start-up scan leaves a queued row with unchanged
content queued). Every re-queued row keeps its outbox path, so a photo that was shipped has its
copy replaced by one atomic rename; the ledger's events table keeps the history (a ``retry``
event per photo with what it was: state, verdict, model, fingerprint).

Selections: explicit inbox paths (each must be in the ledger: otherwise nothing is queued and
the error names them), ``failed``, ``unprotected``, ``model_changed`` — every shipped photo
whose recorded model fingerprints differ from the models the daemon uses now (e.g. protected
against the BRISQUE fallback before KonCept512's weights were installed) — and
``platforms_changed`` — every shipped photo whose copy was not judged on every platform the
daemon protects for now, by definition (its spec), not by name: a destination added to
``platforms``, or a ``[pipelines.NAME]`` table given another size or quality since — and
``metadata_changed`` — every shipped or held-back copy made with other metadata settings
(``strip_gps``, ``strip_metadata``) than the config's: what each copy was made with is
recorded in its report (``copy_metadata``); a copy made before it was recorded is told by its
settings fingerprint where that is one the daemon computed for its settings now with each of
the three metadata choices (``metadata_fingerprints`` in its record), else redone, said so.

``stronger``: a retry with a larger budget for that one attempt — ε and its cap doubled (at
least +2 and +4 grey levels, so that a budget of 0 grows too; at most 64, the schema's limit)
and twice the steps per round. It is recorded on the row
(``budget``) and in its report, never in its settings fingerprint: the fingerprint stays the
config's, so a later rescan does not take the row for one made with other settings and redo
it with the ordinary budget. The web page and ``pixcamd retry --stronger`` share it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pixcamd.daemon.config import Config
from pixcamd.daemon.events import clock
from pixcamd.daemon.ledger import Ledger
from pixcamd.daemon.ledger_row import Row, judged_specs
from pixcamd.defaults import expand_home
from pixcamd.errors import PixcamdError


class RetryError(PixcamdError):
    """A retry that cannot be done as asked; nothing was queued."""


@dataclass
class Plan:
    queue: list[tuple[Row, str]] = field(default_factory=list)  # (row, why)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why not)
    refused: int = 0  # photos named by path among the skipped: the command then exits 1


def names(config: Config, path: str) -> list[str]:
    """The inbox paths, as the ledger names them (relative, POSIX), that ``path`` may mean,
    likeliest first. An absolute path must lie inside the inbox. A relative one is read where
    the user stands when that is inside the inbox (``cd inbox/2019 && pixcamd retry
    IMG_1.jpg``) or when it names a file there from outside it (``pixcamd retry
    inbox/2019/IMG_1.jpg``), and relative to the inbox as well (``2019/IMG_1.jpg`` from
    anywhere)."""
    candidate = Path(expand_home(path, "the photo's path"))
    if candidate.is_absolute():
        found = _under(config.inbox, candidate)
        if found is None:
            raise RetryError(f"{path}: not inside the inbox {config.inbox}")
        return [found]
    try:
        here = Path(os.path.abspath(candidate))
    except OSError:  # the shell's folder was deleted (a sync tool): the inbox's reading alone
        return [Path(path).as_posix()]
    mine = _under(config.inbox, here)
    if mine is not None and os.path.lexists(here):
        return [mine]  # a file in the inbox where the user points: that one, no other
    standing = mine is not None and _under(config.inbox, Path.cwd()) is not None
    return list(dict.fromkeys([*([mine] if standing else []), Path(path).as_posix()]))


def _under(folder: Path, full: Path) -> str | None:
    """``full`` relative to ``folder`` (as written, or with it resolved), if inside."""
    try:
        full = Path(os.path.abspath(full))
    except OSError:  # relative, and the current folder is gone
        return None
    for base in (folder, folder.resolve()):
        try:
            return full.relative_to(Path(os.path.abspath(base))).as_posix()
        except ValueError:
            continue
    return None


def rows_for(config: Config, ledger: Ledger, paths: list[str]) -> list[Row]:
    """The ledger's rows for inbox paths (``names``) or the paths of their copies in the
    outbox; every path must be known, or nothing is done (``retry``, ``ship``, ``remove``)."""
    rows, missing = [], []
    for path in paths:
        copy = _under(config.outbox, Path(expand_home(path, "the photo's path")))
        owner = ledger.output_owner(copy, "") if copy is not None else None
        tried = [owner] if owner is not None else names(config, path)
        row = next((r for r in map(ledger.get, tried) if r is not None), None)
        if row is None:  # typed é where the synced name holds e + ◌́, or the other way
            row = next((r for r in map(ledger.get_spelled, tried) if r is not None), None)
        if row is None:
            missing.append(tried[0])
        else:
            rows.append(row)
    if missing:
        raise RetryError(
            "not in the ledger (the daemon has never seen them; `pixcamd status` lists what it "
            "has): " + ", ".join(missing)
        )
    return rows


# What a copy keeps of the photo's metadata, most first: ``metadata_mode``'s answers
METADATA_MODES = ("keep_gps", "strip_gps", "strip_metadata")
_MODE_WORDS = {
    "keep_gps": "keeping the GPS position (strip_gps = false)",
    "strip_gps": "without the GPS position, the other metadata kept (strip_gps = true)",
    "strip_metadata": "with no metadata (strip_metadata = true)",
}


def metadata_mode(strip_gps: bool, strip_metadata: bool) -> str:
    """The metadata a copy is made with, in one word (strip_metadata removes the position with
    the rest, whatever strip_gps says: one copy, one record — as the settings fingerprint)."""
    if strip_metadata:
        return "strip_metadata"
    return "strip_gps" if strip_gps else "keep_gps"


def config_metadata(config: Config) -> str:
    return metadata_mode(config.strip_gps, config.strip_metadata)


def metadata_fingerprints(settings, models) -> dict[str, str]:
    """fingerprint → ``metadata_mode`` for ``settings`` with each metadata choice: what the
    daemon records (``metadata_fingerprints``) and ``copy_metadata`` tells a copy by."""
    from pixcamd.daemon.settings import settings_fingerprint

    return {
        settings_fingerprint(settings, models, gps, everything): metadata_mode(gps, everything)
        for gps, everything in ((True, False), (False, False), (True, True))
    }


def copy_metadata(report: dict | None, fingerprint: str | None, known: dict) -> str | None:
    """The metadata ``metadata_mode`` a row's copy was made with: its report's record, else
    its settings fingerprint among ``known`` (fingerprint → mode: the daemon's settings with
    each choice, ``metadata_fingerprints``); None where neither tells (made before it was
    recorded, with other settings too)."""
    recorded = report.get("copy_metadata") if isinstance(report, dict) else None
    if recorded in METADATA_MODES:
        return recorded
    return known.get(fingerprint) if fingerprint else None


def describe_metadata(mode: str) -> str:
    return _MODE_WORDS[mode]


def plan(
    config: Config,
    ledger: Ledger,
    paths: list[str] = (),
    failed: bool = False,
    unprotected: bool = False,
    model_changed: bool = False,
    fingerprints: set[str] | None = None,
    rows: Iterable[Row] = (),
    platforms_changed: bool = False,
    specs: dict[str, str] | None = None,
    metadata_changed: bool = False,
    known: dict | None = None,
    stronger: bool = False,
) -> Plan:
    """What ``retry`` will queue and why; ``fingerprints``: the models the daemon uses now;
    ``specs``: its platforms now, spec → name; ``rows``: photos asked for by their ledger rows
    (the web page), not by a path to read; ``metadata_changed``: copies made with other
    metadata settings than the config's (``known``: ``copy_metadata``'s); ``stronger``: asked
    with a larger budget.

    A photo named that is already queued is skipped, said so, but is no refusal: it will be
    protected, as asked (a photo put back into the inbox, queued by the daemon before the
    retry) — unless a stronger retry was asked and it is queued with the ordinary budget, or it
    waits a failed attempt's retry (its attempts are not reset under the worker). One being
    protected right now is refused: this attempt began before the retry (a reload's
    settings apply from the next photo)."""
    result = Plan()
    asked = [*rows_for(config, ledger, paths), *rows]
    chosen = {row.id: (row, "asked for") for row in asked}
    # a batch of lean rows at a time (a library's ledger holds tens of thousands of reports)
    for state, wanted in (("failed", failed), ("unprotected", unprotected)):
        if wanted:
            for row, _ in ledger.lean_rows(state):
                chosen.setdefault(row.id, (row, state))
    if model_changed or platforms_changed:
        assert not model_changed or fingerprints is not None
        assert not platforms_changed or specs is not None
        for row, recorded in ledger.lean_rows("done"):
            if not row.output:
                continue  # a rename of a shipped photo: its original is the one redone
            why = _changed(recorded, fingerprints if model_changed else None, specs or {})
            if why:
                chosen.setdefault(row.id, (row, why))
    if metadata_changed:
        now = config_metadata(config)
        for state in ("done", "unprotected"):
            for row, recorded in ledger.lean_rows(state):
                if not (row.output or (state == "unprotected" and row.held)):
                    # no copy of its own: a rename's original, one held with none kept (one
                    # unprotected shipped all the same, on_unprotected = "ship" or a person's
                    # ship, is in the outbox with the metadata it was made with: redone)
                    continue
                made = copy_metadata(recorded, row.fingerprint, known or {})
                if made != now:
                    why = (
                        "its metadata settings were not recorded"
                        if made is None
                        else (f"made {describe_metadata(made)}")
                    )
                    chosen.setdefault(row.id, (row, why))
    for row, why in sorted(chosen.values(), key=lambda item: item[0].id):
        refusal = why == "asked for"  # a photo named; what the flags find and skip is not
        if row.state == "processing":
            skipped = "being protected right now"
        elif row.state == "queued" and row.attempts:
            # a failed attempt's retry, waiting its delay: not the fresh try asked for, and a
            # photo in the queue is left as it is (the worker may take it at any instant)
            at = f" at {clock(row.not_before)}" if row.not_before > time.time() else ""
            skipped = (
                f"already queued for its attempt {row.attempts + 1}{at}, after: "
                f"{row.error or 'a failure'} — retry it once it is done or failed"
            )
        elif row.state == "queued":
            skipped = "already queued"
            if stronger and not row.budget:
                skipped += " (with the ordinary budget: retry it --stronger once it is done)"
            else:
                refusal = False  # it will be protected, as asked
        elif not os.path.lexists(config.inbox / row.path):
            skipped = "no longer in the inbox: nothing to protect"
        else:
            result.queue.append((row, why))
            continue
        result.skipped.append((row.path, skipped))
        result.refused += refusal
    return result


def _changed(recorded: dict, fingerprints: set[str] | None, specs: dict[str, str]) -> str:
    """Why a shipped copy is redone (``""``: it is not): other models than ``fingerprints``
    (None: not asked), or not judged on every platform of ``specs`` (empty: not asked)."""
    if fingerprints is not None:
        used = _models_of(recorded)
        if used != fingerprints:
            return f"protected against {', '.join(sorted(used)) or 'not recorded'}"
    if specs:
        judged = set(judged_specs(recorded).values())
        if not judged:  # a report that names none (an older pixcamd's): redone, said so
            return "its platforms were not recorded"
        missing = [named_spec(spec, name) for spec, name in specs.items() if spec not in judged]
        if missing:
            return f"not judged on {', '.join(missing)}"
    return ""


def stronger(config: Config) -> dict:
    """The larger budget of a stronger retry, from the config in force."""
    if config.executor != "ray":
        eps, cap = config.epsilon, config.epsilon_cap
        return {
            "epsilon": min(64.0, max(2 * eps, eps + 2)),
            "epsilon_cap": min(64.0, max(2 * cap, cap + 4)),
            "steps": 2 * config.steps,
        }
    # the cluster's workers get their options once, at connection: no per-photo budget there
    raise RetryError(
        'a stronger retry runs only with executor = "local" (the Ray workers take one budget '
        "for every photo); retry without --stronger, or raise epsilon_cap in the config"
    )


def held_hint(name: str, executor: str | None, kept: bool) -> str:
    """What a person can do about a photo held back (the daemon's log line, `status`): a
    stronger retry (not on a Ray cluster: ``stronger``), and shipping the copy kept — only where
    one was (``hold_dir``)."""
    steps = [f"`pixcamd retry --stronger {name}` tries a larger budget"] * (executor != "ray")
    if kept:
        steps.append(f"`pixcamd ship {name}` shares it unprotected")
    else:
        steps.append("set hold_dir to keep the best attempt for `pixcamd ship`")
    return ", ".join(steps)


def describe_budget(budget: dict) -> str:
    """``ε 8, cap 16, 80 steps per round``: a stronger retry's budget in words."""
    return (
        f"ε {budget['epsilon']:g}, cap {budget['epsilon_cap']:g}, {budget['steps']} steps per round"
    )


def _models_of(report: dict) -> set[str]:
    return {m.get("fingerprint") for m in report.get("models") or [] if m.get("fingerprint")}


def named_spec(spec: str, name: str) -> str:
    """``shop (long400-q70)``; an inline spec is its own name."""
    return name if name == spec else f"{name} ({spec})"


def apply(
    ledger: Ledger,
    queued: list[tuple[Row, str]],
    now: float | None = None,
    budget: dict | None = None,
    via: str = "pixcamd retry",
    log=None,
) -> None:
    """Queue them all in one transaction, with one ``retry`` event each (the history);
    ``budget``: a stronger retry's (``stronger``). ``log``: the daemon's event log, where the
    retry is asked inside its process (its page): the events are said through it — the JSON
    log, stderr (the journal, a container's log) and the ledger, as its own and as the page's
    ship and remove are — once the photos are queued, before any event of the daemon's worker
    about them (``EventLog.ordered``); from a shell, in the ledger alone."""
    now = time.time() if now is None else now
    larger = ""
    if budget:
        larger = f", stronger: {describe_budget(budget)}"
    events = [
        (
            now,
            "info",
            "retry",
            row.path,
            {
                "message": f"queued again by {via} ({why}{larger})",
                "budget": budget,
                "was": {
                    "state": row.state,
                    "verdict": row.verdict,
                    "model": row.model,
                    "fingerprint": row.fingerprint,
                    "output": row.output,
                    "error": row.error,
                    "finished_at": row.finished_at,  # `status`'s last hour counts it on
                    "duplicate_of": row.duplicate_of,  # which it does not (as before the retry)
                },
            },
        )
        for row, why in queued
    ]
    if log is None:
        ledger.requeue_many([row.id for row, _ in queued], budget, events)
        return
    # the commit and its events in the log's one order: the worker may take a photo the instant
    # it is queued, and its `started` then waits for the `retry` (before: it could come first);
    # said only once committed, so a commit that fails says nothing
    with log.ordered():
        ledger.requeue_many([row.id for row, _ in queued], budget)
        for _, level, event, path, data in events:
            fields = {k: v for k, v in data.items() if k != "message"}
            log.emit(event, path, data["message"], level=level, **fields)
