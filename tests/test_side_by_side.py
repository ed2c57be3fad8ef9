"""Commands run in other shells beside the daemon on one config, its ledger and its outbox:
what each says when the photo it names is the worker's, or another process holds the ledger."""

from __future__ import annotations

import contextlib
import sqlite3

from test_daemon_support import no_leaked_threads  # noqa: F401
from web_support import Client, cli, ids, rows, secret, serving


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
