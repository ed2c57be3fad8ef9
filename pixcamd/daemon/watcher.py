"""Finding photos in the inbox: ignore rules, the stability tracker, the watchdog handler, scans.

A path goes through three gates before the ledger sees it:

1. ``Rules.accept``: inside the inbox, not under the outbox/state/tmp/hold folders, no part of
   the relative path matching an ignore pattern (sync tools' temp files), a photo extension,
   a regular file — a symlink only when it resolves inside the inbox.
2. ``StabilityTracker``: quiet for ``settle_time`` since the last event or change, the same size
   and mtime on two consecutive polls, and a full decode. A file that keeps failing to decode
   while nothing changes is released after ``settle_timeout`` (it is corrupt, not in transit);
   ``doubts()`` names it once before that, so the wait is never silent; ``restless()`` names
   a file still changing ``settle_timeout`` after it was first seen.
3. The service hashes it and offers it to the ledger, which decides whether there is work.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

from pixcamd.daemon.fs import inside
from pixcamd.daemon.ledger_schema import RECENT
from pixcamd.errors import NotProtectable, OverTheLimit, without_path

NOT_A_PHOTO = "not a photo extension"
LINKED_FOLDER = (
    "a linked folder: never entered (its photos are protected only where they really are, "
    "if that is in the inbox)"
)
DOUBT_AFTER = 3  # settle times a file must be quiet and undecodable before it is named so
HIDDEN = "a photo's name that an ignore pattern matches"
NOT_UTF8 = (
    "its name is not valid UTF-8 (bytes of another system's encoding, shown \\x..): "
    "rename it to protect it"
)


def shown(rel: str) -> str:
    """``rel`` as text the log, the ledger and a terminal can hold: bytes of a name that is not
    valid UTF-8 (decoded by Python as lone surrogates) written ``\\xe9``."""
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def hidden_reason(rules: Rules, rel: str) -> str:
    """What a photo left alone for its name is told (``Rules.hidden_photo``)."""
    pattern = rules.pattern_of(rel.rsplit("/", 1)[-1])
    return (
        f"left alone for its name: the `ignore` pattern {pattern!r} matches it (hidden files, "
        "sync tools' temp names); rename it to protect it"
    )


def extension(name: str) -> str:
    """``name``'s extension as ``extensions`` lists it (lower case), or "no extension"."""
    return os.path.splitext(name)[1].lower() or "no extension"


class Rules:
    """Which paths under the inbox are photos for the daemon; relative paths use '/'."""

    def __init__(
        self,
        inbox: Path,
        ignore: Iterable[str],
        extensions: Iterable[str],
        excluded: Iterable[Path] = (),
    ):
        self.inbox = inbox.resolve()
        self.ignore = tuple(ignore)
        self.extensions = {e.lower() for e in extensions}
        # Our own folders: never ingested, even if a configuration let them overlap the inbox.
        self.excluded = tuple(p.resolve() for p in excluded)

    def relative(self, path: str | os.PathLike) -> str | None:
        """``path`` relative to the inbox, or None when it is not under the inbox.

        Paths are compared as written (the observer and scans use the resolved inbox), so a
        symlink inside the inbox keeps its own name here; ``accept`` checks where it leads.
        """
        absolute = Path(os.path.abspath(path))
        if absolute == self.inbox or not inside(absolute, self.inbox):
            return None
        return absolute.relative_to(self.inbox).as_posix()

    def ignored_name(self, name: str) -> bool:
        return self.pattern_of(name) is not None

    def pattern_of(self, name: str) -> str | None:
        """The first ignore pattern that matches ``name``, if any."""
        return next((p for p in self.ignore if fnmatch.fnmatchcase(name, p)), None)

    def hidden_photo(self, rel: str) -> bool:
        """An ignored name that is a photo's own (``.IMG_1.jpg``), in no ignored folder: named,
        never skipped unseen. Sync tools' temp names end otherwise (``.tmp``, ``.part``, a random
        suffix), and AppleDouble ``._`` files beside a Mac's photos are no photos."""
        *folders, name = rel.split("/")
        return (
            self.is_photo_name(name)
            and not name.startswith("._")
            and not any(self.ignored_name(part) for part in folders)
        )

    def ignored(self, rel: str) -> bool:
        return any(self.ignored_name(part) for part in rel.split("/"))

    def is_photo_name(self, rel: str) -> bool:
        return extension(rel) in self.extensions  # "no extension" is never one (they start ".")

    def excluded_path(self, path: Path) -> bool:
        return any(inside(path, root) for root in self.excluded)

    def accept(self, path: str | os.PathLike) -> tuple[str | None, str]:
        """(relative path, "") for a candidate photo; (rel or None, reason) otherwise."""
        rel = self.relative(path)
        if rel is None:
            return None, "outside the inbox"
        text = shown(rel)  # what the log and the ledger can hold of the name
        if self.ignored(rel):
            return (text, HIDDEN) if self.hidden_photo(rel) else (None, "ignored name")
        absolute = self.inbox / rel
        if absolute.is_symlink() and absolute.is_dir():  # an event for it, as the scan says it
            return text, LINKED_FOLDER
        if not self.is_photo_name(rel):  # a video or a sidecar: left alone, but named
            return text, NOT_A_PHOTO
        if self.excluded_path(absolute):
            return None, "one of the daemon's own folders"
        if text != rel:  # no ledger key, no log line can hold it: named, not taken
            return text, NOT_UTF8
        try:
            if absolute.is_symlink():
                target = absolute.resolve()
                if not inside(target, self.inbox) or self.excluded_path(target):
                    return rel, "symlink out of the inbox"
                if not target.exists():  # never a photo, whatever arrives there later unseen
                    return rel, "a symlink to nothing (its target is missing)"
        except (OSError, RuntimeError) as exc:  # permissions; loops (RuntimeError before 3.13)
            return rel, f"unusable symlink ({exc})"
        try:
            regular = _regular(absolute.stat())
        except OSError:  # gone already: its event follows, or the settle finds it gone
            regular = True
        if not regular:  # a named pipe, socket or device named like a photo: a read may never end
            return rel, "not a regular file"
        return rel, ""


def scan(
    rules: Rules,
    root: Path | None = None,
    stop: threading.Event | None = None,
    others: list[str] | None = None,
    refused: list[tuple[str, str]] | None = None,
) -> Iterator[str]:
    """Relative paths of every candidate photo under ``root`` (default: the whole inbox); those
    of the files left alone for their extension are appended to ``others``, (path, why) of the
    photos refused (a symlink out of the inbox, not a regular file) to ``refused``.

    Symlinked folders are never entered (each is refused, by name); ignored folders are pruned,
    not walked.
    """
    start = root or rules.inbox

    def refuse(path: Path) -> None:
        rel, reason = rules.accept(path)
        if rel is not None and refused is not None:
            refused.append((rel, reason))

    if root is not None and root.is_symlink():  # os.walk would follow a linked root
        refuse(root)
        return
    errors: list[OSError] = []  # os.walk says nothing of a folder it cannot list
    for folder, dirs, files in os.walk(start, onerror=errors.append, followlinks=False):
        if stop is not None and stop.is_set():
            return
        _cannot_read(rules, errors, refused)
        here = Path(folder)
        kept = []
        for d in sorted(dirs):
            if rules.ignored_name(d) or rules.excluded_path(here / d):
                continue
            if (here / d).is_symlink():  # os.walk would pass it by in silence
                refuse(here / d)
            else:
                kept.append(d)
        dirs[:] = kept
        for name in sorted(files):
            rel, reason = rules.accept(here / name)
            if rel is not None and not reason:
                yield rel
            elif reason == NOT_A_PHOTO:
                if others is not None:
                    others.append(rel)
            elif rel is not None and refused is not None:
                refused.append((rel, reason))
    _cannot_read(rules, errors, refused)


def _cannot_read(rules: Rules, errors: list[OSError], refused: list | None) -> None:
    """A folder the scan could not list, as a refusal: its photos are never skipped unseen."""
    while errors:
        exc = errors.pop(0)
        if refused is not None:
            refused.append((shown(rules.relative(exc.filename) or "."), unreadable(exc)))


def unreadable(exc: OSError) -> str:
    """Why a walk passed a folder by (``os.walk``'s ``onerror``: it says nothing itself)."""
    return f"a folder that cannot be read ({exc.strerror or exc}); nothing in it is seen"


@dataclass
class _Pending:
    signature: tuple[int, int] | None = None  # (size, mtime_ns) at the last poll
    changed_at: float = 0.0  # last event or change of signature (monotonic)
    same: int = 0  # consecutive polls with an unchanged signature
    decode_error: str | None = None
    doubt_said: bool = False  # its decode error was reported while it waits (once a settle)
    first_seen: float = 0.0  # when it was first tracked (monotonic)
    changing_said: bool = False  # named as still changing after ``settle_timeout`` (once)


class StabilityTracker:
    """Tells when a file has stopped changing and can be read in full (paperless-ngx style).

    ``touch(rel)`` on every event for a path (and for scan hits); ``poll()`` returns the paths
    that have settled since. Thread-safe; ``clock`` and ``decode`` are injectable for tests.
    """

    def __init__(
        self,
        inbox: Path,
        settle_time: float,
        settle_timeout: float,
        decode: Callable[[Path], None],
        clock: Callable[[], float] = time.monotonic,
    ):
        self.inbox = inbox
        self.settle_time = settle_time
        self.settle_timeout = max(settle_timeout, settle_time)
        self.decode = decode
        self.clock = clock
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    def __contains__(self, rel: str) -> bool:
        with self._lock:
            return rel in self._pending

    def touch(self, rel: str) -> bool:
        """Something happened to ``rel``: (re)start its quiet period. True if newly tracked."""
        with self._lock:
            entry = self._pending.get(rel)
            new = entry is None
            if new:
                entry = self._pending[rel] = _Pending(first_seen=self.clock())
            entry.changed_at = self.clock()
            entry.same = 0
            return new

    def doubts(self) -> list[tuple[str, str]]:
        """(rel, decode error) of files quiet for ``DOUBT_AFTER`` settle times that still do not
        decode, each once while it waits out ``settle_timeout``: a corrupt file says so long
        before it fails, a copy that only paused a moment (a slow network) says nothing."""
        with self._lock:
            out, now = [], self.clock()
            for rel, entry in self._pending.items():
                quiet = now - entry.changed_at >= DOUBT_AFTER * self.settle_time
                if entry.decode_error is not None and not entry.doubt_said and quiet:
                    entry.doubt_said = True
                    out.append((rel, entry.decode_error))
            return out

    def restless(self) -> list[tuple[str, float]]:
        """(rel, seconds tracked) of files still changing ``settle_timeout`` after they were first
        seen, each once: a copy that never ends, or a file rewritten again and again, is named
        rather than left settling unseen."""
        with self._lock:
            out, now = [], self.clock()
            for rel, entry in self._pending.items():
                changing = now - entry.changed_at < self.settle_time
                long = now - entry.first_seen >= self.settle_timeout
                if changing and long and not entry.changing_said:
                    entry.changing_said = True
                    out.append((rel, now - entry.first_seen))
            return out

    def forget(self, rel: str) -> None:
        with self._lock:
            self._pending.pop(rel, None)

    def poll(
        self, budget: float | None = None, stop: Callable[[], bool] | None = None
    ) -> tuple[list[tuple[str, os.stat_result, str | None]], list[str]]:
        """(settled, vanished): settled items are (rel, stat, why the photo will fail or None:
        "does not decode: …" after ``settle_timeout``, "cannot be protected: …" at once).

        Files from the last day first (as the ledger takes them), then in the order they came,
        and no more full decodes once ``budget`` seconds have gone on them (the rest wait for
        the next poll): a library found at the first start settles a batch at a time, queued as
        it goes, and a photo taken today dropped in meanwhile is not decoded after all of it.
        ``stop`` True ends the poll between two files."""
        recent = (time.time() - RECENT) * 1e9

        def older(item) -> bool:  # its size and time as the last poll saw them
            return item[1].signature is not None and item[1].signature[1] < recent

        with self._lock:
            items = list(self._pending.items())
        items.sort(key=older)  # stable: arrival order kept; outside the lock (50,000: 70 ms)
        settled, vanished = [], []
        began = self.clock()
        for rel, entry in items:
            if stop is not None and stop():
                break
            path = self.inbox / rel
            try:
                st = path.stat()
            except OSError:
                vanished.append(rel)
                continue
            if not _regular(st):
                vanished.append(rel)
                continue
            now = self.clock()
            signature = (st.st_size, st.st_mtime_ns)
            with self._lock:
                if self._pending.get(rel) is not entry:
                    continue  # forgotten meanwhile
                if signature != entry.signature:
                    entry.signature, entry.changed_at, entry.same = signature, now, 0
                    entry.decode_error, entry.doubt_said = None, False  # new bytes: judge anew
                    continue
                entry.same += 1
                quiet = now - entry.changed_at
                if quiet < self.settle_time or entry.same < 2:
                    continue
            if budget is not None and self.clock() - began >= budget:
                break  # decoded enough for one poll; a later one takes the rest
            final = False  # a refusal of a photo read whole: no reason to wait for more bytes
            hold = False  # a refusal from its header alone: said once the file is quiet
            try:
                self.decode(path)  # full decode: a file still arriving fails here
                error = None
            except OverTheLimit as exc:  # its end may still arrive: one refusal, not one a pause
                error = f"cannot be protected: {without_path(str(exc), str(path))}"
                final = quiet >= DOUBT_AFTER * self.settle_time
                hold = not final
            except NotProtectable as exc:  # read whole, and refused for what it is
                error, final = f"cannot be protected: {without_path(str(exc), str(path))}", True
            except Exception as exc:
                error = (
                    f"does not decode: {without_path(str(exc), str(path)) or type(exc).__name__}"
                )
            try:
                after = path.stat()
            except OSError:
                vanished.append(rel)
                continue
            with self._lock:
                if self._pending.get(rel) is not entry:
                    continue
                if (after.st_size, after.st_mtime_ns) != signature:
                    entry.signature, entry.changed_at, entry.same = None, now, 0
                    continue
                waited = self.clock() - entry.changed_at
                if hold:
                    continue
                if error is not None and not final and waited < self.settle_timeout:
                    entry.decode_error = error
                    continue  # maybe still arriving in pauses: wait for the timeout
                del self._pending[rel]
            settled.append((rel, after, error))
        with self._lock:
            for rel in vanished:
                self._pending.pop(rel, None)
        return settled, vanished


def _regular(st: os.stat_result) -> bool:
    return stat.S_ISREG(st.st_mode)


class InboxHandler(FileSystemEventHandler):
    """watchdog events → tracker. Handles created, modified, closed-after-write, moved in/out
    (rsync and Syncthing deliver the final name only as a rename), deleted, and folders that
    appear whole (a moved-in folder brings files no event announces: they are scanned)."""

    def __init__(
        self,
        rules: Rules,
        on_candidate: Callable[[str, str], None],
        on_gone: Callable[[str], None],
        on_folder: Callable[[Path], None],
    ):
        super().__init__()
        self.rules = rules
        self.on_candidate = on_candidate  # (rel, reason "" or why it is refused)
        self.on_gone = on_gone
        self.on_folder = on_folder

    def on_any_event(self, event: FileSystemEvent) -> None:
        with contextlib.suppress(Exception):  # one odd event must not kill the observer
            self._dispatch(event)

    def _dispatch(self, event: FileSystemEvent) -> None:
        if isinstance(event, DirMovedEvent | DirCreatedEvent):
            dest = event.dest_path if isinstance(event, DirMovedEvent) else event.src_path
            rel = self.rules.relative(os.fsdecode(dest))
            if rel is not None and not self.rules.ignored(rel):
                self.on_folder(self.rules.inbox / rel)
            return
        if isinstance(event, FileMovedEvent):
            self._gone(event.src_path)
            self._arrived(event.dest_path)
        elif isinstance(
            event, FileCreatedEvent | FileModifiedEvent | FileClosedEvent | FileAttribEvent
        ):  # its permissions too: a photo this user could not read may be readable now
            self._arrived(event.src_path)
        elif isinstance(event, FileDeletedEvent):
            self._gone(event.src_path)

    def _arrived(self, path) -> None:
        rel, reason = self.rules.accept(os.fsdecode(path))
        if rel is not None:
            self.on_candidate(rel, reason)

    def _gone(self, path) -> None:
        rel = self.rules.relative(os.fsdecode(path))
        if rel is not None:
            self.on_gone(rel)
