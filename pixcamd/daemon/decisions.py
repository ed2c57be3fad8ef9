"""A person's decisions on finished photos: ship a held-back photo anyway, take a copy back out
of the outbox. One implementation for the CLI (``pixcamd ship``, ``pixcamd remove``) and the
web page, whether the daemon runs or not.

Both first ``take`` the row (compare-and-set to ``processing``, no attempt counted), so the
worker never works on it meanwhile and two people deciding at once cannot both act. The
decision is recorded on the row (``decision``: what, when, from where) and as an event.

* **ship**: only a photo held back as ``unprotected`` whose best attempt was kept in
  ``hold_dir`` (without one there are no bytes to ship: retry it, stronger if need be). The
  held copy goes to the outbox by the daemon's own exactly-once publication (staged in its temp
  folder, recorded, renamed), under the name the daemon would give it; the held file is then
  removed (it has moved). The row stays ``unprotected`` — a decision does not change a verdict
  — with its outbox path, as ``on_unprotected = "ship"`` leaves it.
* **remove**: the copy is deleted from the outbox (only a file under the outbox; a symlink is
  removed itself, never followed) and the row forgets its output. The photo stays known with
  its verdict, so rescans do not protect it again; ``pixcamd retry`` does.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from pixcamd.daemon.config import Config
from pixcamd.daemon.fs import choose_tmp_dir, file_inside, fsync_dir, inside
from pixcamd.daemon.ledger import Ledger
from pixcamd.daemon.ledger_row import Row
from pixcamd.daemon.publication import commit_publication, output_name
from pixcamd.errors import PixcamdError


class DecisionError(PixcamdError):
    """A decision that cannot be carried out as asked; nothing was changed."""


_STATES = {
    "done": "protected",
    "failed": "failed (no copy was made)",
    "queued": "queued again",
    "processing": "being protected",
}


def decided(row: Row) -> str | None:
    """What a person last decided on ``row`` ("shipped", "removed"), if anything."""
    return row.decision.get("action") if isinstance(row.decision, dict) else None


def _held_file(config: Config, row: Row) -> Path:
    """The held copy of ``row``, only if it is a plain file inside the hold folder."""
    if config.hold_dir is None:
        raise DecisionError(
            f"{row.path}: no hold_dir is configured, so no copy was kept to ship; retry it "
            "(--stronger for a larger budget), or set hold_dir for the next ones"
        )
    real = file_inside(row.held, config.hold_dir)
    if real is None:
        raise DecisionError(f"{row.path}: its held copy {row.held} is gone from {config.hold_dir}")
    return real


def ship(config: Config, ledger: Ledger, row: Row, via: str, now: float | None = None) -> Row:
    """Publish a held-back photo's kept copy to the outbox: the person's decision."""
    now = time.time() if now is None else now
    if row.state != "unprotected" or row.output:
        label = _STATES.get(row.state, row.state)
        if row.state == "failed" and row.output:  # gone from the inbox; its earlier copy stays
            label = "failed (an earlier version's copy stays in the outbox)"
        what = (
            f"is {label}, not held back"
            if row.state != "unprotected"
            else "is shipped already (its copy is in the outbox)"
        )
        raise DecisionError(f"{row.path}: {what}; only a photo held back can be shipped anyway")
    if not row.held and decided(row) == "removed":
        raise DecisionError(
            f"{row.path}: its copy was taken back out of the outbox by your decision, and no "
            "held copy is left; retry it to make a new one (--stronger for a larger budget)"
        )
    if not row.held:
        raise DecisionError(
            f"{row.path}: no copy of it was kept (hold_dir was not set when it was held back); "
            "retry it instead (--stronger for a larger budget)"
        )
    held = _held_file(config, row)
    data = held.read_bytes()
    taken = ledger.take(row.id, ("unprotected",))
    if taken is None:
        raise DecisionError(f"{row.path}: it changed meanwhile (retried or re-queued); look again")
    decision = {"action": "shipped", "at": now, "via": via, "held": row.held}
    staged = None
    try:
        tmp = choose_tmp_dir(config)
        out_rel = output_name(ledger, taken, root=config.outbox)
        staged = tmp / f"ship-{row.id}-{os.getpid()}.jpg"
        done = commit_publication(
            ledger,
            row.id,
            data,
            staged,
            config.outbox,
            out_rel,
            "unprotected",
            {"decision": decision},
        )
    except BaseException as exc:
        ledger.release(row.id, "unprotected")  # as it was: held, not shipped
        if staged is not None:
            with contextlib.suppress(OSError):
                staged.unlink()
        if isinstance(exc, OSError):  # an outbox this user cannot write, a folder in the way
            raise DecisionError(
                f"{row.path}: cannot write its copy to the outbox ({exc.strerror or exc}); "
                "nothing was shipped"
            ) from None
        raise
    with contextlib.suppress(OSError):  # it has moved to the outbox
        held.unlink()
    ledger.add_event(
        now,
        "warning",
        "shipped_unprotected",
        row.path,
        {
            "message": f"NOT protected, shipped anyway by your decision ({via}) → {out_rel}",
            "output": out_rel,
            "decision": decision,
        },
    )
    return done


def remove(config: Config, ledger: Ledger, row: Row, via: str, now: float | None = None) -> Row:
    """Delete ``row``'s copy from the outbox and forget it; the photo keeps its verdict."""
    now = time.time() if now is None else now
    if row.state in ("queued", "processing"):
        raise DecisionError(f"{row.path}: it is being protected right now; try again after")
    if not row.output:
        raise DecisionError(f"{row.path}: it has no copy in the outbox")
    outbox = Path(os.path.realpath(config.outbox))
    target = config.outbox / row.output
    # the folder the copy lies in, resolved; the file itself is never followed
    parent = Path(os.path.realpath(target.parent))
    if not inside(parent, outbox) or target.name in ("", ".", ".."):
        raise DecisionError(f"{row.path}: its output {row.output} is not inside the outbox")
    taken = ledger.take(row.id, (row.state,))
    if taken is None:
        raise DecisionError(f"{row.path}: it changed meanwhile (retried or re-queued); look again")
    decision = {"action": "removed", "at": now, "via": via, "output": row.output}
    try:
        gone = True
        try:
            (parent / target.name).unlink()
            fsync_dir(parent)
        except FileNotFoundError:
            gone = False  # the uploader took it already
    except BaseException as exc:
        ledger.release(row.id, row.state)
        if isinstance(exc, OSError):  # an outbox this user cannot write, a folder in the way
            raise DecisionError(
                f"{row.path}: cannot delete its copy {row.output} from the outbox "
                f"({exc.strerror or exc}); it is still there"
            ) from None
        raise
    done = ledger.release(row.id, row.state, output=None, decision=decision)
    what = "removed from the outbox" if gone else "already gone from the outbox (forgotten)"
    ledger.add_event(
        now,
        "info",
        "removed",
        row.path,
        {"message": f"{row.output}: {what} by your decision ({via})", "decision": decision},
    )
    return done
