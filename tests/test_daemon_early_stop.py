"""A stop asked of ``pixcamd run`` before the daemon exists (a ``docker stop`` in the second or
more that loading torch and the config take): kept, and the daemon never starts — exit 0 at
once, nothing protected. As PID 1 in a container a SIGTERM with no handler was lost, and the
container was killed 10 s later. The signal is sent as soon as the process ignores SIGHUP, the
first thing ``pixcamd.launch`` does for ``run`` after taking SIGTERM and SIGINT."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from test_daemon_support import make_config, noise_photo, pixcamd_process, wait_for_hup_ignored


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_before_the_daemon_started_ends_run_cleanly_protecting_nothing(tmp_path, signum):
    config = make_config(tmp_path)
    noise_photo(config.inbox / "a.jpg", seed=1)
    proc = pixcamd_process(tmp_path / "config.toml")
    try:
        wait_for_hup_ignored(proc)
        sent = time.monotonic()
        proc.send_signal(signum)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output
    assert time.monotonic() - sent < 30, output  # not a grace time nor a kill
    assert f"{signal.Signals(signum).name} received before the daemon started" in output
    assert "daemon_started" not in output
    log = config.log_file.read_text() if config.log_file.exists() else ""
    assert "daemon_started" not in log and "done" not in log
    assert not config.outbox.exists() or not any(config.outbox.iterdir())


def _child(code: str) -> subprocess.Popen:
    """A Python process that says "up" once ``code`` (its SIGHUP's fate) ran, then sleeps."""
    code += "; import time; print('up', flush=True); time.sleep(40)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "up\n"
    return proc


def test_the_wait_for_sighup_taken_fails_in_time_and_sees_a_handler_too():
    """wait_for_hup_ignored looked only for SIGHUP ignored: a look that came after
    `pixcamd run` put its own handler there (a poll late on a loaded machine) waited its 30 s,
    and a process that never took it (launch's line gone) was waited for as long as it lived
    — the failure's message read its output, which ends only with it: the test hung."""
    proc = _child("import signal; signal.signal(signal.SIGHUP, lambda *a: None)")
    try:
        began = time.monotonic()
        wait_for_hup_ignored(proc, caught=True)  # a HUP is a reload asked for now: not fatal
        assert time.monotonic() - began < 10
    finally:
        proc.kill()
        proc.communicate()
    proc = _child("pass")  # SIGHUP left to its default action (killed by one): never taken
    try:
        began = time.monotonic()
        with pytest.raises(AssertionError, match="did not take SIGHUP within 1 s"):
            wait_for_hup_ignored(proc, timeout=1)
        assert time.monotonic() - began < 10 and proc.poll() is not None  # ended, not waited for
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
