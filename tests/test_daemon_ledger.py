"""The ledger: what is redone and what is not, the queue, and its survival across restarts."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import threading
import time

import pytest
from test_daemon_support import no_leaked_threads  # noqa: F401

from pixcamd.daemon.ledger import Ledger
from pixcamd.daemon.ledger_file import read_only
from pixcamd.daemon.ledger_schema import SCHEMA_VERSION
from pixcamd.daemon.publication import recover_interrupted
from pixcamd.errors import PixcamdError

FP = "s1-aaaa"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def ledger(tmp_path):
    db = Ledger(tmp_path / "ledger.sqlite3", clock=Clock())
    yield db
    db.close()


def finish_done(ledger, path):
    row = ledger.claim_next()
    assert row.path == path
    return ledger.finish(row.id, "done", output=path)


def test_new_unchanged_changed(ledger):
    assert ledger.offer("a.jpg", "h1", 10, 1, FP).action == "queued"
    assert ledger.offer("a.jpg", "h1", 10, 1, FP).action == "unchanged"  # re-sync, touch
    finish_done(ledger, "a.jpg")
    offer = ledger.offer("a.jpg", "h1", 10, 5, FP)  # same content, new mtime: not redone
    assert offer.action == "unchanged" and offer.row.state == "done" and offer.row.mtime_ns == 5
    offer = ledger.offer("a.jpg", "h2", 11, 6, FP)  # changed content: redone
    assert offer.action == "requeued" and offer.row.state == "queued"
    assert offer.why == "changed content"  # what the daemon's log says
    assert offer.row.output == "a.jpg"  # the new copy replaces the old one


def test_same_content_elsewhere_is_a_duplicate_not_redone(ledger):
    ledger.offer("a.jpg", "h1", 10, 1, FP)
    finish_done(ledger, "a.jpg")
    offer = ledger.offer("renamed/a.jpg", "h1", 10, 1, FP)  # a rename or a second copy
    assert offer.action == "duplicate"
    assert offer.row.state == "done" and offer.row.duplicate_of == "a.jpg"
    assert offer.row.output is None
    # a copy of the copy still points at the original
    assert ledger.offer("third.jpg", "h1", 10, 1, FP).row.duplicate_of == "a.jpg"


def test_unprotected_and_failed_are_retried_only_with_new_settings(ledger):
    ledger.offer("a.jpg", "h1", 10, 1, FP)
    row = ledger.claim_next()
    ledger.finish(row.id, "unprotected", error="not protected")
    assert ledger.offer("a.jpg", "h1", 10, 1, FP).action == "unchanged"
    offer = ledger.offer("a.jpg", "h1", 10, 1, "s1-bbbb")  # e.g. KonCept512 installed, new cap
    assert offer.action == "requeued" and offer.row.attempts == 0 and offer.row.error is None
    assert offer.why == "settings changed"  # not "changed content": the bytes are the same


def test_a_row_being_processed_records_the_new_content(ledger):
    ledger.offer("a.jpg", "h1", 10, 1, FP)
    ledger.claim_next()
    offer = ledger.offer("a.jpg", "h2", 12, 2, FP)
    assert offer.action == "busy" and offer.row.sha256 == "h2" and offer.row.state == "processing"


def test_claim_order_attempts_backoff_and_requeue(ledger):
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        ledger.clock.now += 1
        ledger.offer(name, "h" + name, 1, 1, FP)
    a = ledger.claim_next()
    assert (a.path, a.state, a.attempts) == ("a.jpg", "processing", 1)
    ledger.retry(a.id, "OSError: No space left on device", delay=30)
    assert ledger.claim_next().path == "b.jpg"
    c = ledger.claim_next()
    assert c.path == "c.jpg"
    ledger.requeue(c.id)  # abandoned at shutdown: the attempt does not count
    c = ledger.claim_next()
    assert (c.path, c.attempts) == ("c.jpg", 1)
    assert ledger.claim_next() is None  # a.jpg waits for its backoff
    assert ledger.next_due() == pytest.approx(ledger.clock.now + 30)
    # what a start wakes the worker for: each retry waiting past now, once
    assert ledger.wake_times(ledger.clock.now) == [pytest.approx(ledger.clock.now + 30)]
    assert ledger.wake_times(ledger.clock.now + 30) == []
    ledger.clock.now += 31
    a = ledger.claim_next()
    assert (a.path, a.attempts, a.error) == ("a.jpg", 2, "OSError: No space left on device")


def test_a_clock_set_back_holds_neither_an_abandoned_photo_nor_a_retry_longer(ledger):
    ledger.offer("a.jpg", "ha", 1, 1, FP)
    ledger.offer("b.jpg", "hb", 1, 1, FP)
    a, b = ledger.claim_next(), ledger.claim_next()
    ledger.requeue(a.id)  # abandoned at shutdown ...
    ledger.retry(b.id, "OSError: No space left on device", delay=30)
    ledger.clock.now -= 600  # ... and the clock set back ten minutes before the next start
    assert ledger.claim_next().path == "a.jpg"  # due at once, as it was
    assert ledger.claim_next() is None  # b.jpg: 630 s left by the clock now
    assert ledger.shift_waits(-600) == 1  # the running daemon saw the step
    assert ledger.next_due() == pytest.approx(ledger.clock.now + 30)  # the wait it had left
    ledger.clock.now += 31
    assert ledger.claim_next().path == "b.jpg"


def test_the_queue_survives_a_restart(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    first = Ledger(path)
    first.offer("a.jpg", "h1", 1, 1, FP)
    first.offer("b.jpg", "h2", 1, 1, FP)
    first.claim_next()  # a.jpg in processing when the process dies
    first.close()
    again = Ledger(path)
    try:
        assert [r.path for r in again.processing()] == ["a.jpg"]
        assert [r.path for r in again.rows("queued")] == ["b.jpg"]
        assert again.counts() == {
            "queued": 1,
            "processing": 1,
            "done": 0,
            "unprotected": 0,
            "failed": 0,
        }
        mode = again._db.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
    finally:
        again.close()


def test_status_reads_while_the_daemon_writes(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    try:
        ledger.offer("a.jpg", "h1", 1, 1, FP)
        reader = read_only(tmp_path / "ledger.sqlite3")
        stop = threading.Event()

        def writer():
            i = 0
            while not stop.is_set():
                i += 1
                ledger.offer(f"p{i}.jpg", f"x{i}", 1, 1, FP)

        thread = threading.Thread(target=writer)
        thread.start()
        counts: list[int] = []
        try:  # read on while the writer commits: until several of its commits were seen
            deadline = time.monotonic() + 30
            while len(set(counts)) < 5 and time.monotonic() < deadline:
                counts.append(reader.execute("SELECT count(*) FROM photos").fetchone()[0])
        finally:
            stop.set()
            thread.join(10)
        assert len(set(counts)) >= 5, "the reader never saw the writer's commits"
        assert counts == sorted(counts) and counts[0] >= 1
        with pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only"):
            reader.execute("DELETE FROM photos")
        reader.close()
    finally:
        ledger.close()


def test_output_names_owned_by_another_source(ledger):
    ledger.offer("IMG_1.png", "h1", 1, 1, FP)
    row = ledger.claim_next()
    ledger.finish(row.id, "done", output="IMG_1.jpg")
    assert ledger.output_owner("IMG_1.jpg", "IMG_1.JPG") == "IMG_1.png"
    assert ledger.output_owner("IMG_1.jpg", "IMG_1.png") is None
    assert ledger.output_owner("img_1.JPG", "img_1.JPG") == "IMG_1.png"  # one name to a Mac


def test_a_photo_killed_mid_way_every_time_fails_after_its_attempts(ledger, tmp_path):
    # what each restart after a SIGKILL (or the OOM killer) mid-photo finds in the ledger
    ledger.offer("huge.jpg", "h1", 10, 1, FP)
    said = []
    for _ in range(3):
        assert ledger.claim_next().path == "huge.jpg"  # the worker takes it ... and is killed
        said += [
            (event, message)
            for _row, event, message, _ in recover_interrupted(ledger, tmp_path, max_attempts=3)
        ]
    assert [event for event, _ in said] == ["recovered", "recovered", "failed"]
    row = ledger.get("huge.jpg")
    assert row.state == "failed" and row.attempts == 3
    assert row.error.startswith("interrupted 3 times") and "lower `max_pixels`" in row.error
    assert ledger.claim_next() is None  # not tried a fourth time


def test_a_copy_linked_into_place_before_a_crash_is_found_published_once(ledger, tmp_path):
    # killed after the hard link took the copy's name, before the staged name was unlinked
    ledger.offer("a.jpg", "h1", 10, 1, FP)
    row = ledger.claim_next()
    outbox, staged = tmp_path / "out", tmp_path / "stage-1-1.jpg"
    outbox.mkdir()
    staged.write_bytes(b"the protected copy")
    digest = hashlib.sha256(b"the protected copy").hexdigest()
    ledger.prepare_commit(
        row.id, str(staged), "a.jpg", digest, {"state": "done", "output": "a.jpg"}
    )
    os.link(staged, outbox / "a.jpg")
    said = recover_interrupted(ledger, outbox, max_attempts=3)
    assert [(event, message) for _row, event, message, _ in said] == [
        ("recovered", "was already published → a.jpg")
    ]
    assert sorted(p.name for p in outbox.iterdir()) == ["a.jpg"] and not staged.exists()
    assert (ledger.get("a.jpg").state, ledger.get("a.jpg").output) == ("done", "a.jpg")


def test_status_reads_a_ledger_a_daemon_of_before_the_added_columns_still_runs(tmp_path):
    """Right after an upgrade the old daemon may still run: `status` opens its ledger read-only,
    unmigrated, and must read rows without the columns added since (budget, decision)."""
    from test_daemon_support import make_config

    from pixcamd.daemon.status import gather
    from pixcamd.daemon.status_text import render

    config = make_config(tmp_path)
    config.state_dir.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(config.ledger_path)
    row = ledger.offer("b.jpg", "b", 1, 1, FP).row
    ledger.finish(row.id, "unprotected", report={"worst": None}, verdict="unprotected", error="x")
    ledger.close()
    db = sqlite3.connect(config.ledger_path)
    db.execute("ALTER TABLE photos DROP COLUMN budget")
    db.execute("ALTER TABLE photos DROP COLUMN decision")
    db.commit()
    db.close()
    shown = render(gather(config))
    assert "b.jpg" in shown and "unprotected" in shown, shown


def test_a_ledger_made_before_the_added_columns_keeps_its_rows(tmp_path):
    # a daemon upgraded in place: the first release's photos table, one photo published
    path = tmp_path / "ledger.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE photos (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, sha256 TEXT "
        "NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, fingerprint TEXT, model "
        "TEXT, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, not_before REAL NOT "
        "NULL DEFAULT 0, degrade INTEGER NOT NULL DEFAULT 0, detected_at REAL, queued_at REAL, "
        "started_at REAL, finished_at REAL, verdict TEXT, scores TEXT, psnr REAL, seconds REAL, "
        "timings TEXT, report TEXT, output TEXT, held TEXT, duplicate_of TEXT, staged TEXT, "
        "staged_output TEXT, staged_sha256 TEXT, staged_fields TEXT, error TEXT);"
        "INSERT INTO photos (path, sha256, size, mtime_ns, fingerprint, state, output, scores) "
        "VALUES ('IMG_1.png', 'h1', 1, 1, 's1-aaaa', 'done', 'IMG_1.jpg', '{\"center\": 70}');"
    )
    old.commit()
    old.close()
    ledger = Ledger(path, clock=Clock())
    try:
        row = ledger.get("IMG_1.png")
        assert (row.state, row.output, row.scores, row.budget) == (
            "done",
            "IMG_1.jpg",
            {"center": 70},
            None,
        )
        assert ledger.offer("IMG_1.png", "h1", 1, 1, FP).action == "unchanged"
        ledger.requeue_many([row.id], budget={"epsilon": 9})
        assert ledger.get("IMG_1.png").budget == {"epsilon": 9}
        assert ledger.output_owner("img_1.jpg", "other.png") == "IMG_1.png"
    finally:
        ledger.close()


def test_a_record_a_newer_pixcamd_wrote_is_refused_and_a_column_it_added_is_read_past(tmp_path):
    """A downgrade: a ledger of a higher version is refused in words before anything is written
    (its version never lowered); a column a later pixcamd added does not stop the rows being
    read where the version allows it."""
    path = tmp_path / "ledger.sqlite3"
    ledger = Ledger(path)
    ledger.offer("a.jpg", "h1", 10, 1, FP)
    ledger.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("ALTER TABLE photos ADD COLUMN future TEXT")
        db.commit()
    ledger = Ledger(path)  # the same version with a column more: read as before
    assert ledger.get("a.jpg").state == "queued" and ledger.claim_next().path == "a.jpg"
    ledger.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
        db.commit()
    with pytest.raises(PixcamdError, match="written by a newer pixcamd") as refused:
        Ledger(path)
    assert f"ledger version {SCHEMA_VERSION + 1}" in str(refused.value)
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1


def test_a_publication_the_outbox_refused_leaves_no_commit_for_a_recovery_to_finish(
    ledger, tmp_path
):
    """The staged copy of a refused publication is removed at once — and its commit record
    before it: a crash right after must not take the missing staged file for a finished move
    and record a copy that was never shipped."""
    from pixcamd.daemon.publication import commit_publication

    outbox = tmp_path / "outbox"
    outbox.mkdir()
    (outbox / "sub").write_bytes(b"")  # where the copy's folder would go
    ledger.offer("sub/a.jpg", "h1", 10, 1, FP)
    row = ledger.claim_next()
    staged = tmp_path / "stage-1.jpg"
    with pytest.raises(OSError):
        commit_publication(ledger, row.id, b"copy", staged, outbox, "sub/a.jpg", "done", {})
    assert not staged.exists()
    assert ledger.by_id(row.id).staged is None  # no commit on record
    said = recover_interrupted(ledger, outbox, max_attempts=3)  # as after a crash just then
    assert ledger.by_id(row.id).state == "queued", said


def test_a_rename_takes_its_record_along_only_from_a_record_of_its_content(ledger):
    """follow_rename moves the source's record to the new path — never the record of another
    content now under the source's name, and never over a path that had a copy of its own
    (a photo moved over another's name: that one's copy stays owned)."""
    ledger.offer("a.jpg", "S", 10, 1, FP)
    finish_done(ledger, "a.jpg")
    gone = {"a.jpg"}.__contains__
    moved, old = ledger.follow_rename(ledger.offer("b.jpg", "S", 10, 1, FP).row.id, "a.jpg", gone)
    assert old == "a.jpg"
    assert (moved.path, moved.output, moved.duplicate_of) == ("b.jpg", "a.jpg", None)
    assert ledger.get("a.jpg") is None
    # c.jpg done with other content, then b.jpg moved over it: c keeps its own copy's record
    ledger.offer("c.jpg", "T", 10, 1, FP)
    finish_done(ledger, "c.jpg")
    over = ledger.offer("c.jpg", "S", 10, 2, FP).row  # c now holds b's content
    kept, old = ledger.follow_rename(over.id, "b.jpg", {"b.jpg"}.__contains__)
    assert old is None
    assert (kept.path, kept.output, kept.duplicate_of) == ("c.jpg", "c.jpg", "b.jpg")
    assert ledger.get("b.jpg").output == "a.jpg"  # b's record is not taken either
    # the source's name now holds other content: its record is not the renamed photo's
    ledger.offer("d.jpg", "U", 10, 1, FP)
    finish_done(ledger, "d.jpg")
    other = ledger.offer("e.jpg", "S", 10, 2, FP).row  # c.jpg's size and time: c renamed
    assert ledger.follow_rename(other.id, "d.jpg", {"d.jpg"}.__contains__) is None
    # none gone: a copy of b.jpg (still there), or protected anew
    assert ledger.follow_rename(other.id, "b.jpg", lambda path: False) is None
    # … unless a done record of this content lies at a path gone from the inbox: the copy
    # that was renamed, whose record (and copy) the new path takes — still a duplicate of b.jpg,
    # whose record is of this content too
    taken, old = ledger.follow_rename(other.id, "d.jpg", gone=lambda path: path == "c.jpg")
    assert old == "c.jpg"
    assert (taken.path, taken.output, taken.duplicate_of) == ("e.jpg", "c.jpg", "b.jpg")
    assert ledger.get("c.jpg") is None
    assert ledger.get("d.jpg").sha256 == "U" and ledger.get("d.jpg").output == "d.jpg"


def test_a_rename_follows_another_path_s_record_only_where_it_owns_a_copy(ledger):
    """Its original edited since, a renamed copy takes the record of a gone path of its content
    only where that record owns a copy — one that wrote none (an older daemon's duplicate) is
    not a copy to follow — and never over a new path with a copy of its own: protected anew."""
    ledger.offer("P.jpg", "S", 10, 1, FP)
    finish_done(ledger, "P.jpg")
    ledger.offer("X.jpg", "S", 10, 1, FP)  # a duplicate that wrote nothing (an older daemon)
    ledger.offer("P.jpg", "S2", 10, 2, FP)  # P edited, then redone
    finish_done(ledger, "P.jpg")
    renamed = ledger.offer("E.jpg", "S", 10, 1, FP).row
    assert ledger.follow_rename(renamed.id, "P.jpg", gone=lambda path: path == "X.jpg") is None
    # X owning a copy, moved over F, a photo with a copy of its own: F is protected anew
    ledger.offer("Y.jpg", "S", 10, 1, FP)
    row = ledger.queue_copy(ledger.get("Y.jpg").id)
    ledger.finish(ledger.claim(row.id).id, "done", output="Y.jpg", duplicate_of="P.jpg")
    ledger.offer("F.jpg", "T", 10, 1, FP)
    finish_done(ledger, "F.jpg")
    over = ledger.offer("F.jpg", "S", 10, 3, FP).row
    assert ledger.follow_rename(over.id, "P.jpg", gone=lambda path: path == "Y.jpg") is None
    assert ledger.get("Y.jpg").output == "Y.jpg"  # untouched


def test_the_stand_in_for_json_extract_reads_what_sqlite_s_own_reads():
    """Where SQLite was built without JSON1, ``retry``'s lean rows read a report's models and
    platforms with ``json_member``: the same answers as SQLite's ``json_extract``."""
    import json

    from pixcamd.daemon.ledger_lists import json_member

    db = sqlite3.connect(":memory:")
    reports = [
        json.dumps({"models": [{"fingerprint": "b@1"}], "platforms": [{"name": "task"}]}),
        json.dumps({"models": [], "platforms": None}),
        json.dumps({"other": 1}),
        None,
    ]
    for text in reports:
        for path in ("$.models", "$.platforms"):
            (theirs,) = db.execute("SELECT json_extract(?, ?)", (text, path)).fetchone()
            ours = json_member(text, path)
            assert (json.loads(ours) if ours else None) == (
                json.loads(theirs) if theirs else None
            ), (text, path)
    db.close()


def test_a_copy_or_a_rename_is_recorded_in_one_step_as_a_reader_sees_it(tmp_path):
    """The daemon tells a copy from a rename by looking whether the original left the inbox;
    meanwhile a reader (`pixcamd status`, the page, a test's poll) saw the new path recorded
    done with no copy of its own — the offer was written first, the copy queued or the rename
    followed in a second write — and a kill between the two left it so for good."""
    import io

    from test_daemon_support import ledger_rows, make_config

    from pixcamd.daemon.events import EventLog
    from pixcamd.daemon.intake import Intake

    config = make_config(tmp_path)
    config.state_dir.mkdir(parents=True)
    photo = config.inbox / "P.jpg"
    photo.write_bytes(b"the bytes of a photo")
    digest = hashlib.sha256(photo.read_bytes()).hexdigest()
    ledger = Ledger(config.ledger_path)
    seen: dict[str, list] = {}
    try:
        ledger.offer("P.jpg", digest, 20, photo.stat().st_mtime_ns, FP)
        ledger.finish(ledger.claim_next().id, "done", output="P.jpg", verdict="protected")
        log = EventLog(config.log_file, ledger, io.StringIO())
        intake = Intake(config, ledger, log, None, None, threading.Event(), lambda: FP, *2 * [None])
        intake.wake = lambda: None

        def gone(rel: str) -> bool:  # asked while the new path is placed: what a reader sees
            rows = ledger_rows(config)
            for path in ("X.jpg", "R.jpg"):
                seen.setdefault(path, []).append(rows.get(path))
            return not os.path.lexists(config.inbox / rel)

        intake._gone = gone
        (config.inbox / "X.jpg").write_bytes(photo.read_bytes())  # a copy
        intake._offer("X.jpg", digest, (config.inbox / "X.jpg").stat())
        os.rename(photo, config.inbox / "R.jpg")  # a rename
        intake._offer("R.jpg", digest, (config.inbox / "R.jpg").stat())
    finally:
        ledger.close()
    assert seen["X.jpg"] and seen["R.jpg"]
    assert all(row is None or row["state"] == "queued" for row in seen["X.jpg"]), seen
    assert seen["R.jpg"] == [None] * len(seen["R.jpg"]), seen
    rows = ledger_rows(config)
    assert rows["X.jpg"]["state"] == "queued" and rows["X.jpg"]["duplicate_of"] == "R.jpg"
    assert rows["R.jpg"]["output"] == "P.jpg" and "P.jpg" not in rows
