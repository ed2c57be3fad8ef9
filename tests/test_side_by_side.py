"""Commands run in other shells beside the daemon on one config, its ledger and its outbox:
what each says when the photo it names is the worker's, or another process holds the ledger."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import sqlite3

import pytest
from test_daemon_support import (  # noqa: F401
    make_config,
    no_leaked_threads,
    one_torch_thread,
    pixcamd_process,
    real_photo,
    running,
    wait_for,
)
from web_support import Client, cli, ids, rows, secret, serving

from pixcamd.errors import PixcamdError


def test_remove_of_a_queued_photo_says_it_waits_its_turn(world, capsys):
    """Before: "it is being protected, or decided on, right now; try again after" — the
    sentence cut short, and the photo only waiting in the queue."""
    assert cli(capsys, world, "retry", "noise.jpg")[0] == 0  # no daemon runs: it stays queued
    code, said = cli(capsys, world, "remove", "noise.jpg")
    assert code == 1, said
    assert "noise.jpg: it is queued to be protected again" in said, said
    assert "its copy noise.jpg is replaced once that is done: remove it then" in said, said
    assert "being protected right now" not in said and "try again after\n" not in said, said
    with serving(world) as server:  # the page's Remove button, the same words
        status, _, body = Client(server.url).request(
            "POST",
            f"/photos/{ids(world)['noise.jpg']}/remove",
            b"",
            {"x-csrf-token": secret(world)},
        )
    assert status == 409 and b"queued to be protected again" in body, body
    assert rows(world)["noise.jpg"]["state"] == "queued"
    assert (world.outbox / "noise.jpg").is_file()


@contextlib.contextmanager
def ledger_held(config):
    """Another process's write transaction on the ledger, kept open (a `sqlite3` shell's
    BEGIN, a long `retry` of a whole library): every other writer waits, then is refused."""
    db = sqlite3.connect(config.ledger_path, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        yield
    finally:
        db.close()


def test_a_ledger_another_process_holds_is_said_in_words_never_a_traceback(world, capsys):
    """Before: `pixcamd retry` and `remove` ended in SQLite's traceback (database is locked),
    and the page's buttons answered 500 Internal Server Error."""
    before = rows(world)
    with ledger_held(world):
        for argv in (["retry", "held.jpg"], ["remove", "noise.jpg"]):
            code, said = cli(capsys, world, *argv)
            assert code == 2, (argv, said)
            assert "the ledger is locked by another process" in said, (argv, said)
            assert "run this again once it has let go" in said, (argv, said)
    # the page as the daemon's: open before the ledger was taken
    with serving(world) as server, ledger_held(world):
        status, _, body = Client(server.url).request(
            "POST",
            f"/photos/{ids(world)['held.jpg']}/retry",
            b"",
            {"x-csrf-token": secret(world)},
        )
    assert status == 409 and b"the ledger is locked by another process" in body, (status, body)
    assert rows(world) == before
    assert (world.outbox / "noise.jpg").is_file()


def test_a_second_run_of_the_same_config_is_told_it_already_runs(tmp_path, brisque):
    """Before: "another pixcamd daemon (pid N) is using the state dir …; a second config
    needs a state_dir of its own" — for the one config the user has, its unit running while
    they typed `pixcamd run` as the README says."""
    config = make_config(tmp_path / "one")
    other = make_config(tmp_path / "two", state_dir=str(config.state_dir))
    with running(config, [brisque]):
        wait_for(lambda: daemon_facts(config).get("outbox"), 60, "the daemon's record")
        said = {}
        for name, toml in (("same", config.source), ("other", other.source)):
            proc = pixcamd_process(toml)
            said[name] = proc.communicate(timeout=120)[0]
            assert proc.returncode == 2, said[name]
    assert "Traceback" not in said["same"] + said["other"]
    assert "pixcamd: error: pixcamd already runs this config (pid " in said["same"], said
    assert f"`pixcamd status --config {config.source}` shows what it does" in said["same"], said
    assert "a second config needs" not in said["same"], said
    assert "a second config needs a state_dir of its own" in said["other"], said
    assert "already runs this config" not in said["other"], said


def daemon_facts(config) -> dict:
    db = sqlite3.connect(f"file:{config.ledger_path}?mode=ro", uri=True)
    try:
        return {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM daemon")}
    except sqlite3.Error:  # not made yet
        return {}
    finally:
        db.close()


def test_pixcamd_web_beside_the_daemon_on_its_address_points_to_its_page(tmp_path, brisque):
    """Before: "the port is in use (another program, or another pixcamd); give this command
    another address" — the daemon of this very config serving its page there."""
    with socket.socket() as probe:  # a free port for the daemon's page
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = make_config(tmp_path, web=f"127.0.0.1:{port}")
    with running(config, [brisque]):
        wait_for(lambda: daemon_facts(config).get("outbox"), 60, "the daemon's record")
        wait_for(lambda: listening(port), 60, "the daemon's page")
        proc = pixcamd_process(config.source, command=("web",))
        said = proc.communicate(timeout=120)[0]
    assert proc.returncode == 2, said
    assert f"web: 127.0.0.1:{port} is in use: `pixcamd run` (pid {os.getpid()}) runs" in said
    assert f"serves its page there — open http://127.0.0.1:{port}/" in said, said
    assert "another program" not in said, said


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_the_daemon_does_not_start_on_an_outbox_a_folder_run_writes_into(tmp_path, brisque):
    """`protect --outdir` into a running daemon's outbox is refused; before, the other way
    round was not: the daemon started there, and each shipped a copy of the same photos."""
    config = make_config(tmp_path)
    photo = real_photo(tmp_path / "elsewhere" / "a.jpg")
    argv = ("protect", str(photo), "--outdir", str(config.outbox), "--model", "brisque")
    folder_run = pixcamd_process(config.source, command=argv)
    try:
        wait_for(lambda: run_lock_held(config.outbox), 120, "the folder run's lock")
        os.kill(folder_run.pid, signal.SIGSTOP)  # mid-run, however fast this machine is
        with pytest.raises(PixcamdError) as refused, running(config, [brisque]):
            pass
    finally:
        folder_run.kill()
        folder_run.communicate()
    said = str(refused.value)
    assert f"another pixcamd protect (pid {folder_run.pid}) is writing its copies into" in said
    assert f"the outbox {config.outbox} now (--outdir)" in said, said
    assert not (config.outbox / "a.jpg").exists()
    with running(config, [brisque]):  # once it has ended: the daemon starts
        pass


def run_lock_held(outdir) -> bool:
    try:
        fd = os.open(outdir / ".pixcamd" / "run.lock", os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
