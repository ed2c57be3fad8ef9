"""The daemon's timed work on APScheduler's background pool: settle polls, the start-up scan and
periodic rescans, retry wake-ups and one-off jobs. What the jobs do is the caller's
(``pixcamd.daemon.service`` hands in the intake's ``settle`` and ``scan``)."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

CLOCK_JUMP = 2.0  # seconds the wall clock may move back against the monotonic one unremarked
STOP_WAIT = 30.0  # seconds a stop waits for a running job (each hears the stop between files)


class _QuietSkips(logging.Filter):
    """APScheduler warns each time a poll is skipped because the previous one still runs (a big
    file being hashed); that is expected here, not worth a journal line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


class Timers:
    """Started once by ``start``; after ``stop`` (the daemon's ``stop_event`` set) nothing new
    is scheduled."""

    def __init__(self, stop_event: threading.Event):
        self.stop_event = stop_event
        self.scheduler = None
        self._intervals: dict[str, float] = {}  # job id → seconds, for ``check_clock``
        self._offset = time.time() - time.monotonic()  # the wall clock's, to see it jump
        self._pool = None  # the jobs' threads: a stop waits for them before the ledger closes

    def start(
        self,
        settle: Callable[[], None],
        scan: Callable[..., None],
        settle_time: float,
        rescan_interval: float,
    ) -> None:
        """Settle polls (a third of ``settle_time``, 0.05–1 s), the start-up scan now, and a
        rescan every ``rescan_interval`` seconds (0: none)."""
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        scheduler_log = logging.getLogger("apscheduler.scheduler")
        if not any(isinstance(f, _QuietSkips) for f in scheduler_log.filters):
            scheduler_log.addFilter(_QuietSkips())
        self._pool = ThreadPoolExecutor(3)
        scheduler = BackgroundScheduler(
            executors={"default": self._pool},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=timezone.utc,
        )
        poll = min(1.0, max(0.05, settle_time / 3))
        scheduler.add_job(settle, "interval", seconds=poll, id="settle")
        scheduler.add_job(scan, id="startup-scan", kwargs={"reason": "start-up"})
        if rescan_interval > 0:
            scheduler.add_job(
                scan,
                "interval",
                seconds=rescan_interval,
                id="rescan",
                kwargs={"reason": "periodic"},
            )
        scheduler.start()
        self.scheduler = scheduler
        self._intervals = {"settle": poll}
        if rescan_interval > 0:
            self._intervals["rescan"] = rescan_interval

    def check_clock(self, set_back: Callable[[float], None]) -> None:
        """The wall clock against the monotonic one, about once a second. APScheduler times its
        interval jobs by the wall clock from the time they were added: set back by X (NTP
        stepping a fast clock, a VM resumed), it would sleep X before the next settle poll or
        scan (its author leaves clock jumps to the caller). Each interval starts again from
        now, and ``set_back(-X)`` re-arms the rest."""
        offset = time.time() - time.monotonic()
        jump, self._offset = offset - self._offset, offset
        if jump > -CLOCK_JUMP or self.scheduler is None or self.stop_event.is_set():
            return
        for job_id, seconds in self._intervals.items():
            with contextlib.suppress(Exception):  # shutting down
                self.scheduler.reschedule_job(job_id, trigger="interval", seconds=seconds)
        set_back(jump)

    def at(self, when: float, func: Callable[[], None]) -> None:
        """``func()`` once at the epoch time ``when`` (one job per instant: a retry's wake-up)."""
        if self.scheduler is None or self.stop_event.is_set():
            return
        with contextlib.suppress(Exception):  # the scheduler may be shutting down
            self.scheduler.add_job(
                func,
                "date",
                run_date=datetime.fromtimestamp(when, timezone.utc),
                id=f"retry-{when:.3f}",
                replace_existing=True,
            )

    def later(self, func: Callable[..., None], **kwargs) -> None:
        """``func(**kwargs)`` once, soon, on the pool's threads (not while stopping)."""
        if self.scheduler is not None and not self.stop_event.is_set():
            with contextlib.suppress(Exception):  # the scheduler may be shutting down
                self.scheduler.add_job(func, kwargs=kwargs)

    def stop(self, wait: bool, timeout: float = STOP_WAIT) -> None:
        """No more jobs; with ``wait``, the ones handed to the pool are waited for, up to
        ``timeout`` (each hears the stop between files). APScheduler cannot be asked to wait by
        a second shutdown once told not to; the pool itself can."""
        if self.scheduler is not None:
            with contextlib.suppress(Exception):  # already shut down
                self.scheduler.shutdown(wait=False)
        if wait and self._pool is not None:
            waiter = threading.Thread(
                target=self._pool.shutdown, kwargs={"wait": True}, name="pixcamd-timers-stop"
            )
            waiter.start()
            waiter.join(timeout)
