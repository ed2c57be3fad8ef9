"""The web page against requests a person or another program may send by mistake or on
purpose, over real HTTP on 127.0.0.1 against a ledger the real daemon made: odd numbers,
large or foreign forms, hand-made URLs, tokens beyond ASCII, and names the ledger holds."""

from __future__ import annotations

import base64
import json
import os
import socket
import sqlite3
import stat
from urllib.parse import urlsplit

import pytest
from test_daemon_support import no_leaked_threads  # noqa: F401
from web_support import Client, cli, events, ids, rows, secret, serving

from pixcamd.web.app import DONE

HUGE = "9" * 20  # beyond SQLite's 2**63 - 1


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/photos?page=%C2%B2", 400),  # "²": str.isdigit() says yes, int() says no
        ("/photos?page=%D9%A1", 400),  # an Arabic-Indic one
        ("/photos?page=0", 400),
        (f"/photos?page={HUGE}", 400),
        (f"/photos/{HUGE}", 404),
        (f"/photos/{HUGE}/copy.jpg", 404),
        (f"/photos/{HUGE}/original.png", 404),
    ],
)
def test_odd_numbers_are_refused_never_a_server_error(world, path, status):
    with serving(world) as server:
        web = Client(server.url)
        assert web.get(path)[0] == status, path
        assert web.post(f"/photos/{HUGE}/retry", "csrf=" + secret(world))[0] == 404
        assert web.get("/photos?page=1")[0] == 200


def send_raw(url: str, head: str, rest: bytes = b"") -> bytes:
    """A request written by hand: ``head`` (its header lines), then ``rest`` as bytes —
    headers beyond Latin-1, or less body than its headers promise."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=20) as sock:
        sock.sendall(head.encode() + rest)
        return sock.recv(4096)


@pytest.mark.parametrize(
    ("origin", "answer"), [("", b"413"), ("Origin: http://evil.example\r\n", b"403")]
)
def test_a_large_or_foreign_form_is_refused_before_it_is_read(world, origin, answer):
    """A 300-MB upload is refused by its headers: the page neither waits for nor holds it
    (before, it read the whole body into the daemon's memory first)."""
    before = rows(world)
    with serving(world) as server:
        head = (
            f"POST /photos/{ids(world)['held.jpg']}/retry HTTP/1.1\r\n"
            f"Host: 127.0.0.1\r\n{origin}"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            "Content-Length: 300000000\r\n"
        )
        reply = send_raw(server.url, head, b"\r\ncsrf=" + secret(world).encode())
    assert reply.split(b"\r\n")[0].split()[1] == answer, reply[:200]
    assert rows(world) == before


def test_a_done_notice_comes_only_from_an_action_just_done(world):
    held = ids(world)["held.jpg"]
    with serving(world) as server:
        web = Client(server.url)
        for kind in DONE:  # a hand-made or bookmarked URL claims nothing
            status, _, page = web.get(f"/photos/{held}?done={kind}")
            assert status == 200 and b'id="done"' not in page, kind
        status, headers, _ = web.post(f"/photos/{held}/retry", "csrf=" + secret(world))
        assert status == 303
        assert DONE["retry"].encode() in web.get(headers["location"])[2]
        assert b'id="done"' not in web.get(headers["location"])[2]
    assert rows(world)["held.jpg"]["state"] == "queued"


def test_a_token_beyond_ascii_works_as_bearer_and_as_basic(world):
    token = "pässwort ✓"
    config = world.replace(web_token=token)
    with serving(config) as server:
        web = Client(server.url)

        def status(authorization: bytes) -> int:  # raw bytes: http.client sends Latin-1
            head = "GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            reply = send_raw(server.url, head, b"Authorization: " + authorization + b"\r\n\r\n")
            return int(reply.split()[1])

        assert status(b"Bearer " + token.encode()) == 200  # the UTF-8 a client sends
        basic = base64.b64encode(b"me:" + token.encode())
        assert status(b"Basic " + basic) == 200
        assert status(b"Bearer p\xe4sswort \xe2\x9c\x93x") == 401
        assert status(b"Basic \xc3\xa9t\xc3\xa9") == 401  # not base64 at all: refused, no 500
        assert web.get("/api/status")[0] == 401


def test_a_retry_from_the_page_takes_the_ledger_s_name_as_it_is(world):
    """An inbox folder may be called "~": the page's retry asks by the row, never by a path
    that could be expanded to the home folder."""
    (world.inbox / "~").mkdir()
    (world.inbox / "held.jpg").rename(world.inbox / "~" / "held.jpg")
    db = sqlite3.connect(world.ledger_path)
    with db:
        db.execute("UPDATE photos SET path = '~/held.jpg' WHERE path = 'held.jpg'")
    db.close()
    with serving(world) as server:
        web = Client(server.url)
        pid = ids(world)["~/held.jpg"]
        status, headers, _ = web.post(f"/photos/{pid}/retry", "csrf=" + secret(world))
        assert status == 303 and DONE["retry"].encode() in web.get(headers["location"])[2]
    assert rows(world)["~/held.jpg"]["state"] == "queued"


def test_a_retry_of_a_photo_queued_meanwhile_is_no_refusal_on_the_page_as_in_the_cli(world, capsys):
    """A page made before the photo was queued afresh (put back into the inbox, retried from a
    shell): its Retry says the photo is already queued and will be protected — the CLI's exit 0
    —, changing nothing; Retry stronger of it, queued with the ordinary budget, is refused, as
    the CLI's exit 1."""
    assert cli(capsys, world, "retry", "held.jpg")[0] == 0
    queued = rows(world)
    assert queued["held.jpg"]["state"] == "queued" and queued["held.jpg"]["attempts"] == 0
    held = ids(world)["held.jpg"]
    with serving(world) as server:
        web = Client(server.url)
        status, headers, _ = web.post(f"/photos/{held}/retry", "csrf=" + secret(world))
        assert status == 303 and "?done=" in headers["location"], headers
        page = web.get(headers["location"])[2]
        assert DONE["queued"].encode() in page and b'id="problem"' not in page
        status, headers, _ = web.post(f"/photos/{held}/stronger", "csrf=" + secret(world))
        assert status == 303 and "?refused=" in headers["location"], headers
        assert b"ordinary budget" in web.get(headers["location"])[2]
        status, _, body = web.post(
            f"/photos/{held}/stronger", "", **{"x-csrf-token": secret(world)}
        )
        assert status == 409 and b"already queued" in body  # a script: the reason as text
        status, _, body = web.post(f"/photos/{held}/retry", "", **{"x-csrf-token": secret(world)})
        assert (status, body) == (200, f"{DONE['queued']}\n".encode())  # and what was done
    assert rows(world) == queued and len(events(world, "retry")) == 1  # the shell's alone
    assert cli(capsys, world, "retry", "held.jpg")[0] == 0
    code, said = cli(capsys, world, "retry", "--stronger", "held.jpg")
    assert code == 1 and "ordinary budget" in said
    assert rows(world) == queued


def test_a_script_is_told_what_was_done_as_text(world):
    """The secret in a header (a script, not the page's form): what was done is the answer
    itself, as a refusal is — not a redirect to a page only a browser reads."""
    held = ids(world)["held.jpg"]
    with serving(world) as server:
        web = Client(server.url)
        status, _, body = web.post(f"/photos/{held}/retry", "", **{"x-csrf-token": secret(world)})
    assert (status, body) == (200, f"{DONE['retry']}\n".encode())
    assert rows(world)["held.jpg"]["state"] == "queued" and len(events(world, "retry")) == 1


def test_ship_after_the_copy_was_taken_back_says_so(world, capsys):
    assert cli(capsys, world, "ship", "held.jpg")[0] == 0
    assert cli(capsys, world, "remove", "held.jpg")[0] == 0
    code, said = cli(capsys, world, "ship", "held.jpg")
    assert code == 1 and "taken back out of the outbox by your decision" in said, said
    assert "hold_dir was not set" not in said
    assert "retry it to make a new one" in said


def test_ship_leaves_a_file_in_the_outbox_no_photo_wrote(world, capsys):
    (world.outbox / "held.jpg").write_bytes(b"the user's own file")
    code, said = cli(capsys, world, "ship", "held.jpg")
    assert code == 0, said
    assert (world.outbox / "held.jpg").read_bytes() == b"the user's own file"
    assert rows(world)["held.jpg"]["output"] == "held.jpg.jpg"
    assert (world.outbox / "held.jpg.jpg").read_bytes()[:2] == b"\xff\xd8"


@pytest.mark.parametrize("held_mode", [0o640, 0o600], ids=["0640", "0600"])
def test_a_copy_shipped_from_a_shell_keeps_the_daemon_s_permissions(world, capsys, held_mode):
    """The held copy carries the permissions the daemon's umask gave it (a service's
    UMask=0027: 0640); shipped from a shell whose umask is 022 it must not become 0644."""
    held = rows(world)["held.jpg"]["held"]
    os.chmod(held, held_mode)  # as a daemon with another umask than this shell's wrote it
    before = os.umask(0o022)
    try:
        code, said = cli(capsys, world, "ship", "held.jpg")
    finally:
        os.umask(before)
    assert code == 0, said
    shipped = world.outbox / rows(world)["held.jpg"]["output"]
    assert stat.S_IMODE(shipped.stat().st_mode) == held_mode


def test_the_photo_page_says_what_it_shows(world):
    pid = ids(world)
    with serving(world) as server:
        web = Client(server.url)
        page = web.get(f"/photos/{pid['held.jpg']}")[2].decode()
        # the report's largest change is before the JPEG; the difference image is after it
        assert "largest change added" in page and "before the copy's JPEG encoding" in page
        assert "the change pixcamd added and the copy's JPEG encoding together" in page
        failed = web.get(f"/photos/{pid['bad.jpg']}")[2].decode()
    assert 'id="failed-original"' in failed and "cannot be decoded shows no image" in failed


def test_the_dashboard_says_a_refused_start_and_weights_installed_since_a_fallback(world):
    """What `pixcamd status` says of them, the page says too: not the older stop, nor the
    fallback's advice to install weights that are there now."""
    import time

    from pixcamd.daemon.ledger import Ledger

    weights = world.state_dir / "KonCept512.pth"
    weights.write_bytes(b"weights")  # where the daemon said it looked
    ledger = Ledger(world.ledger_path)
    ledger.set_daemon(model_fallback=True, model_note="install them", weights_file=str(weights))
    why = "weights: cannot read it (Permission denied)"
    ledger.add_event(time.time() + 1, "error", "start_refused", None, {"message": why})
    ledger.close()
    with serving(world) as server:
        page = Client(server.url).get("/")[2].decode()
    assert "weights were installed since; the daemon uses them after its next start" in page
    assert "install them" not in page
    assert f"was refused: {why}" in page, page


def test_the_dashboard_says_a_daemon_ended_without_stopping_and_its_photo(world):
    import time

    from test_daemon_support import dead_pid

    from pixcamd.daemon.ledger import Ledger

    ledger = Ledger(world.ledger_path)
    # a kill -9 of a daemon running since its start (which forgot the last stop asked)
    ledger.set_daemon(pid=dead_pid(), stopped_at=None, stop_asked_at=None)
    ledger.claim(ids(world)["held.jpg"])  # in flight when it was killed
    ledger.close()
    with serving(world) as server:
        web = Client(server.url)
        page = web.get("/")[2].decode()
        status = json.loads(web.get("/api/status")[2])
    assert "it ended without stopping" in page and "interrupted: <b>held.jpg</b>" in page
    assert status["ended_unexpectedly"] and status["current"] == []
    assert [c["path"] for c in status["interrupted"]] == ["held.jpg"]
    # killed while it stopped (a container engine's SIGKILL after its stop timeout): said so
    ledger = Ledger(world.ledger_path)
    ledger.set_daemon(stop_asked_at=time.time() - 1)  # after its start: its own stop
    ledger.close()
    with serving(world) as server:
        page = Client(server.url).get("/")[2].decode()
    assert "a stop was asked at " in page and "killed before it ended" in page, page
    assert "ended without stopping" not in page
