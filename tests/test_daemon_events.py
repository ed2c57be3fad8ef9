"""Human log lines and ``pixcamd status`` with file names a sync peer chose: one line per entry."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

from test_daemon_support import make_config, no_leaked_threads  # noqa: F401

from pixcamd.daemon.events import EventLog, printable
from pixcamd.daemon.ledger import Ledger
from pixcamd.daemon.status import gather
from pixcamd.daemon.status_text import render

FORGED = "IMG_1.jpg\n12:00:00 INFO    protected IMG_2.jpg\x1b[2K\u202egpj.exe"


def test_a_newline_in_a_name_cannot_forge_a_log_line(tmp_path):
    config = make_config(tmp_path)
    config.state_dir.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(config.ledger_path)
    stream = io.StringIO()
    try:
        log = EventLog(config.log_file, ledger, stream)
        log.emit("failed", FORGED, "not a photo")
    finally:
        ledger.close()
    human = stream.getvalue()
    assert human.count("\n") == 1  # one event, one line
    assert "IMG_1.jpg\\n12:00:00 INFO    protected IMG_2.jpg\\x1b[2K\\u202egpj.exe" in human
    (line,) = config.log_file.read_text().splitlines()
    assert json.loads(line)["path"] == FORGED  # the machine log keeps the name exactly
    text = render(gather(config))
    entries = [line for line in text.splitlines() if "IMG_1.jpg" in line]
    assert entries and all("\\n12:00:00" in line for line in entries)
    assert not any(line.startswith("12:00:00") for line in text.splitlines())


def test_printable_leaves_ordinary_names_alone():
    for name in ("IMG_0001.HEIC", "Ferien 2026/Strand é 日本.jpg", "a b\\c.png"):
        assert printable(name) == name
    assert printable("tab\there\r") == "tab\\there\\r"


def test_status_lists_the_last_photos_as_a_person_asks_about_them(tmp_path):
    config = make_config(tmp_path)
    config.state_dir.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(config.ledger_path)
    try:
        worst = {"pipeline": "instagram", "model": "brisque", "view": "center", "score": 71.25}
        for path, state, extra in (
            ("a.jpg", "done", dict(output="a.jpg", verdict="protected", psnr=45.5, seconds=12.0)),
            (
                "b.jpg",
                "unprotected",
                dict(held="/hold/b.jpg", verdict="unprotected", psnr=40.0, seconds=30.0),
            ),
            ("c.png", "failed", dict(error="not a photo: cannot identify image file")),
        ):
            row = ledger.offer(path, path, 1, 1, "s1-x").row
            ledger.finish(row.id, state, report={"worst": worst}, **extra)
    finally:
        ledger.close()
    report = gather(config)
    assert [p["path"] for p in report["photos"]] == ["a.jpg", "b.jpg", "c.png"]
    lines = render(report).splitlines()
    start = lines.index("last photos:")
    a, b, c = lines[start + 1 : start + 4]
    assert "a.jpg → a.jpg: protected" in a and "worst instagram/center 71.2 (brisque)" in a
    assert "PSNR 45.5 dB" in a and "12.0 s" in a
    assert "UNPROTECTED" in b and "held back: copy in /hold/b.jpg" in b
    assert "FAILED" in c and "cannot identify image file" in c
    assert len(gather(config, photos=1)["photos"]) == 1


class _Polled(io.StringIO):
    """A stream that says when its follower has polled the ledger once (it flushes each poll)."""

    def __init__(self):
        import threading

        super().__init__()
        self.polled = threading.Event()

    def flush(self):
        super().flush()
        self.polled.set()


def test_follow_streams_events_as_they_happen(tmp_path):
    import threading

    from pixcamd.daemon.status import follow

    config = make_config(tmp_path)
    config.state_dir.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(config.ledger_path)
    log = EventLog(config.log_file, ledger, io.StringIO())
    log.emit("settled", "old.jpg", "before following")
    human, machine = _Polled(), _Polled()
    stop = threading.Event()
    threads = [
        threading.Thread(target=follow, args=(config, human, stop), kwargs={"interval": 0.05}),
        threading.Thread(
            target=follow,
            args=(config, machine, stop),
            kwargs={"as_json": True, "interval": 0.05, "backlog": 1},
        ),
    ]
    try:
        for t in threads:
            t.start()
        import time

        # follow flushes after every poll: once both have, both have read where to start from
        assert human.polled.wait(30) and machine.polled.wait(30)
        log.emit("queued", "new.jpg")
        log.emit("failed", FORGED, "not a photo", level="warning")
        deadline = time.monotonic() + 10
        # each follower polls on its own: wait until both have seen both events (one could
        # read "queued" alone just before the other finished, and stop then ends it)
        while time.monotonic() < deadline and (
            human.getvalue().count("\n") < 2 or machine.getvalue().count("\n") < 3
        ):
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        ledger.close()
    lines = human.getvalue().splitlines()
    assert len(lines) == 2  # only what happened after it started, one line each
    assert lines[0].endswith("INFO    queued new.jpg")
    assert "WARNING failed IMG_1.jpg\\n12:00:00" in lines[1]
    records = [json.loads(line) for line in machine.getvalue().splitlines()]
    assert [r["event"] for r in records] == ["settled", "queued", "failed"]  # backlog 1
    assert records[2]["path"] == FORGED and records[2]["message"] == "not a photo"


def test_status_follow_on_the_command_line_stops_on_ctrl_c(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from test_daemon_support import ROOT

    config = make_config(tmp_path)
    config.state_dir.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(config.ledger_path)
    log = EventLog(config.log_file, ledger, io.StringIO())
    log.emit("daemon_started", None, "hello")
    process = subprocess.Popen(
        [sys.executable, "-m", "pixcamd", "status", "--follow", "--config", str(config.source)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = process.stdout.readline()  # the backlog: the last events
        assert "daemon_started: hello" in first
        log.emit("queued", "x.jpg")
        assert process.stdout.readline().rstrip().endswith("queued x.jpg")
    finally:
        time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=30)
        ledger.close()
    assert process.returncode == 0, err
    assert "Traceback" not in err


def test_under_systemd_each_line_carries_its_priority_for_the_journal(tmp_path):
    """stderr that is the journal (``$JOURNAL_STREAM`` names it): each line starts with its
    syslog priority, so `journalctl -p warning` shows the failures (before: all at info); a
    terminal or a pipe gets the plain lines."""
    import os
    import subprocess
    import sys

    from test_daemon_support import ROOT, wait_for

    config = make_config(tmp_path, settle_timeout=1.0)
    (config.inbox / "bad.jpg").write_bytes(b"\xff\xd8 not a photo")
    journal = tmp_path / "journal"
    with open(journal, "w") as stream:
        st = os.fstat(stream.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        argv = [sys.executable, "-m", "pixcamd", "run", "--config", str(config.source)]
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stderr=stream, text=True)
        try:
            wait_for(lambda: " failed bad.jpg" in journal.read_text(), 120, "the failure")
        finally:
            process.terminate()
            process.wait(timeout=60)
    lines = journal.read_text().splitlines()
    (failed,) = [line for line in lines if " failed bad.jpg" in line]
    assert failed.startswith("<4>") and "WARNING failed bad.jpg" in failed, lines
    assert next(line for line in lines if " daemon_started" in line).startswith("<6>"), lines
    assert all(line.startswith("<") for line in lines if " INFO " in line), lines

    stream = io.StringIO()  # not the journal: plain lines
    EventLog(tmp_path / "other.jsonl", None, stream).emit("failed", "x.jpg", "why", "warning")
    assert stream.getvalue().split(" ", 1)[1].startswith("WARNING failed x.jpg")


def test_follow_json_gives_each_event_the_time_the_log_file_has(tmp_path, brisque):
    """`status --follow --json` and the JSON log file both give ``ts`` as ISO-8601 in UTC,
    the same time for the same event (before: a number in one, ISO in the other); the number
    stays under ``unix_time``."""
    import signal
    import subprocess
    import sys
    from datetime import datetime

    from test_daemon_support import ROOT, events, running

    config = make_config(tmp_path)
    with running(config, [brisque]):
        pass
    logged = events(config)
    argv = [sys.executable, "-m", "pixcamd", "status", "--follow", "--json", "--events", "100"]
    process = subprocess.Popen(
        [*argv, "--config", str(config.source)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        followed = [json.loads(process.stdout.readline()) for _ in logged]
    finally:
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert [e["event"] for e in followed] == [e["event"] for e in logged]
    assert [e["ts"] for e in followed] == [e["ts"] for e in logged]
    for e in followed:
        assert e["ts"].endswith("Z") and isinstance(e["unix_time"], float)
        when = datetime.fromisoformat(e["ts"].replace("Z", "+00:00"))
        assert abs(when.timestamp() - e["unix_time"]) < 1e-5


def test_events_from_several_threads_are_in_one_order_in_log_file_and_ledger(tmp_path):
    """The daemon's threads emit at once (the intake's ``scanned``, the main loop's ``ready``):
    the JSON log file, the ledger `status --follow` reads and the times agree on one order
    (before: a CI run's follow gave ``ready`` before ``scanned``, the log file the reverse)."""
    import contextlib
    import sqlite3
    import threading

    config = make_config(tmp_path)
    config.state_dir.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(config.ledger_path)
    log = EventLog(config.log_file, ledger, io.StringIO())
    start = threading.Barrier(4)

    def emit(who: int) -> None:
        start.wait()
        for i in range(150):
            log.emit("scanned", f"t{who}-{i}.jpg")

    threads = [threading.Thread(target=emit, args=(who,)) for who in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        ledger.close()
    with contextlib.closing(sqlite3.connect(config.ledger_path)) as db:
        in_ledger = db.execute("SELECT path, ts FROM events ORDER BY id").fetchall()
    in_file = [json.loads(line) for line in config.log_file.read_text().splitlines()]
    assert len(in_file) == len(in_ledger) == 600
    assert [e["path"] for e in in_file] == [path for path, _ts in in_ledger]
    times = [ts for _path, ts in in_ledger]
    assert times == sorted(times)


def test_a_decision_from_a_shell_is_in_the_daemon_s_json_log(tmp_path, brisque):
    """`pixcamd ship` and `pixcamd remove`, run from a shell, write their events into the
    daemon's JSON log as well as the ledger (before: the ledger alone), at the time the ledger
    has; a log file logrotate moved away is not made anew by them (it could be a user's the
    daemon cannot write), the ledger keeps the event."""
    import subprocess
    import sys

    from test_daemon_support import ROOT, events, finished, real_photo, running, wait_for

    config = make_config(tmp_path, epsilon=0, epsilon_cap=0, hold_dir=str(tmp_path / "held"))
    from PIL import Image

    with Image.open(real_photo(config.inbox / "a.jpg")) as a:  # b: a mirrored, as good
        a.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(config.inbox / "b.jpg", quality=95)
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["a.jpg", "b.jpg"]), 60, "the photos")

    def pixcamd(*args: str) -> str:
        argv = [sys.executable, "-m", "pixcamd", *args, "--config", str(config.source)]
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    pixcamd("ship", "a.jpg")
    pixcamd("remove", "a.jpg")
    shipped, removed = [e for e in events(config) if e.get("path") == "a.jpg"][-2:]
    assert shipped["event"] == "shipped_unprotected" and shipped["level"] == "warning"
    assert "shipped anyway by your decision (pixcamd ship)" in shipped["message"], shipped
    assert shipped["output"] == "a.jpg" and shipped["decision"]["action"] == "shipped"
    assert removed["event"] == "removed" and removed["decision"]["via"] == "pixcamd remove"
    from pixcamd.daemon.events import iso_time

    kept = json.loads(pixcamd("status", "--json", "--events", "2"))["events"]
    assert [iso_time(e["ts"]) for e in kept] == [shipped["ts"], removed["ts"]]  # one time

    config.log_file.rename(config.log_file.with_name("pixcamd.jsonl.1"))  # logrotate
    pixcamd("ship", "b.jpg")
    assert not config.log_file.exists()
    assert "shipped_unprotected b.jpg" in pixcamd("status", "--events", "1")
    config.log_file.symlink_to("/dev/stdout")  # a container's log: the daemon's stdout there
    answer = pixcamd("remove", "b.jpg")  # here the shell's: no JSON line in its answer
    assert '"event": "removed"' not in answer and "b.jpg" in answer, answer


def test_a_time_from_another_day_carries_its_date(tmp_path):
    """`status` and `status --follow` give an event or a photo from another day its date
    (local time); today's keep the short time (before: 21:53:21 for both, days apart)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from datetime import datetime, timedelta, timezone

    from test_daemon_support import ROOT

    config = make_config(tmp_path)
    config.state_dir.mkdir(parents=True, exist_ok=True)
    now = time.time()
    old = now - 3 * 86400
    ledger = Ledger(config.ledger_path, clock=lambda: old)
    try:
        row = ledger.offer("old.jpg", "0" * 64, 1, 1, "fp").row
        ledger.finish(row.id, "failed", error="not a photo")
        ledger.add_event(old, "warning", "failed", "old.jpg", {"message": "not a photo"})
        ledger.add_event(now, "info", "queued", "new.jpg", {})
    finally:
        ledger.close()
    # local time, here a zone where it is about noon: `now` stays today while status runs
    # (in UTC, a run just before midnight found `now` yesterday's, dated)
    hours = 12 - datetime.fromtimestamp(now, timezone.utc).hour
    zone = timezone(timedelta(hours=hours))
    day = datetime.fromtimestamp(old, zone).strftime("%Y-%m-%d %H:%M:%S")
    today = datetime.fromtimestamp(now, zone).strftime("%H:%M:%S")
    env = {**os.environ, "TZ": f"PXC{-hours:+d}"}  # POSIX: the offset west of UTC
    argv = [sys.executable, "-m", "pixcamd", "status", "--config", str(config.source)]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"  {day} FAILED      old.jpg: not a photo" in done.stdout, done.stdout
    assert f"  {day} failed old.jpg: not a photo" in done.stdout, done.stdout
    assert f"  {today} queued new.jpg" in done.stdout, done.stdout

    process = subprocess.Popen(
        [*argv, "--follow"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        lines = [process.stdout.readline().rstrip("\n") for _ in range(2)]
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    assert lines == [
        f"{day} WARNING failed old.jpg: not a photo",
        f"{today} INFO    queued new.jpg",
    ]


def logging_to_a_pipe(program: str, cwd: Path, talk: bool = False):
    """``program`` run with its stdout a pipe left non-blocking (a container engine's may be),
    nobody reading it yet: (the process, the pipe's read end). ``talk``: its stdin and stderr
    are pipes to this test, as text."""
    import fcntl
    import subprocess
    import sys

    from test_daemon_support import ROOT

    read, write = os.pipe()
    fcntl.fcntl(write, fcntl.F_SETFL, fcntl.fcntl(write, fcntl.F_GETFL) | os.O_NONBLOCK)
    talking = dict(stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True) if talk else {}
    process = subprocess.Popen(
        [sys.executable, "-c", program],
        stdout=write,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        **talking,
    )
    os.close(write)
    return process, read


def said_until(process, word: str) -> list[str]:
    """The child's stderr lines up to the one starting with ``word`` (its cue to the test)."""
    said: list[str] = []
    while not said or not said[-1].startswith(word):
        line = process.stderr.readline()
        assert line, said
        said.append(line.strip())
    return said


def drain(read: int) -> bytes:
    """What the pipe holds now, without waiting for more; the read end blocking again after."""
    import fcntl

    flags = fcntl.fcntl(read, fcntl.F_GETFL)
    fcntl.fcntl(read, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    held = b""
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(read, 1 << 20):
            held += chunk
    fcntl.fcntl(read, fcntl.F_SETFL, flags)
    return held


def test_a_long_json_line_to_a_pipe_on_dev_stdout_is_written_whole(tmp_path):
    """A container's ``log_file = "/dev/stdout"`` is a pipe: one write of a line longer than the
    pipe takes at once (here 200 KB, left non-blocking: 64 KiB of it) was cut there, the rest
    lost, and the next line glued to the half — every byte is written, waiting for the reader."""
    import time

    program = (
        "import io, sys\n"
        "from pathlib import Path\n"
        "from pixcamd.daemon.events import EventLog\n"
        "log = EventLog(Path('/dev/stdout'), None, io.StringIO())\n"
        "log.emit('photo_note', 'a.jpg', 'x' * 200_000)\n"
        "log.emit('stopped', None, 'done')\n"
    )
    process, read = logging_to_a_pipe(program, tmp_path)
    time.sleep(1.0)  # the pipe is full long before: a reader that comes late, as one may
    with os.fdopen(read, "rb") as reader:
        out = reader.read()
    assert process.wait(timeout=60) == 0
    lines = [json.loads(line) for line in out.decode().splitlines()]
    assert [e["event"] for e in lines] == ["photo_note", "stopped"]
    assert lines[0]["message"] == "x" * 200_000


def test_a_log_pipe_no_one_reads_holds_the_daemon_once_not_every_event(tmp_path):
    """``log_file = "/dev/stdout"`` on a non-blocking pipe whose reader stopped reading: the
    first line it cannot take is waited for (STALL, 2 s here), said unwritable on stderr, and
    lost; the lines after it are lost at once, not waited for each (before: 2 s an event, 30 s
    in a real daemon); once the pipe is read again, the next line is written whole and the log
    said back."""
    program = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "import pixcamd.daemon.events as events\n"
        "events.STALL = 2.0\n"
        "log = events.EventLog(Path('/dev/stdout'), None, sys.stderr)\n"
        "log.emit('photo_note', 'a.jpg', 'x' * 100_000)\n"  # fills the pipe, then waits 2 s
        "started = time.monotonic()\n"
        "for i in range(5):\n"
        "    log.emit('queued', f'{i}.jpg', '')\n"
        "print(f'LATER {time.monotonic() - started:.3f}', file=sys.stderr, flush=True)\n"
        "sys.stdin.readline()\n"  # the reader drains the pipe, then says so
        "log.emit('stopped', None, 'done')\n"
    )
    process, read = logging_to_a_pipe(program, tmp_path, talk=True)
    try:
        said = said_until(process, "LATER")
        later = float(said[-1].split()[1])
        # five events on the stalled pipe: at once, not 2 s each (10 s before)
        assert later < 4.0, said
        assert sum("log_unwritable" in line for line in said) == 1, said
        drained = drain(read)
        assert drained.startswith(b'{"')  # what the pipe took of the first line, then lost
        _, err = process.communicate("go\n", timeout=60)
        with os.fdopen(read, "rb") as reader:
            rest = reader.read()
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    last = json.loads(rest.decode().splitlines()[-1])
    assert last["event"] == "stopped"  # written whole once read again
    assert "log_back" in err, err


def test_a_line_a_stalled_log_pipe_took_in_part_is_never_run_into_the_next(tmp_path):
    """A collector reading ``/dev/stdout`` line by line: a line the stalled pipe took only part
    of (the first, waited for; another while stalled, when the reader freed a little room) must
    not run into the line written once the pipe is read again — the end of the cut line comes
    first, so every line the collector reads is whole JSON and the one after it is kept."""
    program = (
        "import sys\n"
        "from pathlib import Path\n"
        "import pixcamd.daemon.events as events\n"
        "events.STALL = 1.0\n"
        "log = events.EventLog(Path('/dev/stdout'), None, sys.stderr)\n"
        "log.emit('photo_note', 'a.jpg', 'x' * 100_000)\n"  # the pipe takes 64 KiB of it
        "print('STALLED', file=sys.stderr, flush=True)\n"
        "sys.stdin.readline()\n"  # the reader took a little: room for part of a line
        "log.emit('photo_note', 'b.jpg', 'y' * 20_000)\n"
        "print('AGAIN', file=sys.stderr, flush=True)\n"
        "sys.stdin.readline()\n"  # the reader drains the pipe and reads on
        "log.emit('stopped', None, 'done')\n"
    )
    process, read = logging_to_a_pipe(program, tmp_path, talk=True)
    try:
        said_until(process, "STALLED")
        stream = os.read(read, 8192)
        process.stdin.write("go\n")
        process.stdin.flush()
        said_until(process, "AGAIN")
        stream += drain(read)
        _, err = process.communicate("go\n", timeout=60)
        with os.fdopen(read, "rb") as reader:
            stream += reader.read()
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert stream.endswith(b"\n")
    lines = [json.loads(line) for line in stream.decode().splitlines()]  # each one whole
    assert [line["event"] for line in lines] == ["photo_note", "stopped"]  # b.jpg's: lost
    assert lines[0]["message"] == "x" * 100_000


def test_a_retry_asked_inside_the_daemon_is_said_before_its_worker_starts_the_photo(tmp_path):
    """The page's retry (``retry.apply`` with the daemon's log): the photos are queued, and the
    worker may take one at once — its ``started`` came before the ``retry`` in the JSON log and
    `status --follow` when the worker looked at the queue between the commit and the retry's
    events. Here the worker takes the photo right after the commit, as early as it can."""
    import threading

    from pixcamd.daemon import retry

    config = make_config(tmp_path)
    config.state_dir.mkdir(parents=True, exist_ok=True)
    (config.inbox / "a.jpg").write_bytes(b"a photo")
    taken: list = []

    class Ledger_(Ledger):
        def requeue_many(self, *args, **kwargs):
            super().requeue_many(*args, **kwargs)  # committed: the daemon's worker can see it
            worker = threading.Thread(target=work)
            worker.start()
            worker.join(2)  # it takes the photo now, or waits for the retry's events
            taken.append(worker)

    def work() -> None:
        row = worker_ledger.claim_next()
        log.emit("started", row.path, "attempt 1")

    ledger = Ledger_(config.ledger_path)
    worker_ledger = Ledger(config.ledger_path)  # the worker's own connection
    log = EventLog(config.log_file, worker_ledger, io.StringIO())
    try:
        ledger.offer("a.jpg", "h1", 7, 1, "fp")
        row = ledger.claim_next()
        ledger.finish(row.id, "failed", error="broken")
        plan = retry.plan(config, ledger, rows=[ledger.get("a.jpg")])
        retry.apply(ledger, plan.queue, via="the web page", log=log)
        (worker,) = taken
        worker.join()
    finally:
        ledger.close()
        worker_ledger.close()
    in_file = [e["event"] for e in map(json.loads, config.log_file.read_text().splitlines())]
    assert in_file == ["retry", "started"], in_file
    in_ledger = [e["event"] for e in gather(config, events=10)["events"]]
    assert in_ledger[-2:] == ["retry", "started"], in_ledger


def test_the_follows_reader_watch_ends_with_the_follow(monkeypatch):
    """`status --follow | less`, stopped by Ctrl-C with its reader still there: the thread
    watching the pipe for its reader waited in poll() for ever after the follow had ended."""
    import os
    import sys
    import threading

    from pixcamd.commands.daemon import _stop_when_reader_gone

    read, write = os.pipe()
    try:
        with os.fdopen(write, "w", closefd=False) as out:
            monkeypatch.setattr(sys, "stdout", out)
            stop = threading.Event()
            gone = _stop_when_reader_gone(stop)
            stop.set()  # Ctrl-C: the follow returns, the reader still reading
            for thread in threading.enumerate():
                if thread.name == "pixcamd-reader":
                    thread.join(5)
                    assert not thread.is_alive()
            assert not gone.is_set()
    finally:
        os.close(read)
        os.close(write)
