"""``executor = "ray"``: the daemon's photos protected on a Ray cluster.

``ClusterWorker`` is the ``Worker`` thread with another inner loop: it keeps up to the
executor's ``capacity`` photos in flight (claimed from the ledger, read here, sent as bytes)
and publishes each ``Outcome`` as it comes back with the same ``Worker.publish_outcome`` as a
local photo — this thread stays the only writer of the outbox and the ledger, so exactly-once
publication and the atomic outbox hold as they do locally. The rest of the queue stays in the
ledger, not in Ray: 50,000 photos in the inbox are 50,000 rows and ``capacity`` tasks.

A worker that dies mid-photo costs that photo an attempt (it is sent again at once, to a
replacement). A cluster that goes away is said loudly (``cluster_unreachable``, an error in the
log and ``pixcamd status``); the photos in flight go back to the queue without losing an
attempt, and the queue waits for the cluster — tried again every ``RECONNECT`` seconds — or,
with ``ray_fallback = "local"``, is protected here meanwhile.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from pixcamd.daemon.config import Config
from pixcamd.daemon.ledger_row import Row
from pixcamd.daemon.settings import job_options, use_threads
from pixcamd.daemon.worker import BLOCKED_POLL, GAVE_UP_HINT, Worker
from pixcamd.errors import PixcamdError
from pixcamd.executors.ray_link import first_line

RECONNECT = 15.0  # seconds between attempts to reach a cluster that went away (a TCP probe)


class ClusterWorker(Worker):
    def __init__(self, *args, make_executor: Callable[[], object], executor=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.make_executor = make_executor  # a RayExecutor for the settings in force
        self.executor = executor
        self.inflight: dict[int, Row] = {}
        self.down_since: float | None = None
        self.next_try = 0.0

    # ---- the loop --------------------------------------------------------------------------

    def run(self) -> None:
        use_threads(self.config)  # for the photos the fallback protects here
        try:
            while not self._abandon.is_set():
                self.last_progress = time.monotonic()  # the loop turns: healthy
                self.wake.clear()
                stopping = self.stop_taking.is_set()
                if stopping and not self.inflight:
                    break
                try:
                    self._turn(stopping)
                except sqlite3.OperationalError as exc:  # a full disk under the state dir
                    self._ledger_refused(exc)
        finally:
            self._drop_inflight()
            if self.executor is not None:
                self.executor.close()
                self.executor = None

    def _turn(self, stopping: bool) -> None:
        """One turn of the loop: send, collect, or wait."""
        self._resolve_stranded()
        taking = not stopping and self.outbox_ready()  # none taken while it is gone
        if not self.inflight:
            self._take_pending()  # a reload: between photos, with a new executor
        if self.executor is None:
            self._reconnect()
        if self.executor is None:
            local = taking and self.config.ray_fallback == "local"
            if local:
                row = self.ledger.claim_next()
                if row is not None:
                    self.process(row)  # here, as executor = "local" would
                    return
            self._idle(None if local else BLOCKED_POLL)  # due photos cannot be sent
            return
        if not self.executor.alive():  # probed at most once a second, idle or not
            self._cluster_down("its head does not answer")
            return
        if taking and self._pending is None:  # a reload waits: what is in flight drains first
            self._fill()
        if not self.inflight:
            self._idle(None if taking or stopping else BLOCKED_POLL)
            return
        self._collect()

    def _take_pending(self) -> None:
        before = self._pending
        super()._take_pending()
        if before is not None and self.executor is not None:  # its workers hold the old ones
            self.executor.close()
            self.executor = None
            self.next_try = 0.0

    # ---- sending -----------------------------------------------------------------------------

    def _fill(self) -> None:
        from pixcamd.executors import Task

        while len(self.inflight) < self.executor.capacity and not self._abandon.is_set():
            row = self.ledger.claim_next()
            if row is None:
                return
            original = self.ledger.done_with_sha(row.sha256, row.path)
            if original is not None and self._as_rename(row, original):
                continue  # its record and copy followed it: nothing written, no folder to wait
            if self.waits_for_folder(row):  # its copy's folder in the outbox is closed to us
                continue  # (before the twin's look: that one writes a copy there too)
            if original is not None and self._as_duplicate(row, original):
                continue
            data = self._read_guarded(row)
            if data is None:  # changed, gone, refused, unreadable: handled and said
                continue
            if not self.executor.alive():  # sending to a dead head can block: ask first
                self.ledger.requeue(row.id)
                self._cluster_down("its head does not answer")
                return
            try:
                self.executor.submit(Task(row.id, row.path, data))
            except PixcamdError as exc:  # the cluster went away
                self.ledger.requeue(row.id)
                self._cluster_down(str(exc))
                return
            self.inflight[row.id] = row
            self._show_current()
            self._started(row, "ray", self.executor.describe)

    def _read_guarded(self, row: Row) -> bytes | None:
        read: list[bytes] = []
        self._guard(row, lambda r: read.append(self._read(r)))
        return read[0] if read else None

    # ---- receiving -----------------------------------------------------------------------------

    def _collect(self) -> None:
        # all taken out of flight first: where the ledger refuses a write while one is settled,
        # the others are rows left processing, resolved with it (Worker._resolve_stranded)
        back = [(self.inflight.pop(d.task.key, None), d) for d in self.executor.wait(timeout=1.0)]
        for row, done in back:
            if row is not None:
                self._settle(row, done)
        self._show_current()
        if self.executor is not None and not self.executor.alive():
            self._cluster_down("its head does not answer")

    def _settle(self, row: Row, done) -> None:
        if done.lost and not self.executor.alive():  # the cluster, not the photo: no attempt lost
            self.ledger.requeue(row.id)
            self.log.emit("requeued", row.path, "the cluster went away mid-photo; queued again")
            return
        if done.lost:  # its worker died (killed, out of memory, node gone): once more at once
            first = first_line(done.error)
            reason = f"the worker was lost mid-photo ({type(done.error).__name__}: {first})"
            if row.attempts >= self.config.max_attempts:
                self._fail(row, f"gave up after {row.attempts} attempts: {reason}", GAVE_UP_HINT)
                return
            self.ledger.retry(row.id, reason, 0.0)
            note = f"{reason}; attempt {row.attempts + 1} of {self.config.max_attempts}"
            self.log.emit("retried", row.path, note, level="warning", reason=reason)
            self.wake.set()
            return
        if done.error is not None:
            error = done.error

            def fail(_row: Row) -> None:
                raise error

            self._guard(row, fail)  # a bad photo fails; anything else is retried with backoff
            return
        self._guard(row, lambda r: self.publish_outcome(r, done.outcome))

    def _drop_inflight(self, say: bool = True) -> None:
        """Stopping (past the grace time) or the cluster gone: what was in flight is queued
        again, no attempt counted; nothing of it was written."""
        for row in self.inflight.values():
            self.ledger.requeue(row.id)
            if say:
                self.log.emit("abandoned", row.path, "not finished on the cluster: queued again")
        self.inflight.clear()
        self._show_current()

    def _show_current(self) -> None:
        if self.inflight:
            first = next(iter(self.inflight.values()))
            if self.current != first.path:
                self.current, self.current_since, self.step = first.path, time.time(), 0
        else:
            self.current = self.current_since = None

    # ---- the cluster ---------------------------------------------------------------------------

    def _cluster_down(self, reason: str) -> None:
        executor, self.executor = self.executor, None
        if executor is not None:
            executor.close()
        self._drop_inflight(say=False)  # not the photos' fault: the event below says why
        self.next_try = time.monotonic() + RECONNECT
        if self.down_since is not None:
            return
        self.down_since = time.time()
        meanwhile = (
            "protecting here meanwhile (ray_fallback = local)"
            if self.config.ray_fallback == "local"
            else f"{self.ledger.queue_length()} photos stay queued until it returns"
        )
        self.log.emit(
            "cluster_unreachable",
            None,
            f"Ray cluster at {self.config.ray_address} is unreachable: {reason}; {meanwhile}; "
            f"trying again every {RECONNECT:g} s",
            level="error",
            address=self.config.ray_address,
            reason=reason,
        )

    def _reconnect(self) -> None:
        if time.monotonic() < self.next_try:
            return
        try:
            self.executor = self.make_executor()
        except PixcamdError as exc:
            self.next_try = time.monotonic() + RECONNECT
            if self.down_since is None:
                self._cluster_down(str(exc))
            return
        if self.down_since is not None:
            gone = time.time() - self.down_since
            self.log.emit(
                "cluster_back",
                None,
                f"Ray cluster at {self.config.ray_address} is back after {gone:.0f} s: "
                f"{self.executor.describe}",
            )
        self.down_since = None


def ray_executor(config: Config, settings, models: list):
    """A RayExecutor protecting with ``settings`` and ``models`` (their names: each actor loads
    its own) on the config's cluster."""
    from pixcamd.executors.ray import RayExecutor

    weights = str(config.weights_path) if config.weights_path is not None else None
    return RayExecutor(
        config.ray_address,
        [m.name for m in models],
        weights,
        job_options(config, settings),
        workers=config.ray_workers or None,
        threads=config.ray_threads,
    )
