"""The web page over real HTTP on 127.0.0.1, against a ledger the real daemon made: every
route, every refusal (CSRF, methods, path tricks, Host, token), and the actions changing the
ledger exactly as the CLI does."""

from __future__ import annotations

import base64
import contextlib
import errno
import io
import json
import os
import shutil
import socket
import sqlite3
import stat
from pathlib import Path

import piexif
import pytest
from PIL import Image
from test_daemon_support import events as log_events
from test_daemon_support import (  # noqa: F401
    finished,
    no_leaked_threads,
    one_torch_thread,
    real_photo,
    running,
    wait_for,
)
from web_support import (
    Client,
    cli,
    copy_world,
    events,
    ids,
    rows,
    secret,
    serving,
    world_config,
)

import pixcamd.daemon.publication as publication
from pixcamd.cli import main
from pixcamd.report import score_text
from pixcamd.web.app import DONE


def image(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def test_every_page_and_image_is_served(world):
    pid = ids(world)
    with serving(world) as server:
        web = Client(server.url)
        status, headers, body = web.get("/")
        assert status == 200 and b"Recent events" in body and b"brisque" in body
        assert headers["cache-control"] == "no-store"
        assert "default-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert secret(world).encode() in body  # embedded for the page's forms

        status, _, body = web.get("/api/status")
        data = json.loads(body)
        assert status == 200 and data["counts"]["done"] == 1 and data["counts"]["failed"] == 1
        assert data["counts"]["unprotected"] == 1 and data["daemon"] == "stopped"
        assert [e["event"] for e in data["events"]][-1] == "stopped"

        status, _, body = web.get("/photos")
        assert status == 200 and all(name.encode() in body for name in pid)
        assert body.count(b" \xc2\xb7 worst task center ") == 2  # the two judged; bad.jpg not
        status, _, body = web.get("/photos?verdict=failed")
        assert b"bad.jpg" in body and b"held.jpg" not in body
        status, _, body = web.get("/photos?verdict=unprotected")
        assert b"held.jpg" in body and b"noise.jpg" not in body
        status, _, body = web.get("/photos?verdict=protected")
        assert b"noise.jpg" in body and b"bad.jpg" not in body
        for bad in ("/photos?verdict=nice", "/photos?page=0", "/photos?page=x"):
            status, _, body = web.get(bad)
            assert status == 400 and b"unknown filter" in body, bad

        held = pid["held.jpg"]
        status, _, body = web.get(f"/photos/{held}")
        page = body.decode()
        assert status == 200 and "NOT protected, held back" in page
        assert 'id="scores"' in page and "<td>task</td><td>center</td>" in page
        assert "EXIF GPS position removed" in page  # what the kept copy no longer carries
        assert 'id="ship"' in page and 'id="remove"' not in page
        report = json.loads(rows(world)["held.jpg"]["report"])
        worst = report["worst"]  # what decides the verdict, named
        named = f"{worst['pipeline']} {worst['view']} {score_text(worst['score'])} (brisque)"
        assert f'<dd id="worst">{named}' in page, page
        assert f'<dd id="steps">{report["steps"]}</dd>' in page
        original = image(web.get(f"/photos/{held}/original.png")[2])
        copy = image(web.get(f"/photos/{held}/copy.jpg")[2])  # the held copy
        assert original.format == "PNG" and copy.format == "JPEG"
        assert original.size == copy.size == (640, 480)
        diff = image(web.get(f"/photos/{held}/diff.png")[2])
        assert diff.size == original.size and diff.mode == "RGB"
        import numpy as np

        changed = np.abs(np.asarray(original, np.int16) - np.asarray(copy.convert("RGB")))
        assert (np.asarray(diff) == np.minimum(changed * 16, 255)).all()  # ×16, pixel-true
        thumb = image(web.get(f"/photos/{held}/thumb.jpg")[2])
        assert max(thumb.size) == 320

        noise = pid["noise.jpg"]
        status, _, body = web.get(f"/photos/{noise}")
        assert b"already low quality" in body and b'id="remove"' in body
        assert b'id="ship"' not in body and b"nothing removed or changed" in body

        bad = pid["bad.jpg"]
        status, _, body = web.get(f"/photos/{bad}")
        assert status == 200 and b"failed" in body and b"damaged JPEG" in body
        assert b"no copy was made" in body and b"not recorded" not in body
        assert b'id="retry"' in body and b'id="stronger"' not in body  # no budget fixes a file
        assert web.get(f"/photos/{bad}/copy.jpg")[0] == 404  # it has none
        assert web.get(f"/photos/{bad}/original.png")[0] == 422  # not a photo: said so
        status, headers, _ = web.get("/static/pixcamd.css")
        assert status == 200 and headers["content-type"].startswith("text/css")
        assert web.get("/static/dashboard.js")[0] == 200
    assert list((world.state_dir / "web-cache").iterdir())  # made on demand, in the state dir


def test_the_dashboard_is_loud_about_the_brisque_fallback(world):
    from pixcamd.daemon.ledger import Ledger

    ledger = Ledger(world.ledger_path)
    ledger.set_daemon(model_fallback=True, model_note="model auto → BRISQUE (embedded): …")
    ledger.close()
    with serving(world) as server:
        body = Client(server.url).get("/")[2].decode()
    assert "MODEL FALLBACK" in body and "model auto → BRISQUE (embedded)" in body
    assert 'id="fallback" hidden' not in body


def test_old_reports_say_metadata_was_not_recorded(world):
    import sqlite3

    db = sqlite3.connect(world.ledger_path)
    with db:
        (text,) = db.execute("SELECT report FROM photos WHERE path = 'noise.jpg'").fetchone()
        report = json.loads(text)
        del report["metadata_notes"]
        db.execute("UPDATE photos SET report = ? WHERE path='noise.jpg'", (json.dumps(report),))
    db.close()
    with serving(world) as server:
        body = Client(server.url).get(f"/photos/{ids(world)['noise.jpg']}")[2]
    assert b"not recorded" in body


def test_a_record_from_before_platform_pipelines_is_shown_not_a_server_error(world):
    """Rows a daemon wrote before platform pipelines (2026-12-01) hold model → view scores,
    judged after the task's JPEG-90 alone: shown under `task`, never a 500."""
    import sqlite3

    path = "noise.jpg"
    with contextlib.closing(sqlite3.connect(world.ledger_path)) as db, db:
        report, scores = db.execute(
            "SELECT report, scores FROM photos WHERE path = ?", (path,)
        ).fetchone()
        report, scores = json.loads(report), json.loads(scores)
        for key in ("before", "after_jpeg"):
            report[key] = report[key]["task"]  # as the old daemon kept them
        scores = {"file": scores["file"]["task"]} if scores.get("file") else scores
        db.execute(
            "UPDATE photos SET report = ?, scores = ? WHERE path = ?",
            (json.dumps(report), json.dumps(scores), path),
        )
    with serving(world) as server:
        status, _, body = Client(server.url).get(f"/photos/{ids(world)[path]}")
    assert status == 200, body[:300]
    assert b"task" in body and b"center" in body


def test_the_page_says_what_the_decoder_changed_in_the_input(world):
    import sqlite3

    note = "transparent areas composited onto white (JPEG has no transparency)"
    db = sqlite3.connect(world.ledger_path)
    with db:
        (text,) = db.execute("SELECT report FROM photos WHERE path = 'noise.jpg'").fetchone()
        report = json.loads(text)
        report["warnings"] = [note]
        db.execute("UPDATE photos SET report = ? WHERE path='noise.jpg'", (json.dumps(report),))
    db.close()
    with serving(world) as server:
        body = Client(server.url).get(f"/photos/{ids(world)['noise.jpg']}")[2].decode()
    assert 'id="warnings"' in body and note in body


@pytest.mark.parametrize(
    "path",
    [
        "/photos/1/../../../etc/passwd",
        "/static/../../pyproject.toml",
        "/static/..%2f..%2fpyproject.toml",
        "/static/%2e%2e/%2e%2e/pyproject.toml",
        "/photos/1%2fcopy.jpg",
        "/photos/1/copy.jpg%00",
        "/static\\..\\pixcamd.css",
        "/photos/999",
        "/photos/999/copy.jpg",
        "/photos/999/original.png",
        "/photos/abc",
        "/photos/-1",
        "/etc/passwd",
        "/static/nothere.css",
    ],
)
def test_path_tricks_and_unknown_ids_are_404(world, path):
    with serving(world) as server:
        status, _, body = Client(server.url).get(path)
        assert status == 404, (path, body)
        assert b"root:" not in body and b"[project]" not in body
        status, headers, page = Client(server.url).get(path, accept="text/html,*/*;q=0.8")
    assert status == 404
    if any(trick in path for trick in ("..", "%", "\\")):
        return  # refused before any route: a bare status
    assert headers["content-type"].startswith("text/html"), path
    assert b'href="/photos"' in page  # a browser gets a page with a way back
    known = path.startswith("/photos/999")  # a photo's number, of no photo
    assert (b"No such photo" if known else b"No such page") in page


def test_symlinks_out_of_the_folders_are_never_followed(world, tmp_path):
    secret_file = tmp_path / "private.jpg"
    real_photo(secret_file, seed=9)
    pid = ids(world)
    shipped = world.outbox / rows(world)["noise.jpg"]["output"]
    shipped.unlink()
    shipped.symlink_to(secret_file)  # the outbox copy now points out of the outbox
    original = world.inbox / "held.jpg"
    original.unlink()
    original.symlink_to(secret_file)
    with serving(world) as server:
        web = Client(server.url)
        assert web.get(f"/photos/{pid['noise.jpg']}/copy.jpg")[0] == 404
        status, _, page = web.get(f"/photos/{pid['noise.jpg']}/copy.jpg", accept="text/html")
        assert status == 404 and b"This photo has no such image now" in page  # a tab opened
        assert web.get(f"/photos/{pid['held.jpg']}/original.png")[0] == 404
        assert web.get(f"/photos/{pid['held.jpg']}/diff.png")[0] == 404
        assert web.get(f"/photos/{pid['held.jpg']}/copy.jpg")[0] == 200  # in the hold folder
        status, _, body = web.get(f"/photos/{pid['held.jpg']}")
        assert status == 200 and b"no longer in the inbox" in body


def test_actions_need_post_and_the_secret(world):
    before = rows(world)
    held = ids(world)["held.jpg"]
    with serving(world) as server:
        web = Client(server.url)
        for kind in ("retry", "stronger", "ship", "remove"):
            status, headers, _ = web.get(f"/photos/{held}/{kind}")
            assert status == 405 and "POST" in headers["allow"], kind
            assert web.post(f"/photos/{held}/{kind}", "")[0] == 403
            assert web.post(f"/photos/{held}/{kind}", "csrf=wrong")[0] == 403
            status, _, body = web.post(f"/photos/{held}/{kind}", "csrf=" + "x" * 43)
            assert status == 403 and b"did not come from the page" in body
        good = "csrf=" + secret(world)
        status, _, body = web.post(f"/photos/{held}/retry", good, origin="http://evil.example")
        assert status == 403  # a foreign page's form, even if it knew the secret
        assert web.post("/photos/999/retry", good)[0] == 404
        assert web.post(f"/photos/{held}/retry", "csrf=" + "y" * 5000)[0] == 413
    assert rows(world) == before  # nothing changed


def test_the_host_header_must_be_local_without_a_token(world):
    with serving(world) as server:
        web = Client(server.url)
        status, _, body = web.get("/", host="rebind.example:8765")
        assert status == 403 and b"only to localhost" in body
        assert web.get("/", host="localhost:8765")[0] == 200
        assert web.get("/", host="[::1]:8765")[0] == 200


def test_a_token_guards_every_request(world):
    config = world.replace(web_token="correct horse battery staple")
    basic = base64.b64encode(b"anyone:correct horse battery staple").decode()
    wrong = base64.b64encode(b"anyone:nope").decode()
    with serving(config) as server:
        web = Client(server.url)
        status, headers, _ = web.get("/")
        assert status == 401 and headers["www-authenticate"].startswith("Basic")
        assert web.get("/photos/1/thumb.jpg")[0] == 401
        assert web.get("/", authorization=f"Basic {wrong}")[0] == 401
        assert web.get("/", authorization="Basic !!!")[0] == 401
        assert web.get("/", authorization=f"Basic {basic}")[0] == 200
        assert web.get("/api/status", authorization="Bearer correct horse battery staple")[0] == 200
        # with a token, a name other than localhost is fine (the token is the guard)
        assert web.get("/", authorization=f"Basic {basic}", host="photos.lan")[0] == 200


def test_the_secret_is_made_once_and_private(world):
    with serving(world):
        pass
    path = world.state_dir / "web-secret"
    first = path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(first.strip()) >= 32
    os.chmod(path, 0o644)
    with serving(world):
        pass
    assert path.read_text() == first and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_non_loopback_needs_a_token_at_config_check_and_start(world, capsys):
    from pixcamd.daemon.config import ConfigError, load_config
    from pixcamd.web.server import WebError, WebServer

    source = world.source
    text = source.read_text().replace('web = "127.0.0.1:0"', 'web = "0.0.0.0:8765"')
    source.write_text(text)
    assert main(["config", "check", "--config", str(source)]) == 2
    err = capsys.readouterr().err
    assert "web: '0.0.0.0:8765' is reachable from other machines; set web_token" in err
    shutil.rmtree(world.state_dir)
    assert main(["run", "--config", str(source)]) == 2  # the daemon does not start
    assert "set web_token" in capsys.readouterr().err
    assert not world.state_dir.exists()  # no ledger, no log: nothing started
    assert main(["web", "--config", str(source)]) == 2
    assert "set web_token" in capsys.readouterr().err

    source.write_text(text + 'web_token = "s3cret-s3cret"\n')
    config = load_config(source)  # with a token it is fine
    assert config.web == "0.0.0.0:8765"
    assert main(["config", "check", "--config", str(source)]) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out and 'web_token = "…"  # set (13 characters), not shown' in out
    with pytest.raises(WebError, match="set web_token"):
        WebServer(config.replace(web="127.0.0.1:0", web_token=""), "192.168.1.5:8765")
    for bad, problem in [
        ("localhost", "is not host:port"),
        ("127.0.0.1:99999", "is not host:port"),
        ("::1:8765", "in brackets"),
        ("[::1:8765", "in brackets"),
    ]:
        source.write_text(text.replace('"0.0.0.0:8765"', f'"{bad}"'))
        with pytest.raises(ConfigError, match=problem):
            load_config(source)


def test_a_port_in_use_is_said_and_the_daemon_protects_anyway(tmp_path, brisque, capsys):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        config = world_config(tmp_path, web=f"127.0.0.1:{port}", epsilon=4, epsilon_cap=8)
        real_photo(config.inbox / "a.jpg")
        with running(config, [brisque]) as daemon:
            assert daemon.web is None
            wait_for(lambda: finished(config, ["a.jpg"]), 120, "the photo")
        (web,) = [e for e in log_events(config) if e["event"] == "web"]
        assert web["level"] == "warning" and "port is in use" in web["message"]
        assert "protecting goes on" in web["message"]
        assert rows(config)["a.jpg"]["state"] == "done"
        assert main(["web", "--config", str(config.source)]) == 2
        assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in capsys.readouterr().err
    finally:
        taken.close()


def test_pixcamd_web_serves_on_the_default_address_where_the_config_turns_the_page_off(
    tmp_path, capsys
):
    """web = "" turns the daemon's page off, as the system service must (no network); the page
    is then `pixcamd web --config FILE` from a shell (docs/web.md, systemd/README.md): it
    listens on 127.0.0.1:8765, not refuses "web: \"\" turns the web page off"."""
    from pixcamd.daemon.ledger import Ledger

    config = world_config(tmp_path, web="")
    Ledger(config.ledger_path).close()  # a daemon has run with this state dir
    taken = socket.socket()  # the default port held, so that the command returns at once
    with contextlib.suppress(OSError):  # (or held already, by another program: the same)
        taken.bind(("127.0.0.1", 8765))
        taken.listen(1)
    try:
        assert main(["web", "--config", str(config.source)]) == 2
    finally:
        taken.close()
    err = capsys.readouterr().err
    assert "cannot listen on 127.0.0.1:8765: the port is in use" in err, err
    # the remedy is this command's --listen: the config's web is the daemon's page (off here,
    # and the system service cannot serve one), not this command's address
    assert "give this command another address, e.g. --listen 127.0.0.1:8766" in err, err
    assert "set web to another port" not in err and 'web = "" for no page' not in err, err


def test_web_off_serves_nothing(tmp_path, brisque):
    config = world_config(tmp_path, web="")
    with running(config, [brisque]) as daemon:
        assert daemon.web is None
    assert not [e for e in log_events(config) if e["event"] == "web"]


def comparable(row: dict) -> dict:
    """A row without what differs between two runs of the same decision: times, and where."""
    row = {k: v for k, v in row.items() if not k.endswith("_at") and k != "id"}
    if row.get("decision"):
        decision = json.loads(row["decision"])
        row["decision"] = {k: v for k, v in decision.items() if k not in ("at", "via", "held")}
    if row.get("held"):
        row["held"] = os.path.basename(row["held"])
    return row


def refused(config, kind: str, path: str) -> bytes:
    """A refused form: answered with a redirect to the photo page, which says why once (so a
    reload neither sends the form again nor repeats a stale refusal)."""
    with serving(config) as server:
        web = Client(server.url)
        status, headers, _ = web.post(
            f"/photos/{ids(config)[path]}/{kind}", "csrf=" + secret(config)
        )
        assert status == 303 and "?refused=" in headers["location"], (kind, path, status)
        status, _, body = web.get(headers["location"])
        assert status == 200 and b'id="problem"' in body
        again = web.get(headers["location"])[2]
        assert b'id="problem"' not in again and b'id="verdict"' in again
        return body


@pytest.mark.parametrize(
    ("kind", "path", "argv"),
    [
        ("retry", "held.jpg", ["retry", "held.jpg"]),
        ("retry", "bad.jpg", ["retry", "bad.jpg"]),
        ("stronger", "held.jpg", ["retry", "--stronger", "held.jpg"]),
        ("ship", "held.jpg", ["ship", "held.jpg"]),
        ("remove", "noise.jpg", ["remove", "noise.jpg"]),
    ],
)
def test_the_page_changes_the_ledger_exactly_as_the_cli(
    world_template, tmp_path, capsys, kind, path, argv
):
    by_page = copy_world(world_template, tmp_path / "page")
    by_cli = copy_world(world_template, tmp_path / "cli")
    with serving(by_page) as server:  # the page says what it did, once
        web = Client(server.url)
        status, headers, _ = web.post(
            f"/photos/{ids(by_page)[path]}/{kind}", "csrf=" + secret(by_page)
        )
        assert status == 303 and "?done=" in headers["location"]
        said = DONE[kind].encode()
        assert said in web.get(headers["location"])[2]
        assert said not in web.get(headers["location"])[2]  # a reload: no stale claim
    code, said = cli(capsys, by_cli, *argv)
    assert code == 0, said
    page_rows, cli_rows = rows(by_page), rows(by_cli)
    assert {k: comparable(v) for k, v in page_rows.items()} == {
        k: comparable(v) for k, v in cli_rows.items()
    }
    row = page_rows[path]
    outbox_page = sorted(p.name for p in by_page.outbox.rglob("*"))
    assert outbox_page == sorted(p.name for p in by_cli.outbox.rglob("*"))
    if kind in ("retry", "stronger"):
        assert row["state"] == "queued" and row["attempts"] == 0
        budget = json.loads(row["budget"]) if row["budget"] else None
        assert budget == (
            {"epsilon": 2.0, "epsilon_cap": 4.0, "steps": 10} if kind == "stronger" else None
        )
        (event,) = events(by_page, "retry")
        assert "queued again by the web page" in event["message"]
        assert event["was"]["state"] == rows(world_template_config(world_template))[path]["state"]
    elif kind == "ship":
        assert row["state"] == "unprotected" and row["output"] == "held.jpg" and not row["held"]
        assert json.loads(row["decision"])["action"] == "shipped"
        assert (by_page.outbox / "held.jpg").read_bytes() == (
            by_cli.outbox / "held.jpg"
        ).read_bytes()
        assert not list(by_page.hold_dir.rglob("*.jpg"))  # the held copy moved to the outbox
        (event,) = events(by_page, "shipped_unprotected")
        assert "by your decision (the web page)" in event["message"]
        assert not list((by_page.state_dir / "tmp").iterdir())  # nothing left staged
    else:
        assert row["output"] is None and row["state"] == "done"
        assert not (by_page.outbox / "noise.jpg").exists()
        assert (by_page.inbox / "noise.jpg").is_file()  # the original is never touched
        (event,) = events(by_page, "removed")
        assert "removed from the outbox" in event["message"]


def world_template_config(root):
    from pixcamd.daemon.config import load_config

    return load_config(root / "config.toml")


def test_refused_decisions_say_why_and_change_nothing(world, capsys):
    before = rows(world)
    for kind, path, said in [
        ("ship", "noise.jpg", b"is protected, not held back; only a photo held back can be"),
        ("ship", "bad.jpg", b"not held back"),
        ("remove", "held.jpg", b"has no copy in the outbox"),
    ]:
        assert said in refused(world, kind, path), (kind, path)
    (world.inbox / "held.jpg").unlink()
    assert b"no longer in the inbox" in refused(world, "retry", "held.jpg")
    with serving(world) as server:  # a script sending the secret in a header: the answer itself
        status, _, body = Client(server.url).request(
            "POST",
            f"/photos/{ids(world)['bad.jpg']}/ship",
            b"",
            {"x-csrf-token": secret(world)},
        )
        assert status == 409 and b"not held back" in body
    assert rows(world) == before
    code, said = cli(capsys, world, "ship", "nothere.jpg")
    assert code == 2 and "not in the ledger" in said
    code, said = cli(capsys, world, "remove", "held.jpg")
    assert code == 1 and "has no copy in the outbox" in said


def test_a_photo_without_a_copy_says_what_became_of_it(world, capsys):
    Path(rows(world)["held.jpg"]["held"]).unlink()  # a person tidied the hold folder
    assert cli(capsys, world, "remove", "noise.jpg")[0] == 0
    pid = ids(world)
    with serving(world) as server:
        web = Client(server.url)
        for name, said in [
            ("held.jpg", f"no copy: its held copy is gone from {world.hold_dir}"),
            ("noise.jpg", "no copy: removed from the outbox by your decision"),
        ]:
            status, _, body = web.get(f"/photos/{pid[name]}")
            assert status == 200 and said.encode() in body, name
            assert b"set hold_dir" not in body


def read_only_outbox(staged, dest, replace=False):
    raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dest))


def test_a_decision_the_outbox_cannot_take_is_said_in_words_and_leaves_nothing(
    world, capsys, monkeypatch
):
    # A folder where the copy lies: the file system refuses, for root too, as a read-only
    # outbox or one owned by the uploader's user would.
    before = rows(world)
    shipped = world.outbox / before["noise.jpg"]["output"]
    shipped.unlink()
    shipped.mkdir()
    for kind, path, said in [
        ("remove", "noise.jpg", "cannot delete its copy noise.jpg from the outbox"),
        ("ship", "held.jpg", "cannot write its copy to the outbox"),
    ]:
        if kind == "ship":  # an outbox that refuses the rename (a file in the copy's
            # place would only move it to the next name; one for the outbox, the config)
            monkeypatch.setattr(publication, "publish", read_only_outbox)
        assert said.encode() in refused(world, kind, path), kind
        code, text = cli(capsys, world, kind, path)
        assert code == 1 and said in text and "Traceback" not in text
    assert rows(world) == before  # as it was: shipped, held
    assert Path(before["held.jpg"]["held"]).is_file()
    staged = [p for p in world.state_dir.rglob("*") if p.name.startswith("ship-")]
    assert staged == []  # no staged copy left behind


@pytest.mark.usefixtures("one_torch_thread")
def test_a_stronger_retry_from_the_page_protects_a_held_photo(world, brisque):
    with running(world, [brisque]) as daemon:
        web = Client(daemon.web.url)
        held = ids(world)["held.jpg"]
        held_file = Path(rows(world)["held.jpg"]["held"])
        assert held_file.is_file()
        status, _, _ = web.post(f"/photos/{held}/stronger", "csrf=" + secret(world))
        assert status == 303
        wait_for(lambda: rows(world)["held.jpg"]["state"] == "done", 120, "the stronger attempt")
        row = rows(world)["held.jpg"]
        assert json.loads(row["report"])["budget"]["epsilon_cap"] == 4.0
        assert (world.outbox / "held.jpg").is_file()
        status, _, body = web.get(f"/photos/{held}")
        assert b"stronger retry" in body and b"protected" in body
        assert not held_file.exists()  # in the outbox now: nothing left to review
    started = [e for e in log_events(world) if e["event"] == "web"]
    assert started and started[0]["message"].startswith("the web page: http://127.0.0.1:")


def test_a_photo_shipped_from_the_daemon_s_page_is_said_as_its_own_events_are(world, brisque):
    """The page inside the daemon: its decision is on the daemon's stderr (the journal, a
    container's log), not in the ledger and the JSON file alone."""
    import io

    stderr = io.StringIO()
    with running(world, [brisque], stderr=stderr) as daemon:
        status, _, _ = Client(daemon.web.url).post(
            f"/photos/{ids(world)['held.jpg']}/ship", "csrf=" + secret(world)
        )
        assert status == 303
    said = stderr.getvalue()
    assert "shipped_unprotected held.jpg" in said and "by your decision (the web page)" in said
    (line,) = [e for e in log_events(world) if e["event"] == "shipped_unprotected"]
    assert line["path"] == "held.jpg" and line["decision"]["action"] == "shipped"


def test_the_image_cache_is_bounded_oldest_first(tmp_path):
    from pixcamd.web.files import Cache

    cache = Cache(tmp_path / "cache", limit=2500)
    for n in range(4):
        cache.get(f"img-{n}", lambda n=n: bytes(1000))
        os.utime(cache.root / f"img-{n}", (n, n))  # a clear order of use
    cache.get("img-0", lambda: b"m" * 1000)  # evicted already: made again, img-2 goes
    assert sorted(p.name for p in cache.root.iterdir()) == ["img-0", "img-3"]
    assert (cache.root / "img-0").read_bytes() == b"m" * 1000
    cache.get("img-3", lambda: b"never made")  # a hit: read, not made, and now the newest
    assert (cache.root / "img-3").read_bytes() == bytes(1000)


def test_images_are_made_a_few_at_a_time_however_many_are_asked_for(tmp_path):
    """Each image decodes a whole photo: six asked at once (a browser's connections to one
    page) are made MAKERS at a time, and every one is still made and served."""
    import threading
    import time

    from pixcamd.web.files import MAKERS, Cache

    cache = Cache(tmp_path / "cache")
    lock, release = threading.Lock(), threading.Event()
    making, most, asked = [0], [0], [0]

    def make():
        with lock:
            making[0] += 1
            most[0] = max(most[0], making[0])
        release.wait(60)
        with lock:
            making[0] -= 1
        return b"image"

    def ask(key: str) -> None:
        with lock:
            asked[0] += 1
        cache.get(key, make)

    threads = [threading.Thread(target=ask, args=(f"img-{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while (asked[0] < 6 or making[0] < MAKERS) and time.monotonic() < deadline:
        time.sleep(0.01)
    # all six have asked: those past the limit would be making theirs within moments
    time.sleep(0.3)
    release.set()
    for thread in threads:
        thread.join(60)
    assert most[0] == MAKERS == 2
    assert sorted(p.name for p in cache.root.iterdir()) == [f"img-{n}" for n in range(6)]


def test_the_image_cache_counts_what_another_process_wrote_into_it(tmp_path):
    """It keeps a running total instead of listing the folder after every image; what another
    page (`pixcamd web` beside the daemon's) wrote is still counted, within RECOUNT images."""
    from pixcamd.web.files import Cache

    cache = Cache(tmp_path / "cache", limit=50_000)
    cache.get("mine-0", lambda: bytes(100))
    (cache.root / "theirs").write_bytes(bytes(60_000))  # past the limit on its own
    os.utime(cache.root / "theirs", (1, 1))  # the least recently used
    for n in range(1, Cache.RECOUNT + 1):
        cache.get(f"mine-{n}", lambda: bytes(10))
    assert not (cache.root / "theirs").exists()
    assert sum(p.stat().st_size for p in cache.root.iterdir()) <= 50_000


def test_pixcamd_web_alone_serves_the_ledger_and_stops_on_sigterm(world):
    import signal
    import subprocess
    import sys

    from test_daemon_support import ROOT

    process = subprocess.Popen(
        [sys.executable, "-m", "pixcamd", "web", "--config", str(world.source)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("the web page: http://127.0.0.1:"), line + process.stderr.read()
        url = line.split()[3]
        status, _, body = Client(url).get("/photos?verdict=failed")
        assert status == 200 and b"bad.jpg" in body
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    finally:
        process.kill()
        process.wait()


def test_the_photo_list_finds_a_name_and_says_how_many_pages_it_has(world):
    """A library's list: how many photos and pages, a jump to the oldest, and a name looked
    for anywhere in the path — any case, accents typed composed where the sync wrote them
    decomposed — kept across the list's links."""
    import unicodedata

    from pixcamd.daemon.ledger import Ledger

    ledger = Ledger(world.ledger_path)
    synced = unicodedata.normalize("NFD", "Été/Crème brûlée.jpg")
    for n, name in enumerate([*(f"2019/IMG_{n:04}.JPG" for n in range(130)), synced]):
        ledger.offer(name, f"{n:064}", 1, 1, "fp")
        row = ledger.claim_next()
        ledger.finish(row.id, "done", verdict="protected", output=name)
    ledger.close()
    with serving(world) as server:
        web = Client(server.url)
        status, _, body = web.get("/photos")
        page = body.decode()
        assert status == 200 and "134 photos · page 1 of 3" in page, page
        assert 'href="/photos?verdict=all&amp;page=3">oldest' in page
        status, _, body = web.get("/photos?page=3")
        assert b"page 3 of 3" in body and b"2019/IMG_0000.JPG" in body  # the first finished
        assert b"older</a>" not in body

        status, _, body = web.get("/photos?verdict=protected&name=img_012")
        page = body.decode()
        assert status == 200 and "10 photos whose name holds “img_012”" in page, page
        shown = sorted(n for n in (f"2019/IMG_{k:04}.JPG" for k in range(130)) if n in page)
        assert shown == [f"2019/IMG_{k:04}.JPG" for k in range(120, 130)]
        assert 'name="name" value="img_012"' in page
        assert 'href="/photos?verdict=failed&amp;name=img_012"' in page  # the filters keep it
        status, _, body = web.get("/photos?verdict=failed&name=img_012")
        assert b"0 photos whose name holds" in body and b"No photo here has that in its" in body

        status, _, body = web.get("/photos?name=img_012&page=5")  # past the last page
        assert b"No photos on this page: there are 1 page." in body, body
        assert b'page=1">newer' in body  # back to a page that has photos
        status, _, body = web.get("/photos?name=cr%C3%A8me")  # crème, typed composed
        assert b"1 photo whose name holds" in body
        assert synced.encode() in body or unicodedata.normalize("NFC", synced).encode() in body
        status, _, body = web.get("/photos?name=" + "x" * 201)
        assert status == 400 and b"at most 200 printable characters" in body
        status, _, body = web.get("/photos?name=a%0Ab")
        assert status == 400


def test_a_held_back_or_failed_photo_says_what_can_be_done_in_the_log_and_status(world, capsys):
    """The log's line for a photo held back or failed, and `status` under its list, say the
    next step (before: the reason alone)."""
    (held,) = events(world, "unprotected")
    assert "`pixcamd retry --stronger held.jpg` tries a larger budget" in held["message"]
    assert "`pixcamd ship held.jpg` shares it unprotected" in held["message"]
    (failed,) = events(world, "failed")
    assert failed["path"] == "bad.jpg"
    assert "a new version of the file (copied or exported again) is read" in failed["message"]
    assert "a new version" not in rows(world)["bad.jpg"]["error"]  # the reason stays the reason
    code, out = cli(capsys, world, "status")
    assert code == 0
    assert "  held back: `pixcamd retry --stronger PATH` tries a larger budget" in out, out
    assert "  failed: `pixcamd retry --failed` once the cause is fixed" in out, out


@pytest.mark.usefixtures("one_torch_thread")
def test_a_retry_from_the_daemon_s_page_is_said_as_its_own_events_are(world, brisque):
    """The page's retry buttons, as its ship and remove: the retry event is on the daemon's
    stderr (the journal, a container's log) and in its JSON log, not in the ledger alone."""
    stderr = io.StringIO()
    with running(world, [brisque], stderr=stderr) as daemon:
        status, _, _ = Client(daemon.web.url).post(
            f"/photos/{ids(world)['held.jpg']}/retry", "csrf=" + secret(world)
        )
        assert status == 303
    said = stderr.getvalue()
    assert "retry held.jpg: queued again by the web page" in said, said
    (line,) = [e for e in log_events(world) if e["event"] == "retry"]
    assert line["path"] == "held.jpg" and line["was"]["state"] == "unprotected"
    (recorded,) = [e for e in events(world, "retry") if e["path"] == "held.jpg"]  # once
    assert recorded["message"] == line["message"]


def test_a_copy_held_before_strip_metadata_is_not_shipped_with_its_metadata(
    world_template, tmp_path, capsys
):
    """A photo held back while copies kept their metadata, shipped after strip_metadata was
    turned on: `pixcamd ship` and the page's button shipped it with the metadata it was made
    with — both refuse on one line, saying how to redo it; nothing moves. With its record gone
    (an earlier pixcamd's) the held copy's own bytes tell."""
    from test_photo_io import exiftool_tags

    root = tmp_path / "world"
    copy_world(world_template, root)
    config = world_config(root, strip_metadata=True)
    before = rows(config)
    held = Path(before["held.jpg"]["held"])
    # what strip_gps keeps of a camera's photo (the world's has a position alone, removed)
    serial = {piexif.ExifIFD.BodySerialNumber: b"SN-4242"}
    piexif.insert(piexif.dump({"0th": {}, "Exif": serial, "GPS": {}}), str(held))
    assert "SN-4242" in exiftool_tags(held).values(), exiftool_tags(held)
    said = "held.jpg: its held copy was made with other metadata settings"
    code, text = cli(capsys, config, "ship", "held.jpg")
    (line,) = [line for line in text.splitlines() if said in line]  # one line says it all
    assert code == 1 and "`pixcamd retry held.jpg` makes a new one" in line, text
    assert "(with no metadata (strip_metadata = true))" in line, line
    assert said.encode() in refused(config, "ship", "held.jpg")
    db = sqlite3.connect(config.ledger_path)
    with db:
        db.execute("UPDATE photos SET report = json_remove(report, '$.copy_metadata')")
        db.execute("UPDATE photos SET fingerprint = 's1-older' WHERE path = 'held.jpg'")
    db.close()
    code, text = cli(capsys, config, "ship", "held.jpg")
    assert code == 1 and "held.jpg: its held copy carries EXIF, made with other" in text, text
    assert held.is_file() and not (config.outbox / "held.jpg").exists()
    assert rows(config)["held.jpg"]["state"] == "unprotected"
    # the config as the copy was made: shipped
    config = world_config(root)
    code, text = cli(capsys, config, "ship", "held.jpg")
    assert code == 0 and (config.outbox / "held.jpg").is_file(), text


def test_a_copy_held_with_its_position_by_an_earlier_pixcamd_is_not_shipped_with_it(
    world_template, tmp_path, capsys
):
    """A copy held back while strip_gps = false, by a pixcamd that did not record what it made
    it with, under other settings: where the config now removes the position, its bytes tell
    (an EXIF or XMP position), as they tell any metadata where the config asks for none."""
    from test_photo_io import exiftool_tags

    root = tmp_path / "world"
    copy_world(world_template, root)
    config = world_config(root)  # strip_gps = true
    held = Path(rows(config)["held.jpg"]["held"])
    gps = {
        piexif.GPSIFD.GPSLatitudeRef: b"N",
        piexif.GPSIFD.GPSLatitude: ((48, 1), (51, 1), (0, 1)),
    }
    piexif.insert(piexif.dump({"0th": {}, "Exif": {}, "GPS": gps}), str(held))
    assert [k for k in exiftool_tags(held) if "GPS" in k], exiftool_tags(held)
    db = sqlite3.connect(config.ledger_path)
    with db:
        db.execute("UPDATE photos SET report = json_remove(report, '$.copy_metadata')")
        db.execute("UPDATE photos SET fingerprint = 's1-older' WHERE path = 'held.jpg'")
    db.close()
    code, text = cli(capsys, config, "ship", "held.jpg")
    assert code == 1 and "held.jpg: its held copy carries a GPS position" in text, text
    assert held.is_file() and not (config.outbox / "held.jpg").exists()
    # the config as the copy was made: shipped, position and all
    config = world_config(root, strip_gps=False)
    code, text = cli(capsys, config, "ship", "held.jpg")
    assert code == 0 and (config.outbox / "held.jpg").is_file(), text


def test_the_daemon_s_page_ships_by_the_config_a_reload_put_in_force(world, brisque):
    """strip_metadata turned on by a reload (SIGHUP, systemctl reload): the page inside the
    daemon judged a held copy by the config of its start, and shipped the camera's serial
    that `pixcamd ship` refuses — its decisions follow the config in force, as the daemon's."""
    held = Path(rows(world)["held.jpg"]["held"])
    serial = {piexif.ExifIFD.BodySerialNumber: b"SN-4242"}
    piexif.insert(piexif.dump({"0th": {}, "Exif": serial, "GPS": {}}), str(held))
    (world.inbox / "held.jpg").unlink()  # gone: no scan redoes it under the new settings
    with running(world, [brisque]) as daemon:
        world.source.write_text(world.source.read_text() + "strip_metadata = true\n")
        daemon.request_reload()
        wait_for(lambda: [e for e in log_events(world) if e["event"] == "reloaded"], 30, "it")
        status, _, body = Client(daemon.web.url).post(
            f"/photos/{ids(world)['held.jpg']}/ship", "", **{"X-CSRF-Token": secret(world)}
        )
    assert status == 409 and b"made with other metadata settings" in body, (status, body)
    assert held.is_file() and not (world.outbox / "held.jpg").exists()
