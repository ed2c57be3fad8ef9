"""``pixcamd status`` after a daemon was killed (-9, an OOM kill, a power cut) in a container:
its record and its daemon.lock still name its pid, 1, which is alive in every other container
— status said "running (pid 1)", then unresponsive. The state dir's lock, which the kernel drops
with its holder, decides: free, no daemon runs, whatever pid is alive; held, the pid says."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time

from test_daemon_support import ROOT, make_config

from pixcamd.daemon.ledger import Ledger


def status(config) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pixcamd", "status", "--config", str(config.source)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def killed_daemon(config, pid: int) -> None:
    """What a daemon killed at once leaves: its pid in its record and in daemon.lock."""
    config.state_dir.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(config.ledger_path)
    now = time.time()
    ledger.set_daemon(pid=pid, started_at=now - 5, heartbeat=now, status="idle")
    ledger.close()
    (config.state_dir / "daemon.lock").write_text(f"{pid}\n")


def daemon_line(result: subprocess.CompletedProcess) -> str:
    return next(line for line in result.stdout.splitlines() if line.startswith("daemon:"))


def test_a_live_pid_whose_lock_no_one_holds_is_not_a_running_daemon(tmp_path):
    config = make_config(tmp_path)
    killed_daemon(config, os.getpid())  # alive, as pid 1 in a container
    result = status(config)
    assert result.returncode == 0, result.stderr
    line = daemon_line(result)
    assert "not running" in line and "ended without stopping" in line, result.stdout
    assert "running (pid" not in result.stdout


def test_a_config_that_does_not_validate_still_asks_the_lock(tmp_path):
    """A running daemon's config edited wrong: status shows the record (no state_dir in it),
    and still asks the lock beside the ledger — before: AttributeError, a traceback."""
    config = make_config(tmp_path)
    killed_daemon(config, os.getpid())
    with open(config.source, "a") as toml:
        toml.write("not_a_key = 1\n")
    result = status(config)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "not running" in daemon_line(result), result.stdout


def test_a_held_lock_and_a_live_pid_are_a_running_daemon(tmp_path):
    config = make_config(tmp_path)
    killed_daemon(config, os.getpid())
    fd = os.open(config.state_dir / "daemon.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as the daemon holds it
        result = status(config)
    finally:
        os.close(fd)
    assert result.returncode == 0, result.stderr
    assert "running" in daemon_line(result) and "not running" not in daemon_line(result)
