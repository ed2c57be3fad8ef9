"""The system clock set back under a running daemon (NTP stepping a fast clock, a VM resumed).

APScheduler times its jobs by the wall clock: set back by ten minutes, the daemon used to stop
settling new photos for ten minutes. The daemon runs in its own process here, its wall clock
moved by an offset read from a file (the monotonic clock untouched, as a real step leaves it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from test_daemon_support import ROOT, events, finished, make_config, noise_photo, wait_for

SHIFTED = """
import datetime, sys, time
offset_file = sys.argv.pop(1)
real = time.time

def shifted():
    try:
        with open(offset_file) as f:
            return real() + float(f.read() or 0)
    except (OSError, ValueError):
        return real()

time.time = shifted
time.time_ns = lambda: int(shifted() * 1e9)

class Shifted(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime.datetime.fromtimestamp(shifted(), tz)

import apscheduler.executors.base, apscheduler.schedulers.base, apscheduler.triggers.date
import apscheduler.triggers.interval

for module in (apscheduler.schedulers.base, apscheduler.triggers.interval,
               apscheduler.triggers.date, apscheduler.executors.base):
    module.datetime = Shifted
from pixcamd.cli import main

sys.exit(main(sys.argv[1:]))
"""


def test_a_clock_set_back_ten_minutes_does_not_stop_new_photos(tmp_path):
    config = make_config(tmp_path, threads=1, platforms=["task"], settle_time=0.3)
    offset = tmp_path / "offset"
    offset.write_text("0")
    script = tmp_path / "shifted.py"
    script.write_text(SHIFTED)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    command = [sys.executable, str(script), str(offset), "run", "--config", str(config.source)]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        noise_photo(config.inbox / "before.png", 1)
        wait_for(lambda: finished(config, ["before.png"]), 90, "the photo before the step")
        offset.write_text("-600")
        wait_for(lambda: any(e["event"] == "clock" for e in events(config)), 20, "the step seen")
        time.sleep(1.0)  # the scheduler back asleep on its next poll, as it was before the fix
        noise_photo(config.inbox / "after.png", 2)
        # a settle poll every 0.1 s: without the fix this waited out the ten minutes
        wait_for(lambda: finished(config, ["after.png"]), 60, "the photo after the step")
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=60)
    assert process.returncode == 0, out
    (said,) = [e for e in events(config) if e["event"] == "clock"]
    assert said["level"] == "warning" and "set back 600 s" in said["message"], said
