"""Executors: where a folder run's (or the daemon's) photos are protected.

The caller — the CLI or the daemon — plans the work, reads each photo's bytes, keeps the
ledger and writes the outbox: it is the only writer. An executor only turns ``Task``s (a photo's
bytes) into ``Done``s (``pixcamd.job.Outcome``: the copy's bytes and the report) with models it
loaded once:

* ``LocalExecutor`` — in this process, one photo at a time, in the caller's thread (Ctrl-C
  stops inside the photo, and nothing has been written).
* ``RayExecutor`` (``pixcamd.executors.ray``, the optional ``pixcamd[ray]`` extra) — long-lived
  Ray actors on a cluster, a bounded number of photos in flight.

A ``Done`` carries either the outcome or the error: ``PhotoError`` (the file is not a readable
photo: a permanent failure) or anything else (transient: the caller retries), with ``lost`` set
when the worker itself died mid-photo.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pixcamd.job import JobOptions, Outcome, protect_photo

__all__ = ["Done", "JobOptions", "LocalExecutor", "Task"]


@dataclass(frozen=True)
class Task:
    key: object  # the caller's handle for the photo (a ledger row id)
    name: str  # how messages name it
    data: bytes  # the photo file's bytes


@dataclass
class Done:
    task: Task
    outcome: Outcome | None = None
    error: BaseException | None = None
    lost: bool = False  # the worker died mid-photo: nothing came back, try again


@dataclass
class LocalExecutor:
    """In this process, one photo at a time; ``wait`` does the work in the caller's thread."""

    models: list
    options: JobOptions
    progress: Callable[[int, float], None] | None = None
    capacity: int = 1
    _queue: list[Task] = field(default_factory=list)
    describe: str = "this machine"

    def submit(self, task: Task) -> None:
        self._queue.append(task)

    def in_flight(self) -> int:
        return len(self._queue)

    def wait(self, timeout: float | None = None) -> list[Done]:
        if not self._queue:
            return []
        task = self._queue.pop(0)
        try:
            outcome = protect_photo(task.data, task.name, self.models, self.options, self.progress)
        except Exception as exc:  # a KeyboardInterrupt is not caught: the run stops here
            return [Done(task, error=exc)]
        finally:
            from pixcamd.devices import release_memory

            release_memory()
        return [Done(task, outcome=outcome)]

    def close(self) -> None:
        self._queue.clear()
