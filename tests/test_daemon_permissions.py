"""The daemon run as a user that the inbox or outbox is not open to (a service user beside a
sync tool's folders): a real `pixcamd run` whose process file permissions bind, as root in CI
under ``setpriv`` without the capabilities that let root read and write anything."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_daemon_support import (
    ROOT,
    events,
    finished,
    ledger_rows,
    make_config,
    noise_photo,
    pixcamd_process,
    real_photo,
    wait_for,
)


def stopped(process: subprocess.Popen) -> str:
    """Its output once SIGTERM stopped it, as systemd does; killed if it has not exited within
    60 s, and the test fails — a daemon left running outlived the test and the run (before,
    as one whose finally raised first: a folder the test had not made yet)."""
    process.terminate()
    try:
        out, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        raise AssertionError(f"pixcamd did not stop within 60 s of SIGTERM:\n{out}") from None
    return out


def refused_in_words(config, folder, words: str) -> None:
    """`config check` and `run`, as a user without root's file rights, refuse ``folder`` in the
    same words, naming it and the user (as docs/daemon.md has it)."""
    for command in (("config", "check"), ("run",)):
        process = pixcamd_process(config.source, command=command, drop_root=True)
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 2 and f"{folder}: the user " in out and words in out, out


def test_an_inbox_or_outbox_this_user_cannot_use_refuses_the_start_in_words(tmp_path):
    config = make_config(tmp_path)
    config.outbox.mkdir()
    for folder, mode, words in (
        (config.inbox, 0o300, "cannot read it, so no photo in it would be seen"),
        (config.outbox, 0o555, "cannot write in it, so no protected copy could be published"),
    ):
        os.chmod(folder, mode)
        try:
            refused_in_words(config, folder, words)
        finally:
            os.chmod(folder, 0o755)
        (refused,) = [e for e in events(config) if e["event"] == "start_refused"][-1:]
        assert words in refused["message"]  # where `pixcamd status` reads


def test_a_state_dir_this_user_cannot_write_is_refused_by_config_check_as_by_run(tmp_path):
    """`config check` passed a state dir (or hold dir) the daemon's user cannot write, which
    `run` then refused (now in the same words); one not made yet is a note, not a refusal —
    systemd makes a service's StateDirectory= only as it starts it."""
    config = make_config(tmp_path, hold_dir=str(tmp_path / "held"))
    config.outbox.mkdir()
    for folder, words in (
        (tmp_path / "state", "keeps its record of every photo there"),
        (tmp_path / "held", "photos held back are put there"),
    ):
        folder.mkdir()
        os.chmod(folder, 0o555)
        try:
            # `run` said "Permission denied: '…/state/daemon.lock'" or "…: '…/held/.pixcamd-
            # probe-…'", naming no user
            refused_in_words(config, folder, words)
        finally:
            os.chmod(folder, 0o755)
            folder.rmdir()
    above = tmp_path / "closed"
    above.mkdir()
    os.chmod(above, 0o555)
    try:
        config = make_config(tmp_path, state_dir=str(above / "state"))
        check = pixcamd_process(config.source, command=("config", "check"), drop_root=True)
        out, _ = check.communicate(timeout=120)
        assert check.returncode == 0, out
        assert f"the state dir {above / 'state'} does not exist yet, and the user " in out, out
        assert f"cannot create it in {above}" in out
    finally:
        os.chmod(above, 0o755)


def test_a_hold_dir_this_user_cannot_make_is_a_note_in_config_check_as_run_refuses_it(tmp_path):
    """A hold dir not made yet was passed over in silence by `config check` (docs/daemon.md
    says it is a note, as a state dir's is), and `run` then refused the start; an outbox's or a
    hold dir's note outside the state dir no longer says systemd's StateDirectory= makes it."""
    above = tmp_path / "closed"
    above.mkdir()
    os.chmod(above, 0o555)
    try:
        config = make_config(tmp_path, outbox=str(above / "out"), hold_dir=str(above / "held"))
        check = pixcamd_process(config.source, command=("config", "check"), drop_root=True)
        out, _ = check.communicate(timeout=120)
        assert check.returncode == 0, out
        notes = {line.split()[2]: line for line in out.splitlines() if line.startswith("# the ")}
        for key, name in (("hold", "held"), ("outbox", "out")):
            assert f"{above / name} does not exist yet, and the user " in notes[key], out
            assert f"cannot create it in {above}: `run` will be refused unless" in notes[key]
            assert "StateDirectory=" not in notes[key], notes[key]
        config = make_config(tmp_path, hold_dir=str(above / "held"))
        run = pixcamd_process(config.source, drop_root=True)
        out, _ = run.communicate(timeout=120)
        assert run.returncode == 2 and str(above / "held") in out, out
    finally:
        os.chmod(above, 0o755)


def test_a_photo_this_user_cannot_read_fails_saying_so_never_dropped(tmp_path):
    config = make_config(tmp_path, max_attempts=1)
    real_photo(config.inbox / "open.jpg")
    real_photo(config.inbox / "private.jpg")
    os.chmod(config.inbox / "private.jpg", 0o000)  # rsync -a of a 0600 file, another owner
    process = pixcamd_process(config.source, drop_root=True)
    try:
        wait_for(lambda: finished(config, ["open.jpg", "private.jpg"]), 120, "both photos")
        row = ledger_rows(config)["private.jpg"]
        assert row["state"] == "failed" and "cannot read the file" in row["error"]
        assert "Permission denied" in row["error"]
        assert ledger_rows(config)["open.jpg"]["state"] == "done"
        (settled,) = [
            e for e in events(config) if e.get("path") == "private.jpg" and e["event"] == "settled"
        ]
        assert "cannot read the file" in settled["message"]
        (failed,) = [e for e in events(config) if e["event"] == "failed"]
        assert failed["message"].endswith("— `pixcamd retry --failed` once it is fixed"), failed
        status = subprocess.run(
            [sys.executable, "-m", "pixcamd", "status", "--json", "--config", str(config.source)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        failures = json.loads(status.stdout)["failures"]
        assert [f["path"] for f in failures] == ["private.jpg"]
        # made readable: taken again (its permissions changed, the watcher sees it) and protected
        os.chmod(config.inbox / "private.jpg", 0o644)
        wait_for(lambda: ledger_rows(config)["private.jpg"]["state"] == "done", 120, "the retake")
    finally:
        out = stopped(process)
    assert process.returncode == 0, out


def test_an_outbox_closed_to_the_user_while_running_holds_the_queue_and_spends_no_attempt(
    tmp_path,
):
    """The outbox's permissions changed under a running daemon: said once in words, the photos
    stay queued with their attempts (before: each was protected, failed at its publication with
    a raw PermissionError and a traceback, and ended failed after max_attempts), and protected
    once it may write there again."""
    config = make_config(tmp_path, max_attempts=1)
    real_photo(config.inbox / "first.jpg")
    process = pixcamd_process(config.source, drop_root=True)
    try:
        wait_for(lambda: finished(config, ["first.jpg"]), 120, "the first photo")
        os.chmod(config.outbox, 0o555)
        real_photo(config.inbox / "second.jpg")
        wait_for(
            lambda: any(e["event"] == "outbox_unavailable" for e in events(config)), 60, "said"
        )
        (said,) = [e for e in events(config) if e["event"] == "outbox_unavailable"]
        assert "cannot write in it" in said["message"] and "give that user write" in said["message"]
        wait_for(lambda: "second.jpg" in ledger_rows(config), 60, "queued")
        row = ledger_rows(config)["second.jpg"]
        assert row["state"] == "queued" and row["attempts"] == 0, row
        assert not [e for e in events(config) if e["event"] in ("retried", "failed")]
        os.chmod(config.outbox, 0o755)
        wait_for(lambda: ledger_rows(config)["second.jpg"]["state"] == "done", 120, "then done")
        assert [e["event"] for e in events(config)].count("outbox_back") == 1
    finally:
        with contextlib.suppress(FileNotFoundError):  # not made yet: failed before
            os.chmod(config.outbox, 0o755)
        out = stopped(process)
    assert process.returncode == 0, out


def test_config_check_names_where_fetch_must_put_weights_and_weights_it_cannot_read(
    tmp_path, recipe_checkpoint
):
    """`weights = PATH`: plain `pixcamd model fetch` would install where the daemon does not
    look; and weights another user installed under umask 077 pass no longer as found."""
    import shutil

    weights = tmp_path / "models" / "KonCept512.pth"
    config = make_config(tmp_path, model="koncept512", weights=str(weights))
    config.outbox.mkdir()
    check = pixcamd_process(config.source, command=("config", "check"))
    out, _ = check.communicate(timeout=120)
    assert check.returncode == 2 and f"`pixcamd model fetch --to {weights}` installs" in out, out
    weights.parent.mkdir()
    shutil.copy(recipe_checkpoint, weights)
    daemon = pixcamd_process(config.source)  # it ran once: it has a record status reads
    wait_for(lambda: any(e["event"] == "ready" for e in events(config)), 120, "ready")
    daemon.terminate()
    assert daemon.wait(60) == 0
    os.chmod(weights, 0o000)
    for command in (("config", "check"), ("run",)):
        process = pixcamd_process(config.source, command=command, drop_root=True)
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 2 and "Traceback" not in out, out
        assert f"{weights}" in out and "(Permission denied)" in out, out
    # the record's last stop is older than that refusal: status says the refusal, not the stop
    status = pixcamd_process(config.source, command=("status",))
    out, _ = status.communicate(timeout=120)
    line = next(line for line in out.splitlines() if line.startswith("daemon: "))
    assert "its last start" in line and "was refused" in line and "Permission denied" in line


def test_a_folder_of_the_outbox_closed_to_the_user_holds_its_photos_and_spends_no_attempt(
    tmp_path,
):
    """outbox/Album closed to the daemon's user while it runs: the photos whose copies go
    there stay queued with their attempts, said once naming the user and the folder (before:
    each failed at its publication with a PermissionError and ended failed after
    max_attempts); the other photos go on; once the folder opens, they are protected."""
    config = make_config(tmp_path, max_attempts=1)
    real_photo(config.inbox / "Album" / "first.jpg")
    process = pixcamd_process(config.source, drop_root=True)
    album = config.outbox / "Album"
    try:
        wait_for(lambda: finished(config, ["Album/first.jpg"]), 120, "the first photo")
        os.chmod(album, 0o555)
        real_photo(config.inbox / "Album" / "second.jpg")
        real_photo(config.inbox / "Album" / "third.jpg")
        wait_for(
            lambda: any(e["event"] == "folder_unavailable" for e in events(config)), 60, "said"
        )
        real_photo(config.inbox / "elsewhere.jpg")
        wait_for(lambda: finished(config, ["elsewhere.jpg"]), 120, "a photo outside it")
        rows = ledger_rows(config)
        for name in ("Album/second.jpg", "Album/third.jpg"):
            assert rows[name]["state"] == "queued" and rows[name]["attempts"] == 0, rows[name]
        assert rows["elsewhere.jpg"]["state"] == "done"
        (said,) = [e for e in events(config) if e["event"] == "folder_unavailable"]
        assert str(album) in said["message"] and "the user " in said["message"], said
        assert "give that user write permission" in said["message"]
        assert not [e for e in events(config) if e["event"] in ("retried", "failed")]
        os.chmod(album, 0o755)
        wait_for(
            lambda: finished(config, ["Album/second.jpg", "Album/third.jpg"]), 120, "then done"
        )
        rows = ledger_rows(config)
        assert rows["Album/second.jpg"]["state"] == "done", rows["Album/second.jpg"]
        assert (album / "second.jpg").is_file() and (album / "third.jpg").is_file()
        assert [e["event"] for e in events(config)].count("folder_back") == 1
    finally:
        with contextlib.suppress(FileNotFoundError):  # not made yet: failed before
            os.chmod(album, 0o755)
        out = stopped(process)
    assert process.returncode == 0, out


def test_a_closed_folder_whose_photos_left_the_inbox_forgets_them_and_is_said_back(tmp_path):
    """A photo waiting for a closed folder of the outbox was looked at every 5 s for as long
    as the folder stayed closed, even once it had left the inbox (queued in status, for good)
    — it is forgotten as any photo gone before its turn; and with no photo left to look at the
    folder, the folder itself is looked at: said back once it opens, the log never leaving it
    unavailable."""
    config = make_config(tmp_path)
    real_photo(config.inbox / "Album" / "first.jpg")
    process = pixcamd_process(config.source, drop_root=True)
    album = config.outbox / "Album"
    try:
        wait_for(lambda: finished(config, ["Album/first.jpg"]), 120, "the first photo")
        os.chmod(album, 0o555)
        real_photo(config.inbox / "Album" / "second.jpg")
        wait_for(
            lambda: any(e["event"] == "folder_unavailable" for e in events(config)), 60, "said"
        )
        (config.inbox / "Album" / "second.jpg").unlink()  # no photo waits for it now
        wait_for(lambda: any(e["event"] == "vanished" for e in events(config)), 30, "it forgotten")
        assert "Album/second.jpg" not in ledger_rows(config)
        assert not [e for e in events(config) if e["event"] == "folder_back"]  # still closed
        os.chmod(album, 0o755)
        wait_for(lambda: any(e["event"] == "folder_back" for e in events(config)), 30, "back")
        (back,) = [e for e in events(config) if e["event"] == "folder_back"]
        assert f"{album} can be written again" in back["message"], back
    finally:
        os.chmod(album, 0o755)
        process.terminate()
        out, _ = process.communicate(timeout=60)
    assert process.returncode == 0, out


def test_a_copy_the_user_cannot_read_is_not_replaced_and_said_unreadable(tmp_path):
    """A redone photo whose earlier copy in the outbox this user can no longer read (its
    permissions changed): it cannot be proved to be the copy, so it is left as it is and the
    new copy takes the next name — and the note says it cannot be read (before: that another
    file came under its name, which nobody did)."""
    config = make_config(tmp_path)
    noise_photo(config.inbox / "D3.png", 1)
    process = pixcamd_process(config.source, drop_root=True)
    copy = config.outbox / "D3.jpg"
    try:
        wait_for(lambda: finished(config, ["D3.png"]), 120, "the photo")
        mine = copy.read_bytes()
        os.chmod(copy, 0o000)  # the very copy, closed to the daemon's user
        retry = pixcamd_process(config.source, command=("retry", "D3.png"))
        assert retry.wait(120) == 0, retry.communicate()[0]
        wait_for(lambda: (config.outbox / "D3.png.jpg").is_file(), 120, "the new copy")
        notes = [e["message"] for e in events(config) if e["event"] == "photo_note"]
        (note,) = [n for n in notes if n.startswith("D3.jpg in the outbox")]
        assert "cannot be read by the user " in note and "another file" not in note, note
        assert note.endswith("left as it is — this copy is D3.png.jpg"), note
        # the copy is renamed in before its record is written: wait for the record too
        recorded = lambda: ledger_rows(config)["D3.png"]["output"] == "D3.png.jpg"  # noqa: E731
        wait_for(recorded, 60, "the new copy's record")
    finally:
        if copy.exists():
            os.chmod(copy, 0o644)
        out = stopped(process)
    assert process.returncode == 0, out
    assert copy.read_bytes() == mine  # left as it is


@pytest.mark.parametrize("closed", ["Old", "New"])
def test_a_photo_moved_to_another_album_waits_for_the_folder_its_copy_goes_to(tmp_path, closed):
    """A photo moved from inbox/Old to inbox/New whose copy outbox/Old/x.jpg is no longer its
    own (a file of yours came under that name), protected again: its copy goes to outbox/New, so
    that is the folder it waits for. Before, the wait looked at outbox/Old: with Old closed the
    photo was held for a folder it would not write in, with New closed it was protected again
    every 5 s, failing at each publication."""
    config = make_config(tmp_path)
    real_photo(config.inbox / "Old" / "x.jpg")
    process = pixcamd_process(config.source, drop_root=True)
    try:
        wait_for(lambda: finished(config, ["Old/x.jpg"]), 120, "the photo")
        (config.inbox / "New").mkdir()
        os.rename(config.inbox / "Old" / "x.jpg", config.inbox / "New" / "x.jpg")
        wait_for(lambda: "New/x.jpg" in ledger_rows(config), 60, "the move followed")
        assert ledger_rows(config)["New/x.jpg"]["output"] == "Old/x.jpg"
        (config.outbox / "Old" / "x.jpg").write_bytes(b"a file of yours")
        (config.outbox / "New").mkdir()
        os.chmod(config.outbox / closed, 0o555)
        retry = pixcamd_process(config.source, command=("retry", "New/x.jpg"))
        assert retry.wait(120) == 0, retry.communicate()[0]
        if closed == "Old":
            wait_for(lambda: finished(config, ["New/x.jpg"]), 120, "protected again")
            assert ledger_rows(config)["New/x.jpg"]["output"] == "New/x.jpg"
            assert not [e for e in events(config) if e["event"] == "folder_unavailable"]
        else:
            wait_for(
                lambda: any(e["event"] == "folder_unavailable" for e in events(config)), 120, "said"
            )
            time.sleep(12)  # two looks or more at the closed folder
            row = ledger_rows(config)["New/x.jpg"]
            assert row["state"] == "queued" and row["attempts"] == 0, row
            mine = [e["event"] for e in events(config) if e.get("path") == "New/x.jpg"]
            assert mine.count("started") <= 1, mine
        assert (config.outbox / "Old" / "x.jpg").read_bytes() == b"a file of yours"
    finally:
        with contextlib.suppress(FileNotFoundError):  # not made yet: failed before
            os.chmod(config.outbox / closed, 0o755)
        out = stopped(process)
    assert process.returncode == 0, out


def test_a_second_copy_of_a_photo_waits_for_its_closed_folder_without_notes(tmp_path):
    """The same photo copied into a second album whose outbox folder is closed (and holds a
    file of yours under the copy's name): it waits, said once — before, the twin's look ran
    first every 5 s and said a note about the name each time."""
    config = make_config(tmp_path)
    real_photo(config.inbox / "A" / "x.jpg")
    album = config.outbox / "B"
    process = pixcamd_process(config.source, drop_root=True)
    try:
        wait_for(lambda: finished(config, ["A/x.jpg"]), 120, "the photo")
        album.mkdir()
        (album / "x.jpg").write_bytes(b"a file of yours")
        os.chmod(album, 0o555)
        (config.inbox / "B").mkdir()
        shutil.copy(config.inbox / "A" / "x.jpg", config.inbox / "B" / "x.jpg")
        wait_for(
            lambda: any(e["event"] == "folder_unavailable" for e in events(config)), 120, "said"
        )
        time.sleep(12)
        mine = [e["event"] for e in events(config) if e.get("path") == "B/x.jpg"]
        assert mine.count("photo_note") == 0 and mine.count("folder_unavailable") == 1, mine
        os.chmod(album, 0o755)
        wait_for(lambda: finished(config, ["B/x.jpg"]), 120, "written once open")
        assert (album / "x.jpg").read_bytes() == b"a file of yours"
    finally:
        with contextlib.suppress(FileNotFoundError):  # not made yet: failed before
            os.chmod(album, 0o755)
        out = stopped(process)
    assert process.returncode == 0, out


def test_a_rename_found_while_its_copy_waits_for_a_closed_folder_is_followed(tmp_path):
    """A second copy of a photo waits for its closed folder of the outbox; then the first
    leaves the inbox — it was a move after all: its record and copy follow it at once,
    nothing written, while the folder is still closed (it never writes there)."""
    config = make_config(tmp_path)
    real_photo(config.inbox / "A" / "z.jpg")
    album = config.outbox / "B"
    process = pixcamd_process(config.source, drop_root=True)
    try:
        wait_for(lambda: finished(config, ["A/z.jpg"]), 120, "the photo")
        album.mkdir()
        os.chmod(album, 0o555)
        (config.inbox / "B").mkdir()
        shutil.copy(config.inbox / "A" / "z.jpg", config.inbox / "B" / "z.jpg")
        wait_for(
            lambda: any(e["event"] == "folder_unavailable" for e in events(config)), 120, "said"
        )
        (config.inbox / "A" / "z.jpg").unlink()
        wait_for(
            lambda: ledger_rows(config).get("B/z.jpg", {}).get("state") == "done", 60, "followed"
        )
        assert ledger_rows(config)["B/z.jpg"]["output"] == "A/z.jpg"  # its copy stays put
        (note,) = [e for e in events(config) if e["event"] == "duplicate"]
        assert note["path"] == "B/z.jpg" and "renamed" in note["message"], note
        assert os.listdir(album) == []
    finally:
        with contextlib.suppress(FileNotFoundError):  # not made yet: failed before
            os.chmod(album, 0o755)
        out = stopped(process)
    assert process.returncode == 0, out


def test_a_log_on_dev_stdout_is_written_by_a_user_that_cannot_open_it_again(tmp_path):
    """A container's `log_file = "/dev/stdout"`: its stdout is a pipe the engine (root) made,
    which the daemon's user may not open by name — the JSON lines go to the stdout it has
    (before: "log_unwritable … Permission denied", and no JSON log at all)."""
    import tempfile

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv: the pipe must be another user's")
    root = Path(tempfile.mkdtemp(prefix="pixcamd-stdout-"))  # pytest's tmp_path is root's alone
    try:
        os.chmod(root, 0o755)
        config = make_config(root, log_file="/dev/stdout")
        real_photo(config.inbox / "a.jpg")
        for folder, _, files in os.walk(root):
            for name in [folder, *(os.path.join(folder, f) for f in files)]:
                os.chown(name, 54321, 54321)
        argv = [sys.executable, "-m", "pixcamd", "run", "--config", str(config.source)]
        user = ["setpriv", "--reuid=54321", "--regid=54321", "--clear-groups"]
        env = {**os.environ, "HOME": str(root), "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(
            user + argv,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        _stdout_run(config, process)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _stdout_run(config, process) -> None:
    try:
        wait_for(lambda: finished(config, ["a.jpg"]), 120, "the photo")
    finally:
        out = stopped(process)
    assert process.returncode == 0, out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert {"daemon_started", "protected", "stopped"} <= {e["event"] for e in lines}, out
    assert "log_unwritable" not in out, out


def test_a_folder_above_a_closed_one_closed_too_is_named_and_waited_for(tmp_path):
    """outbox/Trip/Day1 closed to the daemon's user, then outbox/Trip above it too (chmod 000):
    the user can no longer look inside Trip, so Day1 looked absent — before, the worker's look
    at Day1 raised (its thread died: nothing protected until a restart), or Day1 was said "no
    longer there; its photos go on". Trip is named as what it is, the photo waits for both; each
    is said back as it opens."""
    config = make_config(tmp_path, max_attempts=1)
    real_photo(config.inbox / "Trip" / "Day1" / "first.jpg")
    process = pixcamd_process(config.source, drop_root=True)
    trip, day = config.outbox / "Trip", config.outbox / "Trip" / "Day1"

    def said(kind: str) -> list[dict]:
        return [e for e in events(config) if e["event"] == kind]

    try:
        wait_for(lambda: finished(config, ["Trip/Day1/first.jpg"]), 120, "the first photo")
        os.chmod(day, 0o555)
        real_photo(config.inbox / "Trip" / "Day1" / "second.jpg")
        wait_for(lambda: said("folder_unavailable"), 60, "Day1 said closed")
        os.chmod(trip, 0o000)
        wait_for(lambda: len(said("folder_unavailable")) == 2, 60, "Trip said closed")
        closed = said("folder_unavailable")[1]
        assert closed["folder"] == str(trip), closed
        assert "cannot enter this folder" in closed["message"], closed
        assert "permission to enter it" in closed["message"], closed
        real_photo(config.inbox / "elsewhere.jpg")  # the worker goes on with the others
        wait_for(lambda: finished(config, ["elsewhere.jpg"]), 120, "a photo outside it")
        assert not said("folder_back"), said("folder_back")  # neither is open
        row = ledger_rows(config)["Trip/Day1/second.jpg"]
        assert row["state"] == "queued" and row["attempts"] == 0, row
        os.chmod(trip, 0o755)
        wait_for(lambda: said("folder_back"), 60, "Trip said open")
        (back,) = said("folder_back")
        assert back["message"] == f"{trip} can be entered again; its photos go on", back
        os.chmod(day, 0o755)
        wait_for(lambda: finished(config, ["Trip/Day1/second.jpg"]), 120, "then done")
        assert ledger_rows(config)["Trip/Day1/second.jpg"]["state"] == "done"
        assert [e["message"] for e in said("folder_back")][1:] == [
            f"{day} can be written again; its photos go on"
        ]
        assert not said("failed") and not said("retried")
    finally:
        with contextlib.suppress(FileNotFoundError):  # not made yet: failed before
            os.chmod(trip, 0o755)
            os.chmod(day, 0o755)
        out = stopped(process)
    assert process.returncode == 0, out


def test_status_on_a_state_dir_closed_to_this_user_says_so_not_that_none_ran(tmp_path):
    """A server's state dir is its service's, 0700: an admin's `pixcamd status` was told "the
    daemon has not run with this state dir yet" — a missing file, by its test."""
    config = make_config(tmp_path)
    config.state_dir.mkdir()
    (config.state_dir / "ledger.sqlite3").write_bytes(b"")
    os.chmod(config.state_dir, 0o000)
    try:
        process = pixcamd_process(config.source, command=("status",), drop_root=True)
        out, _ = process.communicate(timeout=120)
    finally:
        os.chmod(config.state_dir, 0o700)
    assert process.returncode == 2, out
    assert f"{config.state_dir}: the user " in out and "cannot look into this state dir" in out
    assert "has not run" not in out
    (config.state_dir / "ledger.sqlite3").unlink()  # and none there: the words it had
    process = pixcamd_process(config.source, command=("status",), drop_root=True)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 2 and "the daemon has not run with this state dir yet" in out
