"""The worker: one thread that owns the loaded model(s) and turns queued rows into outbox files.

It is a thin shell around ``pixcamd.job`` (``protect()`` and the check of the copy's bytes, as
``pixcamd protect`` runs them): the copy's bytes, judged as a viewer decodes them, are staged in
the temp folder (never the outbox) and only then published with one rename
(``pixcamd.daemon.publication``). The original is only ever opened for reading.

Failures are sorted: a file that cannot be read as a photo fails at once (``failed``); transient
trouble (disk full, I/O errors, out of memory, anything unexpected) is retried with exponential
backoff up to ``max_attempts``; GPU out-of-memory retries at once with half the batch, then on
the CPU. Abandoning (shutdown past the grace time) raises inside protect()'s progress callback,
so nothing is written and the row goes back to the queue. What becomes of an outcome (shipped,
held, a twin's copy) is ``pixcamd.daemon.publishing``'s; while the outbox is gone, nothing is
taken from the queue.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from pixcamd.daemon.config import Config
from pixcamd.daemon.events import EventLog
from pixcamd.daemon.fs import inside, mount_point, sha256_file
from pixcamd.daemon.ledger import Ledger
from pixcamd.daemon.ledger_row import Row
from pixcamd.daemon.ledger_schema import BAD_FILE
from pixcamd.daemon.publication import finish_interrupted
from pixcamd.daemon.publishing import (
    Abandoned,
    Changed,
    FolderClosed,
    Publisher,
    Vanished,
    no_room,
)
from pixcamd.daemon.settings import (
    can_degrade,
    degrade_label,
    degraded,
    is_gpu_oom,
    job_options,
    use_threads,
    with_budget,
)
from pixcamd.errors import PhotoError, Undecodable, without_path

# what a person can do about a failed photo, said with it in the log
BAD_FILE_HINT = "a new version of the file (copied or exported again) is read when it arrives"
GAVE_UP_HINT = "`pixcamd retry --failed` once the cause is fixed"
FIX_HINT = "`pixcamd retry --failed` once it is fixed"


class Refused(Exception):
    """A permanent problem with this source (e.g. a symlink out of the inbox)."""


class Unreadable(PhotoError):
    """The source's bytes could not be read (its permissions, an I/O error): fixed outside,
    where neither its size nor its time need change."""


BLOCKED_POLL = 1.0  # seconds between looks while queued photos can go nowhere (outbox, cluster)
LOOK_EVERY = 2.0  # seconds between looks at the photo being protected: changed, or gone?


class Worker(Publisher):
    def __init__(
        self,
        config: Config,
        ledger: Ledger,
        models: list,
        settings,
        fingerprint: str,
        log: EventLog,
        tmp_dir: Path,
        on_retry: Callable[[float], None] = lambda when: None,
        on_changed: Callable[[str], None] = lambda rel: None,
        model_label: str | None = None,
    ):
        self.config = config
        self.ledger = ledger
        self.models = models
        self.settings = settings
        self.fingerprint = fingerprint
        # recorded per photo, e.g. "brisque (auto fallback)" when auto found no KonCept512
        self.model_label = model_label or "+".join(m.name for m in models)
        self.log = log
        self.tmp_dir = tmp_dir
        self.inbox = config.inbox.resolve()
        self.outbox, self.outbox_mount = config.outbox, mount_point(config.outbox)
        self.on_retry = on_retry
        self.on_changed = on_changed
        self.wake = threading.Event()
        self.stop_taking = threading.Event()
        self._abandon = threading.Event()
        self.commit_lock = threading.Lock()
        self.dead = False  # set by the service after a hard abandon: never publish again
        self.current: str | None = None
        self._stranded = False  # a ledger write failed: rows may be left processing
        self.current_since: float | None = None
        self.step = 0
        self.last_progress = time.monotonic()
        self.idle = False
        self._pending = None  # a reload's (config, models, settings, fingerprint, label)
        self._closed_folders: dict[Path, int] = {}  # outbox folders closed to us, said: access
        self._kept: dict = {}  # row id → (sha256, fingerprint, Result): one photo's, at most
        self._watched: tuple | None = None  # (path, size, mtime_ns, sha256): the photo in the loop
        self._next_look = 0.0
        self._pending_lock = threading.Lock()
        self.thread = threading.Thread(target=self.run, name="pixcamd-worker", daemon=True)

    # ---- control ---------------------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def reconfigure(self, config, models, settings, fingerprint: str, model_label: str) -> None:
        """New settings from a reload, taken up before the next photo (the current one
        finishes with what it started with)."""
        with self._pending_lock:
            self._pending = (config, models, settings, fingerprint, model_label)
        self.wake.set()

    def _take_pending(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            self.config, self.models, self.settings, self.fingerprint, self.model_label = pending
            use_threads(self.config)  # from the next photo, as every setting of a reload

    def abandon(self) -> None:
        self._abandon.set()
        self.wake.set()

    def _progress(self, step: int, worst: float) -> None:
        self.step = step
        self.last_progress = time.monotonic()
        if self._abandon.is_set():
            raise Abandoned()
        if self._watched is not None and self.last_progress >= self._next_look:
            self._next_look = self.last_progress + LOOK_EVERY
            self._still_there(*self._watched)

    def _still_there(self, src: Path, size: int, mtime_ns: int, sha256: str) -> None:
        """The photo changed or went while it was protected: stop now, not at its publication
        minutes later (its copy would be of what is no longer there). A new time alone (a
        touch, a sync tool setting it again) is a change only if the bytes say so."""
        try:
            now = os.stat(src)
            if (now.st_size, now.st_mtime_ns) == (size, mtime_ns):
                return
            if now.st_size == size and sha256_file(src) == sha256:
                self._watched = (src, size, now.st_mtime_ns, sha256)
                return
        except FileNotFoundError:
            raise Vanished("it was protected") from None
        except OSError:
            return  # an unreadable moment: the publication looks again
        raise Changed("it was protected")

    def _checkpoint(self) -> None:
        self.last_progress = time.monotonic()
        if self._abandon.is_set():
            raise Abandoned()

    def run(self) -> None:
        use_threads(self.config)
        while not self.stop_taking.is_set():
            self.last_progress = time.monotonic()  # idle is healthy: the loop turns
            self.wake.clear()
            self._take_pending()  # between photos: a reload's settings
            if not self.outbox_ready():
                self._idle(BLOCKED_POLL)  # queued photos are due, but cannot go anywhere
                continue
            try:
                self._resolve_stranded()
                row = self.ledger.claim_next()
                if row is None:
                    self._idle()
                    continue
                self.process(row)
            except sqlite3.OperationalError as exc:  # a full disk under the state dir
                self._ledger_refused(exc)

    def _ledger_refused(self, exc: Exception) -> None:
        """Said, not fatal: nothing is claimed until the ledger takes writes again, and then
        the photo whose record failed is resolved (``_resolve_stranded``)."""
        self._stranded = True
        self.log.trouble("a photo's record", exc)
        self._idle(BLOCKED_POLL)

    def _resolve_stranded(self) -> None:
        """Rows left processing by a ledger that refused a write (none in flight on a
        cluster): a publication it recorded is finished — or found done: the rename may have
        come before the refused write — as after a crash; the others are queued again, the
        attempt not counted (its protected pixels are kept for the retry)."""
        if not self._stranded:
            return
        busy = set(getattr(self, "inflight", ()))
        for row in self.ledger.processing():
            if row.id in busy:
                continue
            finished = finish_interrupted(self.ledger, row, self.outbox)
            if finished is None:
                self.ledger.requeue(row.id)
            else:
                _, event, message, level = finished
                self.log.emit(event, row.path, message, level=level)
        self._stranded = False

    def _idle(self, wait: float | None = None) -> None:
        """Nothing to do now: wait for a wake-up or the next retry that falls due (or
        ``wait`` seconds)."""
        if wait is None:
            due = self.ledger.next_due()
            wait = 1.0 if due is None else min(1.0, max(0.02, due - time.time()))
        self.idle = True  # waiting for work is healthy (see Daemon.tick's watchdog)
        self.wake.wait(wait)
        self.idle = False

    # ---- one photo ---------------------------------------------------------------------------

    def process(self, row: Row) -> None:
        self.current, self.current_since, self.step = row.path, time.time(), 0
        try:
            self._process(row)
        finally:
            self.current = self.current_since = None
            self.last_progress = time.monotonic()
            from pixcamd.devices import release_memory  # torch is loaded by now

            release_memory()  # an idle daemon should not sit on the last photo's peak

    def _process(self, row: Row) -> None:
        original = self.ledger.done_with_sha(row.sha256, row.path)
        if original is not None and self._as_rename(row, original):
            return  # its record and copy followed it: nothing written, no folder to wait for
        if self.waits_for_folder(row):  # its copy's folder in the outbox is closed to us
            return  # (before the twin's look: that one writes a copy there too)
        if original is not None and self._as_duplicate(row, original):
            return
        self._started(row)
        self._guard(row, self._protect_and_publish)

    def _started(self, row: Row, executor: str = "local", where: str = "") -> None:
        on = f", on {where}" if where else ""
        self.log.emit(
            "started",
            row.path,
            f"attempt {row.attempts}, model {self.model_label}{on}",
            attempt=row.attempts,
            model=self.model_label,
            executor=executor,
        )

    def _guard(self, row: Row, action: Callable[[Row], None]) -> None:
        """Run ``action(row)`` and sort what goes wrong: stopped, changed, gone, a bad photo
        (failed for good) or anything else (retried with backoff)."""
        try:
            action(row)
        except Abandoned:
            self.ledger.requeue(row.id)
            self.log.emit("abandoned", row.path, "shutdown: nothing written, queued again")
        except Changed as exc:
            self.ledger.requeue(row.id, delay=self.config.settle_time)
            self.on_changed(row.path)
            when = str(exc) or "it was read"
            self.log.emit("requeued", row.path, f"the file changed while {when}")
        except Vanished as exc:
            self._vanished(row, str(exc))
        except FolderClosed as exc:  # a folder of the outbox, closed to this user meanwhile
            self.hold_for_folder(row, exc.folder)
        except (PhotoError, Refused) as exc:
            # the log names the photo; no budget changes the file
            bad = not isinstance(exc, (Unreadable, Refused))  # the bytes, not their access
            hint = BAD_FILE_HINT if bad else FIX_HINT
            self._fail(row, without_path(str(exc), row.path), hint, isinstance(exc, Undecodable))
        except Exception as exc:
            self._transient(row, exc)

    def _vanished(self, row: Row, when: str) -> None:
        """Gone from the inbox before it was processed: forgotten — unless an earlier version's
        copy is in the outbox, whose name stays this photo's (a version synced back replaces
        it, instead of being given a second name beside it). No file matches its record (no
        content, no size or time), so whatever comes back under its name is read anew."""
        if not row.output:
            self.ledger.delete(row.id)
            self.log.emit("vanished", row.path, f"gone from the inbox before {when}")
            return
        why = f"gone from the inbox before it was redone; its earlier copy {row.output} stays"
        self.ledger.finish(row.id, "failed", sha256="", size=-1, mtime_ns=-1, error=why)
        self.log.emit("vanished", row.path, why + " in the outbox")

    def _as_rename(self, row: Row, original: Row) -> bool:
        """A rename caught here (``_renamed``), or what went wrong sorted by ``_guard``."""
        moved: list[bool] = []
        self._guard(row, lambda r: moved.append(self._renamed(r, original)))
        return moved != [False]

    def _as_duplicate(self, row: Row, original: Row) -> bool:
        """Its twin's copy published, or what went wrong sorted by ``_guard`` (retried)."""
        reused: list[bool] = []
        self._guard(row, lambda r: reused.append(self._duplicate(r, original)))
        return reused != [False]

    def _fail(self, row: Row, reason: str, hint: str = "", no_image: bool = False) -> None:
        """Failed for good; ``hint``: what the person can do, said in the log (``status``
        says it under its list); ``no_image``: its bytes are none, whatever the settings."""
        more = {"fingerprint": BAD_FILE} if no_image else {}
        self.ledger.finish(row.id, "failed", error=reason, model=self.model_label, **more)
        said = f"{reason} — {hint}" if hint else reason
        self.log.emit("failed", row.path, said, level="warning", reason=reason)

    def _transient(self, row: Row, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        if is_gpu_oom(exc) and can_degrade(self.settings, row.degrade):
            with contextlib.suppress(Exception):
                import torch

                torch.cuda.empty_cache()
            degrade = row.degrade + 1
            self.ledger.retry(row.id, reason, 0.0, degrade=degrade)
            self.ledger.requeue(row.id)  # stepping down is not a failed attempt
            self.log.emit(
                "retried",
                row.path,
                f"GPU out of memory; again {degrade_label(self.settings, degrade)}",
                level="warning",
                reason=reason,
                degrade=degrade,
            )
            self.on_retry(time.time())
            return
        full = no_room(exc)
        hold = self.config.hold_dir
        if full is not None and not (hold and full.filename and inside(Path(full.filename), hold)):
            # the queue waits for room in the outbox (a full hold_dir holds only held photos);
            # this attempt counts, the next photo is not taken until there is room (or inodes)
            kept = self._kept.get(row.id)
            self.out_of_room(len(kept[2].data or b"") if kept else 0)
        if row.attempts >= self.config.max_attempts:
            self._fail(row, f"gave up after {row.attempts} attempts: {reason}", GAVE_UP_HINT)
            return
        delay = min(
            self.config.retry_backoff * 2 ** (row.attempts - 1), self.config.retry_backoff_max
        )
        self.ledger.retry(row.id, reason, delay)
        self.log.emit(
            "retried",
            row.path,
            f"{reason}; attempt {row.attempts + 1} of {self.config.max_attempts} in {delay:g} s",
            level="warning",
            reason=reason,
            attempt=row.attempts,
            delay=delay,
            traceback=traceback.format_exc(limit=6),
        )
        self.on_retry(time.time() + delay)

    def _protect_and_publish(self, row: Row) -> None:
        from pixcamd.job import protect_photo  # torch and the models: not for `pixcamd status`

        data = self._read(row)
        settings = with_budget(degraded(self.settings, row.degrade), row.budget)
        models = self.models
        moved = settings.device == "cpu" and str(self.settings.device) != "cpu"
        if moved:
            models = [m.to("cpu") for m in self.models]
        try:
            kept = self._kept.get(row.id)
            if kept is not None and kept[:2] == (row.sha256, self.fingerprint):
                outcome = kept[2]  # only the write failed last time: no second optimization
                note = "the protected pixels of the last attempt (only its write failed)"
                self.log.emit("reused", row.path, note)
            else:
                options = job_options(self.config, settings)
                self._watched = (self.inbox / row.path, row.size, row.mtime_ns, row.sha256)
                try:
                    outcome = protect_photo(data, row.path, models, options, self._progress)
                finally:
                    self._watched = None
                if row.budget:  # a stronger retry: the report says what it ran with
                    outcome.report["budget"] = dict(row.budget)
                # Kept until the photo is finished: if writing or publishing fails (a full
                # disk), the retry writes these bytes instead of optimizing again.
                self._kept = {row.id: (row.sha256, self.fingerprint, outcome)}
        finally:
            if moved:
                for m in self.models:
                    m.to(self.settings.device)
        self.publish_outcome(row, outcome)

    def _read(self, row: Row) -> bytes:
        """The source's bytes, as they were when the ledger settled them."""
        src = self.inbox / row.path
        if not os.path.lexists(src):
            raise Vanished("it was processed")
        if src.is_symlink() and not inside(src.resolve(), self.inbox):
            raise Refused(f"{row.path}: a symlink that leads out of the inbox; not followed")
        before = os.stat(src)
        try:
            data = src.read_bytes()
        except OSError as exc:
            raise Unreadable(f"{row.path}: cannot read the file ({exc})") from exc
        after = os.stat(src)
        signature = (after.st_size, after.st_mtime_ns)
        if signature != (before.st_size, before.st_mtime_ns) or signature != (
            row.size,
            row.mtime_ns,
        ):
            raise Changed()
        self._checkpoint()
        return data
