"""The status log: one structlog event per state change.

Each event goes three ways: a JSON line in the log file (for machines; the file is reopened for
every line, so logrotate can move it away), a human-readable line on stderr (the journal under
systemd), and a row in the ledger's ``events`` table (what ``pixcamd status`` shows).

Events: daemon_started, model, ready, detected, settled, queued, duplicate, ignored, vanished,
started, protected (scores, PSNR, seconds), unprotected, shipped_unprotected, failed (reason),
retried, abandoned, recovered, photo_note, outbox_unavailable and outbox_back (nothing is taken
from the queue in between; outbox_full too, until the disk has room), folder_unavailable and
folder_back (a folder of the outbox closed to this user: its photos wait), cluster_unreachable and
cluster_back, inbox_unavailable and inbox_back, folders_moved, new_record (a new ledger beside
an outbox of files: a lost state dir?), stopping, stopped; and, once each,
log_unwritable / log_back (on stderr and in the ledger) and ledger_unwritable / ledger_back (on
stderr): what cannot be written is said, never raised. A person's decisions (ship, remove)
taken in another process are appended to the log file by ``append_line``.

The config's ``log_level`` (info, warning or error) sets which events reach stderr, and only
that: the log file and the ledger are the record (scripts; ``pixcamd status``, ``--follow``, the
page) and keep every event from info up whatever it says. A reload changes it between two events
(``show``). The one debug event (a periodic rescan's count) is kept nowhere: no level shows it.
What says an error is over (``BACK``: the inbox, the outbox, a folder, the cluster back) is on
stderr at any level, as ``log_back`` is: a console that said the error must say its end.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import sqlite3
import stat
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

import structlog

from pixcamd.daemon.ledger import Ledger

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,  # the daemon cannot work as configured (its cluster is gone)
}
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# info events that end an error (``inbox_unavailable``, ``outbox_unavailable`` or ``outbox_full``,
# ``folder_unavailable``, ``cluster_unreachable``): written to stderr whatever log_level says
BACK = frozenset({"inbox_back", "outbox_back", "folder_back", "cluster_back"})


def iso_time(ts: float) -> str:
    """An event's time as the JSON log and ``status --follow --json`` give it (``ts``): ISO-8601
    in UTC, to the microsecond (``2026-12-06T21:53:21.601438Z``)."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def append_line(
    path: Path, ts: float, level: str, event: str, where: str | None, data: dict
) -> None:
    """An event recorded by another process (a person's decision: `pixcamd ship`, `remove`,
    the page on its own) appended to the daemon's JSON log as the daemon writes its lines:
    reopened for the line, appended by one write (whole beside the daemon's own). Only to a
    file that is there: one made here could be a user's — root's, under sudo — that the
    daemon could no longer write. A file this user cannot write (a service's), or a pipe no
    one reads (never waited for), loses the line, never raised: the ledger has the event.
    Only a regular file: a log on ``/dev/stdout`` (a container's) is the daemon's stdout there,
    and here it would be the shell's — the decision's JSON in the middle of its answer."""
    fields = {k: v for k, v in data.items() if v is not None}
    if where is not None:
        fields["path"] = where
    fields.update(event=event, level=level, ts=iso_time(ts))
    line = json.dumps(fields, default=str, ensure_ascii=False) + "\n"
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                write_all(fd, line.encode("utf-8"))
        finally:
            os.close(fd)


STALL = 30.0  # s: a pipe no one has read from for this long takes no more of the line


class Stalled(OSError):
    """Nothing read from a full non-blocking pipe for the time waited; ``written``: how many
    bytes of the data it took before."""

    def __init__(self, message: str, written: int = 0):
        super().__init__(message)
        self.written = written


def write_all(fd: int, data: bytes, wait: float | None = None) -> None:
    """Every byte of ``data`` to ``fd``: one ``os.write`` may take only part of it — a line
    longer than a pipe takes at once (``/dev/stdout`` in a container, 64 KiB; above 4 KiB a
    pipe's write is not whole by rule), cut by a signal (the SIGTERM of a stop) or by a pipe
    left non-blocking. A full non-blocking pipe is waited for until it takes more; one that
    takes nothing for ``wait`` seconds (``STALL``) is ``Stalled``, an OSError as a write that
    fails, saying how much of ``data`` it took."""
    wait = STALL if wait is None else wait
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            if not select.select([], [fd], [], wait)[1]:
                written = len(data) - len(view)
                raise Stalled(f"nothing read from the log for {STALL:g} s", written) from None
            continue
        view = view[written:]


def _ts_last(logger, name: str, event: dict) -> dict:
    """``ts`` at the end of the JSON line, where structlog's own time stamp put it."""
    event["ts"] = event.pop("ts")
    return event


def printable(text: str) -> str:
    """``text`` for a human line: control and format characters escaped (``\\n``, ``\\x1b``,
    ``\\u202e``), so a file name from a sync peer can neither split a log line in two (forging
    the next one) nor drive the terminal. The JSON log keeps names exactly."""
    if text.isprintable():
        return text
    out = []
    for c in text:
        if c.isprintable():
            out.append(c)
        elif c in _ESCAPES:
            out.append(_ESCAPES[c])
        else:
            out.append(f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}")
    return "".join(out)


def clock(ts: float, now: float | None = None) -> str:
    """A time beside an event or a photo, in local time: ``21:53:21`` today, with its date on
    another day (``2026-12-03 21:53:21``), so that one from days ago does not read as today's."""
    when = datetime.fromtimestamp(ts)
    today = datetime.fromtimestamp(time.time() if now is None else now).date()
    return when.strftime("%H:%M:%S" if when.date() == today else "%Y-%m-%d %H:%M:%S")


def human_line(ts: float, level: str, event: str, path: str | None, message: str = "") -> str:
    """An event as a person reads it (stderr, the journal, ``pixcamd status --follow``),
    names escaped by ``printable``; its time by ``clock``."""
    line = f"{clock(ts)} {level.upper():7} {event}"
    if path is not None:
        line += f" {path}"
    if message:
        line += f": {message}"
    return printable(line)


# sd-daemon(3): a line written to the journal's stream may start with its syslog priority
PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}


def to_journal(stream) -> bool:
    """Whether ``stream`` is systemd's journal: the device and inode its service manager put
    in ``$JOURNAL_STREAM`` (a shell's pipe or a terminal is not, even under a service)."""
    wanted = os.environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(stream.fileno())
        device, inode = (int(part) for part in wanted.split(":"))
    except (ValueError, OSError, AttributeError):  # not set, or no file behind the stream
        return False
    return (st.st_dev, st.st_ino) == (device, inode)


_UNWRITTEN = object()  # no line written yet by this call (its level filtered it out)


_STD_FDS = {"/dev/stdout": 1, "/dev/stderr": 2, "/dev/fd/1": 1, "/dev/fd/2": 2}
_STD_FDS |= {"/proc/self/fd/1": 1, "/proc/self/fd/2": 2}


class _FileSink:
    """The logger structlog writes to: appends each rendered line to the log file. A line that
    cannot be written (a full disk, a folder gone) is lost, never raised: the log is a record
    of the work, and failing to keep it must not undo the work (a copy published, then its
    commit rolled back by the error, would be published again)."""

    def __init__(self, path: Path, lock: threading.Lock):
        self.path, self.lock = path, lock
        self.last = threading.local()  # per thread: why its last line was not written, or None
        # A container's log is the process's stdout: written to it, not opened again by name —
        # /dev/stdout is a pipe its engine made, which a user other than root may not open.
        self.fd = _STD_FDS.get(str(path))
        # A pipe found stalled is not waited for again line by line (a reader gone for good
        # would hold every event STALL seconds): a line it cannot take at once is lost until it
        # takes one again.
        self.stalled = False
        # The end of a line the pipe took only part of: written before the next line, so that
        # a collector reading lines never gets two run together (the next one lost with it).
        self.rest = b""

    def msg(self, line: str) -> None:
        with self.lock:
            try:
                if self.fd is not None:
                    self._to_fd((line + "\n").encode("utf-8"))
                else:
                    with self.path.open("a", encoding="utf-8") as fp:
                        fp.write(line + "\n")
            except OSError as exc:
                self.last.problem = exc.strerror or str(exc)
            else:
                self.last.problem = None

    debug = info = warning = error = critical = msg

    def _to_fd(self, line: bytes) -> None:
        """``line`` after the rest of one cut short; on a stall, what is left of a line begun is
        kept for the next time (a line not begun is lost whole)."""
        owed = self.rest
        data = owed + line
        try:
            write_all(self.fd, data, 0.0 if self.stalled else STALL)
        except Stalled as exc:
            self.stalled = True
            # this line begun: the rest of it comes first next time; else it is lost whole, and
            # what is left of the old line's end (if anything) is still owed
            self.rest = (data if exc.written > len(owed) else owed)[exc.written :]
            raise
        self.stalled, self.rest = False, b""


class EventLog:
    def __init__(
        self,
        path: Path,
        ledger: Ledger | None = None,
        stream: TextIO | None = None,
        stderr_level: str = "info",
    ):
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.ledger = ledger
        self.stream = stream if stream is not None else sys.stderr
        self._lock = threading.Lock()
        self._sink = _FileSink(path, self._lock)
        self._said: dict[str, str | None] = {"log": None, "ledger": None}  # trouble said
        self._trouble_lock = threading.Lock()
        # One event at a time through file, stderr and ledger: two threads' events (the intake's
        # "scanned", the main loop's "ready") were in one order in the log file and the other in
        # the ledger `status --follow` reads. Re-entrant: a signal handler may emit mid-emit.
        self._order = threading.RLock()
        self._journal: bool | None = None  # whether the stream is the journal, once looked at
        self._shown = LEVELS[stderr_level]  # the least level written to stderr (log_level)
        self._logger = structlog.wrap_logger(
            self._sink,
            processors=[
                structlog.processors.add_log_level,
                _ts_last,  # the time emit gives: the ledger's row has the same
                structlog.processors.JSONRenderer(default=str, ensure_ascii=False),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),  # the record
            cache_logger_on_first_use=False,
        )

    def emit(
        self,
        event: str,
        path: str | None = None,
        message: str = "",
        level: str = "info",
        **data,
    ) -> None:
        """Record one event; ``message`` is the human-readable part (JSON keeps it too)."""
        fields = {k: v for k, v in data.items() if v is not None}
        if path is not None:
            fields["path"] = path
        if message:
            fields["message"] = message
        with self._order:
            self._emit(event, path, message, level, fields)

    def ordered(self) -> threading.RLock:
        """Held around a change to the ledger and the events that say it (``retry.apply``): no
        other thread's event comes between them — the worker's ``started`` for a photo the
        page queued again waits for that photo's ``retry``."""
        return self._order

    def show(self, stderr_level: str) -> None:
        """Write the events from ``stderr_level`` up to stderr, from the next event on (a
        reload's ``log_level``); the log file and the ledger keep every one all the same."""
        with self._order:  # between two events, never in the middle of one
            self._shown = LEVELS[stderr_level]

    def _emit(self, event: str, path: str | None, message: str, level: str, fields: dict) -> None:
        now = time.time()  # one time for the file, stderr and the ledger
        self._sink.last.problem = _UNWRITTEN
        getattr(self._logger, level)(event, **fields, ts=iso_time(now))
        if self._sink.last.problem is not _UNWRITTEN:  # not filtered out by its level
            self._trouble("log", self._sink.last.problem)
        if LEVELS[level] < logging.INFO:
            return
        if LEVELS[level] >= self._shown or event in BACK:  # the console's (the record: all)
            self._print(human_line(now, level, event, path, message), level)
        if self.ledger is not None:
            extra = {k: v for k, v in fields.items() if k not in ("path",)}
            try:
                self.ledger.add_event(now, level, event, path, extra)
            except (sqlite3.Error, OSError) as exc:  # said, never raised (see _FileSink)
                self._trouble("ledger", str(exc))
            else:
                self._trouble("ledger", None)

    def trouble(self, what: str, exc: BaseException) -> None:
        """A write to the ledger failed outside ``emit`` (the heartbeat, a photo's row): said
        on stderr once until the ledger writes again, never raised."""
        self._trouble("ledger", f"{exc} ({what})")

    def ledger_ok(self) -> None:
        """A write to the ledger outside ``emit`` went through (the heartbeat)."""
        self._trouble("ledger", None)

    def _trouble(self, where: str, problem: str | None) -> None:
        """Say on stderr (the journal) when the log file or the ledger stops taking writes,
        and when it takes them again — once each, not once per event, whichever thread finds
        it first; whatever ``log_level`` says: the record itself failing is for the console,
        and a ``_back`` (a warning) closes the ``_unwritable`` (an error) it said."""
        with self._trouble_lock:
            if problem == self._said[where] or (problem and self._said[where]):
                return
            self._said[where] = problem
            self._say_trouble(where, problem)

    def _say_trouble(self, where: str, problem: str | None) -> None:
        name = f"the log file {self.path}" if where == "log" else "the ledger"
        if problem:
            event, level = f"{where}_unwritable", "error"
            text = f"{name} cannot be written ({problem}): events and records are lost until it can"
        else:
            event, level, text = f"{where}_back", "warning", f"{name} is written again"
        now = time.time()
        self._print(human_line(now, level, event, None, text), level)
        if where == "log" and self.ledger is not None:  # for `pixcamd status`, where it can
            with contextlib.suppress(sqlite3.Error, OSError):
                self.ledger.add_event(now, level, event, None, {"message": text})

    def _print(self, human: str, level: str = "info") -> None:
        if self._journal is None:
            self._journal = to_journal(self.stream)
        if self._journal:  # the journal's priority: `journalctl -p warning` finds these
            human = f"<{PRIORITY.get(level, 6)}>{human}"
        try:
            with self._lock:
                print(human, file=self.stream, flush=True)
        except (OSError, ValueError):  # a closed stderr must not stop the daemon
            pass
