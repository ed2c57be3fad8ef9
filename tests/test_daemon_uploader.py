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
