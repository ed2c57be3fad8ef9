"""Commands run in other shells beside the daemon on one config, its ledger and its outbox:
what each says when the photo it names is the worker's, or another process holds the ledger."""

from __future__ import annotations

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
