"""``RayExecutor`` on a real Ray cluster on this machine — ``ray start`` twice, one CPU per node,
token authentication on — protecting real photos: the same copy as ``LocalExecutor`` makes, a
photo's own error handed back as itself, a worker killed mid-photo reported lost and replaced,
a head that dies giving every photo back lost, KonCept512's weights sent from the head, an
unreachable cluster refused quickly, and back-pressure."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from pixcamd.errors import PhotoError, PixcamdError, Undecodable
from pixcamd.executors import Done, JobOptions, LocalExecutor, Task
from pixcamd.executors.ray import RayExecutor  # imports Ray only when one is made
from pixcamd.executors.ray_link import reachable
from pixcamd.platforms import PRESETS
from pixcamd.protect import Settings

ray = pytest.importorskip("ray")
from raycluster import free_port, ray_cluster, stop_sessions  # noqa: E402

# BRISQUE, the centre view, the task's pipeline: a 640×480 crop protects in seconds on one core.
OPTIONS = JobOptions(Settings(views=("center",), platforms=(PRESETS["task"],)))
PHOTOS = ("Dragonfly_by_Bolly.jpg", "aitzgorri_by_Aitzol_Berasategi.jpg")


@pytest.fixture(scope="module")
def photos(corpus_dir) -> dict[str, bytes]:
    """640×480 centre crops of real photos, as JPEG files' bytes."""
    out = {}
    for name in PHOTOS:
        with Image.open(corpus_dir / "photos" / name) as img:
            left, top = (img.width - 640) // 2, (img.height - 480) // 2
            crop = img.convert("RGB").crop((left, top, left + 640, top + 480))
        buffer = io.BytesIO()
        crop.save(buffer, format="JPEG", quality=92)
        out[name] = buffer.getvalue()
    return out


def finish(executor, deadline_s: float = 120.0) -> list[Done]:
    """Everything in flight, through ``wait`` as a caller would use it."""
    done, deadline = [], time.monotonic() + deadline_s
    while executor.in_flight():
        assert time.monotonic() < deadline, "photos still in flight"
        done += executor.wait(timeout=2.0)
    return done


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@contextlib.contextmanager
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_local(executor: LocalExecutor, task: Task):
    executor.submit(task)
    (done,) = executor.wait()
    assert done.error is None, done.error
    return done.outcome


def without_time(report: dict) -> dict:
    return {k: v for k, v in report.items() if k != "seconds"}


def test_photos_are_protected_on_two_nodes_as_they_are_here(cluster, photos, brisque):
    tasks = [Task(i, name, data) for i, (name, data) in enumerate(photos.items())]
    with RayExecutor(cluster, ["brisque"], None, OPTIONS) as executor:
        workers = executor.workers()
        assert len(workers) == 2 and len({w["node"] for w in workers}) == 2  # one per node
        assert executor.capacity == 4 and executor.describe.startswith(f"Ray cluster at {cluster}")
        assert "2 workers" in executor.describe and executor.alive()
        assert reachable(cluster) is None
        for task in tasks:
            executor.submit(task)
        assert executor.in_flight() == 2
        done = {d.task.key: d for d in finish(executor)}
    assert sorted(done) == [0, 1]

    local = LocalExecutor([brisque], OPTIONS)
    with one_torch_thread():  # as the actors ran them
        here = {task.key: run_local(local, task) for task in tasks}
    for task in tasks:
        remote = done[task.key]
        assert remote.error is None and not remote.lost and remote.outcome is not None
        outcome = remote.outcome
        assert outcome.verdict == "protected" and outcome.protected
        with Image.open(io.BytesIO(outcome.data)) as img:
            assert img.format == "JPEG" and img.size == (640, 480)

        # same photo, same settings, same seed, one thread: the same copy, wherever it runs
        mine = here[task.key]
        assert outcome.data == mine.data
        assert without_time(outcome.report) == without_time(mine.report)
        assert outcome.report["file_check"]["task"]["brisque"]["center"] > brisque.threshold


def test_a_photo_error_comes_back_as_itself(cluster):
    with RayExecutor(cluster, ["brisque"], None, OPTIONS, workers=1) as executor:
        executor.submit(Task("bad", "notes.txt", b"these are not the bytes of a photo"))
        (done,) = finish(executor)
    assert done.task.key == "bad" and done.outcome is None and not done.lost
    # unwrapped, its own class: not Ray's RayTaskError(Undecodable)
    assert type(done.error) is Undecodable and isinstance(done.error, PhotoError)
    assert "notes.txt" in str(done.error)


def kill_mid_photo(executor: RayExecutor, task: Task) -> Done:
    """Submit ``task`` to the executor's only worker, SIGKILL that worker once it has spent half a
    second of CPU on the photo, and return what ``wait`` then gives back."""
    (worker,) = executor.workers()
    idle = cpu_seconds(worker["pid"])
    executor.submit(task)
    deadline = time.monotonic() + 30
    while cpu_seconds(worker["pid"]) < idle + 0.5:  # it has been protecting for a while
        assert time.monotonic() < deadline, "the photo never started"
        time.sleep(0.05)
    os.kill(worker["pid"], signal.SIGKILL)
    (done,) = finish(executor)
    return done


def test_a_worker_killed_mid_photo_is_lost_and_the_photo_done_once_on_retry(cluster, photos):
    name = PHOTOS[0]
    task = Task(7, name, photos[name])
    with RayExecutor(cluster, ["brisque"], None, OPTIONS, workers=1) as executor:
        (worker,) = executor.workers()
        lost = kill_mid_photo(executor, task)
        assert lost.task == task and lost.lost and lost.outcome is None
        assert isinstance(lost.error, ray.exceptions.RayActorError)

        executor.submit(task)  # the caller's retry: a fresh worker took the dead one's place
        done = finish(executor)
        assert [d.task.key for d in done] == [7] and done[0].outcome is not None
        assert done[0].outcome.verdict == "protected"
        (replacement,) = executor.workers()
        assert replacement["pid"] != worker["pid"]
        assert executor.wait(timeout=0.5) == []  # nothing else ever comes back for it


def test_workers_that_keep_dying_make_the_cluster_unusable(cluster, photos):
    name = PHOTOS[0]
    task = Task(1, name, photos[name])
    with RayExecutor(cluster, ["brisque"], None, OPTIONS, workers=1, max_lost=1) as executor:
        assert kill_mid_photo(executor, task).lost  # replaced: one death is bad luck
        assert executor.capacity == 2
        assert kill_mid_photo(executor, task).lost  # two in a row, no photo between: not luck
        assert executor.alive()  # the cluster answers, but no worker survives a photo
        with pytest.raises(PixcamdError, match=f"{cluster} is unusable: 2 workers died in a row"):
            executor.submit(task)


def test_an_unreachable_cluster_is_refused_quickly_by_name():
    address = f"127.0.0.1:{free_port()}"  # nothing listens there now
    assert "nothing answers at" in reachable(address)
    started = time.monotonic()
    with pytest.raises(PixcamdError, match=f"Ray cluster at {address} is unreachable"):
        RayExecutor(address, ["brisque"], None, OPTIONS)
    assert time.monotonic() - started < 30
    assert not ray.is_initialized()


def test_submitting_beyond_capacity_is_refused(cluster):
    with RayExecutor(
        cluster, ["brisque"], None, OPTIONS, workers=1, in_flight_per_worker=2
    ) as executor:
        assert executor.capacity == 2
        for i in range(2):
            executor.submit(Task(i, f"{i}.txt", b"not a photo"))
        with pytest.raises(RuntimeError, match="capacity"):
            executor.submit(Task(2, "2.txt", b"not a photo"))
        assert executor.in_flight() == 2
        done = finish(executor)
        assert sorted(d.task.key for d in done) == [0, 1]
        executor.submit(Task(2, "2.txt", b"not a photo"))  # room again
        assert [d.task.key for d in finish(executor)] == [2]


def test_a_cluster_whose_head_dies_gives_every_photo_back_lost(ray_env, photos):
    name = PHOTOS[0]
    with (
        ray_cluster(1, ray_env) as cluster,
        RayExecutor(
            cluster.address, ["brisque"], None, OPTIONS, in_flight_per_worker=2
        ) as executor,
    ):
        tasks = [Task(i, name, photos[name]) for i in range(2)]
        for task in tasks:
            executor.submit(task)
        stop_sessions(cluster.nodes[0])  # the head, and the worker on it, gone mid-photo

        done = finish(executor, deadline_s=60)  # a hang fails here
        assert sorted(d.task.key for d in done) == [0, 1]
        assert all(d.lost and d.outcome is None for d in done)
        assert not executor.alive()
        with pytest.raises(PixcamdError, match=f"Ray cluster at {cluster.address} is unreachable"):
            executor.submit(tasks[0])


def test_a_worker_node_that_dies_costs_its_photos_a_retry_on_the_node_left(ray_env, photos):
    """The second node goes away mid-photo (its raylet and worker killed): its photos come back
    lost, the pool shrinks to the head's worker, and the retried photos are done there, once."""
    tasks = [Task(i, name, data) for i, (name, data) in enumerate(photos.items())]
    with (
        ray_cluster(2, ray_env) as cluster,
        RayExecutor(cluster.address, ["brisque"], None, OPTIONS, workers=2) as executor,
    ):
        assert executor.capacity == 4
        for task in tasks:
            executor.submit(task)  # one on each worker: the least loaded first
        nodes = {w["node"] for w in executor.workers()}
        assert len(nodes) == 2
        stop_sessions(cluster.nodes[1])  # the second node and its worker, gone mid-photo
        done = finish(executor, deadline_s=120)
        lost = [d for d in done if d.lost]
        kept = [d for d in done if d.outcome is not None]
        assert len(lost) >= 1 and len(lost) + len(kept) == 2
        assert executor.alive()  # the head still answers
        for d in lost:
            executor.submit(d.task)  # the caller's retry
        again = finish(executor, deadline_s=180)
        assert sorted(d.task.key for d in kept + again) == [0, 1]
        assert all(d.outcome is not None and d.outcome.verdict == "protected" for d in again)
        assert executor.capacity == 2  # the one worker left


def test_koncept512_weights_travel_from_the_head_in_memory(cluster, recipe_checkpoint):
    from pixcamd.models import load_model

    here = load_model("koncept512", recipe_checkpoint)
    with RayExecutor(cluster, ["koncept512"], str(recipe_checkpoint), OPTIONS, workers=1) as ex:
        (worker,) = ex.workers()
    # the network the worker built is the one the checkpoint holds, byte for byte
    assert worker["models"] == [here.fingerprint] == ex.model_fingerprints
    assert "sha256:" in here.fingerprint


def test_without_ray_the_error_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails, as where it is missing
    with pytest.raises(PixcamdError, match=r"needs Ray: pip install 'pixcamd\[ray\]'"):
        RayExecutor("local", ["brisque"], None, OPTIONS)
