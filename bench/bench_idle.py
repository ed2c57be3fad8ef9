"""What an idle daemon holds: resident memory of a real ``pixcamd run`` at start-up, at its peak
on one large photo, and idle afterwards — the figure a laptop user meets (issue #13).

    .venv/bin/python bench/bench_idle.py [--megapixels 24] [--photo FILE] [--idle 5]

The daemon is started as a user starts it (``python -m pixcamd run --config FILE``, BRISQUE, the
default pipelines; ``--steps`` per round kept small, since the peak comes from the photo's size,
not from the number of steps), one photo is dropped into its inbox, and /proc/PID/status is read:
VmRSS once the daemon is ready, VmHWM (the kernel's high-water mark) once the photo is done, and
VmRSS after ``--idle`` seconds of idling. Since issue #13 the worker gives the photo's memory back
after each photo (``pixcamd.devices.release_memory``); ``--no-release`` measures the daemon
without that (an environment switch read by this benchmark's own child only), for the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_protect import test_photo  # noqa: E402
from host import machine_line  # noqa: E402


def rss(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def wait(predicate, timeout: float, what: str, process: subprocess.Popen, err: Path):
    """Until ``predicate``; a daemon that ended meanwhile ends the benchmark with its words."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if process.poll() is not None:
            said = err.read_text(errors="replace").strip()[-2000:]
            raise SystemExit(f"the daemon ended (exit {process.returncode}) before {what}:\n{said}")
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def events(log: Path) -> list[dict]:
    if not log.is_file():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def measure(args, release: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "inbox").mkdir()
        config = root / "config.toml"
        config.write_text(
            f'inbox = "{root / "inbox"}"\noutbox = "{root / "outbox"}"\n'
            f'state_dir = "{root / "state"}"\nmodel = "brisque"\nsteps = {args.steps}\n'
            "settle_time = 0.5\n"
        )
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1"}
        if not release:
            env["PIXCAMD_BENCH_NO_RELEASE"] = "1"
        child = [sys.executable, str(Path(__file__).resolve()), "--child", str(config)]
        with (root / "daemon.err").open("w") as err:  # the human log: never a full pipe
            process = subprocess.Popen(child, env=env, stdout=subprocess.DEVNULL, stderr=err)
        try:
            log = root / "state" / "pixcamd.jsonl"
            said = root / "daemon.err"
            wait(
                lambda: any(e["event"] == "ready" for e in events(log)), 300, "ready", process, said
            )
            time.sleep(1.0)
            ready = rss(process.pid)["VmRSS"]
            photo = root / "photo.jpg"
            if args.photo:
                photo.write_bytes(Path(args.photo).read_bytes())
            else:
                test_photo(args.megapixels).save(photo, quality=95)
            os.rename(photo, root / "inbox" / "photo.jpg")
            done = ("protected", "unprotected", "failed", "shipped_unprotected")
            wait(
                lambda: any(e["event"] in done for e in events(log)),
                1800,
                "the photo",
                process,
                said,
            )
            peak = rss(process.pid)["VmHWM"]
            time.sleep(args.idle)
            idle = rss(process.pid)["VmRSS"]
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(120)
    return {"release": release, "ready_mb": ready, "peak_mb": peak, "idle_mb": idle}


def child(config: str) -> None:
    """The daemon, as ``pixcamd run`` starts it; without the release step when told so."""
    if os.environ.get("PIXCAMD_BENCH_NO_RELEASE"):
        import pixcamd.devices

        pixcamd.devices.release_memory = lambda: None
    from pixcamd.cli import main

    sys.exit(main(["run", "--config", config]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megapixels", type=float, default=24.0)
    parser.add_argument("--photo", help="a real photo instead of the synthetic one")
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per round")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds idle before reading")
    parser.add_argument("--no-release", action="store_true", help="also measure without it")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    runs = [measure(args, release=True)]
    if args.no_release:
        runs.append(measure(args, release=False))
    print(
        json.dumps(
            {
                "photo": args.photo or f"synthetic {args.megapixels} MP",
                "runs": runs,
                "machine": machine_line(),
                "model": "brisque (real LIVE SVR)",
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
