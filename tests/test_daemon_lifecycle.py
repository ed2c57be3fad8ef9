"""The daemon as a self-hoster lives with it: an outbox that refuses a copy or goes away, a
restart after a kill mid-publication, decisions that a settings change must not undo, paths
typed where one stands, a second config, and `status` after a crash. The real daemon loop in
a thread, real files, the real CLI."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

import pytest
from test_daemon_support import (
    ROOT,
    crashed,
    events,
    finished,
    ledger_rows,
    make_config,
    no_leaked_threads,  # noqa: F401
    noise_photo,
    real_photo,
    running,
    sha,
    unprivileged,
    wait_for,
)
from web_support import cli

from pixcamd.cli import main
from pixcamd.daemon.fs import beside_outbox
from pixcamd.daemon.ledger import Ledger
from pixcamd.daemon.locks import lock_folder
from pixcamd.errors import PixcamdError


def ledger_messages(config) -> list[tuple[str, str]]:
    """(event, message) of every event the ledger kept, oldest first."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(config.ledger_path)) as db:
        rows = db.execute("SELECT event, data FROM events ORDER BY id").fetchall()
    return [(event, json.loads(data or "{}").get("message", "")) for event, data in rows]


def ledger_events(config) -> list[str]:
    return [event for event, _ in ledger_messages(config)]


def said(config, kind: str) -> list[str]:
    return [e.get("message", "") for e in events(config) if e.get("event") == kind]


def test_a_second_name_s_copy_the_outbox_refuses_is_retried_and_the_daemon_lives(tmp_path, brisque):
    config = make_config(tmp_path, retry_backoff=0.2, max_attempts=50)
    noise_photo(config.inbox / "a.jpg", 1)
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["a.jpg"]), 60, "the first photo")
        (config.outbox / "album").write_bytes(b"")  # a file where the copy's folder goes
        (config.inbox / "album").mkdir()
        shutil.copy(config.inbox / "a.jpg", config.inbox / "album" / "b.jpg")
        wait_for(
            lambda: any(
                "album/b.jpg" in e.get("path", "") and e["event"] == "retried"
                for e in events(config)
            ),
            60,
            "a retry of the second name",
        )
        (config.outbox / "album").unlink()
        wait_for(lambda: finished(config, ["album/b.jpg"]), 60, "the second name's copy")
    assert (config.outbox / "album" / "b.jpg").read_bytes() == (
        config.outbox / "a.jpg"
    ).read_bytes()
    assert not said(config, "failed")


def test_a_restart_after_a_kill_mid_publication_never_fails_on_the_outbox(tmp_path, brisque):
    """The staged copy cannot be renamed into place at start-up (a file where its folder
    goes): the photo is queued again and the daemon starts, instead of exiting 2 for ever."""
    config = make_config(tmp_path)
    noise_photo(config.inbox / "album" / "a.jpg", 1)
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["album/a.jpg"]), 60, "the photo")
    ledger = Ledger(config.ledger_path)
    row = ledger.get("album/a.jpg")
    staged = config.state_dir / "tmp" / "stage-killed.jpg"
    staged.parent.mkdir(exist_ok=True)
    staged.write_bytes((config.outbox / "album" / "a.jpg").read_bytes())
    digest = hashlib.sha256(staged.read_bytes()).hexdigest()
    ledger.claim(row.id)
    ledger.prepare_commit(row.id, str(staged), "album/a.jpg", digest, {"state": "done"})
    ledger.close()
    shutil.rmtree(config.outbox / "album")
    (config.outbox / "album").write_bytes(b"")
    with running(config, [brisque]):
        wait_for(lambda: said(config, "recovered"), 30, "the recovery")
        assert "could not finish its interrupted publication" in said(config, "recovered")[0]
        (config.outbox / "album").unlink()
        wait_for(lambda: finished(config, ["album/a.jpg"]), 60, "the photo again")
    assert (config.outbox / "album" / "a.jpg").is_file()


def test_a_copy_taken_back_is_not_published_again_by_a_settings_change(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    try:
        ledger.offer("a.jpg", "h1", 10, 1, "fp-1")
        row = ledger.claim_next()
        ledger.finish(row.id, "unprotected", output="a.jpg", error="not protected")
        taken = ledger.take(row.id, ("unprotected",), {"state": "unprotected"})
        ledger.release(taken.id, "unprotected", output=None, decision={"action": "removed"})
        offer = ledger.offer("a.jpg", "h1", 10, 1, "fp-2")  # e.g. another epsilon, reloaded
        assert offer.action == "unchanged" and offer.row.state == "unprotected"
        assert offer.row.decision == {"action": "removed"}
        ledger.offer("b.jpg", "h2", 10, 1, "fp-1")  # without a decision: tried again
        row = ledger.claim_next()
        ledger.finish(row.id, "unprotected", error="not protected")
        assert ledger.offer("b.jpg", "h2", 10, 1, "fp-2").action == "requeued"
    finally:
        ledger.close()


def test_an_outbox_that_went_away_is_not_made_anew_and_its_photos_wait(tmp_path, brisque):
    # two attempts, retried at once: a photo that spent its attempts on the missing outbox
    # would have failed long before it is back
    config = make_config(tmp_path, retry_backoff=0.1, max_attempts=2)
    with running(config, [brisque]):
        config.outbox.rename(tmp_path / "outbox-moved")  # a mount that went, a move
        noise_photo(config.inbox / "a.jpg", 1)
        wait_for(lambda: said(config, "outbox_unavailable"), 60, "the outbox's absence said")
        wait_for(lambda: "a.jpg" in ledger_rows(config), 60, "the photo queued")
        time.sleep(2.0)  # what the worker would have done meanwhile, it would have done by now
        row = ledger_rows(config)["a.jpg"]
        assert (row["state"], row["attempts"]) == ("queued", 0), row
        assert not config.outbox.exists()
        (gone,) = said(config, "outbox_unavailable")
        assert "the outbox is gone" in gone and "1 photos stay queued" in gone, gone
        (tmp_path / "outbox-moved").rename(config.outbox)
        wait_for(lambda: finished(config, ["a.jpg"]), 60, "the photo once it is back")
    assert ledger_rows(config)["a.jpg"]["state"] == "done"
    assert (config.outbox / "a.jpg").is_file()
    assert said(config, "outbox_back") and not said(config, "retried")


def test_a_file_in_the_outbox_no_photo_wrote_is_never_replaced(tmp_path, brisque):
    config = make_config(tmp_path)
    config.outbox.mkdir(parents=True, exist_ok=True)
    (config.outbox / "a.jpg").write_bytes(b"the user's own file")
    noise_photo(config.inbox / "a.jpg", 1)
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["a.jpg"]), 60, "the photo")
    assert (config.outbox / "a.jpg").read_bytes() == b"the user's own file"
    row = ledger_rows(config)["a.jpg"]
    assert (row["state"], row["output"]) == ("done", "a.jpg.jpg"), row
    assert (config.outbox / "a.jpg.jpg").read_bytes()[:2] == b"\xff\xd8"
    (note,) = [m for m in said(config, "photo_note") if "no photo's record wrote" in m]
    assert "a.jpg in the outbox" in note and "this copy is a.jpg.jpg" in note, note


def test_a_file_written_into_the_outbox_as_the_copy_is_recorded_is_not_replaced(
    tmp_path, brisque, monkeypatch
):
    """Another program writes the very name between the name's choice and the rename."""
    prepare_commit = Ledger.prepare_commit

    def another_writer_meanwhile(self, row_id, staged, output, sha256, fields):
        prepare_commit(self, row_id, staged, output, sha256, fields)
        if output == "a.jpg":
            (config.outbox / "a.jpg").write_bytes(b"another program's file")

    monkeypatch.setattr(Ledger, "prepare_commit", another_writer_meanwhile)
    config = make_config(tmp_path)
    noise_photo(config.inbox / "a.jpg", 1)
    with running(config, [brisque]):
        wait_for(lambda: ledger_rows(config).get("a.jpg", {}).get("state") == "done", 60, "it")
    assert (config.outbox / "a.jpg").read_bytes() == b"another program's file"
    row = ledger_rows(config)["a.jpg"]
    assert (row["state"], row["output"]) == ("done", "a.jpg.jpg"), row
    assert (config.outbox / "a.jpg.jpg").read_bytes()[:2] == b"\xff\xd8"


def test_a_copy_renamed_before_a_failed_fsync_is_published_not_doubled(
    tmp_path, brisque, monkeypatch
):
    import pixcamd.daemon.publication as publication

    def rename_then_fail(staged, dest, replace=False):  # the rename is done; its fsync fails
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, dest)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(publication, "publish", rename_then_fail)
    config = make_config(tmp_path)
    noise_photo(config.inbox / "a.jpg", 1)
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["a.jpg"]), 60, "the photo")
    row = ledger_rows(config)["a.jpg"]
    assert (row["state"], row["output"]) == ("done", "a.jpg"), row
    assert sorted(p.name for p in config.outbox.iterdir()) == ["a.jpg"]
    assert not said(config, "retried") and not said(config, "photo_note")


def test_a_log_file_that_cannot_be_written_loses_lines_not_work(tmp_path, brisque):
    logs = tmp_path / "logs"
    config = make_config(tmp_path, log_file=str(logs / "pixcamd.jsonl"))
    with running(config, [brisque]) as daemon:
        shutil.rmtree(logs)
        logs.write_text("a file where the log's folder was")  # every append now fails
        noise_photo(config.inbox / "a.jpg", 1)
        wait_for(lambda: finished(config, ["a.jpg"]), 60, "the photo")
        logs.unlink()
        logs.mkdir()
        noise_photo(config.inbox / "b.jpg", 2)
        wait_for(lambda: finished(config, ["b.jpg"]), 60, "the next photo")
        assert daemon.outcome == {}  # still running
    rows = ledger_rows(config)
    done = [(rows[n]["state"], rows[n]["attempts"]) for n in ("a.jpg", "b.jpg")]
    assert done == [("done", 1), ("done", 1)]
    assert sorted(p.name for p in config.outbox.iterdir()) == ["a.jpg", "b.jpg"]
    recorded = ledger_events(config)  # what the ledger kept while the log file could not
    assert "retried" not in recorded  # a's copy was published once, not undone and redone
    assert recorded.count("protected") == 2 and "log_back" in recorded
    (lost,) = [m for e, m in ledger_messages(config) if e == "log_unwritable"]
    assert f"the log file {logs / 'pixcamd.jsonl'} cannot be written (Not a directory)" in lost
    logged = [json.loads(x) for x in (logs / "pixcamd.jsonl").read_text().splitlines()]
    assert any(e.get("path") == "b.jpg" and e["event"] == "protected" for e in logged)


def test_a_ledger_that_refuses_writes_for_a_while_stops_nothing(tmp_path, brisque, monkeypatch):
    """A full disk under the state dir: the heartbeat, a settled photo's row and a finished
    photo's record cannot be written for a while; once they can, every photo is done once."""
    import sqlite3

    import pixcamd.job as job

    full = threading.Event()
    tx, protect_photo = Ledger._tx, job.protect_photo

    def refusing(self):
        if full.is_set():
            raise sqlite3.OperationalError("database or disk is full")
        return tx(self)

    def fill_the_disk_meanwhile(data, rel, *args, **kwargs):  # the record after it fails
        outcome = protect_photo(data, rel, *args, **kwargs)
        if rel == "b.jpg" and not full.is_set():
            full.set()
            threading.Timer(2.0, full.clear).start()
        return outcome

    monkeypatch.setattr(Ledger, "_tx", refusing)
    monkeypatch.setattr(job, "protect_photo", fill_the_disk_meanwhile)
    import pixcamd.daemon.publication as publication

    publish = publication.publish

    def fill_the_disk_after(staged, dest, replace=False):  # c renamed, its record refused
        publish(staged, dest, replace)
        if dest.name == "c.jpg":
            full.set()
            threading.Timer(2.0, full.clear).start()

    monkeypatch.setattr(publication, "publish", fill_the_disk_after)
    config = make_config(tmp_path)
    with running(config, [brisque]) as daemon:
        full.set()
        noise_photo(config.inbox / "a.jpg", 1)  # settles while nothing can be recorded
        time.sleep(2.0)
        full.clear()
        wait_for(lambda: finished(config, ["a.jpg"]), 60, "the photo")
        noise_photo(config.inbox / "b.jpg", 2)
        wait_for(lambda: finished(config, ["b.jpg"]), 60, "the photo whose record failed")
        noise_photo(config.inbox / "c.jpg", 3)
        wait_for(lambda: finished(config, ["c.jpg"]), 60, "the photo published, then refused")
        assert daemon.outcome == {}  # still running
    rows = ledger_rows(config)
    assert rows["a.jpg"]["state"] == rows["b.jpg"]["state"] == rows["c.jpg"]["state"] == "done"
    # b's record failed after its protection: queued again, its pixels reused, published once
    assert ledger_events(config).count("reused") == 1
    # c's failed after its rename: found published, not published again under a second name
    assert sorted(p.name for p in config.outbox.iterdir()) == ["a.jpg", "b.jpg", "c.jpg"]
    recovered = [m for e, m in ledger_messages(config) if e == "recovered"]
    assert recovered == ["was already published → c.jpg"]
    # a, settled while the ledger refused its row: offered again at each poll, said once
    assert [e.get("path") for e in events(config) if e["event"] == "settled"].count("a.jpg") == 1


@contextlib.contextmanager
def tmpfs(where, options: str):
    """A real disk that fills up: a tmpfs mounted at ``where`` (root only; CI runs so)."""
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


@pytest.fixture
def small_disk(tmp_path):
    """4 MB at tmp_path/disk."""
    with tmpfs(tmp_path / "disk", "size=4m") as where:
        yield where


def test_an_outbox_at_a_mount_s_root_is_refused_with_advice_that_works(tmp_path, small_disk):
    """A card, a share or a container volume given as the outbox itself: no folder on its
    mount lies outside it for the temp folder — said so, with the fix (before: set tmp_dir to
    a folder on that mount outside the outbox, which does not exist)."""
    from pixcamd.daemon.fs import choose_tmp_dir

    config = make_config(tmp_path, outbox=str(small_disk))
    with pytest.raises(PixcamdError, match="is the root of a mount") as refused:
        choose_tmp_dir(config)
    assert f"e.g. {small_disk / 'outbox'}" in str(refused.value)
    config = make_config(tmp_path, outbox=str(small_disk / "outbox"))  # as advised: it works
    assert choose_tmp_dir(config).parent == small_disk


def test_a_full_outbox_disk_holds_the_queue_until_there_is_room(tmp_path, brisque, small_disk):
    disk = small_disk  # the outbox and the temp folder on it, the ledger elsewhere
    config = make_config(tmp_path, outbox=str(disk / "out"), tmp_dir=str(disk / "tmp"))
    filler = disk / "filler"
    with running(config, [brisque]) as daemon:
        free = shutil.disk_usage(disk).free
        filler.write_bytes(bytes(free - 32 * 1024))  # room for no copy
        noise_photo(config.inbox / "a.jpg", 1)
        noise_photo(config.inbox / "b.jpg", 2)
        wait_for(lambda: "outbox_full" in ledger_events(config), 60, "the full disk said")
        time.sleep(2.0)  # nothing is taken from the queue meanwhile
        rows = ledger_rows(config)
        assert ledger_events(config).count("started") == 1, ledger_messages(config)
        assert {rows[n]["state"] for n in ("a.jpg", "b.jpg")} == {"queued"}
        assert [rows[n]["attempts"] for n in ("a.jpg", "b.jpg")] == [1, 0]  # one try, held
        filler.unlink()
        wait_for(lambda: finished(config, ["a.jpg", "b.jpg"]), 60, "both, once there is room")
        assert daemon.outcome == {}
    rows = ledger_rows(config)
    assert [rows[n]["state"] for n in ("a.jpg", "b.jpg")] == ["done", "done"]
    assert [rows[n]["attempts"] for n in ("a.jpg", "b.jpg")] == [2, 1]
    assert "outbox_back" in ledger_events(config)
    assert sorted(p.name for p in config.outbox.iterdir()) == ["a.jpg", "b.jpg"]


def test_a_disk_out_of_inodes_holds_the_queue_and_says_so(tmp_path, brisque):
    """ENOSPC with free bytes: the disk has no inodes left for new files. The queue waits as
    for a full disk (the attempts do not run out meanwhile), and the event says why."""
    with tmpfs(tmp_path / "disk", "size=16m,nr_inodes=200") as disk:
        config = make_config(tmp_path, outbox=str(disk / "out"), tmp_dir=str(disk / "tmp"))
        fillers = disk / "fillers"
        with running(config, [brisque]) as daemon:
            fillers.mkdir()
            with contextlib.suppress(OSError):  # until the disk says no space
                for n in range(1000):
                    (fillers / str(n)).touch()
            noise_photo(config.inbox / "a.jpg", 1)
            noise_photo(config.inbox / "b.jpg", 2)
            wait_for(lambda: "outbox_full" in ledger_events(config), 60, "no inodes said")
            time.sleep(2.0)  # nothing is taken from the queue meanwhile
            rows = ledger_rows(config)
            assert [rows[n]["attempts"] for n in ("a.jpg", "b.jpg")] == [1, 0]
            full = [m for e, m in ledger_messages(config) if e == "outbox_full"]
            assert len(full) == 1 and "no inodes left for new files" in full[0], full
            shutil.rmtree(fillers)
            wait_for(lambda: finished(config, ["a.jpg", "b.jpg"]), 60, "both, once there is room")
            assert daemon.outcome == {}
        rows = ledger_rows(config)
        assert [rows[n]["state"] for n in ("a.jpg", "b.jpg")] == ["done", "done"]
        assert sorted(p.name for p in config.outbox.iterdir()) == ["a.jpg", "b.jpg"]


def test_a_second_config_on_the_same_record_is_refused_a_moved_outbox_followed(tmp_path, brisque):
    first = make_config(tmp_path / "a", state_dir=str(tmp_path / "shared"))
    noise_photo(first.inbox / "x.jpg", 1)
    with running(first, [brisque]):
        wait_for(lambda: finished(first, ["x.jpg"]), 60, "the first daemon's photo")
    second = make_config(tmp_path / "b", state_dir=str(tmp_path / "shared"))
    noise_photo(second.inbox / "x.jpg", 1)  # the same name and content, another inbox
    with pytest.raises(PixcamdError) as refused, running(second, [brisque]):
        pass
    assert f"keeps the record of the copies in the outbox {first.outbox}, a folder" in str(
        refused.value
    )
    assert f"none of them is in this config's outbox {second.outbox}" in str(refused.value)
    assert "give this config a state_dir of its own" in str(refused.value)
    assert not second.outbox.exists() or not list(second.outbox.iterdir())
    # the first daemon's outbox moved (its copies with it): the record follows it
    moved = make_config(
        tmp_path / "a", state_dir=str(tmp_path / "shared"), outbox=str(tmp_path / "a" / "moved")
    )
    first.outbox.rename(moved.outbox)
    noise_photo(moved.inbox / "y.jpg", 2)
    with running(moved, [brisque]):
        wait_for(lambda: finished(moved, ["y.jpg"]), 60, "a photo after the move")
    assert sorted(p.name for p in moved.outbox.iterdir()) == ["x.jpg", "y.jpg"]  # x not redone
    assert ledger_events(moved).count("started") == 2  # x once before the move, y once after
    (note,) = [m for e, m in ledger_messages(moved) if e == "folders_moved"]
    assert note == f"the outbox was {first.outbox}: the record follows it to {moved.outbox}"


def test_an_outbox_made_anew_while_the_daemon_runs_is_locked_again(tmp_path, brisque):
    """The outbox lock is on a folder: one deleted and made anew is another folder, which a
    second daemon could lock. The running daemon locks the new one before its next copy —
    and where another daemon took it first, holds its queue, saying why, until it is free."""
    first = make_config(tmp_path / "a")
    second = make_config(tmp_path / "b", outbox=str(first.outbox))
    with running(first, [brisque]):
        first.outbox.rmdir()
        first.outbox.mkdir()
        noise_photo(first.inbox / "x.jpg", 1)
        wait_for(lambda: finished(first, ["x.jpg"]), 30, "x")
        refused = pytest.raises(PixcamdError, match="another pixcamd daemon")
        with refused, running(second, [brisque]):
            pass
        # the uploader took everything, folder and all, and another daemon is first to the new
        # folder: made and locked under another name, then moved into place — a new folder
        # made in place could be locked again by this daemon's idle loop before a second
        # daemon's start took it (a CI run's failure)
        new = tmp_path / "new-outbox"
        new.mkdir()
        other = lock_folder(new)
        shutil.rmtree(first.outbox)
        new.rename(first.outbox)
        try:
            noise_photo(first.inbox / "y.jpg", 2)

            def held() -> bool:
                said = [e.get("message", "") for e in events(first)
                        if e["event"] == "outbox_unavailable"]  # fmt: skip
                return any("another pixcamd daemon" in m for m in said)

            wait_for(held, 30, "the queue held")
            assert ledger_rows(first)["y.jpg"]["state"] == "queued"
            assert not (first.outbox / "y.jpg").exists()
        finally:
            os.close(other)  # the other daemon stops
        wait_for(lambda: finished(first, ["y.jpg"]), 30, "y once the other daemon stopped")
    assert sorted(p.name for p in first.outbox.iterdir()) == ["y.jpg"]
    assert ledger_rows(first)["y.jpg"]["output"] == "y.jpg"


def test_one_temp_folder_takes_one_daemon(tmp_path, brisque):
    """Each daemon empties its temp folder at start and stages copies under its own row
    numbers: two configs given one tmp_dir would delete or publish each other's copies. The
    second is refused, naming the key; where none is set, two outboxes side by side (the
    state dirs on another mount) get a temp folder each."""
    shared = str(tmp_path / "staging")
    first = make_config(tmp_path / "a", tmp_dir=shared)
    second = make_config(tmp_path / "b", tmp_dir=shared)
    refused = pytest.raises(PixcamdError)
    with running(first, [brisque]), refused, running(second, [brisque]):
        pass
    why = str(refused.excinfo.value)
    assert why.startswith(f"tmp_dir: another pixcamd daemon (pid {os.getpid()}) stages its"), why
    assert "give this config a tmp_dir of its own" in why
    a = make_config(tmp_path / "c", outbox=str(tmp_path / "out" / "a"))
    b = make_config(tmp_path / "d", outbox=str(tmp_path / "out" / "b"))
    assert beside_outbox(a.outbox) != beside_outbox(b.outbox)
    assert beside_outbox(a.outbox).parent == tmp_path / "out"


def test_an_earlier_pixcamd_s_temp_folder_made_by_hand_is_still_used(tmp_path):
    """Before 2026-12-06 the temp folder beside the outbox was `.pixcamd-tmp`; one an admin
    made by hand, where the daemon may not create a folder beside the outbox, is still used —
    the upgrade would otherwise refuse to start, unable to create the new name."""
    config = make_config(tmp_path / "a", outbox=str(tmp_path / "srv" / "outbox"))
    (tmp_path / "srv" / "outbox").mkdir(parents=True)
    legacy = tmp_path / "srv" / ".pixcamd-tmp"
    legacy.mkdir()
    os.chmod(tmp_path / "srv", 0o555)  # the daemon may write the outbox, not beside it
    code = (
        "import sys; from pixcamd.daemon.config import load_config; "
        "from pixcamd.daemon.fs import choose_tmp_dir; "
        "c = load_config(sys.argv[1]); "
        "c = c.replace(state_dir=sys.argv[2]); "  # one it could not create either
        "print(choose_tmp_dir(c, create=False)); print(choose_tmp_dir(c))"
    )
    try:
        run = subprocess.run(
            unprivileged([sys.executable, "-c", code, config.source, tmp_path / "srv" / "st"]),
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    finally:
        os.chmod(tmp_path / "srv", 0o755)
    # `config check` (nothing created) names the folder the daemon then uses
    assert run.returncode == 0 and run.stdout.split() == [str(legacy)] * 2, run.stderr


def test_a_refused_start_of_a_daemon_that_ran_before_is_in_the_log_status_reads(tmp_path, brisque):
    # refused before this start opened its ledger (the outbox taken, a temp folder a unit's
    # sandbox cannot reach): said where `pixcamd status` reads all the same
    first = make_config(tmp_path / "a")
    second = make_config(tmp_path / "b", outbox=str(first.outbox))
    with running(second, [brisque]):  # it ran before, alone
        pass
    with running(first, [brisque]), pytest.raises(PixcamdError), running(second, [brisque]):
        pass
    (why,) = said(second, "start_refused")
    assert "another pixcamd daemon" in why and "publishes to the outbox" in why


def test_a_refused_start_leaves_no_pid_of_its_own_in_the_state_dir_s_lock(tmp_path, brisque):
    """The state dir's lock file names the daemon that holds it, or none: a start refused for
    the state dir (another daemon's), for the outbox (another daemon's, its own state dir
    taken first) or for its config leaves no pid of its own there (before: the last two left
    theirs, to be named as the daemon using that state dir)."""
    from test_daemon_support import pixcamd_process

    first = make_config(tmp_path / "a")
    second = make_config(tmp_path / "b", outbox=str(first.outbox))
    locks = [first.state_dir / "daemon.lock", second.state_dir / "daemon.lock"]
    with running(second, [brisque]):  # it ran before: a config refusal is recorded there
        pass
    assert locks[1].read_text() == ""  # stopped: it names no process
    with running(first, [brisque]):
        for config, said in ((first, "already runs this config"), (second, "pixcamd daemon")):
            refused = pixcamd_process(config.source)
            out, _ = refused.communicate(timeout=120)
            assert refused.returncode == 2 and f"{said} (pid {os.getpid()})" in out, out
            assert [lock.read_text() for lock in locks] == [f"{os.getpid()}\n", ""], refused.pid
    source = second.source.read_text().replace(str(second.inbox), str(tmp_path / "not-mounted"))
    second.source.write_text(source)
    refused = pixcamd_process(second.source)
    out, _ = refused.communicate(timeout=120)
    assert refused.returncode == 2 and "not-mounted" in out, out
    last = [e["message"] for e in events(second) if e["event"] == "start_refused"][-1]
    assert "not-mounted" in last, last  # recorded: it took the lock
    assert [lock.read_text() for lock in locks] == ["", ""], refused.pid


def test_one_outbox_takes_one_daemon_and_no_protect_run_beside_it(tmp_path, brisque, capsys):
    """Two configs with state dirs of their own on one outbox would each ship a copy of every
    photo both see: the second daemon is refused, and so is `protect` writing into the running
    daemon's outbox (or a folder in it), which would replace or shadow the daemon's copies."""
    first = make_config(tmp_path / "a")
    second = make_config(tmp_path / "b", outbox=str(first.outbox))
    noise_photo(tmp_path / "x.jpg", 1)
    with running(first, [brisque]):
        with pytest.raises(PixcamdError) as refused, running(second, [brisque]):
            pass
        why = str(refused.value)
        assert f"another pixcamd daemon (pid {os.getpid()}) publishes to the outbox" in why, why
        assert "give this config an outbox of its own" in why, why
        assert not (tmp_path / "b" / "state" / "ledger.sqlite3").exists()  # nothing recorded
        (first.outbox / "album").mkdir()
        album = first.outbox / "album"
        named = tmp_path / "elsewhere" / first.outbox.name  # copies go to DIR/<its name>/
        noise_photo(named / "y.jpg", 2)
        deeper = tmp_path.parent / f"{tmp_path.name}-elsewhere" / "a"  # … to DIR/a/outbox/ too
        noise_photo(deeper / "outbox" / "z.jpg", 3)
        for source, argv in ((tmp_path / "x.jpg", ["-o", first.outbox / "x.jpg"]),
                             (tmp_path / "x.jpg", ["-o", album / "x.jpg"]),
                             (tmp_path / "x.jpg", ["--outdir", first.outbox]),
                             (tmp_path / "x.jpg", ["--outdir", album]),
                             (named, ["--outdir", first.outbox.parent]),
                             (deeper, ["--outdir", tmp_path])):  # fmt: skip
            code = main(["protect", str(source), argv[0], str(argv[1])])
            err = capsys.readouterr().err
            assert code == 2 and "is the outbox of a running pixcamd daemon" in err, err
            assert "drop the photos into its inbox instead" in err, err
        assert sorted(p.name for p in first.outbox.iterdir()) == ["album"]
    # the daemon stopped: its outbox is a folder like any other, and the second config may run
    code = main(
        [
            "protect",
            str(tmp_path / "x.jpg"),
            "-o",
            str(first.outbox / "x.jpg"),
            "--model",
            "brisque",
            "--platforms",
            "task",
            "--views",
            "center",
        ]
    )
    assert code in (0, 1) and (first.outbox / "x.jpg").exists(), capsys.readouterr().err
    with running(second, [brisque]):
        pass


def test_a_copy_the_outbox_refuses_leaves_no_staged_file_and_long_names_fit(tmp_path, brisque):
    """A publication the outbox refuses (a file where the copy's folder would go) is retried
    and fails in words, each attempt's staged copy removed at once (they piled up in the
    temp folder until the next start); names at the 255-byte limit get copy names that fit."""
    config = make_config(tmp_path, max_attempts=2)
    config.outbox.mkdir()
    (config.outbox / "sub").write_bytes(b"")  # where the copy's folder would go
    noise_photo(config.inbox / "sub" / "a.jpg", 1)
    long = "L" * 250
    noise_photo(config.inbox / f"{long}.jpg", 2)
    noise_photo(config.inbox / f"{long}.png", 3)
    with running(config, [brisque]):
        names = ["sub/a.jpg", f"{long}.jpg", f"{long}.png"]
        wait_for(lambda: finished(config, names), 60, "the three")
    rows = ledger_rows(config)
    assert rows["sub/a.jpg"]["state"] == "failed", rows["sub/a.jpg"]
    assert [rows[f"{long}.{x}"]["state"] for x in ("jpg", "png")] == ["done", "done"]
    assert rows[f"{long}.png"]["output"] == "L" * 247 + ".png.jpg"
    assert not list((config.state_dir / "tmp").iterdir())


def test_a_photo_deleted_while_it_is_protected_is_not_shipped(tmp_path, brisque, monkeypatch):
    import pixcamd.job as job

    protect_photo = job.protect_photo

    def deleted_meanwhile(data, rel, *args, **kwargs):  # the user deletes it mid-protection
        outcome = protect_photo(data, rel, *args, **kwargs)
        if rel == "gone.jpg":
            (config.inbox / rel).unlink()
        return outcome

    monkeypatch.setattr(job, "protect_photo", deleted_meanwhile)
    config = make_config(tmp_path)
    noise_photo(config.inbox / "gone.jpg", 1)
    noise_photo(config.inbox / "kept.jpg", 2)
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["kept.jpg"]) and said(config, "vanished"), 60, "both")
    assert sorted(p.name for p in config.outbox.iterdir()) == ["kept.jpg"]  # nothing of it
    (gone,) = said(config, "vanished")
    assert gone == "gone from the inbox before its copy was published: nothing shipped", gone
    assert "gone.jpg" not in ledger_rows(config)  # forgotten, as one deleted before its turn


def test_a_photo_changed_or_deleted_mid_protection_stops_there(tmp_path, brisque, monkeypatch):
    """The photo being protected is looked at as the loop runs: changed (re-synced) or deleted,
    its protection stops there — not at its publication, minutes later for a large photo."""
    import pixcamd.daemon.worker as worker
    import pixcamd.job as job

    monkeypatch.setattr(worker, "LOOK_EVERY", 0.0, raising=False)  # each step (real: 2 s)
    protect_photo, reached = job.protect_photo, {}

    def meddled(data, rel, models, options, progress):
        first = rel not in reached

        def each_step(step, worst):
            if first and step == 1:  # the user edits, deletes or touches it meanwhile
                if rel == "changed.jpg":
                    real_photo(config.inbox / rel, seed=6)
                elif rel == "gone.jpg":
                    (config.inbox / rel).unlink()
                else:  # a new time alone, the same bytes: no change
                    os.utime(config.inbox / rel, ns=(1, 1))
            reached[rel] = step
            progress(step, worst)

        return protect_photo(data, rel, models, options, each_step)

    monkeypatch.setattr(job, "protect_photo", meddled)
    config = make_config(tmp_path)
    real_photo(config.inbox / "changed.jpg", seed=5)
    real_photo(config.inbox / "gone.jpg", seed=5)
    real_photo(config.inbox / "touched.jpg", seed=8)
    with running(config, [brisque]):
        names = ["changed.jpg", "touched.jpg"]
        wait_for(lambda: finished(config, names) and said(config, "vanished"), 90, "all three")
        assert reached["gone.jpg"] == 1  # stopped at the step that saw it gone
        assert reached["touched.jpg"] > 1  # protected on to the end
    assert said(config, "vanished") == ["gone from the inbox before it was protected"]
    assert said(config, "requeued") == ["the file changed while it was protected"]
    assert ledger_events(config).count("started") == 4  # changed.jpg's second time: the new one
    assert ledger_rows(config)["changed.jpg"]["sha256"] == sha(config.inbox / "changed.jpg")
    assert sorted(p.name for p in config.outbox.iterdir()) == ["changed.jpg", "touched.jpg"]


def test_a_photo_synced_back_after_it_vanished_replaces_its_own_copy(tmp_path, brisque, capsys):
    config = make_config(tmp_path)
    photo = config.inbox / "a.jpg"
    noise_photo(photo, 1)
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["a.jpg"]), 60, "the photo")
    first = (config.outbox / "a.jpg").read_bytes()
    noise_photo(photo, 2)  # changed on the phone and re-synced: queued as the daemon would…
    st = photo.stat()
    ledger = Ledger(config.ledger_path)
    fingerprint = ledger.get("a.jpg").fingerprint
    ledger.offer(
        "a.jpg",
        hashlib.sha256(photo.read_bytes()).hexdigest(),
        st.st_size,
        st.st_mtime_ns,
        fingerprint,
    )
    ledger.close()
    os.rename(photo, tmp_path / "away.jpg")  # …and moved away before it was redone
    with running(config, [brisque]):
        wait_for(lambda: said(config, "vanished"), 60, "the photo gone")
    (gone,) = said(config, "vanished")
    assert "its earlier copy a.jpg stays in the outbox" in gone, gone
    assert (config.outbox / "a.jpg").read_bytes() == first
    code, out = cli(capsys, config, "ship", "a.jpg")
    assert code == 1 and "an earlier version's copy stays in the outbox" in out, out
    os.rename(tmp_path / "away.jpg", photo)  # back, the same size and time (mv keeps them)
    with running(config, [brisque]):
        wait_for(lambda: ledger_rows(config)["a.jpg"]["state"] == "done", 60, "it back")
    assert sorted(p.name for p in config.outbox.iterdir()) == ["a.jpg"]
    assert (config.outbox / "a.jpg").read_bytes() != first
    assert not said(config, "photo_note")


def killed_deciding(config, decision: str, at: str, path: str) -> None:
    """``pixcamd DECISION PATH`` in a process of its own, SIGKILLed at ``at`` (a name in
    pixcamd.daemon.decisions it calls mid-way): what a crash, the OOM killer or a power cut
    leaves of a person's decision."""
    code = (
        "import os, sys, pixcamd.daemon.decisions as d\n"
        f"setattr(d, {at!r}, lambda *a, **k: os.kill(os.getpid(), 9))\n"
        "from pixcamd.cli import main\n"
        "sys.exit(main(sys.argv[1:]))"
    )
    argv = [decision, "--config", str(config.source), path]
    done = subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, capture_output=True)
    assert done.returncode == -9, done.stderr
    assert ledger_rows(config)[path]["state"] == "processing"  # as the crash left it


def test_a_decision_a_crash_interrupts_is_finished_or_undone_never_taken_for_a_protection(
    tmp_path, brisque, capsys
):
    """A `remove` killed once the copy is deleted used to leave its row as a protection cut
    short: the daemon's next start protected the photo again and put the removed copy back
    in the outbox; an interrupted `ship` protected it again too. The removal is finished (at
    the daemon's start, or by the next `remove`), the ship undone: held back, as before."""
    config = make_config(
        tmp_path, epsilon=0, epsilon_cap=0, hold_dir=str(tmp_path / "held")
    )  # a zero budget: the real photo stays unprotected, held back
    noise_photo(config.inbox / "a.jpg", 1)
    noise_photo(config.inbox / "b.jpg", 2)
    real_photo(config.inbox / "good.jpg")
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["a.jpg", "b.jpg", "good.jpg"]), 60, "three photos")
    killed_deciding(config, "remove", "fsync_dir", "a.jpg")  # after the copy is deleted
    killed_deciding(config, "remove", "fsync_dir", "b.jpg")
    killed_deciding(config, "ship", "commit_publication", "good.jpg")  # before it is written
    assert not (config.outbox / "a.jpg").exists() and not (config.outbox / "b.jpg").exists()
    code, out = cli(capsys, config, "remove", "b.jpg")  # the next `remove` finishes it
    assert code == 0, out
    with running(config, [brisque]):
        wait_for(lambda: ledger_rows(config)["good.jpg"]["state"] != "processing", 30, "start")
        time.sleep(1.0)  # anything queued by mistake would start now
    rows = ledger_rows(config)
    for path in ("a.jpg", "b.jpg"):
        assert rows[path]["state"] == "done" and rows[path]["output"] is None, rows[path]
        assert json.loads(rows[path]["decision"])["action"] == "removed"
    assert sorted(p.name for p in config.outbox.iterdir()) == []  # nothing put back
    held = rows["good.jpg"]
    assert held["state"] == "unprotected" and held["output"] is None and held["held"], held
    assert ledger_events(config).count("started") == 3  # none protected again
    recovered = [m for e, m in ledger_messages(config) if e == "recovered"]
    assert "its interrupted removal from the outbox was finished" in recovered, recovered
    assert any(m.startswith("shipping it anyway was interrupted") for m in recovered)
    code, out = cli(capsys, config, "ship", "good.jpg")  # and it can be shipped now
    assert code == 0 and (config.outbox / "good.jpg").is_file(), out


def test_a_decision_under_way_in_another_thread_is_not_taken_for_a_crash(
    tmp_path, brisque, capsys, monkeypatch
):
    """The page decides in a pool of threads: a second click while the first ship is under way
    is refused, not taken for a crash's leftover and undone (two ships of one photo); and a
    copy removed once is not said to be removed again."""
    import pixcamd.daemon.decisions as decisions

    config = make_config(tmp_path, epsilon=0, epsilon_cap=0, hold_dir=str(tmp_path / "held"))
    noise_photo(config.inbox / "a.jpg", 1)
    real_photo(config.inbox / "good.jpg")
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["a.jpg", "good.jpg"]), 60, "two photos")
    code, out = cli(capsys, config, "remove", "a.jpg")
    assert code == 0, out
    code, out = cli(capsys, config, "remove", "a.jpg")
    assert code == 1 and "a.jpg: it has no copy in the outbox" in out, out
    entered, release, said = threading.Event(), threading.Event(), []
    publish = decisions.commit_publication

    def slow(*args, **kwargs):
        entered.set()
        release.wait(30)
        return publish(*args, **kwargs)

    monkeypatch.setattr(decisions, "commit_publication", slow)
    ledger = Ledger(config.ledger_path)
    try:
        first = threading.Thread(
            target=lambda: said.append(decisions.ship(config, ledger, ledger.get("good.jpg"), "a"))
        )
        first.start()
        assert entered.wait(30)
        with pytest.raises(decisions.DecisionError, match="is being protected, not held back"):
            decisions.ship(config, ledger, ledger.get("good.jpg"), "b")
        release.set()
        first.join(30)
    finally:
        ledger.close()
    assert said and said[0].output == "good.jpg"
    assert ledger_events(config).count("shipped_unprotected") == 1


def test_the_daemon_s_scan_names_a_folder_it_cannot_read(tmp_path):
    (tmp_path / "inbox" / "locked").mkdir(parents=True)
    (tmp_path / "inbox" / "ok.jpg").write_bytes(b"x")
    os.chmod(tmp_path / "inbox" / "locked", 0)
    code = (
        "import json, sys; from pixcamd.daemon.watcher import Rules, scan; "
        "from pixcamd.daemon.schema import DEFAULT_IGNORE, DEFAULT_EXTENSIONS; "
        "from pathlib import Path; "
        "r = Rules(Path(sys.argv[1]), DEFAULT_IGNORE, DEFAULT_EXTENSIONS, []); refused = []; "
        "print(json.dumps([list(scan(r, refused=refused)), refused]))"
    )
    command = unprivileged([sys.executable, "-c", code, str(tmp_path / "inbox")])
    try:
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    finally:
        os.chmod(tmp_path / "inbox" / "locked", 0o755)
    found, refused = json.loads(out)
    assert found == ["ok.jpg"]
    assert refused == [["locked", refused[0][1]]]
    assert refused[0][1].startswith("a folder that cannot be read (Permission denied)")


def test_a_path_typed_where_one_stands_in_the_inbox_names_that_photo(
    tmp_path, brisque, capsys, monkeypatch
):
    config = make_config(tmp_path)
    noise_photo(config.inbox / "same.jpg", 1)
    noise_photo(config.inbox / "b" / "same.jpg", 2)
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["same.jpg", "b/same.jpg"]), 60, "both photos")
    monkeypatch.chdir(config.inbox / "b")
    code, out = cli(capsys, config, "remove", "same.jpg")
    assert code == 0, out
    assert (config.outbox / "same.jpg").is_file()  # the other photo's copy: untouched
    assert not (config.outbox / "b" / "same.jpg").exists()
    code, out = cli(capsys, config, "retry", "b/same.jpg")  # relative to the inbox, as before
    assert code == 0 and ledger_rows(config)["b/same.jpg"]["state"] == "queued", out
    monkeypatch.chdir(tmp_path)  # outside the inbox: a path to a file in it
    code, out = cli(capsys, config, "remove", str(config.outbox / "same.jpg"))  # a copy's path
    assert code == 0 and not (config.outbox / "same.jpg").exists(), out
    code, out = cli(capsys, config, "retry", "inbox/same.jpg")
    assert code == 0 and ledger_rows(config)["same.jpg"]["state"] == "queued", out


def test_a_second_config_gets_a_state_dir_of_its_own(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "home" / ".local" / "state"))
    monkeypatch.delenv("PIXCAMD_CONFIG", raising=False)
    states = set()
    for name in ("second", "third"):  # two configs, one file name: two state dirs
        config = tmp_path / name / "config.toml"
        argv = ["init", "--config", str(config)]
        argv += ["--inbox", str(tmp_path / f"in-{name}"), "--outbox", str(tmp_path / f"out-{name}")]
        assert main(argv) == 0
        capsys.readouterr()
        assert main(["config", "check", "--config", str(config)]) == 0
        line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("state_dir"))
        states.add(line)
        assert f'"{tmp_path / "home" / ".local" / "state"}/pixcamd-config-' in line, line
    assert len(states) == 2
    # the user's own config keeps the default (""): no second ledger for the first daemon
    assert main(["init", "--inbox", str(tmp_path / "in"), "--outbox", str(tmp_path / "out")]) == 0
    text = (tmp_path / "home" / ".config" / "pixcamd" / "config.toml").read_text()
    assert 'state_dir = ""' in text


def test_the_ledger_an_old_user_service_left_under_config_is_the_one_used(tmp_path, monkeypatch):
    """Before systemd 254 a user unit's StateDirectory= was ~/.config/pixcamd: its ledger (the
    photos done, the decisions) is kept using, by the daemon and a shell's commands alike."""
    from pixcamd.daemon.config import load_config

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    config = make_config(tmp_path, state_dir="")
    assert config.state_dir == tmp_path / "state" / "pixcamd"  # nothing old: the default
    Ledger(tmp_path / "config" / "pixcamd" / "ledger.sqlite3").close()
    config = load_config(config.source)
    assert config.ledger_path == tmp_path / "config" / "pixcamd" / "ledger.sqlite3"
    Ledger(tmp_path / "state" / "pixcamd" / "ledger.sqlite3").close()
    assert load_config(config.source).state_dir == tmp_path / "state" / "pixcamd"


def test_status_after_a_kill_says_the_daemon_ended_without_stopping(tmp_path, capsys):
    config = make_config(tmp_path)
    crashed(config.ledger_path)
    assert main(["status", "--config", str(config.source)]) == 0
    out = capsys.readouterr().out
    assert "it ended without stopping (a crash, a kill or a power cut" in out
    assert "current:" not in out and "interrupted: kill1.jpg (attempt 1" in out
    # the dead daemon's last activity is not shown as what it does now
    ledger = Ledger(config.ledger_path)
    ledger.set_daemon(status="model brisque; protecting kill1.jpg; queue 1")
    ledger.close()
    code, out, _ = status_json(capsys, config)
    report = json.loads(out)
    assert code == 0 and report["ended_unexpectedly"], report
    assert report["status"] == "ended unexpectedly" and report["current"] == [], report


def test_status_after_a_stop_killed_by_its_timeout_says_the_stop_was_cut_short(tmp_path, capsys):
    """docker stop: SIGTERM, recorded as the stop begins (stop_asked_at), then SIGKILL after
    the engine's 10 s, within grace_time — no crash: status says the stop was asked and the
    process killed before it ended, and what to change."""
    import time

    from pixcamd.daemon.events import clock

    config = make_config(tmp_path)  # grace_time = 20
    crashed(config.ledger_path)
    asked = time.time() - 90
    ledger = Ledger(config.ledger_path)
    ledger.set_daemon(stop_asked_at=asked)
    ledger.close()
    assert main(["status", "--config", str(config.source)]) == 0
    out = capsys.readouterr().out
    assert f"a stop was asked at {clock(asked)} and the process was killed before it ended" in out
    # a record without the daemon's own (an earlier pixcamd's): the config's, said so
    assert "shorter than grace_time (20 s, the config's now) + 10 s" in out, out
    assert "--stop-timeout" in out and "ended without stopping" not in out, out
    assert "interrupted: kill1.jpg" in out
    code, out, _ = status_json(capsys, config)
    report = json.loads(out)
    assert code == 0 and report["ended_unexpectedly"] and report["stop_asked_at"] == asked
    assert (report["grace_time"], report["grace_time_of"]) == (20, "config"), report


def test_a_stop_cut_short_names_the_grace_time_the_killed_daemon_ran_with(tmp_path, capsys):
    """docker stop of a daemon that ran with grace_time = 30 (40 since a reload), then the
    config edited to 5 before `pixcamd status`: status named the config's 5 s as what the stop
    timeout was shorter than — not what the killed daemon gave its photo. The daemon records
    its own, at its start and reload."""
    import signal
    import sqlite3

    from test_daemon_support import pixcamd_process

    # a photo that takes a minute: a budget of a tenth of a grey level never gets it past the
    # threshold, so every step runs (a photo protected in 5 steps, 1.7 s, could end before the
    # SIGTERM on a loaded machine, and the stop would not be cut short)
    config = make_config(tmp_path, grace_time=30.0, steps=400, epsilon=0.1, epsilon_cap=0.1)

    def stop_asked() -> bool:
        db = sqlite3.connect(f"file:{config.ledger_path}?mode=ro", uri=True)
        try:
            found = db.execute(
                "SELECT 1 FROM daemon WHERE key = 'stop_asked_at' AND value != 'null'"
            ).fetchone()
            return found is not None
        finally:
            db.close()

    def grace(seconds: float) -> None:
        text = config.source.read_text()
        config.source.write_text(re.sub(r"grace_time = .*", f"grace_time = {seconds}", text))

    real_photo(config.inbox / "slow.jpg")
    process = pixcamd_process(config.source)
    try:
        wait_for(lambda: any(e["event"] == "started" for e in events(config)), 120, "the photo")
        running = json.loads(status_json(capsys, config)[1])
        assert (running["grace_time"], running["grace_time_of"]) == (30, "daemon"), running
        grace(40.0)  # and a reload: the one in force from then on
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: any(e["event"] == "reloaded" for e in events(config)), 60, "reloaded")
        process.send_signal(signal.SIGTERM)  # the engine's stop ...
        wait_for(stop_asked, 30, "the stop recorded")
    finally:
        process.kill()  # ... and its SIGKILL at the end of its timeout, within the grace time
        out, _ = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL, out
    assert ledger_rows(config)["slow.jpg"]["state"] == "processing"  # cut short, not finished
    grace(5.0)
    assert main(["status", "--config", str(config.source)]) == 0
    out = capsys.readouterr().out
    assert "was killed before it ended" in out, out
    assert "shorter than grace_time (40 s) + 10 s" in out, out
    code, out, _ = status_json(capsys, config)
    report = json.loads(out)
    assert code == 0 and report["stop_asked_at"], report
    assert (report["grace_time"], report["grace_time_of"]) == (40, "daemon"), report


def test_status_json_prints_json_when_the_config_cannot_be_read(tmp_path, capsys):
    """No config yet, or one that does not validate with no record to show: a script reading
    stdout still gets an object naming the error (before: nothing on stdout)."""
    config = make_config(tmp_path)
    missing = tmp_path / "missing.toml"
    code = main(["status", "--json", "--config", str(missing)])
    out, err = capsys.readouterr()
    assert code == 2 and json.loads(out) == {
        "error": err.strip().splitlines()[-1].removeprefix("pixcamd: error: "),
        "ledger": None,
    }, out + err
    config.source.write_text(config.source.read_text() + "stepz = 4\n")  # and no record yet
    code, out, err = status_json(capsys, config)
    said = json.loads(out)
    assert code == 2 and "stepz: unknown key" in said["error"], out + err
    assert said["ledger"] == str(config.ledger_path)


def test_a_reload_after_the_config_was_deleted_says_so(tmp_path, brisque):
    config = make_config(tmp_path)
    with running(config, [brisque]) as daemon:
        os.unlink(config.source)
        assert daemon.reload() is False
    (message,) = said(config, "reload_refused")
    assert "the daemon started with it: moved or deleted since" in message
    assert "--config" not in message


def test_a_reload_reads_the_config_as_named_a_dotfiles_link_re_pointed(tmp_path, brisque):
    from pixcamd.daemon.config import load_config

    written = make_config(tmp_path).source.read_text()
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    (dotfiles / "a.toml").write_text(written + "epsilon = 6\n")
    (dotfiles / "b.toml").write_text(written + "epsilon = 3\n")
    link = tmp_path / "linked.toml"
    link.symlink_to(dotfiles / "a.toml")
    config = load_config(link)
    with running(config, [brisque]) as daemon:
        assert daemon.settings.epsilon == 6 / 255
        link.unlink()  # stow, home-manager: the link re-pointed
        link.symlink_to(dotfiles / "b.toml")
        assert daemon.reload() is True and daemon.settings.epsilon == 3 / 255
        (dotfiles / "b.toml").unlink()
        link.unlink()  # `sed -i`: the link replaced by a file of its own
        link.write_text(written + "epsilon = 9\n")
        assert daemon.reload() is True and daemon.settings.epsilon == 9 / 255
    assert not said(config, "reload_refused")


def test_a_folder_spelled_another_way_is_no_change_to_restart_for(tmp_path, brisque):
    config = make_config(tmp_path)
    with running(config, [brisque]) as daemon:
        text = config.source.read_text().replace(
            f'inbox = "{tmp_path / "inbox"}"', f'inbox = "{tmp_path / "inbox"}/"'
        )
        config.source.write_text(text + f'hold_dir = "{tmp_path / "held" / ".." / "held"}"\n')
        assert daemon.reload() is False  # hold_dir is new: a restart applies it
        config.source.write_text(text)  # the inbox with a trailing slash alone: the same folder
        assert daemon.reload() is True
    (refused,) = said(config, "reload_refused")
    assert "hold_dir changed" in refused and "inbox" not in refused
    from pixcamd.daemon.reload import changes

    # the log file beside the state dir moves with it: one change, the state dir's
    moved = changes(config, config.replace(state_dir=str(tmp_path / "state2")))
    assert list(moved) == ["state_dir"]


def test_threads_set_by_a_reload_and_set_back_to_torch_s_own_by_0(tmp_path, brisque, monkeypatch):
    """Torch's threads are set in the worker's thread, where photos are protected, between
    photos: a reload to 0 gives torch's own choice back (it kept the last number)."""
    import threading

    import torch

    import pixcamd.daemon.settings

    monkeypatch.setattr(pixcamd.daemon.settings, "_TORCH_THREADS", [3])  # torch's own choice
    calls, real = [], torch.set_num_threads
    monkeypatch.setattr(
        torch, "set_num_threads", lambda n: (calls.append((threading.current_thread(), n)), real(n))
    )
    before = torch.get_num_threads()
    config = make_config(tmp_path, threads=1)
    try:
        with running(config, [brisque]) as daemon:
            wait_for(lambda: [n for _, n in calls] == [1], 10, "the config's 1 thread")
            config.source.write_text(
                config.source.read_text().replace("threads = 1", "threads = 0")
            )
            assert daemon.reload() is True
            wait_for(lambda: [n for _, n in calls] == [1, 3], 10, "torch's own threads")
            assert {thread for thread, _ in calls} == {daemon.worker.thread}
    finally:
        real(before)


class IdleCluster:
    """An executor that takes nothing: the duplicate path never reaches it."""

    capacity = 1
    describe = "a test cluster"

    def alive(self) -> bool:
        return True

    def submit(self, task) -> None:
        raise AssertionError("a duplicate is published here, never sent")


def test_on_a_cluster_a_second_name_s_copy_the_outbox_refuses_is_retried_too(tmp_path, brisque):
    """``executor = "ray"``: the worker that feeds the cluster publishes a duplicate's copy
    itself; a refused copy is retried there as well, its thread left alive."""
    import io

    from pixcamd.daemon.cluster import ClusterWorker
    from pixcamd.daemon.events import EventLog

    config = make_config(tmp_path, retry_backoff=600)  # the retry is not due within the test
    noise_photo(config.inbox / "a.jpg", 1)
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["a.jpg"]), 60, "the first photo")
    (config.outbox / "album").write_bytes(b"")  # a file where the copy's folder goes
    ledger = Ledger(config.ledger_path)
    try:
        done = ledger.get("a.jpg")
        offer = ledger.offer("album/b.jpg", done.sha256, done.size, 1, done.fingerprint)
        assert offer.action == "duplicate"
        ledger.queue_copy(offer.row.id)
        log = EventLog(config.log_file, ledger, io.StringIO())
        tmp = config.state_dir / "tmp"
        tmp.mkdir(exist_ok=True)
        worker = ClusterWorker(
            config,
            ledger,
            [brisque],
            None,
            done.fingerprint,
            log,
            tmp,
            make_executor=IdleCluster,
            executor=IdleCluster(),
        )
        worker._fill()  # raised out of the thread's loop before
        row = ledger.get("album/b.jpg")
        assert row.state == "queued" and row.attempts == 1 and "File exists" in row.error
    finally:
        ledger.close()


class CountingCluster:
    """An executor that takes photos and never answers: what is sent, counted."""

    capacity = 2
    describe = "a test cluster"

    def __init__(self):
        self.sent, self.closed = [], False

    def alive(self) -> bool:
        return True

    def submit(self, task) -> None:
        self.sent.append(task.name)

    def in_flight(self) -> int:
        return len(self.sent)

    def wait(self, timeout=None):
        return []

    def close(self) -> None:
        self.closed = True


def test_on_a_cluster_a_reload_sends_nothing_more_until_what_is_in_flight_is_done(
    tmp_path, brisque
):
    """A reload's settings are taken up between photos; on a cluster that is once nothing is
    in flight — and meanwhile no photo is sent with the settings it replaces (they were, and
    the reload's scan passed them over)."""
    import io

    from pixcamd.daemon.cluster import ClusterWorker
    from pixcamd.daemon.events import EventLog

    config = make_config(tmp_path)
    config.outbox.mkdir()
    config.state_dir.mkdir()
    ledger = Ledger(config.ledger_path)
    try:
        for seed, name in enumerate(("a.jpg", "b.jpg", "c.jpg")):
            path = noise_photo(config.inbox / name, seed)
            st = path.stat()
            ledger.offer(name, sha(path), st.st_size, st.st_mtime_ns, "old")
        tmp = config.state_dir / "tmp"
        tmp.mkdir(exist_ok=True)
        log = EventLog(config.log_file, ledger, io.StringIO())
        cluster = CountingCluster()
        worker = ClusterWorker(
            config,
            ledger,
            [brisque],
            None,
            "old",
            log,
            tmp,
            make_executor=CountingCluster,
            executor=cluster,
        )
        cluster.capacity = 1
        worker._turn(stopping=False)
        assert cluster.sent == ["a.jpg"]
        cluster.capacity = 3  # room for more, but a reload waits
        worker.reconfigure(config, [brisque], worker.settings, "new", "brisque")
        worker._turn(stopping=False)
        assert cluster.sent == ["a.jpg"] and not cluster.closed
        assert [r.path for r in ledger.rows("queued")] == ["b.jpg", "c.jpg"]
    finally:
        ledger.close()


def test_an_outbox_whose_mount_went_away_is_not_written_into(tmp_path):
    """An unmounted share leaves its empty mount point behind: the folder is there, the mount
    the outbox was on at start is not (here: recorded as a mount this machine never had)."""
    from pixcamd.daemon.fs import mount_point, outbox_gone

    now = mount_point(tmp_path)
    assert outbox_gone(tmp_path, now) is None  # as at start
    assert outbox_gone(tmp_path, None) is None and outbox_gone(tmp_path, "/") is None
    gone = outbox_gone(tmp_path, "/mnt/a-share-that-went")
    assert gone is not None and "(/mnt/a-share-that-went) went away" in gone
    assert "the outbox is gone" in outbox_gone(tmp_path / "moved", now)


def test_a_start_refused_after_a_crash_keeps_the_crash_on_record(tmp_path, capsys):
    """Killed mid-photo, then a restart refused before it recorded itself (its weights do
    not load): `status` still says the daemon ended without stopping, and its photo."""
    from test_daemon_support import pixcamd_process

    config = make_config(tmp_path, model="koncept512", weights=str(tmp_path / "none.pth"))
    crashed(config.ledger_path)
    process = pixcamd_process(config.source)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 2, out
    assert main(["status", "--config", str(config.source)]) == 0
    said = capsys.readouterr().out
    assert "it ended without stopping" in said and "interrupted: kill1.jpg" in said
    assert "its last start (" in said and "was refused: KonCept512 weights not found" in said


def test_a_path_typed_in_a_folder_deleted_under_the_shell_is_read_in_the_inbox(
    tmp_path, brisque, capsys, monkeypatch
):
    config = make_config(tmp_path)
    noise_photo(config.inbox / "a.jpg", 1)
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["a.jpg"]), 60, "the photo")
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()  # a sync tool removed the folder the shell stands in
    code, out = cli(capsys, config, "retry", "a.jpg")
    assert code == 0 and ledger_rows(config)["a.jpg"]["state"] == "queued", out


def test_init_knows_the_user_config_however_it_is_spelt(tmp_path, capsys, monkeypatch):
    (tmp_path / "real-home" / ".config").mkdir(parents=True)
    (tmp_path / "home").symlink_to(tmp_path / "real-home")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.delenv("PIXCAMD_CONFIG", raising=False)
    spelt = tmp_path / "real-home" / ".config" / "pixcamd" / "config.toml"  # through the link
    argv = ["init", "--config", str(spelt), "--inbox", str(tmp_path / "in")]
    assert main([*argv, "--outbox", str(tmp_path / "out")]) == 0
    assert 'state_dir = ""' in spelt.read_text()  # the user config: the default state dir


def test_status_says_a_full_disk_and_json_stays_json(tmp_path, small_disk, capsys):
    """Before the first run and on a full disk, `status --json` prints an object naming the
    error (a script parsing stdout gets JSON), and the full disk is called full — SQLite says
    only "disk I/O error" there."""
    config = make_config(tmp_path, state_dir=str(small_disk / "state"))
    code, out, err = status_json(capsys, config)
    assert code == 2 and "has not run with this state dir yet" in err, err
    assert "has not run" in json.loads(out)["error"], out
    ledger = Ledger(config.ledger_path)
    ledger.offer("a.jpg", "0" * 64, 1, 1, "fp")
    ledger.close()
    filler = small_disk / "filler"
    filler.write_bytes(bytes(shutil.disk_usage(small_disk).free))
    code, out, err = status_json(capsys, config)
    assert code == 2 and "its disk is full (0 bytes free)" in err, err
    assert json.loads(out) == {
        "error": err.strip().splitlines()[-1].removeprefix("pixcamd: error: "),
        "ledger": str(config.ledger_path),
    }
    filler.unlink()
    code, out, err = status_json(capsys, config)
    assert code == 0 and json.loads(out)["counts"]["queued"] == 1, out + err


def status_json(capsys, config) -> tuple[int, str, str]:
    code = main(["status", "--config", str(config.source), "--json"])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_reload_that_finds_koncept512_installed_says_the_models_changed(
    tmp_path, recipe_checkpoint, monkeypatch
):
    monkeypatch.delenv("CACHE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    config = make_config(tmp_path, model="auto")
    with running(config, None) as daemon:  # auto: no weights in the cache yet, BRISQUE
        assert [m.name for m in daemon.models] == ["brisque"]
        weights = tmp_path / "cache" / "pixcamd" / "KonCept512.pth"
        weights.parent.mkdir(parents=True)
        shutil.copy(recipe_checkpoint, weights)  # `pixcamd model fetch` while it runs
        assert daemon.reload() is True and [m.name for m in daemon.models] == ["koncept512"]
    (message,) = said(config, "reloaded")
    assert message.startswith("the config is unchanged, the models changed: brisque-live-svr@")
    assert " → koncept512" in message and "model auto → KonCept512" in message
    assert "`pixcamd retry --model-changed` protects them again" in message  # what comes next


def test_a_refused_start_never_says_it_started(tmp_path, brisque):
    """A start refused for its config (weights that are not there) or for another daemon's
    lock on the outbox is `start_refused` alone in the log and on stderr — before, a refusal
    for the weights came after `daemon_started`, a start that never was."""
    from test_daemon_support import pixcamd_process

    config = make_config(tmp_path / "a", model="koncept512", weights=str(tmp_path / "none.pth"))
    config.state_dir.mkdir(parents=True)
    Ledger(config.ledger_path).close()  # it ran before: the refusal is recorded
    process = pixcamd_process(config.source)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 2 and "KonCept512 weights not found" in out, out
    assert [e["event"] for e in events(config)] == ["start_refused"]
    assert " start_refused: " in out and " daemon_started" not in out, out
    assert ledger_events(config) == ["start_refused"]

    first = make_config(tmp_path / "b")
    second = make_config(tmp_path / "c", outbox=str(first.outbox))
    second.state_dir.mkdir(parents=True)
    Ledger(second.ledger_path).close()
    with running(first, [brisque]):
        process = pixcamd_process(second.source)
        out, _ = process.communicate(timeout=120)
    assert process.returncode == 2 and "another pixcamd daemon" in out, out
    assert [e["event"] for e in events(second)] == ["start_refused"]
    assert " daemon_started" not in out, out


def test_a_start_refused_for_its_config_is_on_record_for_status(tmp_path, brisque, capsys):
    """An inbox not there (a share not mounted yet) or a typo: the config is refused before a
    daemon exists; `status` says that refusal (before: the last clean stop, or an older
    refusal) — and a first start, with no record yet, still records nothing."""
    from test_daemon_support import pixcamd_process

    config = make_config(tmp_path)
    with running(config, [brisque]):
        pass
    config.inbox.rename(tmp_path / "inbox.away")
    config.source.write_text(config.source.read_text() + "stepz = 4\n")
    process = pixcamd_process(config.source)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 2 and "does not exist" in out, out
    (refused,) = [e for e in events(config) if e["event"] == "start_refused"]
    assert "inbox: " in refused["message"] and "stepz: unknown key" in refused["message"]
    assert "\n" not in refused["message"]
    assert main(["status", "--config", str(config.source)]) == 0
    said = capsys.readouterr().out
    assert "its last start (" in said and "was refused: invalid configuration:" in said, said

    # its log on a share not mounted yet: recorded in the ledger alone, no folder made there
    nas = tmp_path / "nas"
    config.source.write_text(config.source.read_text() + f'log_file = "{nas}/logs/p.jsonl"\n')
    process = pixcamd_process(config.source)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 2 and not nas.exists(), out
    assert main(["status", "--config", str(config.source)]) == 0
    said = capsys.readouterr().out
    assert said.count("was refused: invalid configuration:") == 1, said

    fresh = make_config(tmp_path / "fresh")
    fresh.source.write_text(fresh.source.read_text() + "stepz = 4\n")
    process = pixcamd_process(fresh.source)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 2 and not fresh.ledger_path.exists(), out


def test_a_file_that_is_no_image_is_not_read_again_for_other_settings(tmp_path, brisque):
    """A damaged file failed: a reload with other settings does not settle, queue and fail it
    once more (before: after every settings change, with its warnings and a 120 s wait); new
    bytes under its name are read and protected."""
    config = make_config(tmp_path, settle_timeout=1.0)
    (config.inbox / "bad.jpg").write_bytes(b"\xff\xd8 not a photo")
    noise_photo(config.inbox / "held.png", 1)

    def about_it() -> list[str]:
        return [e["event"] for e in events(config) if e.get("path") == "bad.jpg"]

    with running(config, [brisque]) as daemon:
        wait_for(lambda: finished(config, ["bad.jpg", "held.png"]), 60, "the first pass")
        assert ledger_rows(config)["bad.jpg"]["state"] == "failed"
        # its row is failed before its `failed` event is written: the event too, then compare
        wait_for(lambda: "failed" in about_it(), 30, "bad.jpg's failed event")
        before = about_it()
        config.source.write_text(config.source.read_text() + "epsilon = 5\n")
        assert daemon.reload() is True
        wait_for(lambda: any("reload scan" in m for m in said(config, "scanned")), 60, "scan")
        time.sleep(2.0)  # a settle and a queueing would have begun by now
        assert about_it() == before, (before, about_it())
        real_photo(config.inbox / "bad.jpg")  # the file again, whole
        wait_for(lambda: ledger_rows(config)["bad.jpg"]["state"] == "done", 120, "new bytes")


def test_a_new_record_beside_an_outbox_of_copies_is_said(tmp_path, brisque):
    """A state dir lost (a container made anew without its volume): the daemon starts a new
    ledger beside an outbox that holds the old copies, protects the inbox again and ships
    copies under new names — said as a warning at the start, never on a first start."""
    config = make_config(tmp_path)
    real_photo(config.inbox / "a.jpg")
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["a.jpg"]), 120, "the photo")
    assert not [e for e in events(config) if e["event"] == "new_record"]
    shutil.rmtree(config.state_dir)
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["a.jpg"]), 120, "the photo again")
    (said,) = [e for e in events(config) if e["event"] == "new_record"]
    assert said["level"] == "warning" and "if the state dir was lost" in said["message"]
    assert (config.outbox / "a.jpg").is_file()  # the old copy, left as it is
