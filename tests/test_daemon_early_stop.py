"""A stop asked of ``pixcamd run`` before the daemon exists (a ``docker stop`` in the second or
more that loading torch and the config take): kept, and the daemon never starts — exit 0 at
once, nothing protected. As PID 1 in a container a SIGTERM with no handler was lost, and the
container was killed 10 s later. The signal is sent as soon as the process ignores SIGHUP, the
first thing ``pixcamd.launch`` does for ``run`` after taking SIGTERM and SIGINT."""

from __future__ import annotations

import signal
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
