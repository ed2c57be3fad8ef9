"""The ledger's two small tables beside the photos: the events ``pixcamd status`` shows (the
last ``MAX_EVENTS``; the JSON log file keeps everything) and what the daemon records of itself
(its folders, pid, heartbeat). A mixin of ``pixcamd.daemon.ledger.Ledger``: its connection, lock
and transactions."""

from __future__ import annotations

import json

MAX_EVENTS = 20_000  # older events are pruned


class DaemonRecord:
    def add_event(self, ts: float, level: str, event: str, path: str | None, data: dict) -> None:
        with self._tx() as db:
            self._insert_events(db, [(ts, level, event, path, data)])

    @staticmethod
    def _insert_events(db, events: list[tuple[float, str, str, str | None, dict]]) -> None:
        """Events as (ts, level, event, path, data), within the caller's transaction; the
        oldest beyond ``MAX_EVENTS`` are pruned every thousand."""
        first = None
        for ts, level, event, path, data in events:
            cursor = db.execute(
                "INSERT INTO events (ts, level, event, path, data) VALUES (?, ?, ?, ?, ?)",
                (ts, level, event, path, json.dumps(data, default=str)),
            )
            first = cursor.lastrowid if first is None else first
        if first is not None and (cursor.lastrowid // 1000) > ((first - 1) // 1000):
            db.execute("DELETE FROM events WHERE id <= ?", (cursor.lastrowid - MAX_EVENTS,))

    def daemon_facts(self) -> dict:
        """What the daemon recorded of itself (its folders, pid, heartbeat, …)."""
        with self._lock:
            rows = self._db.execute("SELECT key, value FROM daemon").fetchall()
        return {key: json.loads(value) for key, value in rows}

    def set_daemon(self, **facts) -> None:
        with self._tx() as db:
            db.executemany(
                "INSERT INTO daemon (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [(k, json.dumps(v)) for k, v in facts.items()],
            )
