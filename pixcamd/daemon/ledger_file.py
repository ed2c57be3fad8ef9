"""The ledger's file as a file: opened read-only for ``pixcamd status`` beside a running daemon,
and refused in words when it is damaged — a ledger that cannot be read is never taken for a new
one, which would protect and publish every photo again."""

from __future__ import annotations

import os
import shlex
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pixcamd.daemon.fs import fsync_dir, this_user
from pixcamd.daemon.ledger_schema import prepare
from pixcamd.errors import PixcamdError


def read_only(path: str | Path) -> sqlite3.Connection:
    """A connection for ``pixcamd status``: reads only; WAL lets it run beside the daemon."""
    path = Path(path)
    with opening(path):
        try:
            db = _checked(f"file:{path}?mode=rw", "PRAGMA query_only=1")
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                raise
            # no write access to the state dir: a plain read-only open
            db = _checked(f"file:{path}?mode=ro")
    db.row_factory = sqlite3.Row
    return db


@contextmanager
def opening(path: Path, fresh: str | None = None) -> Iterator[None]:
    """Around opening the ledger at ``path``: an empty file, and what SQLite raises, become
    ``_refusal``'s words (``fresh``: what starting a new record means there)."""
    fresh = fresh or DAEMON_FRESH
    _not_emptied(path, fresh)
    try:
        yield
    except sqlite3.DatabaseError as exc:
        raise _refusal(path, exc, fresh) or exc from None


def create(path: Path) -> None:
    """A new ledger, made whole under a temporary name and renamed into place once its tables
    are committed: a process killed while it is made leaves nothing a later start refuses (an
    empty ledger file is taken for a damaged one, never for a new record)."""
    new = path.with_name(path.name + ".new")
    for leftover in (new, *(Path(f"{new}{end}") for end in ("-wal", "-shm", "-journal"))):
        leftover.unlink(missing_ok=True)
    db = sqlite3.connect(new, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        prepare(db)
    finally:
        db.close()  # the last connection: its log checkpointed into the file and removed
    os.replace(new, path)
    fsync_dir(path.parent)


def _checked(uri: str, *first: str) -> sqlite3.Connection:
    """A connection whose tables could be read (a damaged file fails here, not later)."""
    db = sqlite3.connect(uri, uri=True, timeout=10)
    try:
        for sql in first:
            db.execute(sql)
        read_tables(db)
    except BaseException:
        db.close()
        raise
    return db


def read_tables(db: sqlite3.Connection) -> None:
    """Read a row of each table: a file cut short or overwritten fails here, at the start."""
    for table in ("photos", "events", "daemon"):
        db.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchall()


def ledger_there(path: Path) -> None:
    """Refuse, in words, a ledger this user cannot see: none there (the daemon has not run with
    this state dir), or a state dir closed to this user — a service's, 0700 — which a missing
    file's test would also have called "not run"."""
    try:
        os.lstat(path)
    except PermissionError:
        raise PixcamdError(
            f"{path.parent}: the user {this_user()} cannot look into this state dir, so its "
            "ledger cannot be read; run this as the daemon's user (a server's service: `sudo -u "
            "pixcamd pixcamd status`)"
        ) from None
    except FileNotFoundError:
        raise PixcamdError(
            f"no ledger at {path}: the daemon has not run with this state dir yet "
            "(or give the --config it runs with)"
        ) from None


def held_elsewhere(exc: BaseException) -> PixcamdError | None:
    """SQLite's "database is locked" (or busy) in words: another process kept the ledger's
    write lock past ``Ledger``'s 10 s wait — a command's refusal, never its traceback. None
    for any other error."""
    text = str(exc)
    if not isinstance(exc, sqlite3.OperationalError) or not ("locked" in text or "busy" in text):
        return None
    return PixcamdError(
        f"the ledger is locked by another process, which has held it for more than 10 s "
        f"(SQLite: {text}) — a program that opened it, such as a `sqlite3` shell left in a "
        "transaction; run this again once it has let go"
    )


class LedgerDamaged(PixcamdError):
    """The ledger file is not a ledger pixcamd can read: never taken for a new one."""


# What starting a new record means, said with the way to do it
DAEMON_FRESH = (
    "To start a new record, move it away while nothing uses it ({mv}): every photo in the "
    "inbox is then protected again, and copies already in the outbox stay as they are, the new "
    "ones taking other names"
)
FOLDER_FRESH = (
    "To start over, protect into another --outdir: a new record in this one ({mv}) would "
    "refuse the copies the old one wrote, each of those photos failing by name"
)


def _damaged(path: Path, why: str, fresh: str) -> str:
    mv = f"mv {shlex.quote(str(path))} {shlex.quote(str(path) + '.damaged')}"
    return (
        f"{path}: the ledger (pixcamd's record of every photo, copy and decision) cannot be "
        f"read: {why}. Nothing was changed. " + fresh.format(mv=mv)
    )


def _refusal(path: Path, exc: sqlite3.DatabaseError, fresh: str):
    """What to raise for ``exc`` met opening the ledger: ``LedgerDamaged`` for a file that is
    not (or no longer) a ledger; a plain error for one this user cannot use (permissions, a
    full disk: moving it away would lose the record for nothing); None when another process
    holds it (busy, locked), which the caller raises as it is."""
    text = str(exc)
    if "locked" in text or "busy" in text:
        return None
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "no such table" in text:
        return LedgerDamaged(_damaged(path, text, fresh))
    free = _free_bytes(path.parent)
    if free is not None and free < FULL_BELOW:  # SQLite says only "disk I/O error" there
        return PixcamdError(
            f"{path}: cannot open the ledger ({text}): its disk is full ({free} bytes free); "
            "make room there and run this again; nothing was changed"
        )
    return PixcamdError(
        f"{path}: cannot open the ledger ({text}): check that this user may read and write it "
        "and its folder, and that its disk has room; nothing was changed"
    )


# Less room than this is a full disk to SQLite: opening a WAL ledger writes its shared-memory
# index (32 KiB) beside it, also for a reader
FULL_BELOW = 64 * 1024


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _not_emptied(path: Path, fresh: str) -> None:
    """A ledger file of no bytes was cut short (SQLite writes its header on creation): taking
    it for a new record would publish every photo again."""
    try:
        empty = path.stat().st_size == 0
    except OSError:
        return  # none yet: a new record
    if empty:
        raise LedgerDamaged(_damaged(path, "the file is empty", fresh))
