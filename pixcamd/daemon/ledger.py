"""The ledger: one SQLite database (WAL) in the state dir that remembers every source photo.

It is the daemon's memory and its queue. A row per source path (relative to the inbox) holds the
content's sha256, the settings + model fingerprint, the state, attempts, scores, PSNR, timings,
the output path and the last error. The queue is the set of ``queued`` rows, so it survives
restarts; rows left ``processing`` by a crash are resolved at start-up
(``pixcamd.daemon.publication.recover_interrupted``).

States: queued → processing → done | unprotected | failed (| queued again on a retry).
``done`` includes "already low quality" photos (shipped unchanged in pixels) and duplicates
(same content as a photo already done: ``duplicate_of`` names it, nothing is written).

Exactly-once publication (``pixcamd.daemon.publication``): before the rename into the outbox
the staged file, its sha256 and the final fields are recorded (``prepare_commit``); the rename is
the commit. Recovery finishes a rename that a crash interrupted, and never redoes a photo whose
copy was published.

``pixcamd status`` reads the same file from another process while the daemon writes it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pixcamd.daemon.ledger_copies import SameContent
from pixcamd.daemon.ledger_file import create, opening, read_tables
from pixcamd.daemon.ledger_lists import Lists, json_member
from pixcamd.daemon.ledger_log import DaemonRecord
from pixcamd.daemon.ledger_row import Offer, Row, name_key
from pixcamd.daemon.ledger_schema import (
    BAD_FILE,
    JSON_COLUMNS,
    RECENT,
    SCHEMA_VERSION,
    STATES,
    prepare,
)
from pixcamd.errors import PixcamdError

# a row with no publication on record: nothing for a recovery to finish
NO_COMMIT = dict(staged=None, staged_output=None, staged_sha256=None, staged_fields=None)


class Ledger(DaemonRecord, SameContent, Lists):
    """Thread-safe: one connection, serialised by a lock (the daemon's writes are few and short)."""

    def __init__(self, path: str | Path, clock=time.time, fresh: str | None = None):
        """``fresh``: what starting a new record means, said when this one is damaged (default:
        the daemon's)."""
        self.path = Path(path)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # names every photo
        self.clock = clock
        self._lock = threading.RLock()
        with opening(self.path, fresh):  # a damaged file, or one this user cannot open
            if not os.path.lexists(self.path):
                create(self.path)
            self._db = sqlite3.connect(
                self.path, timeout=10, isolation_level=None, check_same_thread=False
            )
            try:
                self._db.row_factory = sqlite3.Row
                self._db.create_function(
                    "name_key", 1, lambda name: name and name_key(name), deterministic=True
                )
                self._db.create_function(
                    "nfc", 1, lambda s: s and unicodedata.normalize("NFC", s), deterministic=True
                )
                try:  # SQLite's own since 3.38 (and Debian's builds before): else a stand-in
                    self._db.execute("SELECT json_extract('{}', '$.a')")
                except sqlite3.OperationalError:
                    self._db.create_function("json_extract", 2, json_member, deterministic=True)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")  # committed survives power loss
                self._db.execute("PRAGMA busy_timeout=10000")
                self._not_newer()
                prepare(self._db)
                read_tables(self._db)
            except BaseException:
                self._db.close()
                raise

    def _not_newer(self) -> None:
        """A ledger a newer pixcamd wrote may hold what this one would misread (a downgrade):
        refused before anything is written, its version never lowered."""
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise PixcamdError(
                f"{self.path}: this record was written by a newer pixcamd (ledger version "
                f"{version}; this pixcamd reads up to {SCHEMA_VERSION}): run that version, or "
                "upgrade this one; nothing was changed"
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _one(self, sql: str, *args) -> Row | None:
        with self._lock:
            found = self._db.execute(sql, args).fetchone()
        return Row.from_sql(found) if found is not None else None

    def _update(self, db: sqlite3.Connection, row_id: int, **fields) -> None:
        for key in JSON_COLUMNS:
            if key in fields and fields[key] is not None:
                fields[key] = json.dumps(fields[key])
        sets = ", ".join(f"{k} = ?" for k in fields)
        db.execute(f"UPDATE photos SET {sets} WHERE id = ?", (*fields.values(), row_id))

    # ---- reading --------------------------------------------------------------------------

    def get(self, path: str) -> Row | None:
        return self._one("SELECT * FROM photos WHERE path = ?", path)

    def get_spelled(self, path: str) -> Row | None:
        """The one row whose path is ``path`` spelled with its accents composed or decomposed
        (a Mac's sync writes é as e + ◌́, a keyboard types é): None where none or several are."""
        key = unicodedata.normalize("NFC", path)
        with self._lock:
            found = self._db.execute(
                "SELECT * FROM photos WHERE nfc(path) = ? LIMIT 2", (key,)
            ).fetchall()
        return Row.from_sql(found[0]) if len(found) == 1 else None

    def by_id(self, row_id: int) -> Row | None:
        return self._one("SELECT * FROM photos WHERE id = ?", row_id)

    def wake_times(self, after: float) -> list[float]:
        """When the queued retries waiting past ``after`` are due (each time once): read
        without building every queued row (a library's backlog is tens of thousands)."""
        with self._lock:
            found = self._db.execute(
                "SELECT DISTINCT not_before FROM photos WHERE state = 'queued' AND not_before > ?",
                (after,),
            ).fetchall()
        return [when for (when,) in found]

    def counts(self) -> dict[str, int]:
        with self._lock:
            found = dict(
                self._db.execute("SELECT state, count(*) FROM photos GROUP BY state").fetchall()
            )
        return {state: found.get(state, 0) for state in STATES}

    def queue_length(self) -> int:
        with self._lock:
            return self._db.execute(
                "SELECT count(*) FROM photos WHERE state IN ('queued', 'processing')"
            ).fetchone()[0]

    def next_due(self) -> float | None:
        """When the earliest queued row may run (None: nothing queued)."""
        with self._lock:
            return self._db.execute(
                "SELECT min(not_before) FROM photos WHERE state = 'queued'"
            ).fetchone()[0]

    def done_with_sha(self, sha256: str, other_than: str) -> Row | None:
        """A photo with this content that is already done (published, or itself a duplicate)."""
        return self._one(
            "SELECT * FROM photos WHERE sha256 = ? AND sha256 != '' AND state = 'done' "
            "AND path != ? ORDER BY duplicate_of IS NOT NULL, id LIMIT 1",
            sha256,
            other_than,
        )

    def output_owner(self, output: str, other_than: str) -> str | None:
        """The photo other than ``other_than`` whose copy has (or is about to have) the name
        ``output`` — compared by ``name_key``, not byte for byte."""
        key = name_key(output)
        with self._lock:
            found = self._db.execute(
                "SELECT path FROM photos WHERE (name_key(output) = ? OR name_key(staged_output) "
                "= ?) AND path != ? LIMIT 1",
                (key, key, other_than),
            ).fetchone()
        return found[0] if found else None

    def held_owner(self, held: str, other_than: str) -> str | None:
        """The photo other than ``other_than`` whose best attempt is kept at ``held`` (compared
        by ``name_key``: the hold folder may be a case-insensitive share as well)."""
        key = name_key(held)
        with self._lock:
            found = self._db.execute(
                "SELECT path FROM photos WHERE name_key(held) = ? AND path != ? LIMIT 1",
                (key, other_than),
            ).fetchone()
        return found[0] if found else None

    # ---- the queue -----------------------------------------------------------------------

    def offer(
        self,
        path: str,
        sha256: str,
        size: int,
        mtime_ns: int,
        fingerprint: str,
        redo_done: bool = False,
    ) -> Offer:
        """A settled file. Same content already handled → nothing to do; new or changed → queued.

        * unchanged content: ``unchanged`` — except ``unprotected``/``failed`` rows produced with
          other settings, which are queued again (the new settings may work), unless a person
          decided on the photo (shipped it anyway, took its copy back): theirs stands until
          they retry it;
        * content that another path already has as ``done`` (a rename, a re-sync, a copy):
          ``duplicate`` — done at once, nothing written; the caller tells a copy (its original
          is still in the inbox) from a rename and queues a copy again (``queue_copy``) for an
          outbox copy of its own;
        * a row being processed: its content fields are updated and the worker notices (``busy``).

        With ``redo_done`` (folder runs: the user ran again with other settings) a ``done`` row
        made with other settings is queued again too.
        """
        with self._tx() as db:
            return self._offer(db, path, sha256, size, mtime_ns, fingerprint, redo_done)

    def _offer(
        self,
        db: sqlite3.Connection,
        path: str,
        sha256: str,
        size: int,
        mtime_ns: int,
        fingerprint: str,
        redo_done: bool = False,
    ) -> Offer:
        """``offer`` inside the caller's transaction (``offer_settled``'s)."""
        now = self.clock()
        found = db.execute("SELECT * FROM photos WHERE path = ?", (path,)).fetchone()
        row = Row.from_sql(found) if found else None
        if row is not None and row.state == "processing":
            self._update(db, row.id, sha256=sha256, size=size, mtime_ns=mtime_ns)
            return Offer("busy", self._get(db, row.id))
        if row is not None and row.sha256 == sha256:
            redo = ("unprotected", "failed", "done") if redo_done else ("unprotected", "failed")
            stale = (
                row.state in redo
                and row.fingerprint not in (fingerprint, BAD_FILE)
                and not row.decision
            )
            if not stale:
                if (row.size, row.mtime_ns) != (size, mtime_ns):
                    self._update(db, row.id, size=size, mtime_ns=mtime_ns)
                return Offer("unchanged", self._get(db, row.id))
        dup = db.execute(
            "SELECT path FROM photos WHERE sha256 = ? AND sha256 != '' AND state = 'done' "
            "AND path != ? ORDER BY duplicate_of IS NOT NULL, id LIMIT 1",
            (sha256, path),
        ).fetchone()
        fields: dict[str, Any] = dict(
            sha256=sha256,
            size=size,
            mtime_ns=mtime_ns,
            fingerprint=fingerprint,
            attempts=0,
            not_before=0.0,
            degrade=0,
            error=None,
            verdict=None,
            **NO_COMMIT,
            budget=None,
            decision=None,
        )
        if dup is not None:
            original = db.execute(
                "SELECT coalesce(duplicate_of, path) FROM photos WHERE path = ?", (dup[0],)
            ).fetchone()[0]
            fields.update(state="done", duplicate_of=original, finished_at=now)
            action = "duplicate"
        else:
            fields.update(state="queued", queued_at=now, duplicate_of=None)
            action = "queued" if row is None else "requeued"
        why = ""
        if action == "requeued":  # the same content is back only if tried with other settings
            why = "settings changed" if row.sha256 == sha256 else "changed content"
        if row is None:
            cursor = db.execute(
                "INSERT INTO photos (path, sha256, size, mtime_ns, state, detected_at) "
                "VALUES (?, ?, ?, ?, 'queued', ?)",
                (path, sha256, size, mtime_ns, now),
            )
            row_id = cursor.lastrowid
        else:
            row_id = row.id
        self._update(db, row_id, **fields)
        return Offer(action, self._get(db, row_id), why)

    def _get(self, db: sqlite3.Connection, row_id: int) -> Row:
        return Row.from_sql(db.execute("SELECT * FROM photos WHERE id = ?", (row_id,)).fetchone())

    def claim_next(self) -> Row | None:
        """Take the next due queued photo: state processing, one more attempt. Photos whose
        file was at most a day old when it was queued first, then the rest, each in the order
        they were queued: a library found at the first start takes days, and a photo taken
        today must not wait behind all of it (nor lose its place when the queue stalls for a
        day). It reads every due row (about 12 ms at 50,000), small beside a photo's seconds."""
        now = self.clock()
        with self._tx() as db:
            found = db.execute(
                "SELECT id FROM photos WHERE state = 'queued' AND not_before <= ? "
                "ORDER BY mtime_ns >= (queued_at - ?) * 1e9 DESC, not_before, queued_at, id "
                "LIMIT 1",
                (now, RECENT),
            ).fetchone()
            if found is None:
                return None
            return self._claim(db, found[0], now)

    def claim(self, row_id: int) -> Row:
        """Take this row (a folder run's own order): state processing, one more attempt."""
        with self._tx() as db:
            return self._claim(db, row_id, self.clock())

    def _claim(self, db: sqlite3.Connection, row_id: int, now: float) -> Row:
        db.execute(
            "UPDATE photos SET state = 'processing', attempts = attempts + 1, "
            "started_at = ? WHERE id = ?",
            (now, row_id),
        )
        return self._get(db, row_id)

    def requeue_many(
        self, row_ids: list[int], budget: dict | None = None, events: list[tuple] = ()
    ) -> None:
        """``pixcamd retry``: queued afresh (attempts from 0), in one transaction with their
        ``events`` (ts, level, event, path, data). The outbox path stays, so a shipped photo's
        copy is replaced; ``duplicate_of`` is cleared (the worker finds the re-done original
        again, or protects the photo itself). ``budget``: a stronger retry's larger budget for
        this attempt (None: the config's)."""
        now = self.clock()
        with self._tx() as db:
            self._insert_events(db, list(events))
            for row_id in row_ids:
                self._update(
                    db,
                    row_id,
                    state="queued",
                    queued_at=now,
                    finished_at=None,
                    attempts=0,
                    not_before=0.0,
                    degrade=0,
                    error=None,
                    duplicate_of=None,
                    budget=budget,
                    decision=None,
                )

    def finish(self, row_id: int, state: str, **fields) -> Row:
        assert state in ("done", "unprotected", "failed")
        with self._tx() as db:
            self._update(
                db,
                row_id,
                state=state,
                finished_at=self.clock(),
                **NO_COMMIT,
                **fields,
            )
            return self._get(db, row_id)

    def unstage(self, row_id: int) -> None:
        """A publication that failed before its move: its record goes before its staged file."""
        with self._tx() as db:
            self._update(db, row_id, **NO_COMMIT)

    def retry(self, row_id: int, error: str, delay: float, degrade: int | None = None) -> Row:
        """A transient failure: queued again after ``delay`` seconds, with no commit on
        record (a publication that failed must not be "finished" by a later recovery)."""
        fields: dict[str, Any] = dict(
            state="queued",
            error=error,
            not_before=self.clock() + delay,
            **NO_COMMIT,
        )
        if degrade is not None:
            fields["degrade"] = degrade
        with self._tx() as db:
            self._update(db, row_id, **fields)
            return self._get(db, row_id)

    def requeue(self, row_id: int, delay: float = 0.0) -> Row:
        """Work abandoned (shutdown) or the file changed under us: queued, attempt not counted.
        Without ``delay`` it is due at once whatever the clock says at the next start (0, not
        the time now: a clock set back meanwhile would hold it)."""
        with self._tx() as db:
            db.execute(
                "UPDATE photos SET state = 'queued', attempts = max(attempts - 1, 0), "
                "not_before = ?, staged = NULL, staged_output = NULL, staged_sha256 = NULL, "
                "staged_fields = NULL WHERE id = ?",
                (self.clock() + delay if delay > 0 else 0.0, row_id),
            )
            return self._get(db, row_id)

    def shift_waits(self, seconds: float) -> int:
        """The wall clock jumped by ``seconds`` (< 0: set back): queued rows still waiting keep
        the wait they had left instead of one grown by the jump. Returns how many moved."""
        with self._tx() as db:
            return db.execute(
                "UPDATE photos SET not_before = max(not_before + ?, 0) "
                "WHERE state = 'queued' AND not_before > ?",
                (seconds, self.clock()),
            ).rowcount

    def delete(self, row_id: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM photos WHERE id = ?", (row_id,))

    def prepare_commit(
        self, row_id: int, staged: str, output: str, sha256: str, fields: dict
    ) -> None:
        with self._tx() as db:
            self._update(
                db,
                row_id,
                staged=staged,
                staged_output=output,
                staged_sha256=sha256,
                staged_fields=fields,
            )

    def take(self, row_id: int, states: tuple[str, ...], intent: dict) -> Row | None:
        """A person's decision on a finished row (ship it, remove its copy): the row becomes
        ``processing`` only if it is still in one of ``states`` — never under the worker's
        feet — without counting an attempt, the decision's ``intent`` kept with it (as
        ``staged_fields["taken"]``) for a decision a crash interrupts to be finished or undone
        (``pixcamd.daemon.decisions.recover_taken``). None: it is not (any more)."""
        with self._tx() as db:
            marks = ",".join("?" * len(states))
            cursor = db.execute(
                "UPDATE photos SET state = 'processing', staged_fields = ? "
                f"WHERE id = ? AND state IN ({marks})",
                (json.dumps({"taken": intent}), row_id, *states),
            )
            return self._get(db, row_id) if cursor.rowcount else None

    def release(self, row_id: int, state: str, **fields) -> Row:
        """Back from ``take`` to ``state`` with ``fields`` changed; when it finished stays."""
        assert state in ("done", "unprotected", "failed")
        with self._tx() as db:
            self._update(
                db,
                row_id,
                state=state,
                **NO_COMMIT,
                **fields,
            )
            return self._get(db, row_id)
