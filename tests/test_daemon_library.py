"""A photo library found at the daemon's first start: queued a batch at a time while it is
being read, a stop heard within that, and a photo taken today not left behind all of it."""

from __future__ import annotations

import sqlite3
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


def test_a_library_is_queued_a_batch_at_a_time_and_a_stop_is_heard_within_it(
    tmp_path, brisque, caplog
):
    config = make_config(tmp_path)
    for n in range(LIBRARY):
        noise_photo(config.inbox / f"2015/{n:02}.jpg", n, size=(96, 64))
    decoded: list[float] = []  # when each full decode ended

    def slow_decode(path):  # a 12-MP photo's full decode, about a third of a second
        time.sleep(0.4)
        decoded.append(time.time())

    with running(config, [brisque], decode=slow_decode) as daemon:
        wait_for(lambda: any(e["event"] == "queued" for e in events(config)), 60, "one queued")
        stopping = time.monotonic()
    took = time.monotonic() - stopping  # the daemon's thread has ended (joined by `running`)
    assert daemon.outcome.get("code") == 0 and took < 30, (daemon.outcome, took)
    # the first photo was queued after one poll's budget of decodes (2 s: at most 6 of these),
    # not after the whole library was read (before: all of them first)
    db = sqlite3.connect(config.ledger_path)
    (first,) = db.execute("SELECT min(ts) FROM events WHERE event = 'queued'").fetchone()
    db.close()
    assert len([t for t in decoded if t <= first]) <= 6, (first, decoded)
    said = [e["event"] for e in events(config)]
    assert said[-1] == "stopped", said[-5:]
    # no job ran on after the ledger closed (APScheduler logs a job's exception: before, the
    # settle job's "Cannot operate on a closed database")
    failed = [r.getMessage() for r in caplog.records if r.name.startswith("apscheduler")]
    assert not [m for m in failed if "raised an exception" in m], failed
    assert len(decoded) < LIBRARY  # the stop ended the reading, not the end of the library


def test_a_photo_taken_today_is_taken_before_the_library_even_a_day_later(tmp_path):
    clock = [time.time()]
    ledger = Ledger(tmp_path / "ledger.sqlite3", clock=lambda: clock[0])
    old = time.time_ns() - 10 * 365 * 86400 * 10**9
    for n in range(5):  # found by the start-up scan, oldest folder first
        ledger.offer(f"2015/{n}.jpg", f"{n:064}", 1, old + n, "fp")
    ledger.offer("today.jpg", "f" * 64, 1, time.time_ns(), "fp")
    clock[0] += 25 * 3600  # the queue stalled for a day (a full outbox): it keeps its place
    order = [ledger.claim_next().path for _ in range(6)]
    ledger.close()
    assert order == ["today.jpg", *(f"2015/{n}.jpg" for n in range(5))]  # then as found


def test_status_says_how_long_the_backlog_takes_and_how_many_problems_it_does_not_list(
    tmp_path, capsys
):
    from web_support import cli

    config = make_config(tmp_path)
    ledger = Ledger(config.ledger_path)
    for n in range(60):  # failed, more than the 50 listed (as the worker fails them: no time)
        ledger.offer(f"bad/{n}.jpg", f"{n:064}", 1, n, "fp")
        ledger.finish(ledger.claim_next().id, "failed", error="does not decode")
    for n in range(3):  # protected in the last hour, 90 s each
        ledger.offer(f"done/{n}.jpg", f"{n + 100:064}", 1, 10**18 + n, "fp")
        ledger.finish(ledger.claim_next().id, "done", seconds=90.0)
    for n in range(400):  # the library still queued
        ledger.offer(f"2015/{n}.jpg", f"{n + 1000:064}", 1, n, "fp")
    ledger.close()
    code, out = cli(capsys, config, "status")
    assert code == 0, out
    # the last hour's pace: 63 photos finished in it (the failures were quick), more than one
    # worker's 40 an hour at 90 s a photo: 400 take about 6.3 h
    assert "queue: 400 photos, about 6.3 h at the last hour's pace" in out, out
    assert "photos from the last day are taken first" in out
    # the test config turns the page off: where to see them all anyway
    assert '  … and 10 more (the web page lists every photo (web = "" here: `pixcamd web ' in out
    code, out = cli(capsys, make_config(tmp_path, web="127.0.0.1:8765"), "status")
    assert code == 0 and "  … and 10 more (the web page lists every photo)\n" in out, out


def test_status_gives_no_backlog_time_it_cannot_know(tmp_path, capsys):
    """Every photo of the last hour queued again (`pixcamd retry`, here of 4 photos done at 10 s
    each): their times are forgotten, so the hour gives no time a photo. Its 4 finished photos
    are no pace (the worker was idle most of the hour): "about 1.0 h" for 40 s of work was said."""
    from web_support import cli

    config = make_config(tmp_path)
    ledger = Ledger(config.ledger_path)
    for n in range(4):
        (config.inbox / f"{n}.jpg").write_bytes(b"a photo")
        ledger.offer(f"{n}.jpg", f"{n:064}", 7, n, "fp")
        ledger.finish(ledger.claim_next().id, "done", seconds=10.0)
    ledger.close()
    code, out = cli(capsys, config, "retry", *(f"{n}.jpg" for n in range(4)))
    assert code == 0 and "4 photo(s) queued again" in out, out
    code, out = cli(capsys, config, "status")
    assert code == 0 and "photos: queued 4" in out, out
    assert "4 being protected again" in out, out
    assert "queue:" not in out, out  # no "queue: 4 photos, about 1.0 h at the last hour's pace"
