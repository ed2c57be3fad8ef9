"""Folder runs on this machine against a Ray cluster on this machine: photos per hour, Ray's
overhead per photo, peak memory of the head (this process) and of each Ray worker (issue #12).

    .venv/bin/python bench/bench_ray.py [--photos 8] [--size 1600x1200] [--repeats 3] [--json]

The same folder — centre crops of ``../shared/corpus`` photos at ``--size``, saved as JPEG 95 —
is protected with BRISQUE and the default platform pipelines by ``pixcamd.folders.FolderRun``
(what ``pixcamd protect FOLDER --outdir`` runs), into a fresh outdir each time:

* ``local``: ``LocalExecutor`` in this process, torch on every core (the default);
* ``ray``: ``RayExecutor`` on a real local Ray cluster (``ray start --head`` on 127.0.0.1 with
  one CPU per core, token authentication on), one single-thread CPU worker per core.

Each configuration runs ``--repeats`` times, alternating, in this one process; figures are
medians. Ray's overhead per photo is the time from submission to the result being back at the
head minus the time the job itself took on the worker (its own ``total``), for photos submitted
to an idle worker. Peak memory: this process's high-water mark (``ru_maxrss``, it holds the
models for the local runs too) and each worker's VmHWM from /proc.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
from host import machine_line  # noqa: E402

# as the tests find it: $PIXCAMD_SHARED, else ../shared beside the checkout
CORPUS = Path(os.environ.get("PIXCAMD_SHARED", ROOT.parent / "shared")) / "corpus"


def make_folder(folder: Path, count: int, size: tuple[int, int], corpus: Path) -> list[str]:
    from PIL import Image

    names = []
    paths = sorted((corpus / "photos").glob("*.jpg")) + sorted((corpus / "camera").glob("*.jpg"))
    for path in paths:
        if len(names) == count:
            break
        with Image.open(path) as img:
            if img.width < size[0] or img.height < size[1]:
                continue
            left, top = (img.width - size[0]) // 2, (img.height - size[1]) // 2
            crop = img.convert("RGB").crop((left, top, left + size[0], top + size[1]))
        crop.save(folder / f"{path.stem}.jpg", quality=95)
        names.append(path.name)
    return names


def hwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Timed:
    """Wraps an executor: when each task went in and came out (for the overhead)."""

    def __init__(self, inner):
        self.inner = inner
        self.sent: dict = {}
        self.latency: list[tuple[float, float]] = []  # (head's seconds, job's own seconds)
        self.blocked = 0.0  # seconds the head spent waiting for results

    capacity = property(lambda self: self.inner.capacity)
    describe = property(lambda self: self.inner.describe)

    def submit(self, task):
        self.sent[task.key] = time.perf_counter()
        self.inner.submit(task)

    def in_flight(self):
        return self.inner.in_flight()

    def wait(self, timeout=None):
        before = time.perf_counter()
        done = self.inner.wait(timeout)
        now = time.perf_counter()
        self.blocked += now - before
        for d in done:
            if d.outcome is not None:
                self.latency.append((now - self.sent[d.task.key], d.outcome.timings["total"]))
        return done

    def close(self):
        self.inner.close()


def run_once(kind: str, folder: Path, models, settings, address: str | None) -> dict:
    from pixcamd.daemon.settings import settings_fingerprint
    from pixcamd.executors import JobOptions, LocalExecutor
    from pixcamd.folder_plan import plan_sources
    from pixcamd.folders import FolderRun

    options = JobOptions(settings)
    if kind == "local":
        executor = LocalExecutor(models, options)
    else:
        from pixcamd.executors.ray import RayExecutor

        executor = RayExecutor(address, [m.name for m in models], None, options, threads=1)
    timed = Timed(executor)
    with tempfile.TemporaryDirectory(prefix="bench-ray-out-") as out:
        plan = plan_sources([folder], Path(out))
        fingerprint = settings_fingerprint(settings, models)
        run = FolderRun(plan.sources, Path(out), timed, fingerprint, "brisque")
        started = time.perf_counter()
        tally = run.run()
        wall = time.perf_counter() - started
    workers = executor.workers() if kind == "ray" else []
    worker_mb = [hwm_mb(w["pid"]) for w in workers if w.get("pid")]
    executor.close()
    return {
        "kind": kind,
        "photos": tally.total,
        "protected": tally.protected,
        "failed": tally.failed,
        "seconds": wall,
        "photos_per_hour": 3600 * tally.total / wall,
        "job_seconds": [job for _, job in timed.latency],
        # the head's own work per photo (plan, hash, read, send, stage, record, publish): what
        # one writer does serially however many workers there are
        "head_seconds_per_photo": (wall - timed.blocked) / max(1, tally.total)
        if kind == "ray"
        else None,
        "worker_peak_mb": worker_mb,
        "workers": len(workers),
    }


def overhead(folder: Path, models, settings, address: str, count: int) -> list[float]:
    """Ray's own cost per photo: one worker, one photo at a time (800×600 crops of the same
    photos), the time from submission to the result back at the head minus the job's own
    ``total`` on the worker: transfer both ways, scheduling, (de)serialising the outcome."""
    import io

    from PIL import Image

    from pixcamd.executors import JobOptions, Task
    from pixcamd.executors.ray import RayExecutor

    executor = RayExecutor(
        address,
        [m.name for m in models],
        None,
        JobOptions(settings),
        workers=1,
        in_flight_per_worker=1,
    )
    executor.workers()  # up and loaded: not part of any photo's time
    spent = []
    try:
        for k, path in enumerate(sorted(folder.iterdir())[:count]):
            with Image.open(path) as img:
                left, top = (img.width - 800) // 2, (img.height - 600) // 2
                crop = img.crop((left, top, left + 800, top + 600))
            buffer = io.BytesIO()
            crop.save(buffer, format="JPEG", quality=95)
            started = time.perf_counter()
            executor.submit(Task(k, path.name, buffer.getvalue()))
            (done,) = executor.wait()
            spent.append(time.perf_counter() - started - done.outcome.timings["total"])
    finally:
        executor.close()
    return spent


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        default=CORPUS,
        help=f"photos/ and camera/ to crop (default {CORPUS})",
    )
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--size", default="1600x1200")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kinds", default="local,ray", help="which runs (default both)")
    parser.add_argument("--overhead", type=int, default=4, help="photos for the overhead probe")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))

    os.environ.update(
        RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), RAY_USAGE_STATS_ENABLED="0"
    )
    import torch
    from raycluster import ray_cluster, reread_auth_settings

    from pixcamd.models import load_model
    from pixcamd.protect import Settings

    reread_auth_settings()
    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    models = [load_model("brisque")]
    settings = Settings()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-ray-in-") as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        names = make_folder(folder, args.photos, size, args.corpus)
        if not names:
            raise SystemExit(
                f"no JPEG of at least {args.size} in {args.corpus}/photos or /camera: "
                "give --corpus DIR or a smaller --size"
            )
        kinds = args.kinds.split(",")
        if unknown := set(kinds) - {"local", "ray"}:
            raise SystemExit(f"--kinds: unknown {sorted(unknown)}; give local, ray or both")
        # one node with a CPU per core: as `ray start --head` on this machine would be
        cluster_env = dict(os.environ)
        # warm-up, not counted: the first protect() in a process pays one-off costs
        from PIL import Image

        from pixcamd.protect import protect as warm

        with Image.open(next(folder.iterdir())) as first:
            warm(first.convert("RGB").crop((0, 0, 640, 480)), models, settings)
        # a local-only run needs no cluster
        cluster_or_none = (
            ray_cluster(1, cluster_env, cpus=cores) if "ray" in kinds else contextlib.nullcontext()
        )
        with cluster_or_none as cluster:
            address = cluster.address if cluster else None
            for repeat in range(args.repeats):
                for kind in kinds:
                    torch.set_num_threads(cores)
                    result = run_once(kind, folder, models, settings, address)
                    result["repeat"] = repeat
                    runs.append(result)
                    print(
                        f"{kind} #{repeat}: {result['photos']} photos in "
                        f"{result['seconds']:.1f} s = {result['photos_per_hour']:.0f}/h",
                        file=sys.stderr,
                    )
            probe = overhead(folder, models, settings, address, args.overhead) if cluster else []
    by = {k: [r for r in runs if r["kind"] == k] for k in kinds}
    ray_runs = by.get("ray", [])
    med = {k: statistics.median(r["photos_per_hour"] for r in v) for k, v in by.items()}
    summary = {
        "machine": machine_line(),
        "model": "brisque (real LIVE SVR)",
        "photos": names,
        "size": list(size),
        "repeats": args.repeats,
        "photos_per_hour": med,
        "ray_over_local": med["ray"] / med["local"] if len(med) == 2 else None,
        "ratios_per_repeat": [
            r["photos_per_hour"] / l["photos_per_hour"]
            for l, r in zip(by.get("local", []), by.get("ray", []), strict=False)  # noqa: E741
        ],
        "job_seconds_median": {
            k: statistics.median(s for r in v for s in r["job_seconds"]) for k, v in by.items()
        },
        "ray_overhead_seconds": probe,
        "ray_overhead_seconds_median": statistics.median(probe) if probe else None,
        "head_seconds_per_photo_median": (
            statistics.median(r["head_seconds_per_photo"] for r in ray_runs) if ray_runs else None
        ),
        "head_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_peak_mb": max(
            (m for r in ray_runs for m in r["worker_peak_mb"] if m), default=None
        ),
        "runs": runs,
    }
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        print()
    else:
        print(f"{summary['machine']}; {summary['model']}")
        for key in ("photos_per_hour", "ray_over_local", "ratios_per_repeat"):
            print(key, summary[key])
        print("job seconds (median)", summary["job_seconds_median"])
        print("ray overhead per photo (median s)", summary["ray_overhead_seconds_median"])
        print("head's own seconds per photo (median)", summary["head_seconds_per_photo_median"])
        print("peak MB: head", summary["head_peak_mb"], "worker", summary["worker_peak_mb"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
