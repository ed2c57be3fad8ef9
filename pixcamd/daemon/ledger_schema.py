"""What the ledger holds: its tables, the states a photo's row goes through, the columns kept as
JSON, and the columns added since the first release — which an older ledger gets when it is
opened, so that a daemon upgraded in place keeps its record."""

from __future__ import annotations

import sqlite3

STATES = ("queued", "processing", "done", "unprotected", "failed")
# Raised with every change an older pixcamd would misread; a ledger of a higher version is
# refused (``Ledger``), never lowered: 2 — the budget and decision columns (2026-12-02).
SCHEMA_VERSION = 2
# seconds: a photo whose file is this new is settled and taken before an older backlog (a
# library found at the first start), which then goes in the order it was found
RECENT = 86400.0
# the fingerprint of a failed row whose bytes are no image (``errors.Undecodable``): no
# settings read it, so a settings change does not queue it again; new bytes do
BAD_FILE = "no image"
JSON_COLUMNS = ("scores", "timings", "report", "staged_fields", "budget", "decision")
ADDED_COLUMNS = (("budget", "TEXT"), ("decision", "TEXT"))

_STATE_LIST = ",".join(f"'{state}'" for state in STATES)
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS photos (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,          -- source, relative to the inbox (POSIX separators)
    sha256 TEXT NOT NULL,               -- content as settled
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    fingerprint TEXT,                   -- settings + model fingerprints that produced the row
    model TEXT,                         -- model(s) used, e.g. "brisque"
    state TEXT NOT NULL CHECK (state IN ({_STATE_LIST})),
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0, -- retries wait until then (unix time)
    degrade INTEGER NOT NULL DEFAULT 0, -- GPU out of memory: 1 half batch, 2 batch 1, 3 CPU
    detected_at REAL,
    queued_at REAL,
    started_at REAL,
    finished_at REAL,
    verdict TEXT,                       -- protected / already low quality / unprotected
    scores TEXT,                        -- JSON: after JPEG-90 per model and view
    psnr REAL,
    seconds REAL,
    timings TEXT,                       -- JSON: decode, protect, write, verify, total
    report TEXT,                        -- JSON: protect()'s full summary
    output TEXT,                        -- relative to the outbox, once published
    held TEXT,                          -- absolute path of the copy in hold_dir, if any
    duplicate_of TEXT,
    staged TEXT,                        -- commit record: the staged file …
    staged_output TEXT,                 -- … the outbox path it goes to …
    staged_sha256 TEXT,                 -- … its sha256 …
    staged_fields TEXT,                 -- … and the row's final fields (JSON)
    error TEXT,
    budget TEXT,                        -- JSON: a stronger retry's larger budget (one attempt)
    decision TEXT                       -- JSON: what a person decided (shipped anyway, removed)
);
CREATE INDEX IF NOT EXISTS photos_queue ON photos (state, not_before, queued_at);
CREATE INDEX IF NOT EXISTS photos_sha ON photos (sha256);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    level TEXT NOT NULL,
    event TEXT NOT NULL,
    path TEXT,
    data TEXT
);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
CREATE TABLE IF NOT EXISTS daemon (key TEXT PRIMARY KEY, value TEXT);
"""


def prepare(db: sqlite3.Connection) -> None:
    """Create the tables a new ledger lacks and the columns an older one lacks."""
    db.executescript(_SCHEMA)
    have = {r[1] for r in db.execute("PRAGMA table_info(photos)")}
    for column, kind in ADDED_COLUMNS:
        if column not in have:
            db.execute(f"ALTER TABLE photos ADD COLUMN {column} {kind}")
    # copy names are compared by their name_key (a full scan, once a publication): an index on
    # the raw name served nothing since, and is dropped from ledgers that have it
    db.execute("DROP INDEX IF EXISTS photos_output")
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
