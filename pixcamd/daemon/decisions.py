"""A person's decisions on finished photos: ship a held-back photo anyway, take a copy back out
of the outbox. One implementation for the CLI (``pixcamd ship``, ``pixcamd remove``) and the
web page, whether the daemon runs or not.

Both first ``take`` the row (compare-and-set to ``processing``, no attempt counted), so the
worker never works on it meanwhile and two people deciding at once cannot both act. The
decision is recorded on the row (``decision``: what, when, from where) and as an event: by the
daemon's own event log where the page inside it decides, else in the ledger and the daemon's
JSON log (``events.append_line``).

* **ship**: only a photo held back as ``unprotected`` whose best attempt was kept in
  ``hold_dir`` (without one there are no bytes to ship: retry it, stronger if need be). The
  held copy goes to the outbox by the daemon's own exactly-once publication (staged in its temp
  folder, recorded, renamed), under the name the daemon would give it; the held file is then
  removed (it has moved). A held copy that keeps more metadata than the config now lets a
  copy keep (held back before ``strip_metadata`` or ``strip_gps`` was turned on) is refused,
  saying how to make a new one (``pixcamd retry``). The row stays ``unprotected`` — a decision
  does not change a verdict — with its outbox path, as ``on_unprotected = "ship"`` leaves it.
* **remove**: the copy is deleted from the outbox (only a file under the outbox; a symlink is
  removed itself, never followed) and the row forgets its output. The photo stays known with
  its verdict, so rescans do not protect it again; ``pixcamd retry`` does.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shlex
import stat
import struct
import time
from pathlib import Path

from pixcamd.daemon.config import Config
from pixcamd.daemon.events import append_line
from pixcamd.daemon.fs import choose_tmp_dir, file_inside, fsync_dir, inside
from pixcamd.daemon.ledger import Ledger
from pixcamd.daemon.ledger_row import Row
from pixcamd.daemon.locks import is_pixcamd
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


def ship(
    config: Config, ledger: Ledger, row: Row, via: str, now: float | None = None, log=None
) -> Row:
    """Publish a held-back photo's kept copy to the outbox: the person's decision. ``log``: the
    daemon's event log, where the decision is taken inside its process (its page)."""
    now = time.time() if now is None else now
    recovered = recover_taken(config, ledger, row)  # a ship or removal a crash left half-made
    row = row if recovered is None else recovered[0]
    if row.state != "unprotected" or row.output:
        label = _STATES.get(row.state, row.state)
        if row.state == "failed" and row.output:  # gone from the inbox; its earlier copy stays
            label = "failed (an earlier version's copy stays in the outbox)"
        if row.earlier_copy:  # a retry held back: the copy in the outbox is an earlier run's
            what = (
                f"has an earlier run's copy in the outbox ({row.earlier_copy}); `pixcamd "
                "remove` it first to ship the held attempt in its place"
            )
        elif row.state != "unprotected":
            what = f"is {label}, not held back"
        else:
            what = "is shipped already (its copy is in the outbox)"
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
    _same_metadata(config, ledger, row, data)
    # The daemon's permissions, not this shell's umask: the copy it held is what it would have
    # published (a service's UMask=0027 keeps copies from other users)
    mode = stat.S_IMODE(held.stat().st_mode)
    decision = {"action": "shipped", "at": now, "via": via, "held": row.held}
    digest = hashlib.sha256(data).hexdigest()
    report = row.report if isinstance(row.report, dict) else {}
    taken = ledger.take(row.id, ("unprotected",), _intent(row, decision))
    if taken is None:
        raise DecisionError(f"{row.path}: it changed meanwhile (retried or re-queued); look again")
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
            # the bytes it ships, recorded: a file that comes under the name later is never
            # taken for this copy (``publication.output_name``)
            {"decision": decision, "report": {**report, "output_sha256": digest}},
            digest=digest,
            mode=mode,
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
    _said(
        config,
        ledger,
        now,
        "warning",
        "shipped_unprotected",
        row.path,
        {
            "message": f"NOT protected, shipped anyway by your decision ({via}) → {out_rel}",
            "output": out_rel,
            "decision": decision,
        },
        log,
    )
    return done


def _same_metadata(config: Config, ledger: Ledger, row: Row, data: bytes) -> None:
    """A held copy that keeps more of the photo's metadata than the config now lets a copy
    keep (held back before strip_metadata, or strip_gps, was turned on) is not shipped: a
    DecisionError saying how to make a new one. What it was made with is its report's record,
    or its settings fingerprint (``retry.copy_metadata``); where neither tells (held by an
    earlier pixcamd with other settings), its bytes: any EXIF, XMP, IPTC or comment, where the
    config now asks for none; a GPS position, where it asks for none."""
    from pixcamd.daemon.retry import (
        METADATA_MODES,
        config_metadata,
        copy_metadata,
        describe_metadata,
    )

    now = config_metadata(config)
    known = ledger.daemon_facts().get("metadata_fingerprints") or {}
    made = copy_metadata(row.report, row.fingerprint, known)
    redo = f"`pixcamd retry {shlex.quote(row.path)}` makes a new one with the settings now"
    if not os.path.lexists(config.inbox / row.path):  # retry skips it: nothing to protect
        redo = f"its photo is no longer in the inbox: put it back there, then {redo}"
    if made is not None and METADATA_MODES.index(made) < METADATA_MODES.index(now):
        raise DecisionError(
            f"{row.path}: its held copy was made with other metadata settings "
            f"({describe_metadata(made)}) than the config's now ({describe_metadata(now)}); "
            f"{redo}; nothing was shipped"
        )
    carried = _metadata_in(data, now) if made is None and now != "keep_gps" else []
    if carried:
        raise DecisionError(
            f"{row.path}: its held copy carries {', '.join(carried)}, made with other metadata "
            f"settings than the config's now ({describe_metadata(now)}); {redo}; nothing was "
            "shipped"
        )


def _metadata_in(data: bytes, now: str) -> list[str]:
    """What a JPEG carries that a copy made with ``now`` would not, by name: beyond its colour
    profile and JFIF density (``strip_metadata``), or a GPS position (``strip_gps``: the one
    the copy's writer would remove, in its EXIF or its XMP)."""
    from pixcamd.metadata.carry import jpeg_parts
    from pixcamd.metadata.exif import patch_exif
    from pixcamd.metadata.segments import split_jpeg
    from pixcamd.metadata.xmp import patch_xmp

    try:
        parts = jpeg_parts(split_jpeg(data)[0])
    except (ValueError, IndexError):  # not a JPEG the daemon wrote: nothing to tell
        return []
    if now == "strip_gps":  # a position the copy's writer removes where strip_gps asks it to
        notes: list[str] = []
        with contextlib.suppress(ValueError, struct.error):  # unreadable: the writer drops it
            notes += patch_exif(parts.exif, (1, 1), strip_gps=True)[1] if parts.exif else []
        notes += patch_xmp(parts.xmp, (1, 1), strip_gps=True)[1] if parts.xmp else []
        return ["a GPS position"] * any("(strip_gps)" in note for note in notes)
    found = [("EXIF", parts.exif), ("XMP", parts.xmp), ("IPTC", parts.photoshop)]
    return [name for name, there in found if there] + ["a comment"] * bool(parts.comments)


def remove(
    config: Config, ledger: Ledger, row: Row, via: str, now: float | None = None, log=None
) -> Row:
    """Delete ``row``'s copy from the outbox and forget it; the photo keeps its verdict.
    ``log``: as for ``ship``."""
    now = time.time() if now is None else now
    recovered = recover_taken(config, ledger, row)
    if recovered is not None:
        row = recovered[0]
        if decided(row) == "removed" and row.output is None:
            return row  # an interrupted removal of it, finished just now
    if row.state in ("queued", "processing"):
        raise DecisionError(f"{row.path}: {_busy(row)}")
    if not row.output:
        raise DecisionError(f"{row.path}: it has no copy in the outbox")
    parent, name = _copy_place(config, row.path, row.output)
    decision = {"action": "removed", "at": now, "via": via, "output": row.output}
    taken = ledger.take(row.id, (row.state,), _intent(row, decision))
    if taken is None:
        raise DecisionError(f"{row.path}: it changed meanwhile (retried or re-queued); look again")
    try:
        gone = True
        try:
            (parent / name).unlink()
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
    return _removed(config, ledger, row.id, row.path, row.state, decision, gone, now, log)


def _busy(row: Row) -> str:
    """Why a copy cannot be taken out now: the worker's or another decision's photo. A queued
    one would bring a copy back once protected; taken out of the inbox, it is forgotten."""
    if row.state == "queued" and row.output:
        return (
            f"it is queued to be protected again, and its copy {row.output} is replaced once "
            "that is done: remove it then (`pixcamd status` shows the queue)"
        )
    if row.state == "queued":
        return (
            "it is queued to be protected and has no copy in the outbox yet: take the photo "
            "out of the inbox to keep it from being shared, or remove its copy once it is done"
        )
    if row.taken is not None:
        return "another ship or remove of it is under way right now; look again once it is done"
    return "it is being protected right now; remove its copy once that is done"


def _removed(config, ledger, row_id, path, state, decision, gone, now, log=None) -> Row:
    done = ledger.release(row_id, state, output=None, decision=decision)
    what = "removed from the outbox" if gone else "already gone from the outbox (forgotten)"
    via, output = decision["via"], decision["output"]
    _said(
        config,
        ledger,
        now,
        "info",
        "removed",
        path,
        {"message": f"{output}: {what} by your decision ({via})", "decision": decision},
        log,
    )
    return done


def _said(config: Config, ledger: Ledger, now, level, event, path, data, log=None) -> None:
    """A decision's event, where the daemon's own are: taken inside the daemon's process (its
    page), by the daemon's ``log`` — the JSON log, stderr (the journal, a container's log) and
    the ledger, as any event of its own; from a shell, the ledger (`status`, the page) and the
    JSON log file (``events.append_line``), whose stderr is the shell's."""
    if log is not None:
        fields = {k: v for k, v in data.items() if k != "message"}
        log.emit(event, path, data.get("message", ""), level=level, **fields)
        return
    ledger.add_event(now, level, event, path, data)
    append_line(config.log_file, now, level, event, path, data)


def _copy_place(config: Config, path: str, output: str) -> tuple[Path, str]:
    """The folder ``output`` lies in, resolved, and its name — the file itself is never
    followed; DecisionError where that is not inside the outbox."""
    outbox = Path(os.path.realpath(config.outbox))
    target = config.outbox / output
    parent = Path(os.path.realpath(target.parent))
    if not inside(parent, outbox) or target.name in ("", ".", ".."):
        raise DecisionError(f"{path}: its output {output} is not inside the outbox")
    return parent, target.name


# This process's decisions are in progress, never a crash's: the page decides in a pool of
# threads (a second click must not undo the first), and a restarted daemon in a container can
# have its dead predecessor's pid.
_PROCESS = secrets.token_hex(8)


def _intent(row: Row, decision: dict) -> dict:
    """What ``take`` keeps: enough to finish or undo the decision after a crash."""
    pid = os.getpid()
    return {
        "state": row.state,
        "decision": decision,
        "pid": pid,
        "started": _started(pid),
        "process": _PROCESS,
    }


def recover_taken(config: Config, ledger: Ledger, row: Row) -> tuple | None:
    """A row a person's decision took (``Ledger.take``) and left ``processing`` — the command
    or page that decided was killed mid-way — finished or undone as the decision was meant:
    a removal is finished (the copy deleted where it is still there, the row forgets it), a
    ship not yet recorded for publication is undone (held back as before: ship it again).
    (row, event, message, level) to say; None for a row no decision took, or one whose taker
    still runs. A ship already recorded for publication is ``finish_interrupted``'s."""
    taken = row.taken
    if row.state != "processing" or taken is None:
        return None
    if taken.get("process") == _PROCESS:
        return None  # being decided right now, in another thread of this process
    if taken.get("pid") != os.getpid() and _deciding(taken.get("pid"), taken.get("started")):
        return None
    decision, state = taken["decision"], taken["state"]
    if decision.get("action") != "removed":
        done = ledger.release(row.id, state)
        why = "shipping it anyway was interrupted before its copy was written; still held back"
        return done, "recovered", why, "warning"
    try:
        parent, name = _copy_place(config, row.path, decision["output"])
        there = os.path.lexists(parent / name)
        with contextlib.suppress(FileNotFoundError):
            (parent / name).unlink()
            fsync_dir(parent)
    except (OSError, DecisionError) as exc:
        done = ledger.release(row.id, state)
        why = f"its interrupted removal could not be finished ({exc}); remove it again"
        return done, "recovered", why, "warning"
    done = _removed(config, ledger, row.id, row.path, state, decision, there, time.time())
    return done, "recovered", "its interrupted removal from the outbox was finished", "info"


def _deciding(pid, started) -> bool:
    """Whether the process that took a row still runs: ``pid`` alive and started when it
    was (a reused pid is another process); by its command line where the start is unknown."""
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: a service's, perhaps
        pass
    now = _started(pid)
    if started is not None and now is not None:
        return now == started
    return is_pixcamd(pid)


def _started(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot, /proc/PID/stat's 22nd field)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None
