"""The daemon: wires config, ledger, intake (``pixcamd.daemon.intake``: watcher, scans, settling),
timers (``pixcamd.daemon.timers``) and worker together; sd_notify; reload; shutdown.

Threads: the caller's (``run``: supervision ticks — heartbeat, STATUS=, WATCHDOG=1), the worker
(owns the models), watchdog's observer (events → tracker), and APScheduler's pool (start-up scan,
periodic rescan, settle polls, retry wake-ups). Signals are handled by ``pixcamd run``, which
sets the stop event; ``Daemon`` itself installs no handlers, so tests run it in a thread.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import TextIO

from pixcamd.daemon.config import Config, record_folders
from pixcamd.daemon.events import EventLog
from pixcamd.daemon.fs import access_problems, choose_tmp_dir, holds_a_file, writable_folder
from pixcamd.daemon.intake import Intake
from pixcamd.daemon.ledger import Ledger
from pixcamd.daemon.locks import OutboxLock, lock_state_dir, lock_tmp_dir, release_lock
from pixcamd.daemon.notify import Notifier
from pixcamd.daemon.recovery import recover, sweep
from pixcamd.daemon.retry import metadata_fingerprints
from pixcamd.daemon.settings import (
    build_settings,
    load_models,
    model_device,
    settings_fingerprint,
    weights_file,
)
from pixcamd.daemon.shutdown import Shutdown
from pixcamd.daemon.timers import Timers
from pixcamd.daemon.watcher import Rules, StabilityTracker
from pixcamd.daemon.worker import Worker
from pixcamd.errors import PixcamdError

HEARTBEAT_EVERY = 5.0


def record_refused_config(path: str | os.PathLike | None, why: str) -> None:
    """A start refused for its config, before a ``Daemon`` exists: ``start_refused`` in the log
    `pixcamd status` reads, where a daemon ran before with the state dir this config names
    (a first start's refusal records nothing) and none runs now (its record is its own)."""
    from io import StringIO

    from pixcamd.daemon.config import record_of

    with contextlib.suppress(Exception):  # the refusal itself is said on stderr either way
        record = record_of(path)
        if not record.ledger_path.exists():
            return
        fd = lock_state_dir(record.ledger_path.parent)
        try:
            ledger = Ledger(record.ledger_path)
            try:  # said on stderr by the command already: the log's copy only
                if record.log_file.parent.is_dir():
                    EventLog(record.log_file, ledger, StringIO()).emit(
                        "start_refused", message=why, level="error", reason=why
                    )
                else:  # (a share not mounted yet: no folder made on the disk below it)
                    fields = {"message": why, "reason": why}
                    ledger.add_event(time.time(), "error", "start_refused", None, fields)
            finally:
                ledger.close()
        finally:
            release_lock(fd)  # this refused start's pid not left in the lock file


class Daemon(Shutdown):
    """``Daemon(config).run(stop_event)``; ``models`` injects already-loaded models (tests)."""

    def __init__(
        self,
        config: Config,
        models: list | None = None,
        notifier: Notifier | None = None,
        stream: TextIO | None = None,
        decode=None,
        priority: str | None = None,
    ):
        self.config = config
        self.priority = priority  # how the process lowered its priority, for the start line
        self.injected_models = models
        self.notifier = notifier if notifier is not None else Notifier()
        self.stream = stream
        self.decode = decode
        self.stop_event = threading.Event()
        self._reload_requested = threading.Event()
        # photos under way at a reload, with the settings before it: scanned again once done
        self._under_old_settings: set[str] = set()
        self.failed_reason: str | None = None
        self._started = False
        self._closed = False
        self._status_sent = ""
        self._last_heartbeat = 0.0
        self.timers = Timers(self.stop_event)  # scans, settle polls, retry wake-ups
        self.intake: Intake | None = None  # the watcher, scans and settling, once started
        self.worker: Worker | None = None
        self._executor = None  # a Ray cluster's, made at start-up until the worker has it
        self._lock_fd: int | None = None
        self._outbox_lock: OutboxLock | None = None
        self._tmp_fd: int | None = None
        self._pid_recorded = False  # set once this start wrote its pid: then it clears it
        self.log: EventLog | None = None  # once the ledger is open
        self.clean_exit = True  # False: a photo would not unwind; its thread may still run
        self.web = None  # pixcamd.web.server.WebServer while the page is served

    # ---- start-up ----------------------------------------------------------------------------

    def start(self) -> None:
        config = self.config
        try:
            # yours alone where pixcamd makes it: its record names every photo, its page's
            # cache holds their pixels (a service's StateDirectoryMode= says otherwise)
            config.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._lock_fd = lock_state_dir(config.state_dir, config)
        except OSError as exc:  # one this user cannot write in: the words `config check` says
            said = [p for p in access_problems(config) if p.startswith("state_dir:")]
            raise PixcamdError(said[0] if said else f"cannot use the state dir: {exc}") from exc
        try:
            self._start()
        except BaseException as exc:
            # a folder that cannot be created or written: said which, as any refusal in words
            why = f"cannot start: {exc}" if isinstance(exc, OSError) else str(exc)
            if isinstance(exc, Exception):
                with contextlib.suppress(Exception):  # where `status` reads it
                    self._say_refused(why)
            self._close_quietly()
            if isinstance(exc, OSError):
                raise PixcamdError(why) from exc
            raise

    def _say_refused(self, why: str) -> None:
        """``start_refused`` in the log `pixcamd status` reads — also for a refusal before this
        start opened it (a temp folder a unit's sandbox cannot reach), where a daemon ran
        before; a first start's refusal is said on stderr only: it records nothing."""
        if self.log is None:
            if not self.config.ledger_path.exists():
                return
            self.ledger = Ledger(self.config.ledger_path)
            self.log = EventLog(self.config.log_file, self.ledger, self.stream)
        self.log.emit("start_refused", message=why, level="error", reason=why)

    def _start(self) -> None:
        config = self.config
        self.tmp_dir = choose_tmp_dir(config)  # makes a missing outbox
        self._outbox_lock = OutboxLock(config.outbox)
        self._tmp_fd = lock_tmp_dir(self.tmp_dir)  # before anything is swept from it
        new_record = not config.ledger_path.exists()
        self.ledger = Ledger(config.ledger_path)
        self.log = EventLog(config.log_file, self.ledger, self.stream, config.log_level)
        facts = self.ledger.daemon_facts()  # the last daemon's, before this one records its own
        moved = record_folders(config, facts, self.ledger.recent_outputs())
        problems = access_problems(config)  # an inbox nobody can read must not look healthy
        if problems:  # before the hold dir's probe: the folder and the user, not its Errno
            raise PixcamdError("; ".join(problems))
        if config.hold_dir is not None:  # not first found out by the first photo held back
            writable_folder(config.hold_dir)

        models, note, fallback = load_models(config, self.injected_models)
        device = model_device(models)
        platforms = self._use(models, build_settings(config, models, device), note, fallback)
        if config.executor == "ray":  # an unreachable cluster is a setting to fix: refused
            self._executor = self._make_executor()
        # said once nothing can refuse the start any more: a refused one never claims it started
        self.log.emit(
            "daemon_started",
            message=f"pid {os.getpid()}, inbox {config.inbox}, outbox {config.outbox}, "
            f"state {config.state_dir}, temp files in {self.tmp_dir}"
            + (f", priority {self.priority}" if self.priority else ""),
            pid=os.getpid(),
            config=str(config.source) if config.source else None,
        )
        if new_record and holds_a_file(config.outbox):
            self.log.emit(
                "new_record",
                message=f"no record of earlier work in {config.state_dir}, but the outbox "
                f"{config.outbox} holds files: if the state dir was lost (a container made anew "
                "without its volume, another machine), every photo in the inbox is protected "
                "again and its copy takes a new name beside the old one — stop, and bring the "
                "state dir back, or keep it on a volume from now on (docs/daemon.md, Containers)",
                level="warning",
            )
        for key, was in moved:  # the record follows the folder; what it knows is not redone
            self.log.emit(
                "folders_moved",
                message=f"the {key} was {was}: the record follows it to {getattr(config, key)}",
                level="warning",
            )
        self.log.emit(
            "model",
            message=note + f"; fingerprint {self.fingerprint}, device {device}",
            level="warning" if fallback else "info",
            models=[m.describe() for m in models],
            fallback=fallback,
            settings_fingerprint=self.fingerprint,
        )
        self.log.emit(
            "platforms",
            message="protecting for " + "; ".join(platforms),
            platforms=[p.as_dict() for p in self.settings.platforms],
        )
        self._pid_recorded = True
        self.ledger.set_daemon(
            pid=os.getpid(),
            started_at=time.time(),
            inbox=str(config.inbox),
            outbox=str(config.outbox),
            current=None,
            stopped_at=None,
        )

        recover(self.config, self.ledger, self.log, facts.get("stop_asked_at"))
        self.ledger.set_daemon(stop_asked_at=None)  # after: a kill meanwhile keeps the excuse
        sweep(self.tmp_dir)
        from pixcamd.web.server import serve_beside_daemon

        self.web = serve_beside_daemon(self.config, self.log)

        inbox = config.inbox.resolve()
        excluded = [config.outbox, config.state_dir, self.tmp_dir]
        if config.hold_dir is not None:
            excluded.append(config.hold_dir)
        self.rules = Rules(inbox, config.ignore, config.extensions, excluded)
        self.tracker = StabilityTracker(
            inbox, config.settle_time, config.settle_timeout, self.decode or self._decode
        )
        self.intake = Intake(
            config,
            self.ledger,
            self.log,
            self.rules,
            self.tracker,
            self.stop_event,
            fingerprint=lambda: self.fingerprint,
            wake=self._wake,
            later=self.timers.later,
        )
        args = (config, self.ledger, models, self.settings, self.fingerprint, self.log)
        kwargs = dict(
            on_retry=self._schedule_wake,
            on_changed=self.tracker.touch,
            model_label=self.model_label,
        )
        if config.executor == "ray":
            from pixcamd.daemon.cluster import ClusterWorker

            executor, self._executor = self._executor, None  # the worker's from here on
            self.log.emit("executor", message=f"protecting on the {executor.describe}")
            self.worker = ClusterWorker(
                *args, self.tmp_dir, make_executor=self._make_executor, executor=executor, **kwargs
            )
        else:
            self.worker = Worker(*args, self.tmp_dir, **kwargs)
        self.worker.outbox_lock = self._outbox_lock
        self.worker.start()
        self.intake.start_observer()
        self._start_timers()
        self._started = True
        self.notifier.send("READY=1", "STATUS=" + self.status_line())
        self.log.emit("ready", message=self.status_line())

    def _stop_web(self) -> None:
        if self.web is not None:
            self.web.stop()
            self.web = None

    def _make_executor(self):
        """A RayExecutor for the settings in force (the worker's, after a reload)."""
        from pixcamd.daemon.cluster import ray_executor

        worker = self.worker if self.worker is not None else self
        return ray_executor(worker.config, worker.settings, worker.models)

    def _use(self, models: list, settings, note: str, fallback: bool) -> list[str]:
        """Models and settings in force (start-up or reload): the fingerprint and label recorded
        per photo, and the facts `pixcamd status` shows; the platforms, in words."""
        self.models, self.settings, self.model_note = models, settings, note
        self.fingerprint = settings_fingerprint(
            settings, models, self.config.strip_gps, self.config.strip_metadata
        )
        self.model_label = "+".join(m.name for m in models) + (
            " (auto fallback)" if fallback else ""
        )
        platforms = [f"{p.name} ({p.describe()})" for p in settings.platforms]
        self._record(  # a reload on a full disk goes on; status shows these facts once it can
            "the models in force",
            model=self.model_label,
            model_note=note,
            model_fallback=fallback,
            weights_file=str(weights_file(self.config)),  # where it looks, in its environment
            model_fingerprints=[m.fingerprint for m in models],  # retry --model-changed's
            platform_specs={p.spec(): p.name for p in settings.platforms},  # --platforms-changed
            # --metadata-changed and ship: a copy's metadata told by its fingerprint (made before
            # its report recorded it) where the rest of its settings are these
            metadata_fingerprints=metadata_fingerprints(settings, models),
            fingerprint=self.fingerprint,
            platforms=platforms,
            grace_time=self.config.grace_time,  # status names it for a stop cut short
        )
        return platforms

    def _decode(self, path: Path) -> None:
        from pixcamd.job import open_source

        # read as the worker will: what it refuses from the header, this refuses when settled
        # (``OverTheLimit``: once the file is quiet)
        open_source(path, self.config.max_pixels)

    def _clock_set_back(self, jump: float) -> None:
        """The timers are re-armed (``Timers.check_clock``); the retries keep their waits."""
        try:
            moved = self.ledger.shift_waits(jump)
        except sqlite3.OperationalError as exc:  # a full disk: the waits stay as they were
            self.log.trouble("the retries' waits after the clock was set back", exc)
            moved = 0
        self.log.emit(
            "clock",
            message=f"the system clock was set back {-jump:.0f} s: settle polls and scans go on "
            f"from now, {moved} waiting retries keep the wait they had left",
            level="warning",
        )

    def _start_timers(self) -> None:
        self.timers.start(
            self.intake.settle,
            self.intake.scan,
            self.config.settle_time,
            self.config.rescan_interval,
        )
        for when in self.ledger.wake_times(time.time()):  # retries pending from the last run
            self._schedule_wake(when)

    def _schedule_wake(self, when: float) -> None:
        """A retry with backoff: wake the worker when it is due (it also polls each second)."""
        self.timers.at(when, self._wake)

    def _wake(self) -> None:
        if self.worker is not None:
            self.worker.wake.set()

    # ---- supervision ---------------------------------------------------------------------------

    def status_line(self) -> str:
        counts = self.ledger.counts()
        worker = self.worker
        current = worker.current if worker is not None else None
        doing = f"protecting {current}" if current else "idle"
        queue = counts["queued"] + counts["processing"]
        return (
            f"{self.model_note.split(':')[0]}; {doing}; queue {queue}; done {counts['done']}, "
            f"unprotected {counts['unprotected']}, failed {counts['failed']}"
        )

    def tick(self) -> None:
        """Called about once a second by ``run``: watchdog ping, STATUS=, heartbeat."""
        worker = self.worker
        now = time.monotonic()
        self.timers.check_clock(self._clock_set_back)
        if self.config.executor == "ray":  # a reconnect in the worker thread may replace them
            from pixcamd.executors.ray_link import restore_signals

            restore_signals()
        if worker is not None and not worker.thread.is_alive() and not self.stop_event.is_set():
            self.failed_reason = "the worker thread died"
            self.log.emit("failed", message=self.failed_reason, level="warning")
            self.stop_event.set()
            return
        if self._under_old_settings and not self._under_old_settings & self._processing():
            self._under_old_settings = set()
            self.timers.later(self.intake.scan, reason="post-reload")  # its photo under way is done
        if self.intake is not None:
            self.intake.check_inbox()  # renamed away, or back: the watch follows the path
        if self.intake is not None and self.intake.watcher_died():
            self.log.emit(
                "watching", message="the inbox watcher stopped; restarting it", level="warning"
            )
            self.intake.start_observer()
            self.intake.scan_folder(None, "watcher restart")
        interval = self.notifier.watchdog
        if (
            interval
            and worker is not None
            and (worker.idle or time.monotonic() - worker.last_progress < interval)
        ):
            # Only while the worker makes progress: a photo stuck in one step gets us restarted.
            # Its age is taken now, not at the tick's start: a slow tick pinged for a step
            # that had stopped longer than the interval by then.
            self.notifier.send("WATCHDOG=1")
        line = self.status_line()
        if line != self._status_sent:
            self.notifier.send("STATUS=" + line)
        if line != self._status_sent or now - self._last_heartbeat > HEARTBEAT_EVERY:
            self._status_sent, self._last_heartbeat = line, now
            if not self._record(
                "the heartbeat",
                heartbeat=time.time(),
                status=line,
                current=worker.current if worker else None,
                current_since=worker.current_since if worker else None,
                current_step=worker.step if worker else None,
                queue=self.ledger.queue_length(),
                settling=len(self.tracker),
            ):
                self._status_sent = None  # tried again next tick

    def _record(self, what: str, **facts) -> bool:
        """The daemon's facts into the ledger; a ledger that refuses writes (a full disk) is
        said, not raised: the heartbeat is tried again, a stop is read as one without it."""
        try:
            self.ledger.set_daemon(**facts)
        except sqlite3.OperationalError as exc:
            self.log.trouble(what, exc)
            return False
        self.log.ledger_ok()
        return True

    def run(self, stop: threading.Event | None = None) -> int:
        """Start, supervise until ``stop`` (or a failure) is set, shut down. 0 = clean exit."""
        if stop is not None:
            self.stop_event = stop
        self.start()
        interval = 1.0
        if self.notifier.watchdog:
            interval = min(interval, self.notifier.watchdog / 3)
        try:
            while not self.stop_event.wait(interval):
                if self._reload_requested.is_set():
                    self._reload_requested.clear()
                    self.reload()
                self.tick()
        finally:
            self.clean_exit = self.shutdown()
        # A photo abandoned at shutdown is not a failure: it is queued and nothing was written.
        return 1 if self.failed_reason else 0

    def request_reload(self) -> None:
        """SIGHUP: reload at the next supervision tick (not inside the signal handler)."""
        self._reload_requested.set()

    def reload(self) -> bool:
        """Read the config and the models again (``pixcamd.daemon.reload`` says what may change);
        on any problem the settings in force stay, and the log says why. True if applied."""
        from pixcamd.daemon.reload import Refused, describe, prepare

        self.notifier.send("RELOADING=1")
        try:
            try:
                new, changed, models, note, fallback, settings = prepare(
                    self.config, self.injected_models
                )
            except Refused as exc:
                return self._refuse_reload(str(exc))
            self.config = new  # only once everything it asks for is in hand
            if self.web is not None:  # the page's decisions: by the config in force
                self.web.reconfigure(new)
            before = {p.spec() for p in self.settings.platforms}
            said = describe(
                changed,
                ([m.fingerprint for m in self.models], [m.fingerprint for m in models]),
                [p.name for p in settings.platforms if p.spec() not in before],
            )
            self._use(models, settings, note, fallback)
            self.worker.reconfigure(new, models, settings, self.fingerprint, self.model_label)
            with self.log.ordered():  # stderr's new log_level from `reloaded` on, none between
                self.log.show(new.log_level)
                self.log.emit(
                    "reloaded",
                    message=f"{said}; {note}; fingerprint {self.fingerprint}; from the next photo",
                    level="warning" if fallback else "info",
                    changed={k: list(v) for k, v in changed.items()},
                    models=[m.describe() for m in models],
                    settings_fingerprint=self.fingerprint,
                )
            # as after a restart: held-back photos are tried again under new settings — and the
            # photo under way now, finished with the old ones, by a scan once it is done
            self.timers.later(self.intake.scan, reason="reload")
            self._under_old_settings |= self._processing()
            return True
        finally:
            self.notifier.send("READY=1", "STATUS=" + self.status_line())

    def _processing(self) -> set[str]:
        return {row.path for row in self.ledger.processing()}

    def _refuse_reload(self, why: str) -> bool:
        from pixcamd.daemon.reload import one_line

        said = one_line(why)
        message = f"{said}; the settings in force stay ({self.config.named})"
        self.log.emit("reload_refused", message=message, level="warning", reason=why)
        return False

    def request_abandon(self) -> None:
        """A second SIGTERM/SIGINT: do not wait for the grace time."""
        if self.worker is not None:
            self.worker.abandon()
