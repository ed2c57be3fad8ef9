"""What a crash, SIGKILL or power cut left, dealt with at the daemon's start, before any photo
is taken: rows left ``processing`` — a person's decision half-made (finished or undone), a
protection cut short or its publication (finished, or queued again) — and the temp folder's
dead attempts."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from pixcamd.daemon.config import Config
from pixcamd.daemon.decisions import recover_taken
from pixcamd.daemon.events import EventLog
from pixcamd.daemon.ledger import Ledger
from pixcamd.daemon.publication import recover_interrupted


def recover(
    config: Config, ledger: Ledger, log: EventLog, stop_asked_at: float | None = None
) -> None:
    """Rows left ``processing``: decisions first (``recover_taken``), which
    ``recover_interrupted`` leaves alone, then protections and publications.
    ``stop_asked_at``: when the last daemon was asked to stop (SIGTERM, SIGINT), if it was —
    a photo it had taken before is queued again, its attempt not counted."""
    for taken in ledger.processing():
        said = recover_taken(config, ledger, taken)
        if said is not None:
            log.emit(said[1], taken.path, said[2], level=said[3])
    for row, event, message, level in recover_interrupted(
        ledger, config.outbox, config.max_attempts, stop_asked_at=stop_asked_at
    ):
        extra = {"reason": message} if event == "failed" else {}
        log.emit(event, row.path, message, level=level, **extra)


# what a daemon writes into its temp folder: a staged copy, a copy shipped by a person's
# decision, a file being written (``pixcamd.output.atomic_write``) and a writability probe
LEFT_BEHIND = re.compile(r"(stage|ship)-[0-9-]+\.jpg|\.pixcamd-.*")


def sweep(tmp_dir: Path) -> None:
    """The temp folder is this daemon's alone (locked): what it writes there and finds at its
    start is a dead attempt. Only its own names go — never a file or folder it did not make
    (``tmp_dir`` set to a folder with more in it is refused by the config's check, this is
    the second guard)."""
    for child in tmp_dir.iterdir():
        if LEFT_BEHIND.fullmatch(child.name) and not child.is_dir():
            with contextlib.suppress(OSError):
                child.unlink()
