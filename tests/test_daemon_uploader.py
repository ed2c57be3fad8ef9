"""The outbox as an upload script watches it (``inotifywait -e close_write,moved_to``, the
usual pattern, since a file announced by its creation may not be written yet): every copy
arrives by a move, complete — a first copy, a copy redone under its own name, and a photo
shipped unchanged (already low quality). Before, a first copy took its name by a hard link:
such scripts never saw it."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
from test_daemon_support import events as log_events
from test_daemon_support import (
    finished,
    make_config,
    no_leaked_threads,  # noqa: F401
    noise_photo,
    real_photo,
    running,
    wait_for,
)

from pixcamd.cli import main


def watching(folder):
    """``inotifywait -m`` on ``folder``, ready (its watches established) when returned."""
    if shutil.which("inotifywait") is None:
        pytest.skip("inotifywait (inotify-tools) is not installed; .ci/run installs it")
    events = "create,close_write,moved_to"
    watcher = subprocess.Popen(
        ["inotifywait", "-m", "-r", "-e", events, "--format", "%e %w%f", str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in watcher.stderr:  # "Setting up watches." then "Watches established."
        if "established" in line:
            return watcher
    raise AssertionError("inotifywait did not start")


def seen(watcher) -> list[str]:
    time.sleep(0.5)  # the last events on their way
    watcher.terminate()
    out, _ = watcher.communicate(timeout=10)
    return out.splitlines()


def test_every_copy_arrives_in_the_outbox_by_a_move(tmp_path, brisque, capsys):
    config = make_config(tmp_path, max_attempts=1)
    config.outbox.mkdir()
    real_photo(config.inbox / "a.jpg")
    noise_photo(config.inbox / "b.png", 1)  # already low: shipped unchanged, its own copy
    watcher = watching(config.outbox)
    try:
        with running(config, [brisque]):
            wait_for(lambda: finished(config, ["a.jpg", "b.png"]), 120, "both photos")
            code = main(["retry", "--config", str(config.source), "a.jpg"])
            assert code == 0, capsys.readouterr()
            time.sleep(0.5)
            wait_for(lambda: finished(config, ["a.jpg"]), 120, "the retry")
    finally:
        events = seen(watcher)
    a, b = str(config.outbox / "a.jpg"), str(config.outbox / "b.jpg")
    # the retry's copy replaces the first by a rename: a move again
    assert sorted(events) == [f"MOVED_TO {a}", f"MOVED_TO {a}", f"MOVED_TO {b}"], events


def test_a_file_of_yours_in_the_outbox_is_never_replaced_whatever_its_case(
    tmp_path, brisque, capsys
):
    """A file no copy of this photo is: one of yours that a case-insensitive filesystem (or a
    sync tool) takes for the copy's name, and one put under a copy's name after the uploader
    took the copy. Both stay as they are; the copy takes the next name, and the log says so
    (before: the first stood beside the copy as one file to a Mac, the second was replaced)."""
    config = make_config(tmp_path)
    config.outbox.mkdir()
    (config.outbox / "mine.JPG").write_bytes(b"my own file")
    (config.outbox / "Album").mkdir()  # and a folder's name in another case too
    (config.outbox / "Album" / "pic.jpg").write_bytes(b"mine as well")
    real_photo(config.inbox / "MINE.jpg")
    noise_photo(config.inbox / "album" / "PIC.jpg", 2)
    noise_photo(config.inbox / "D3.png", 1)
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["MINE.jpg", "D3.png", "album/PIC.jpg"]), 120, "all")
        assert (config.outbox / "album" / "PIC.jpg.jpg").is_file()
        assert not (config.outbox / "album" / "PIC.jpg").exists()
        assert (config.outbox / "mine.JPG").read_bytes() == b"my own file"
        assert not (config.outbox / "MINE.jpg").exists()
        assert (config.outbox / "MINE.jpg.jpg").is_file()
        # the uploader took D3's copy; a file of yours came under its name
        (config.outbox / "D3.jpg").write_bytes(b"another file of mine")
        assert main(["retry", "--config", str(config.source), "D3.png"]) == 0
        wait_for(lambda: finished(config, ["D3.png"]), 120, "the retry")
        wait_for(lambda: (config.outbox / "D3.png.jpg").is_file(), 60, "the new copy")
    assert (config.outbox / "D3.jpg").read_bytes() == b"another file of mine"
    notes = [e["message"] for e in log_events(config) if e["event"] == "photo_note"]
    assert any("MINE.jpg in the outbox is a file no photo's record wrote" in n for n in notes)
    assert any("D3.jpg in the outbox is no longer the copy" in n for n in notes), notes


def test_a_photo_held_back_without_hold_dir_is_not_told_to_ship(tmp_path, brisque, capsys):
    """No copy kept (``hold_dir`` unset): the log and `status` do not suggest `pixcamd ship`,
    which would refuse, but say how to keep one."""
    config = make_config(tmp_path, epsilon=0.5, epsilon_cap=0.5, steps=2)
    real_photo(config.inbox / "a.jpg")
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["a.jpg"]), 120, "the photo")
    (held,) = [e for e in log_events(config) if e["event"] == "unprotected"]
    assert "`pixcamd retry --stronger a.jpg` tries a larger budget" in held["message"]
    assert "set hold_dir to keep the best attempt" in held["message"]
    assert "pixcamd ship a.jpg" not in held["message"]
    assert main(["status", "--config", str(config.source)]) == 0
    out = capsys.readouterr().out
    assert "  held back: `pixcamd retry --stronger PATH` tries a larger budget, set hold_dir" in out
