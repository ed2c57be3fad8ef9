"""``RayExecutor``: protect a folder run's (or the daemon's) photos on long-lived Ray actors.

The optional ``pixcamd[ray]`` extra. The caller keeps its queue, its ledger and its outbox; this
executor only moves photo bytes to workers on the cluster and copy bytes plus reports back.

Why Ray rather than Celery or Dask: a photo is seconds to minutes of PyTorch work against a
model loaded once (KonCept512 is 229 MB of weights), so what matters is long-lived workers that
hold the model — Ray's actors — placed where the GPUs are (Ray schedules ``num_gpus`` as a
resource) and one code path from ``ray.init()`` on a laptop to ``ray start`` on a few machines
and KubeRay. Celery has no notion of GPUs or of state that lives in a worker, and needs a broker
besides; Dask is built for task graphs over data — its actors are an experimental side feature
and a GPU only an abstract resource each worker must be started with.

How work flows:

* One actor per worker (``num_cpus=threads`` and ``num_gpus=1`` when the cluster has GPUs;
  without GPUs, CPU actors running ``threads`` torch threads). Each loads the models ONCE.
* Photos travel as bytes (``actor.protect.remote(data, name)``), at most
  ``in_flight_per_worker`` per actor: ``capacity`` bounds what is in flight, so a 50,000-photo
  archive never becomes 50,000 Ray tasks — the caller submits more as ``wait`` returns some.
* Nothing is ever retried behind the caller's back: actors are created with ``max_restarts=0``
  and ``max_task_retries=0``. A photo whose worker died comes back as ``Done(lost=True)`` and the
  caller decides whether to try again (it counts attempts in its ledger), so no photo is done
  twice unseen. The executor replaces a dead actor itself (on a live node; when its node is gone
  and the cluster has no room left, the pool shrinks and so does ``capacity``); after more than
  ``max_lost`` actor deaths in a row without a single photo finishing, it stops replacing them
  (something kills every worker: out of memory at load, a broken node image) and reports the
  cluster unusable.
* If the cluster itself goes away (the head dies), ``wait`` does not hang: every photo in flight
  comes back lost and ``submit`` raises ``PixcamdError``. ``alive()`` probes the head's port.

Weights: the head validates KonCept512's checkpoint (``pixcamd.models.weights.load_checkpoint``,
the same strict checks as a local run), puts the state dict into Ray's object store ONCE (229 MB,
held there while the executor lives, for replacement workers), and every actor builds the
network from it in memory — the fingerprint is the same as a local run's. Worker nodes need
pixcamd (``pip install 'pixcamd[ray]'``, the head's version) but no weights file and no cache
directory: nothing is written on their disks beyond Ray's own object spilling. BRISQUE is
embedded: nothing moves.

Addresses: ``local`` starts a private Ray on this machine, stopped by ``close`` (its session
folder in ``$TMPDIR/ray`` removed then); ``HOST:PORT`` is a cluster's head (its GCS port, 6379 by
default) from a machine that is itself a node of the cluster; ``ray://HOST[:PORT]`` goes through
the Ray Client server (10001), from anywhere, and needs ``ray[client]`` on both sides. Ray's
connect can hang for minutes on an address where nothing answers, so the port is tried first
with a plain TCP connect (``CONNECT_TIMEOUT``).

Security: Ray's processes listen on every interface of their machine whatever
``--node-ip-address`` says (Ray 2.60 turns 127.0.0.1 into the machine's address), and a Ray
cluster runs whatever code anyone who can reach it submits. So: a single-machine cluster either
started by ``RayExecutor("local")`` (Ray then enables its token authentication by itself) or by
``ray start --head --node-ip-address 127.0.0.1`` with token authentication on (``ray
get-auth-token --generate``, ``RAY_AUTH_MODE=token`` on every node and driver) and the ports
firewalled; multi-machine clusters only on a trusted network, with token authentication (older
Ray releases have no authentication at all: there the network is the only protection). Photos
and reports never leave the cluster: the head sends bytes to actors and writes the results
itself; workers log nothing of them (``log_to_driver=False``).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

from pixcamd.errors import PixcamdError
from pixcamd.executors import Done, JobOptions, Task
from pixcamd.executors.ray_actor import PhotoWorker
from pixcamd.executors.ray_link import (
    drop_session,
    first_line,
    last_line,
    probe,
    reachable,
    signals_kept,
    split_address,
)

READY_TIMEOUT = 300.0  # s: for the actors to start and load their models
WAIT_SLICE = 2.0  # s: the longest ray.wait between two checks that the cluster is still there
PROBE_EVERY = 1.0  # s: callers may ask alive() in a loop; the head gets one connect a second
GET_TIMEOUT = 60.0  # s: fetching a finished result that ray.wait reported ready


def _import_ray():
    try:
        import ray
    except ImportError as exc:
        raise PixcamdError(
            "running photos on a Ray cluster needs Ray: pip install 'pixcamd[ray]'"
        ) from exc
    return ray


def _lost_errors(ray) -> tuple[type[BaseException], ...]:
    """What Ray raises when the process, the node or the object holding a photo's result is gone
    — nothing came back, and trying again is right. Everything else is the job's own error."""
    x = ray.exceptions
    return (
        x.RayActorError,  # ActorDiedError, ActorUnavailableError
        x.WorkerCrashedError,
        x.NodeDiedError,
        x.ObjectLostError,  # OwnerDiedError, ObjectReconstructionFailedError, …
        x.OutOfMemoryError,  # Ray's memory monitor killed the worker
        x.LocalRayletDiedError,
    )


@dataclass(eq=False)  # a worker is itself: two idle ones are not "equal"
class _Slot:
    """One worker: its actor, what it said about itself once up, the photos it has in flight."""

    actor: object
    ready: object = None  # the ObjectRef of actor.ready() until info is known
    info: dict = field(default_factory=dict)
    busy: int = 0


class RayExecutor:
    """Photos on Ray actors: ``submit`` up to ``capacity`` tasks, collect them with ``wait``."""

    def __init__(
        self,
        address: str,
        model_names: list[str],
        weights: str | None,
        options: JobOptions,
        workers: int | None = None,
        threads: int = 1,
        in_flight_per_worker: int = 2,
        max_lost: int = 3,
    ):
        if threads < 1 or in_flight_per_worker < 1 or (workers is not None and workers < 1):
            raise ValueError("workers, threads and in_flight_per_worker must be at least 1")
        ray = _import_ray()
        self.address = address
        self.options = options
        self.threads = threads
        self.in_flight_per_worker = in_flight_per_worker
        self.max_lost = max_lost
        self._ray = ray
        self._lost = _lost_errors(ray)
        self._slots: list[_Slot] = []
        self._running: dict[object, tuple[Task, _Slot]] = {}  # ObjectRef → (task, its worker)
        self._deaths_in_a_row = 0
        self.model_fingerprints: list[str] = []
        self._broken: PixcamdError | None = None  # set: no more photos through this executor
        self._gone = False  # the cluster itself does not answer any more
        self._probed_at = float("-inf")
        self._closed = False
        self._owns_init = False
        self._session: str | None = None  # a private Ray's session folder, removed at close

        # Before anything that needs the cluster: a wrong model name or unusable weights are
        # the user's to fix, and say so faster than any worker could.
        names, state_dict = self._models(model_names, weights)
        self._probe = self._connect(address)
        try:
            resources = ray.cluster_resources()
            gpus = int(resources.get("GPU", 0))
            cpus = int(resources.get("CPU", 0))
            self.device = "gpu" if gpus else "cpu"
            if workers is None:
                workers = gpus if gpus else max(1, cpus // threads)
            if (gpus and workers > gpus) or workers * threads > cpus:
                raise PixcamdError(
                    f"Ray cluster at {address} has {cpus} CPUs and {gpus} GPUs: too few for "
                    f"{workers} workers of {threads} thread(s)"
                    + (" and one GPU each" if gpus else "")
                )
            self._resources = {"num_cpus": threads, "num_gpus": 1 if gpus else 0}
            # the weights go into the object store once; every actor reads that one copy
            self._state_ref = ray.put(state_dict) if state_dict is not None else None
            self._names = names
            self._start(workers)
        except BaseException:
            self.close()
            raise

    # ---- the executor interface ----------------------------------------------------------------

    @property
    def capacity(self) -> int:
        return len(self._slots) * self.in_flight_per_worker

    @property
    def describe(self) -> str:
        n = len(self._slots)
        what = "one GPU each" if self.device == "gpu" else f"{self.threads} CPU thread(s) each"
        where = "private Ray cluster on this machine" if self.address == "local" else None
        where = where or f"Ray cluster at {self.address}"
        return f"{where}, {n} worker{'s' if n != 1 else ''} ({what})"

    def submit(self, task: Task) -> None:
        if self._closed:
            raise RuntimeError("submit() on a closed RayExecutor")
        if self._broken is not None:
            raise self._broken
        if len(self._running) >= self.capacity:
            raise RuntimeError(
                f"RayExecutor: {len(self._running)} photos already in flight, capacity "
                f"{self.capacity}: wait() for some first"
            )
        slot = min(self._slots, key=lambda s: s.busy)  # the least loaded worker
        try:
            ref = slot.actor.protect.remote(task.data, task.name)
        except Exception as exc:  # the connection to the cluster is gone
            self._unreachable(_connection_lost(exc))
            raise self._broken from exc
        slot.busy += 1
        self._running[ref] = (task, slot)

    def in_flight(self) -> int:
        return len(self._running)

    def wait(self, timeout: float | None = None) -> list[Done]:
        """The photos that finished within ``timeout`` seconds (None: until one does); empty
        when none did. Never hangs on a cluster that went away: those photos come back lost."""
        if not self._running:
            return []
        ray = self._ray
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            if self._broken is not None:
                return self._drain_lost()
            refs = list(self._running)
            left = WAIT_SLICE if deadline is None else min(WAIT_SLICE, deadline - time.monotonic())
            try:
                ready, _ = ray.wait(refs, num_returns=1, timeout=max(0.0, left))
                if ready:  # and whatever else finished meanwhile
                    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            except Exception as exc:
                self._unreachable(_connection_lost(exc))
                continue
            if ready:
                return [self._collect(ref) for ref in ready]
            if not self.alive():
                continue
            if deadline is not None and time.monotonic() >= deadline:
                return []

    def alive(self) -> bool:
        """Whether the cluster still answers: its head's port accepts connections and Ray still
        counts this process connected. Once False, always False: the photos in flight come back
        lost, ``submit`` raises, and a new executor is the way on. (Workers that keep dying
        leave the cluster alive, but ``submit`` raises too: see ``max_lost``.)"""
        if self._gone or self._closed:
            return False
        if not self._ray.is_initialized():
            self._unreachable("this process is no longer connected to it")
            return False
        if self._probe is not None and time.monotonic() - self._probed_at >= PROBE_EVERY:
            why = probe(*self._probe)
            self._probed_at = time.monotonic()
            if why is not None:
                host, port = self._probe
                self._unreachable(f"its head does not answer at {host}:{port} ({why})")
                return False
        return True

    def close(self) -> None:
        """Kill the actors (photos in flight are dropped: nothing of theirs was written) and
        disconnect from the cluster if this executor connected."""
        if self._closed:
            return
        self._closed = True
        ray = self._ray
        if self._broken is None and ray.is_initialized():
            for slot in self._slots:
                with contextlib.suppress(Exception):  # already dead, or the cluster is gone
                    ray.kill(slot.actor, no_restart=True)
        self._slots.clear()
        self._running.clear()
        self._state_ref = None
        if self._owns_init and ray.is_initialized():
            with signals_kept():
                ray.shutdown()
        drop_session(self._session)

    def workers(self, timeout: float = READY_TIMEOUT) -> list[dict]:
        """Each worker as it describes itself — ``pid`` (on its node), ``node`` (Ray's node id),
        ``device``, ``models`` (fingerprints) — for diagnostics; waits up to ``timeout`` for a
        replacement worker to be up ({} for one that is not)."""
        return [dict(self._info(slot, timeout)) for slot in self._slots]

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- the cluster ------------------------------------------------------------------------

    @staticmethod
    def _models(model_names: list[str], weights: str | None) -> tuple[list[str], dict | None]:
        """Concrete model names and, for KonCept512, its validated state dict (read here)."""
        from pathlib import Path

        from pixcamd.models import resolve_name
        from pixcamd.models.weights import default_weights_path, load_checkpoint

        names = [resolve_name(n, weights) for n in model_names]
        if not names:
            raise ValueError("RayExecutor needs at least one model")
        state_dict = None
        if "koncept512" in names:
            state_dict = load_checkpoint(Path(weights) if weights else default_weights_path())
        return names, state_dict

    def _connect(self, address: str) -> tuple[str, int] | None:
        """ray.init, bounded: a closed or unreachable port fails in seconds, not Ray's minutes.
        Returns the (host, port) that ``alive`` probes; None when there is none to probe."""
        ray = self._ray
        parts = split_address(address)
        why = reachable(address)
        if why is not None:
            raise PixcamdError(
                f"Ray cluster at {address} is unreachable: {why}; is it started (`ray start "
                "--head`)?"
            )
        quiet = {"logging_level": "ERROR", "log_to_driver": False}
        with signals_kept():
            self._init(address, quiet)
        if parts is not None:
            return parts
        try:  # local/auto: probe the GCS this process ended up connected to
            host, _, port = ray.get_runtime_context().gcs_address.rpartition(":")
            return host, int(port)
        except Exception:
            return None

    def _init(self, address: str, quiet: dict) -> None:
        ray = self._ray
        if ray.is_initialized():  # another part of this process connected: share that
            pass
        elif address == "local":  # a private Ray on this machine, gone when we close
            # said as "local": a bare ray.init() would join the cluster RAY_ADDRESS names
            context = ray.init(
                address="local", ignore_reinit_error=True, include_dashboard=False, **quiet
            )
            self._owns_init = True
            self._session = context.address_info.get("session_dir")
        else:
            try:
                if address.startswith("ray://"):
                    ray.init(address=address, ignore_reinit_error=True, logging_level="ERROR")
                else:
                    ray.init(address=address, ignore_reinit_error=True, **quiet)
            except Exception as exc:
                raise PixcamdError(
                    f"Ray cluster at {address}: cannot connect: {first_line(exc)}"
                ) from exc
            self._owns_init = True

    def _new_slot(self) -> _Slot:
        cls = self._ray.remote(PhotoWorker)
        actor = cls.options(
            max_restarts=0,  # a dead actor is replaced by this executor, visibly
            max_task_retries=0,  # never re-run a photo behind the caller's back
            **self._resources,
        ).remote(self._names, self._state_ref, self.options, self.threads)
        return _Slot(actor, ready=actor.ready.remote())

    def _info(self, slot: _Slot, timeout: float = 0.0) -> dict:
        """What the worker said about itself (pid, node, device), once it is up; {} before."""
        if slot.ready is not None:
            try:
                slot.info = self._ray.get(slot.ready, timeout=timeout)
                slot.ready = None
            except Exception:  # not up yet, or died while starting
                pass
        return slot.info

    def _start(self, workers: int) -> None:
        ray = self._ray
        slots = [self._new_slot() for _ in range(workers)]
        self._slots = slots
        try:
            infos = ray.get([s.ready for s in slots], timeout=READY_TIMEOUT)
        except ray.exceptions.GetTimeoutError:
            raise PixcamdError(
                f"Ray cluster at {self.address}: {workers} workers did not start within "
                f"{READY_TIMEOUT:.0f} s (is pixcamd installed on every node?)"
            ) from None
        except ray.exceptions.RayError as exc:
            raise PixcamdError(
                f"Ray cluster at {self.address}: a worker failed to start: {last_line(exc)}"
            ) from exc
        for slot, info in zip(slots, infos, strict=True):
            slot.info = info
            slot.ready = None
        self.model_fingerprints = infos[0]["models"] if infos else []

    def _collect(self, ref) -> Done:
        ray = self._ray
        task, slot = self._running.pop(ref)
        slot.busy -= 1
        try:
            outcome = ray.get(ref, timeout=GET_TIMEOUT)
        except self._lost as exc:
            self._worker_died(slot, exc)
            return Done(task, error=exc, lost=True)
        except ray.exceptions.GetTimeoutError as exc:  # ready, yet it would not come: a lost one
            return Done(task, error=exc, lost=True)
        except ray.exceptions.RayTaskError as exc:  # the job raised: hand back its own error
            self._deaths_in_a_row = 0
            cause = exc.cause if isinstance(exc.cause, BaseException) else exc
            return Done(task, error=cause)
        except Exception as exc:
            self._deaths_in_a_row = 0
            return Done(task, error=exc)
        self._deaths_in_a_row = 0
        return Done(task, outcome=outcome)

    def _worker_died(self, slot: _Slot, exc: BaseException) -> None:
        """Replace the dead actor once (its other photos in flight come back lost too)."""
        if slot not in self._slots or self._broken is not None:
            return
        self._slots.remove(slot)
        if not self.alive():  # not the worker: the whole cluster is gone
            return
        with contextlib.suppress(Exception):  # "unavailable" may be for now: free its resources
            self._ray.kill(slot.actor, no_restart=True)
        self._deaths_in_a_row += 1
        if self._deaths_in_a_row > self.max_lost:
            self._unusable(
                f"{self._deaths_in_a_row} workers died in a row without finishing a photo "
                f"(last: {last_line(exc)})"
            )
            return
        if not self._room_for_one(slot):
            if not self._slots:
                self._unusable(f"no worker left: {last_line(exc)}")
            return
        try:  # not waited for: its first photo queues behind its model load
            self._slots.append(self._new_slot())
        except Exception as err:
            self._unusable(f"cannot start a worker: {last_line(err)}")

    def _room_for_one(self, dead: _Slot) -> bool:
        """A replacement fits: the dead actor's node is still alive (its resources come free),
        or some other node has the CPUs (and GPU) free right now."""
        ray = self._ray
        node = self._info(dead).get("node")
        try:
            if node is not None and any(n["NodeID"] == node and n["Alive"] for n in ray.nodes()):
                return True
            free = ray.available_resources()
        except Exception:
            return False
        need_cpu, need_gpu = self._resources["num_cpus"], self._resources["num_gpus"]
        return free.get("CPU", 0) >= need_cpu and free.get("GPU", 0) >= need_gpu

    def _unreachable(self, reason: str) -> None:
        self._gone = True
        self._unusable(reason, f"Ray cluster at {self.address} is unreachable")

    def _unusable(self, reason: str, what: str = "") -> None:
        """From now on every photo in flight comes back lost, and submit raises this."""
        if self._broken is None:
            what = what or f"Ray cluster at {self.address} is unusable"
            self._broken = PixcamdError(f"{what}: {reason}")

    def _drain_lost(self) -> list[Done]:
        done = [Done(task, error=self._broken, lost=True) for task, _ in self._running.values()]
        self._running.clear()
        for slot in self._slots:
            slot.busy = 0
        return done


def _connection_lost(exc: BaseException) -> str:
    return f"lost the connection to it ({type(exc).__name__}: {first_line(exc)})"
