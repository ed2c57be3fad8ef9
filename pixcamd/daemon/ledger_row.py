"""A ledger row as the daemon reads it, what an offer did, and the key two copy names must not
share (``pixcamd.daemon.ledger`` keeps the rows)."""

from __future__ import annotations

import json
import sqlite3
import unicodedata
from dataclasses import dataclass, fields
from typing import Any

from pixcamd.daemon.ledger_schema import JSON_COLUMNS


@dataclass
class Row:
    id: int
    path: str
    sha256: str
    size: int
    mtime_ns: int
    fingerprint: str | None
    model: str | None
    state: str
    attempts: int
    not_before: float
    degrade: int
    detected_at: float | None
    queued_at: float | None
    started_at: float | None
    finished_at: float | None
    verdict: str | None
    scores: Any
    psnr: float | None
    seconds: float | None
    timings: Any
    report: Any
    output: str | None
    held: str | None
    duplicate_of: str | None
    staged: str | None
    staged_output: str | None
    staged_sha256: str | None
    staged_fields: Any
    error: str | None
    budget: Any = None
    decision: Any = None

    @classmethod
    def from_sql(cls, row: sqlite3.Row) -> Row:
        # only the columns this pixcamd knows: a column added by a later one is left alone
        data = {k: v for k, v in dict(row).items() if k in _FIELDS}
        for key in JSON_COLUMNS:  # a ledger read before it is migrated lacks the newest
            if data.get(key) is not None:
                data[key] = json.loads(data[key])
        return cls(**data)

    @property
    def earlier_copy(self) -> str | None:
        """The copy an earlier run left in the outbox, where a retry of it came out unprotected
        and was held back: the row's scores are the retry's, not that file's."""
        report = self.report if isinstance(self.report, dict) else {}
        earlier = report.get("earlier_copy")
        return earlier if self.state == "unprotected" and earlier == self.output else None

    @property
    def taken(self) -> dict | None:
        """The intent of a person's decision that holds this row (``Ledger.take``), where one
        does and no publication is on record."""
        taken = (self.staged_fields or {}).get("taken") if not self.staged_output else None
        return taken if isinstance(taken, dict) else None


ROW_FIELDS = tuple(f.name for f in fields(Row))  # in the order of the photos table
_FIELDS = frozenset(ROW_FIELDS)


@dataclass(frozen=True)
class Offer:
    """What ``Ledger.offer`` did with a settled file."""

    action: str  # queued | requeued | unchanged | duplicate | busy
    row: Row
    why: str = ""  # requeued: "changed content" or "settings changed"


def name_key(name: str) -> str:
    """What two copy names must not share: one name to a case-insensitive filesystem (macOS,
    Windows, an SMB share, a FAT card) and to the sync tools that carry an outbox there, which
    fold case and compose accents — ``IMG_1.jpg`` and ``img_1.JPG`` are one file on them."""
    return unicodedata.normalize("NFC", name).casefold()


def judged_specs(report: Any) -> dict[str, str]:
    """name → spec of the platforms a report's copy was judged on (``retry
    --platforms-changed``, `status`); empty for a report that records none (an older pixcamd's)."""
    found = report.get("platforms") if isinstance(report, dict) else None
    return {
        p["name"]: p["spec"]
        for p in found or []
        if isinstance(p, dict) and isinstance(p.get("spec"), str) and "name" in p
    }
