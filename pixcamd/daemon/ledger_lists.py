"""The ledger's lists: a state's rows, lean ones for a library-wide selection (``pixcamd retry``'s
flags), the web page's photo list with its count and a name looked for, the outbox names of the
last copies. A mixin of ``pixcamd.daemon.ledger.Ledger``: its connection and lock."""

from __future__ import annotations

import json
from collections.abc import Iterator

from pixcamd.daemon.ledger_row import ROW_FIELDS, Row, name_key
from pixcamd.daemon.ledger_schema import JSON_COLUMNS

LEAN_BATCH = 2000  # rows read at a time by ``lean_rows``


def json_member(text: str | None, path: str) -> str | None:
    """SQLite's ``json_extract(text, '$.key')`` for a build without JSON1, as ``lean_rows``
    uses it: the member as JSON text (an object or a list), None where there is none."""
    try:
        found = json.loads(text)[path.removeprefix("$.")] if text else None
    except (ValueError, TypeError, KeyError):
        return None
    return json.dumps(found) if isinstance(found, dict | list) else None


def listed(states: tuple[str, ...], name: str) -> tuple[str, list]:
    """The photo list's WHERE clause and its arguments: rows in ``states`` whose inbox path
    holds ``name`` anywhere (``IMG_12`` finds ``2019/IMG_1234.JPG``), letters of any case,
    accents typed composed or synced decomposed."""
    where = f"state IN ({','.join('?' * len(states))})"
    if not name:
        return where, list(states)
    # the key two copy names must not share: accents composed, every letter's case folded
    return f"{where} AND instr(name_key(path), ?) > 0", [*states, name_key(name)]


class Lists:
    def rows(self, state: str | None = None) -> list[Row]:
        with self._lock:
            if state is None:
                found = self._db.execute("SELECT * FROM photos ORDER BY id").fetchall()
            else:
                found = self._db.execute(
                    "SELECT * FROM photos WHERE state = ? ORDER BY id", (state,)
                ).fetchall()
        return [Row.from_sql(r) for r in found]

    def lean_rows(self, state: str) -> Iterator[tuple[Row, dict]]:
        """Every row in ``state``, a batch at a time, without its JSON columns — a library's
        reports are a gigabyte once parsed — but with the models and platforms its report
        recorded (``{"models": …, "platforms": …, "copy_metadata": …}``): what ``pixcamd retry``
        selects by."""
        columns = ", ".join(f"NULL AS {f}" if f in JSON_COLUMNS else f for f in ROW_FIELDS)
        batch, last = LEAN_BATCH, 0
        while True:
            with self._lock:  # released between batches: the daemon writes on meanwhile
                found = self._db.execute(
                    f"SELECT {columns}, json_extract(report, '$.models') AS judged_models, "
                    "json_extract(report, '$.platforms') AS judged_platforms, "
                    "json_extract(report, '$.copy_metadata') AS copy_metadata FROM photos "
                    "WHERE state = ? AND id > ? ORDER BY id LIMIT ?",
                    (state, last, batch),
                ).fetchall()
            for r in found:
                recorded = {
                    "models": json.loads(r["judged_models"] or "null"),
                    "platforms": json.loads(r["judged_platforms"] or "null"),
                    "copy_metadata": r["copy_metadata"],
                }
                yield Row.from_sql(r), recorded
            if len(found) < batch:
                return
            last = found[-1]["id"]

    def finished_rows(
        self, states: tuple[str, ...], limit: int, offset: int = 0, name: str = ""
    ) -> list[Row]:
        """Rows in ``states`` whose inbox path holds ``name`` (``listed``), the most recently
        finished (or queued) first: the photo list. The page is chosen among narrow (id, time)
        pairs and only its own rows are read (sorting whole rows, reports and all, took 0.4 s at
        50,000 photos)."""
        where, args = listed(states, name)
        order = "ORDER BY coalesce(finished_at, queued_at, 0) DESC, id DESC"
        with self._lock:
            found = self._db.execute(
                f"SELECT * FROM photos WHERE id IN (SELECT id FROM photos WHERE {where} {order} "
                f"LIMIT ? OFFSET ?) {order}",
                (*args, limit, offset),
            ).fetchall()
        return [Row.from_sql(r) for r in found]

    def count_listed(self, states: tuple[str, ...], name: str = "") -> int:
        """How many rows ``finished_rows`` pages through."""
        where, args = listed(states, name)
        with self._lock:
            found = self._db.execute(f"SELECT count(*) FROM photos WHERE {where}", args)
            return found.fetchone()[0]

    def processing(self) -> list[Row]:
        return self.rows("processing")

    def recent_outputs(self, limit: int = 20) -> list[str]:
        """The last copies the record says it published (outbox-relative names)."""
        with self._lock:
            found = self._db.execute(
                "SELECT output FROM photos WHERE output IS NOT NULL AND output != '' "
                "ORDER BY finished_at DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [name for (name,) in found]
