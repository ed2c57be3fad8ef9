"""The daemon's stop: the current photo gets its grace time, then is abandoned cleanly; the
watcher, the timers and the page end; the locks go. A mixin of
``pixcamd.daemon.service.Daemon``: its ledger, log, worker, intake and timers."""

from __future__ import annotations

import contextlib
import time

from pixcamd.daemon.locks import release_lock, unlock

ABANDON_WAIT = 10.0  # after the grace time: how long an abandoned photo may take to unwind


class Shutdown:
    def shutdown(self) -> bool:
        """Stop taking work, give the current photo ``grace_time``, then abandon it cleanly.
        True when every thread ended (False only if a photo would not unwind in time; its row
        is queued again and nothing of it is published)."""
        if self._closed:
            return True
        self.stop_event.set()
        if not self.failed_reason:  # asked to stop: a kill before it ends is no crash (recover)
            self._record("the stop", stop_asked_at=time.time())
        self.notifier.send("STOPPING=1", "STATUS=stopping")
        worker = self.worker
        current = worker.current if worker is not None else None
        self.log.emit(
            "stopping",
            message=f"finishing {current} (grace {self.config.grace_time:g} s)"
            if current
            else "idle",
        )
        if self.intake is not None:
            self.intake.stop()
        self.timers.stop(wait=False)
        clean = True
        if worker is not None:
            worker.stop_taking.set()
            worker.wake.set()
            worker.thread.join(self.config.grace_time)
            if worker.thread.is_alive():
                worker.abandon()
                worker.thread.join(ABANDON_WAIT)
            if worker.thread.is_alive():  # stuck inside one step: make sure it never publishes
                with worker.commit_lock:
                    worker.dead = True
                for row in self.ledger.processing():
                    self.ledger.requeue(row.id)
                self.log.emit(
                    "abandoned",
                    current,
                    "did not stop in time; queued again, nothing written",
                    level="warning",
                )
                clean = False
        if self.intake is not None:
            self.intake.close(5)
        self.timers.stop(wait=True)
        self._stop_web()
        self._record("the stop", pid=None, stopped_at=time.time(), current=None, status="stopped")
        counts = self.ledger.counts()
        self.log.emit(
            "stopped",
            message=", ".join(f"{k} {v}" for k, v in counts.items()),
            counts=counts,
        )
        if clean:
            self.ledger.close()
        self._closed = True
        self._release_locks()
        return clean

    def _release_locks(self) -> None:
        """The outbox's, the temp folder's and the state dir's: the next daemon may start.
        The state dir's lock file is left naming no process (a refused start's pid there
        would be taken for the running daemon's)."""
        if self._outbox_lock is not None:
            self._outbox_lock.release()
        unlock(self._tmp_fd)
        release_lock(self._lock_fd)
        self._lock_fd = None

    def _close_quietly(self) -> None:
        with contextlib.suppress(Exception):
            self._stop_web()
        if self.intake is not None:
            with contextlib.suppress(Exception):
                self.intake.close(5)
        self.timers.stop(wait=True)
        if self._executor is not None:  # a start refused after the cluster answered
            with contextlib.suppress(Exception):
                self._executor.close()
            self._executor = None
        if self.worker is not None:
            self.worker.stop_taking.set()
            self.worker.abandon()
            if self.worker.thread.is_alive():
                self.worker.thread.join(ABANDON_WAIT)
        with contextlib.suppress(Exception):  # a start refused in words is no crash to `status`
            if self._pid_recorded:  # never another one's crash record
                self.ledger.set_daemon(pid=None, stopped_at=time.time(), status="did not start")
        with contextlib.suppress(Exception):
            self.ledger.close()
        self._release_locks()
        self._closed = True
