"""Finding work: the inbox watcher, the scans and the settle polls that turn a new photo into a
queued ledger row.

watchdog's observer hears files arrive (``InboxHandler`` → ``candidate``); the start-up scan,
the periodic rescan and a scan of each folder that appears whole find what it did not hear; the
``StabilityTracker`` waits until a file stops changing, and ``settle`` hashes it and offers it to
the ledger, which queues it, or says it is a copy or a renamed photo. The daemon
(``pixcamd.daemon.service``) owns the threads — it runs ``settle`` and ``scan`` on its scheduler
and hands ``Intake`` a way to run a job there (``later``) — and the worker takes the queue.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from pixcamd.daemon.config import Config
from pixcamd.daemon.events import EventLog
from pixcamd.daemon.fs import folder_identity, sha256_file
from pixcamd.daemon.ledger import Ledger
from pixcamd.daemon.ledger_schema import BAD_FILE
from pixcamd.daemon.publishing import renamed_note
from pixcamd.daemon.watcher import (
    HIDDEN,
    NOT_A_PHOTO,
    InboxHandler,
    Rules,
    StabilityTracker,
    extension,
    hidden_reason,
    scan,
)

# Seconds of full decodes one settle poll spends: a library found at the first start is queued
# a batch at a time instead of after every photo in it was decoded (an hour for 20,000), and
# a stop is heard between batches.
SETTLE_BUDGET = 2.0


class _OverflowRescan(logging.Handler):
    """watchdog logs (and survives) an inotify queue overflow, but the events are lost: scan the
    inbox at once instead of waiting for the next periodic rescan."""

    def __init__(self, rescan):
        super().__init__(logging.WARNING)
        self.rescan = rescan

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.rescan()


class Intake:
    """The watcher, scans and settling of one daemon run. ``fingerprint()`` is the settings
    fingerprint in force (a reload changes it), ``wake()`` tells the worker a photo is queued,
    ``later(func, **kwargs)`` runs ``func`` once on the daemon's scheduler."""

    def __init__(
        self,
        config: Config,
        ledger: Ledger,
        log: EventLog,
        rules: Rules,
        tracker: StabilityTracker,
        stop_event: threading.Event,
        fingerprint: Callable[[], str],
        wake: Callable[[], None],
        later: Callable[..., None],
    ):
        self.config, self.ledger, self.log = config, ledger, log
        self.rules, self.tracker, self.stop_event = rules, tracker, stop_event
        self.fingerprint, self.wake, self.later = fingerprint, wake, later
        self.observer = None
        self._watched: tuple[int, int] | None = None  # the inbox folder the watch is on
        self._seen: tuple[int, int] | None = None  # the one at its path at the last poll
        self._inbox_gone = False  # said once, until a folder is at the inbox's path again
        self._unoffered: dict[str, tuple] = {}  # settled, refused by the ledger: (sha256, stat)
        self._ignored_logged: set[str] = set()
        self._ignored_lock = threading.Lock()  # the observer's thread and the scans' both name
        self._overflow: logging.Handler | None = None

    # ---- the watcher -------------------------------------------------------------------------

    def start_observer(self) -> None:
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        inbox = str(self.rules.inbox)
        handler = InboxHandler(self.rules, self.candidate, self.tracker.forget, self.scan_folder)
        if self._overflow is None:
            self._overflow = _OverflowRescan(lambda: self.scan_folder(None, "inotify overflow"))
            logging.getLogger("watchdog.observers").addHandler(self._overflow)
        observer = Observer(timeout=0.2)
        try:
            observer.schedule(handler, inbox, recursive=True)
            observer.start()
        except OSError as exc:  # inotify limits: poll instead, and say so
            self.log.emit(
                "watching",
                message=f"inotify unavailable ({exc}); polling the inbox instead",
                level="warning",
            )
            observer = PollingObserver(timeout=max(1.0, self.config.settle_time))
            observer.schedule(handler, inbox, recursive=True)
            observer.start()
        self.observer = observer
        self._watched = self._seen = folder_identity(self.rules.inbox)

    def check_inbox(self) -> None:
        """The watch follows a folder, not its name: an inbox renamed away (and another folder
        made at its path, or it moved back) would leave the daemon deaf to the path, hearing
        the old folder under the inbox's name. Called about once a second by the main loop,
        which alone starts and stops the watch; the folder at the path is looked up by the
        settle polls (``settle``), whose thread may wait on a hung network mount where the main
        loop must not. A gone inbox is said once; a folder at the path again is watched anew
        and scanned."""
        now = self._seen
        if now == self._watched:
            return
        if self.observer is not None:  # events from the folder that left would pass for its
            self.observer.stop()
            self.observer.join(2.0)
            self.observer = None  # stopped on purpose: not a watcher that died
        self._watched = None
        if now is None:
            if not self._inbox_gone:
                self._inbox_gone = True
                self.log.emit(
                    "inbox_unavailable",
                    message=f"{self.rules.inbox} is gone (moved or deleted): nothing arriving "
                    "is seen until a folder is there again",
                    level="error",
                )
            return
        self._inbox_gone = False
        self.start_observer()
        self.log.emit("inbox_back", message=f"{self.rules.inbox}: watching the folder there now")
        self.scan_folder(None, "inbox back")

    def watcher_died(self) -> bool:
        """The observer was started and its thread has ended (the daemon restarts it)."""
        return self.observer is not None and not self.observer.is_alive()

    def stop(self) -> None:
        """Stop hearing the inbox (the observer's thread ends soon after)."""
        if self.observer is not None:
            self.observer.stop()

    def close(self, timeout: float) -> None:
        """Stop, wait up to ``timeout`` for the observer's thread, and take the overflow handler
        off watchdog's logger (it is process-wide)."""
        if self._overflow is not None:
            logging.getLogger("watchdog.observers").removeHandler(self._overflow)
            self._overflow = None
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout)

    # ---- finding work ------------------------------------------------------------------------

    def candidate(self, rel: str, reason: str) -> None:
        if reason:
            with self._ignored_lock:  # once per path and run, not per event
                first = rel not in self._ignored_logged
                self._ignored_logged.add(rel)
            if first:
                if reason == NOT_A_PHOTO:  # a video or sidecar: nothing lost, but never silent
                    reason = f"not a photo ({extension(rel)} is not in `extensions`): left alone"
                elif reason == HIDDEN:
                    reason = hidden_reason(self.rules, rel)
                self.log.emit("ignored", rel, reason)
            return
        if self.tracker.touch(rel):
            self.log.emit("detected", rel)

    def scan(self, reason: str = "periodic", root: Path | None = None) -> None:
        """Start-up scan, periodic rescan, or a folder that appeared whole. Files the ledger
        already knows with the same size and mtime are skipped without reading them."""
        seen, new, others, refused = 0, 0, [], []
        fingerprint = self.fingerprint()
        for rel in scan(self.rules, root, self.stop_event, others, refused):
            seen += 1
            if rel in self.tracker:
                continue
            row = self.ledger.get(rel)
            if row is not None:
                try:
                    st = (self.rules.inbox / rel).stat()
                except OSError:
                    continue
                if (st.st_size, st.st_mtime_ns) == (row.size, row.mtime_ns) and (
                    row.state in ("queued", "processing", "done")
                    or row.fingerprint in (fingerprint, BAD_FILE)  # no settings read those bytes
                ):
                    continue
            new += 1
            self.candidate(rel, "")
        for rel, why in refused:  # named in the log, once a run (never silently skipped)
            self.candidate(rel, why)
        if root is not None:  # a folder moved in: its other files arrived too, name each
            for rel in others:
                self.candidate(rel, NOT_A_PHOTO)
        else:
            level = "debug" if reason == "periodic" else "info"
            message = f"{reason} scan: {seen} photos ({new} new or changed)"
            if self.stop_event.is_set():  # cut short: the count is of what it reached
                message = f"{reason} scan stopped by the shutdown after {seen} photos"
            if others:  # counted, not named: a camera folder may hold hundreds of videos
                kinds = Counter(extension(rel) for rel in others)
                listed = ", ".join(f"{ext} {n}" for ext, n in sorted(kinds.items()))
                message += f"; {len(others)} other files left alone (not photos: {listed})"
            self.log.emit("scanned", message=message, level=level)

    def scan_folder(self, folder: Path | None, reason: str = "folder") -> None:
        """Scan a folder that appeared whole (None: the whole inbox, when events were lost)."""
        if not self.stop_event.is_set():
            self.later(self.scan, reason=reason, root=folder)

    def settle(self) -> None:
        self._seen = folder_identity(self.rules.inbox)  # for check_inbox
        settled, _vanished = self.tracker.poll(SETTLE_BUDGET, self.stop_event.is_set)
        for rel, why in self.tracker.doubts():
            wait = self.tracker.settle_timeout
            self.log.emit(
                "undecodable",
                rel,
                f"{why}; if it stays unchanged for {wait:g} s it is taken as corrupt and "
                "fails (a file still being written in pauses completes meanwhile)",
                level="warning",
            )
        for rel, seconds in self.tracker.restless():
            self.log.emit(
                "changing",
                rel,
                f"still changing after {seconds:.0f} s: it is taken once it stays unchanged for "
                f"{self.tracker.settle_time:g} s (a copy still running, or a file rewritten again "
                "and again)",
                level="warning",
            )
        for rel, (digest, st) in list(self._unoffered.items()):  # the ledger refused them
            if self._unchanged(rel, st):
                self._offer(rel, digest, st)
            else:  # changed or gone meanwhile: settled anew, or forgotten
                del self._unoffered[rel]
                self.tracker.touch(rel)
        for rel, st, why in settled:
            path = self.rules.inbox / rel
            try:
                digest = sha256_file(path)
            except OSError as exc:
                # unreadable to this user (its permissions): recorded all the same, where its
                # attempt fails saying why — never dropped unseen; made readable, the watcher
                # sees its permissions change, and it settles anew with its content
                digest = ""
                why = why or f"cannot read the file ({exc.strerror or exc})"
            if not self._unchanged(rel, st):
                self.tracker.touch(rel)  # changed while hashed: settle again
                continue
            note = f"; {why}" if why else ""  # the photo will fail: say why now
            self.log.emit(
                "settled",
                rel,
                f"{st.st_size} bytes, sha256 {digest[:12] or 'unknown'}…{note}",
                size=st.st_size,
                sha256=digest,
            )
            self._offer(rel, digest, st)

    def _gone(self, rel: str) -> bool:
        return not os.path.lexists(self.config.inbox / rel)

    def _unchanged(self, rel: str, st: os.stat_result) -> bool:
        try:
            after = (self.rules.inbox / rel).stat()
        except OSError:
            return False
        return (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)

    def _offer(self, rel: str, digest: str, st: os.stat_result) -> None:
        """A settled photo into the ledger. Where the ledger refuses the write (a full disk)
        it is offered again at each poll, neither hashed nor said again."""
        try:
            # a copy queued or a rename followed in the offer's own transaction (see there)
            offer, moved = self.ledger.offer_settled(
                rel, digest, st.st_size, st.st_mtime_ns, self.fingerprint(), self._gone
            )
        except sqlite3.OperationalError as exc:
            self._unoffered[rel] = (digest, st)
            self.log.trouble("a settled photo", exc)
            return
        self._unoffered.pop(rel, None)
        if offer.action in ("queued", "requeued"):
            self.log.emit("queued", rel, offer.why)
            self.wake()
        elif offer.action == "duplicate":
            source = offer.row.duplicate_of
            # renamed or moved (a record of its content lies where no file is now): that
            # record, and its copy in the outbox, followed it
            if moved is not None:
                self.log.emit("duplicate", rel, renamed_note(source, moved))
                return
            if self._gone(source):  # the record under that name is of other content now
                self.log.emit("queued", rel, f"same content as {source} had: protected anew")
            else:  # a copy (the same photo in another album)
                self.log.emit("queued", rel, f"same content as {source}: a copy of its own")
            self.wake()
