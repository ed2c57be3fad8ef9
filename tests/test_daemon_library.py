"""A photo library found at the daemon's first start: queued a batch at a time while it is
being read, a stop heard within that, and a photo taken today not left behind all of it."""

from __future__ import annotations

import threading
import time

from test_daemon_support import (
    events,
    make_config,
    no_leaked_threads,  # noqa: F401
    noise_photo,
    running,
    wait_for,
)

from pixcamd.daemon.ledger import Ledger

LIBRARY = 24


def test_a_library_is_queued_a_batch_at_a_time_and_a_stop_is_heard_within_it(tmp_path, brisque):
    config = make_config(tmp_path)
    for n in range(LIBRARY):
        noise_photo(config.inbox / f"2015/{n:02}.jpg", n, size=(96, 64))
    decoded: list[str] = []

    def slow_decode(path):  # a 12-MP photo's full decode, about a third of a second
        time.sleep(0.4)
        decoded.append(path.name)

    with running(config, [brisque], decode=slow_decode) as daemon:
        # the first photo queued long before the last one is read (before: all of them first)
        wait_for(lambda: any(e["event"] == "queued" for e in events(config)), 60, "one queued")
        assert len(decoded) < LIBRARY / 2, decoded
        stopping = time.monotonic()
    # the daemon's thread has ended (joined by `running`), and within the settle's budget
    took = time.monotonic() - stopping
    assert daemon.outcome.get("code") == 0 and took < 10, (daemon.outcome, took)
    assert not [t for t in threading.enumerate() if t.name.startswith("ThreadPoolExecutor")]
    said = [e["event"] for e in events(config)]
    assert said[-1] == "stopped" and "ledger_unwritable" not in said, said[-5:]
    assert len(decoded) < LIBRARY  # the stop ended the reading, not the end of the library


def test_a_photo_taken_today_is_taken_before_the_library(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    old = time.time_ns() - 10 * 365 * 86400 * 10**9
    for n in range(5):  # found by the start-up scan, oldest folder first
        ledger.offer(f"2015/{n}.jpg", f"{n:064}", 1, old + n, "fp")
    ledger.offer("today.jpg", "f" * 64, 1, time.time_ns(), "fp")
    order = [ledger.claim_next().path for _ in range(6)]
    ledger.close()
    assert order == ["today.jpg", *(f"2015/{n}.jpg" for n in range(5))]  # then as found


def test_status_says_how_long_the_backlog_takes_and_how_many_problems_it_does_not_list(
    tmp_path, capsys
):
    from web_support import cli

    config = make_config(tmp_path)
    ledger = Ledger(config.ledger_path)
    for n in range(60):  # failed, more than the 50 listed
        ledger.offer(f"bad/{n}.jpg", f"{n:064}", 1, n, "fp")
        ledger.finish(ledger.claim_next().id, "failed", error="does not decode", seconds=1.0)
    for n in range(3):  # protected in the last hour, 90 s each
        ledger.offer(f"done/{n}.jpg", f"{n + 100:064}", 1, 10**18 + n, "fp")
        ledger.finish(ledger.claim_next().id, "done", seconds=90.0)
    for n in range(400):  # the library still queued
        ledger.offer(f"2015/{n}.jpg", f"{n + 1000:064}", 1, n, "fp")
    ledger.close()
    code, out = cli(capsys, config, "status")
    assert code == 0, out
    # the last hour's pace: (60 × 1 s + 3 × 90 s) / 63 photos, 400 of them about 35 minutes
    assert "queue: 400 photos, about 35 min at the last hour's pace" in out, out
    assert "photos from the last day are taken first" in out
    assert "  … and 10 more (the web page lists every photo)" in out, out
