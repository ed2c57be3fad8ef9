"""``pixcamd retry`` through the CLI, with the daemon stopped and running (real ledger, real
photos, the daemon loop in a thread)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import numpy as np
from PIL import Image
from test_daemon_support import (
    events,
    finished,
    ledger_rows,
    make_config,
    no_leaked_threads,  # noqa: F401
    noise_photo,
    real_photo,
    running,
    sha,
    wait_for,
)
from tinybiqa import synthetic_photo

from pixcamd.cli import main
from pixcamd.daemon.config import load_config


def retry(capsys, config, *argv) -> tuple[int, str, str]:
    code = main(["retry", "--config", str(config.source), *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def retry_events(config) -> list[dict]:
    db = sqlite3.connect(f"file:{config.ledger_path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT path, data FROM events WHERE event = 'retry' ORDER BY id")
        return [{"path": p, **json.loads(d)} for p, d in rows]
    finally:
        db.close()


def test_a_photo_waiting_a_failed_attempts_retry_is_no_fresh_retry(tmp_path, capsys):
    """`retry PATH` of a photo queued again after a failed attempt (an I/O error, its next try
    an hour away): its attempts are not reset nor is it made due — the queue is the worker's —,
    so that is said, with when and why, and the command exits 1 (it exited 0, "already
    queued", as for a photo queued afresh, whose first attempt is what was asked)."""
    from pixcamd.daemon.ledger import Ledger

    config = make_config(tmp_path, max_attempts=3)
    config.state_dir.mkdir(parents=True, exist_ok=True)
    real_photo(config.inbox / "a.jpg")
    real_photo(config.inbox / "b.jpg", seed=3)
    ledger = Ledger(config.ledger_path)
    try:
        for name in ("a.jpg", "b.jpg"):
            ledger.offer(name, sha(config.inbox / name), 1, 1, "fp")
        waiting = ledger.claim_next()
        ledger.retry(waiting.id, "OSError: [Errno 5] Input/output error", delay=3600)
    finally:
        ledger.close()
    fresh = "b.jpg" if waiting.path == "a.jpg" else "a.jpg"
    code, out, _ = retry(capsys, config, waiting.path)
    assert code == 1, out
    assert f"skipped {waiting.path}: already queued for its attempt 2 at " in out, out
    assert "after: OSError: [Errno 5] Input/output error — retry it once it is done or" in out
    row = ledger_rows(config)[waiting.path]
    assert (row["state"], row["attempts"]) == ("queued", 1) and row["not_before"] > 0
    code, out, _ = retry(capsys, config, fresh)  # queued afresh: protected as asked
    assert code == 0 and f"skipped {fresh}: already queued\n" in out, out


def test_a_failed_photo_is_retried_once_it_is_good(tmp_path, brisque, capsys):
    config = make_config(tmp_path, max_attempts=1)
    inbox, outbox = config.inbox, config.outbox
    (inbox / "scan.jpg").write_bytes(b"\xff\xd8 not yet a photo")
    real_photo(inbox / "ok.jpg")
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["scan.jpg", "ok.jpg"]), 60, "the first pass")
    assert ledger_rows(config)["scan.jpg"]["state"] == "failed"

    code, _, err = retry(capsys, config, "nothere.jpg", "scan.jpg")
    assert code == 2 and "nothere.jpg" in err and "not in the ledger" in err
    assert ledger_rows(config)["scan.jpg"]["state"] == "failed"  # nothing was queued
    code, _, err = retry(capsys, config, "--unprotected")
    assert code == 0  # nothing to do is not an error
    code, out, _ = retry(capsys, config, "--failed")
    assert code == 0 and "queued  scan.jpg (failed)" in out and "not running" not in out
    assert "at its next start" in out
    # named, and queued already (as a photo put back into the inbox that the daemon queued):
    # it will be protected as asked — no refusal (before: exit 1)
    code, out, _ = retry(capsys, config, "scan.jpg")
    assert code == 0 and "skipped scan.jpg: already queued" in out, out
    assert "0 photo(s) queued again, 1 skipped: nothing to do" in out, out
    # ... unless asked stronger: it is queued with the ordinary budget
    code, out, _ = retry(capsys, config, "--stronger", "scan.jpg")
    assert code == 1 and "skipped scan.jpg: already queued (with the ordinary budget" in out, out
    assert ledger_rows(config)["scan.jpg"]["state"] == "queued"
    (was,) = retry_events(config)
    assert was["path"] == "scan.jpg" and was["was"]["state"] == "failed"
    assert was["was"]["error"]  # the history keeps why it failed
    # the scanner finishes writing the same name (the bytes are replaced in place) while the
    # daemon is stopped; at its next start the queued row is protected
    real_photo(inbox / "scan.jpg", seed=7)
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["scan.jpg"]), 60, "the retried photo")
    assert ledger_rows(config)["scan.jpg"]["state"] == "done"
    assert (outbox / "scan.jpg").is_file()


def test_retry_while_the_daemon_runs_is_picked_up_at_once(tmp_path, brisque, capsys):
    config = make_config(tmp_path)
    real_photo(config.inbox / "a.jpg")
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["a.jpg"]), 60, "the first pass")
        before = ledger_rows(config)["a.jpg"]["finished_at"]
        code, out, _ = retry(capsys, config, config.inbox / "a.jpg")  # an absolute path works
        assert code == 0 and "takes them now" in out
        wait_for(
            lambda: (
                (ledger_rows(config)["a.jpg"]["finished_at"] or 0) > before
                and finished(config, ["a.jpg"])
            ),
            60,
            "the retried photo",
        )
    assert ledger_rows(config)["a.jpg"]["output"] == "a.jpg"  # its own copy, replaced
    code, _, err = retry(capsys, config, tmp_path / "elsewhere.jpg")
    assert code == 2 and "not inside the inbox" in err


def test_model_changed_requeues_what_was_shipped_against_another_model(
    tmp_path, brisque, recipe_checkpoint, capsys
):
    config = make_config(tmp_path)
    inbox, outbox = config.inbox, config.outbox
    real_photo(inbox / "a.jpg")
    noise_photo(inbox / "noise.png", 1)  # already low for BRISQUE: shipped unchanged
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["a.jpg", "noise.png"]), 60, "the first pass")
    shipped = sha(outbox / "a.jpg")
    code, out, _ = retry(capsys, config, "--model-changed")
    assert code == 0 and "0 photo(s) queued" in out  # the same model: nothing to redo

    # KonCept512's weights installed: the configured model changes
    text = config.source.read_text().replace('model = "brisque"', 'model = "koncept512"')
    config.source.write_text(text + f'weights = "{recipe_checkpoint}"\n')
    config = load_config(config.source)
    (inbox / "noise.png").unlink()  # synced away meanwhile: nothing left to protect
    code, out, _ = retry(capsys, config, "--model-changed")
    assert code == 0
    assert "queued  a.jpg (protected against brisque" in out
    assert "skipped noise.png: no longer in the inbox" in out
    assert "1 photo(s) queued again, 1 skipped" in out
    rows = ledger_rows(config)
    assert rows["a.jpg"]["state"] == "queued" and rows["a.jpg"]["output"] == "a.jpg"
    assert rows["noise.png"]["state"] == "done"
    (event,) = retry_events(config)
    assert event["path"] == "a.jpg" and event["was"]["model"] == "brisque"
    assert sha(outbox / "a.jpg") == shipped  # replaced only when the daemon has redone it


def test_model_changed_asks_the_running_daemon_not_the_file_it_has_not_reloaded(
    tmp_path, brisque, recipe_checkpoint, capsys
):
    config = make_config(tmp_path)
    real_photo(config.inbox / "a.jpg")
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["a.jpg"]), 60, "the first pass")
        # KonCept512 named in the file, but no reload yet: the daemon still protects with BRISQUE
        text = config.source.read_text().replace('model = "brisque"', 'model = "koncept512"')
        config.source.write_text(text + f'weights = "{recipe_checkpoint}"\n')
        code, out, _ = retry(capsys, config, "--model-changed")
        assert code == 0 and "0 photo(s) queued" in out  # redone with BRISQUE again: no
        assert "models the daemon uses now: brisque-live-svr@sha256:" in out
        assert "the config names koncept512" in out and "reload the daemon" in out
        assert ledger_rows(config)["a.jpg"]["state"] == "done"
        # weights the file names that are not there: only the note says so, the retry goes on
        config.source.write_text(text + f'weights = "{tmp_path / "gone.pth"}"\n')
        code, out, _ = retry(capsys, config, "--model-changed")
        assert code == 0 and "0 photo(s) queued" in out
        assert "note: the config's models do not load" in out


def started_count(config, path) -> int:
    db = sqlite3.connect(f"file:{config.ledger_path}?mode=ro", uri=True)
    try:
        query = "SELECT count(*) FROM events WHERE event = 'started' AND path = ?"
        return db.execute(query, (path,)).fetchone()[0]
    finally:
        db.close()


def test_a_retried_photo_is_protected_again_even_with_a_copy_elsewhere_in_the_inbox(
    tmp_path, brisque, capsys
):
    """The copy in another album was made from this photo's bytes: retrying the photo must
    optimize it again, not take its own old copy back as "the same content"."""
    config = make_config(tmp_path)
    inbox = config.inbox
    real_photo(inbox / "a.jpg")
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["a.jpg"]), 60, "the photo")
        (inbox / "album").mkdir()
        (inbox / "album" / "a.jpg").write_bytes((inbox / "a.jpg").read_bytes())
        wait_for(lambda: finished(config, ["album/a.jpg"]), 60, "its copy in an album")
    assert ledger_rows(config)["album/a.jpg"]["duplicate_of"] == "a.jpg"
    for argv in (["a.jpg"], ["--stronger", "a.jpg"]):
        before = started_count(config, "a.jpg")
        assert retry(capsys, config, *argv)[0] == 0
        with running(config, [brisque]):
            wait_for(lambda: finished(config, ["a.jpg"]), 120, "the retried photo")
        row = ledger_rows(config)["a.jpg"]
        assert started_count(config, "a.jpg") == before + 1  # optimized, not copied
        assert row["duplicate_of"] is None and row["state"] == "done" and row["seconds"] > 0
        assert (row["budget"] is not None) == ("--stronger" in argv)
        assert (config.outbox / "a.jpg").is_file()


def test_photos_held_back_under_one_name_keep_one_held_copy_each(tmp_path, brisque, capsys):
    """a.jpg and a.png both held back: each its own held file with its own pixels, and
    shipping one ships that photo; shipped and then retried to no avail, the earlier copy
    stays in the outbox and stays the photo's (remove still takes it out)."""
    config = make_config(
        tmp_path, epsilon=0, epsilon_cap=0, steps=5, hold_dir=str(tmp_path / "hold")
    )
    inbox = config.inbox
    real_photo(inbox / "album" / "a.jpg", seed=5)
    synthetic_photo(640, 480, 3).save(inbox / "album" / "a.png")  # judged good too (32)
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["album/a.jpg", "album/a.png"]), 60, "both")
    rows = ledger_rows(config)
    assert rows["album/a.jpg"]["state"] == rows["album/a.png"]["state"] == "unprotected"
    held = {name: rows[f"album/{name}"]["held"] for name in ("a.jpg", "a.png")}
    assert len(set(held.values())) == 2

    def pixels(path):
        return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)

    def closest(path) -> str:  # which photo a copy shows (ε 0: the photo through a JPEG 95)
        return min(
            ("a.jpg", "a.png"),
            key=lambda n: np.abs(pixels(inbox / "album" / n) - pixels(path)).mean(),
        )

    assert {name: closest(path) for name, path in held.items()} == {
        "a.jpg": "a.jpg",
        "a.png": "a.png",
    }

    assert main(["ship", "--config", str(config.source), "album/a.jpg"]) == 0
    capsys.readouterr()
    shipped = config.outbox / ledger_rows(config)["album/a.jpg"]["output"]
    assert closest(shipped) == "a.jpg"  # the photo shipped is the one asked for
    first = sha(shipped)

    assert retry(capsys, config, "album/a.jpg")[0] == 0  # still ε 0: held back again
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["album/a.jpg"]), 60, "the retried photo")
    row = ledger_rows(config)["album/a.jpg"]
    assert row["state"] == "unprotected" and row["held"]
    assert config.outbox / row["output"] == shipped and sha(shipped) == first  # kept, still its
    # the row's scores are the retry's: nowhere read as the outbox file's, nor as shipped again
    capsys.readouterr()
    assert main(["status", "--config", str(config.source)]) == 0
    shown = capsys.readouterr().out
    assert f"(its earlier copy stays in the outbox: {row['output']})" in shown, shown
    assert f"its earlier copy {row['output']} stays in the outbox" in shown, shown
    assert "shipped anyway: album/a" not in shown, shown
    from web_support import Client, serving

    with serving(config) as server:
        web = Client(server.url)
        _, _, page = web.get(f"/photos/{row['id']}")
        _, _, copy = web.get(f"/photos/{row['id']}/copy.jpg")
    assert b"NOT protected this time, held back; its earlier copy stays in the outbox" in page
    assert b"shipped file&#39;s own check" not in page and b"shipped file's own" not in page
    held_file = Path(row["held"])
    assert hashlib.sha256(copy).hexdigest() == sha(held_file)  # the attempt the scores judged
    capsys.readouterr()
    assert main(["ship", "--config", str(config.source), "album/a.jpg"]) == 1  # said in words
    refused = capsys.readouterr()
    assert "has an earlier run's copy in the outbox" in refused.out + refused.err, refused
    assert main(["remove", "--config", str(config.source), "album/a.jpg"]) == 0
    assert not shipped.exists() and ledger_rows(config)["album/a.jpg"]["output"] is None


def test_a_name_typed_with_composed_accents_finds_the_photo_synced_decomposed(tmp_path, capsys):
    """A Mac's sync writes é as e + ◌́ (NFD); a keyboard types é (NFC): `retry` finds the
    photo either way, as long as only one photo is spelled so."""
    import unicodedata

    from pixcamd.daemon.ledger import Ledger

    config = make_config(tmp_path)
    synced = unicodedata.normalize("NFD", "été/résumé.jpg")
    noise_photo(config.inbox / synced, 1)
    ledger = Ledger(config.ledger_path)
    row = ledger.offer(synced, "0" * 64, 1, 1, "fp").row
    ledger.finish(ledger.claim(row.id).id, "failed", error="broken")
    ledger.close()
    typed = unicodedata.normalize("NFC", "été/résumé.jpg")
    assert typed != synced
    code, out, err = retry(capsys, config, typed)
    assert code == 0 and "1 photo(s) queued again" in out, out + err
    assert ledger_rows(config)[synced]["state"] == "queued"


def test_platforms_changed_redoes_copies_not_protected_for_the_platforms_now(
    tmp_path, brisque, capsys
):
    config = make_config(tmp_path)  # the task's pipeline only
    real_photo(config.inbox / "a.jpg")
    shop = '[pipelines.shop]\nresize = "long 320"\nquality = {}\n'
    with running(config, [brisque]) as daemon:
        wait_for(lambda: finished(config, ["a.jpg"]), 60, "the first pass")
        code, out, _ = retry(capsys, config, "--platforms-changed")
        assert code == 0 and out.endswith("0 photo(s) queued again, 0 skipped: nothing to do\n")
        assert "platforms the daemon protects for now: task" in out
        # a destination added to the file, not yet reloaded: the daemon's own set counts
        text = config.source.read_text().replace(
            'platforms = ["task"]', 'platforms = ["task", "shop"]'
        )
        config.source.write_text(text + shop.format(70))
        code, out, _ = retry(capsys, config, "--platforms-changed")
        assert code == 0 and "0 photo(s) queued" in out
        assert "note: the config names shop (long320-q70) too; reload the daemon" in out
        # its config's unit (config.toml elsewhere: pixcamd-config), not the user config's
        assert "(systemctl --user reload pixcamd-config, or SIGHUP)" in out, out
        assert daemon.reload() is True
        code, out, _ = retry(capsys, config, "--platforms-changed")
        assert code == 0 and "queued  a.jpg (not judged on shop (long320-q70))" in out
        wait_for(lambda: ledger_rows(config)["a.jpg"]["state"] == "done", 60, "the redo")
        report = json.loads(ledger_rows(config)["a.jpg"]["report"])
        assert "shop" in report["protected_on"]
        code, out, _ = retry(capsys, config, "--platforms-changed")
        assert code == 0 and "0 photo(s) queued" in out  # now it is
        # the same name, another definition: judged by what it does, not what it is called
        config.source.write_text(text + shop.format(60))
        assert daemon.reload() is True
        # status does not count the copy for the shop in force
        assert main(["status", "--json", "--config", str(config.source)]) == 0
        tally = json.loads(capsys.readouterr().out)["last_hour"]["protected_on"]
        assert "shop" not in tally and "shop (long320-q70, redefined since)" in tally
        code, out, _ = retry(capsys, config, "--platforms-changed")
        assert "queued  a.jpg (not judged on shop (long320-q60))" in out
        wait_for(lambda: ledger_rows(config)["a.jpg"]["state"] == "done", 60, "the redo")
        # written otherwise, doing the same, and a platform taken out: nothing to redo, not said
        config.source.write_text(
            text.replace('["task", "shop"]', '["shop"]')
            + shop.format(60).replace('"long 320"', '"Long 320"')
        )
        assert daemon.reload() is True
    # stopped: the config's platforms; one taken out needs nothing redone
    config.source.write_text(text.replace('["task", "shop"]', '["shop"]') + shop.format(60))
    code, out, _ = retry(capsys, config, "--platforms-changed")
    assert code == 0 and "platforms now: shop (the config's)" in out
    assert "0 photo(s) queued" in out
    # each reload that changed the platforms said how to bring the shipped copies along
    reloads = [e["message"] for e in events(config) if e["event"] == "reloaded"]
    assert len(reloads) == 3 and all(
        "`pixcamd retry --platforms-changed`" in m for m in reloads[:2]
    )
    assert "were not judged on shop:" in reloads[1] and "--platforms-changed" not in reloads[2]


def test_platforms_changed_beside_a_daemon_that_recorded_none_queues_nothing(
    tmp_path, brisque, capsys
):
    """A daemon started by a pixcamd from before ``--platforms-changed`` records no platforms:
    the config's are not what it protects for, so nothing is queued and it says why; a copy
    whose report names no platforms (made by such a pixcamd) is redone, saying so."""
    config = make_config(tmp_path)
    real_photo(config.inbox / "a.jpg")
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["a.jpg"]), 60, "the first pass")
        db = sqlite3.connect(config.ledger_path)
        with db:
            db.execute("DELETE FROM daemon WHERE key IN ('platform_specs', 'model_fingerprints')")
            row = db.execute("SELECT report FROM photos WHERE path = 'a.jpg'").fetchone()
            report = json.loads(row[0])
            for platform in report["platforms"]:
                del platform["spec"]
            db.execute("UPDATE photos SET report = ? WHERE path = 'a.jpg'", (json.dumps(report),))
        db.close()
        for flag, what in (("--platforms-changed", "platforms"), ("--model-changed", "models")):
            code, out, err = retry(capsys, config, flag)
            assert code == 2 and f"has not recorded its {what}" in err and "restart it" in err
            assert "queued" not in out and ledger_rows(config)["a.jpg"]["state"] == "done"
    code, out, _ = retry(capsys, config, "--platforms-changed")  # stopped: the config's
    assert code == 0 and "queued  a.jpg (its platforms were not recorded)" in out


def test_a_library_retried_by_model_is_read_a_batch_at_a_time_and_queued_with_its_history(
    tmp_path, capsys, monkeypatch
):
    """``--model-changed``/``--platforms-changed`` over a library: the ledger's reports are read
    a batch at a time (before: every row of the state parsed at once, 1.5 GB at 50,000), and
    every queued photo gets its ``retry`` event in the transaction that queues it, the oldest
    history pruned as the ledger keeps it."""
    from pixcamd.daemon import ledger_lists, ledger_log
    from pixcamd.daemon.ledger import Ledger
    from pixcamd.models import load_model

    monkeypatch.setattr(ledger_lists, "LEAN_BATCH", 7)  # batches of 7: every boundary crossed
    monkeypatch.setattr(ledger_log, "MAX_EVENTS", 100)
    config = make_config(tmp_path)
    now = load_model("brisque", None).fingerprint
    task = {"name": "task", "spec": "none-q90"}
    ledger = Ledger(config.ledger_path)
    for n in range(2400):
        name = f"2015/{n:04}.jpg"
        (config.inbox / name).parent.mkdir(exist_ok=True)
        (config.inbox / name).write_bytes(b"")  # only its presence is looked at
        ledger.offer(name, f"{n:064}", 1, 1, "fp")
        row = ledger.claim_next()
        fingerprint = now if n % 3 else "brisque-live-svr@sha256:older"  # every third: older
        platforms = [task] if n % 5 else []  # every fifth: no platforms recorded
        report = {"models": [{"fingerprint": fingerprint}], "platforms": platforms}
        ledger.finish(row.id, "done", verdict="protected", output=name, report=report)
    ledger.close()

    code, out, _ = retry(capsys, config, "--model-changed", "--platforms-changed")
    assert code == 0, out
    older = {f"2015/{n:04}.jpg" for n in range(2400) if n % 3 == 0}
    unrecorded = {f"2015/{n:04}.jpg" for n in range(2400) if n % 5 == 0} - older
    queued = {line.split()[1]: line for line in out.splitlines() if line.startswith("queued ")}
    assert set(queued) == older | unrecorded, len(queued)
    assert "(protected against brisque-live-svr@sha256:older)" in queued["2015/0000.jpg"]
    assert "(its platforms were not recorded)" in queued["2015/0005.jpg"]
    assert f"{len(older | unrecorded)} photo(s) queued again, 0 skipped" in out
    rows = ledger_rows(config)
    assert {p for p, r in rows.items() if r["state"] == "queued"} == older | unrecorded
    history = retry_events(config)  # the last 100 of the retry's events, in its order
    assert len(history) == 100
    assert [e["path"] for e in history] == sorted(older | unrecorded)[-100:]
    assert all(e["was"]["state"] == "done" for e in history)


def test_a_photo_retried_still_counts_in_the_last_hour_while_it_is_protected_again(
    tmp_path, brisque, capsys
):
    """`status`'s last hour counted a photo finished in it only while its row was finished:
    `pixcamd retry` queued it again and it was gone from the count (and a settings change's
    requeue counted it in none of done, unprotected, failed) — now it counts, as being
    protected again."""
    config = make_config(tmp_path)
    noise_photo(config.inbox / "a.jpg", 1)
    noise_photo(config.inbox / "b.jpg", 2)
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["a.jpg", "b.jpg"]), 60, "the photos")
    code, out, err = retry(capsys, config, "a.jpg")
    assert code == 0 and ledger_rows(config)["a.jpg"]["state"] == "queued", out + err
    assert main(["status", "--json", "--config", str(config.source)]) == 0
    hour = json.loads(capsys.readouterr().out)["last_hour"]
    assert (hour["finished"], hour["done"], hour.get("again")) == (2, 1, 1), hour
    assert main(["status", "--config", str(config.source)]) == 0
    said = capsys.readouterr().out
    assert (
        "last hour: 2 photos finished (1 done, 0 unprotected, 0 failed, 1 being protected again)"
        in said
    ), said


def test_a_duplicate_retried_is_not_counted_in_the_last_hour(tmp_path, brisque, capsys):
    """The last hour leaves out a duplicate (a second copy of a photo already done); after
    `pixcamd retry` of it the count must not take it in as being protected again."""
    config = make_config(tmp_path)
    noise_photo(config.inbox / "a.jpg", 1)
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["a.jpg"]), 60, "the photo")
        (config.inbox / "b.jpg").write_bytes((config.inbox / "a.jpg").read_bytes())
        wait_for(lambda: finished(config, ["b.jpg"]), 60, "its duplicate")
    assert ledger_rows(config)["b.jpg"]["duplicate_of"] == "a.jpg"
    assert main(["status", "--json", "--config", str(config.source)]) == 0
    before = json.loads(capsys.readouterr().out)["last_hour"]
    code, out, err = retry(capsys, config, "b.jpg")
    assert code == 0 and ledger_rows(config)["b.jpg"]["state"] == "queued", out + err
    assert main(["status", "--json", "--config", str(config.source)]) == 0
    after = json.loads(capsys.readouterr().out)["last_hour"]
    assert (before["finished"], after["finished"], after.get("again")) == (1, 1, 0), after


def test_metadata_changed_redoes_copies_made_with_other_metadata_settings(
    tmp_path, brisque, capsys
):
    """strip_metadata turned on after a photo was shipped: its copy keeps the camera's
    serials and the owner until redone — `retry --metadata-changed` finds it by what its
    report recorded (or, made before that was recorded, by its settings fingerprint)."""
    from test_photo_io import IDENTIFYING, exiftool_tags, private_camera_jpeg

    config = make_config(tmp_path)  # strip_gps = true, strip_metadata = false
    private_camera_jpeg(config.inbox / "a.jpg")
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["a.jpg"]), 60, "the first pass")
    copy = config.outbox / "a.jpg"
    assert not [k for k in exiftool_tags(copy) if "GPS" in k]
    assert any(secret.encode() in copy.read_bytes() for secret in IDENTIFYING.values())
    code, out, _ = retry(capsys, config, "--metadata-changed")
    assert code == 0 and "0 photo(s) queued again, 0 skipped: nothing to do" in out, out
    config.source.write_text(config.source.read_text() + "strip_metadata = true\n")
    code, out, _ = retry(capsys, config, "--metadata-changed")
    assert code == 0 and "metadata now: copies with no metadata (strip_metadata = true)" in out
    assert "queued  a.jpg (made without the GPS position, the other metadata kept" in out, out
    with running(load_config(config.source), [brisque]):
        wait_for(lambda: ledger_rows(config)["a.jpg"]["state"] == "done", 60, "the redo")
    data = copy.read_bytes()
    assert not [secret for secret in IDENTIFYING.values() if secret.encode() in data]
    assert not [k for k in exiftool_tags(copy) if k.startswith(("EXIF:", "XMP", "IPTC:"))]
    code, out, _ = retry(capsys, config, "--metadata-changed")
    assert code == 0 and "0 photo(s) queued" in out, out
    # a copy made before its report recorded it: its fingerprint, one of the daemon's own
    db = sqlite3.connect(config.ledger_path)
    with db:
        db.execute("UPDATE photos SET report = json_remove(report, '$.copy_metadata')")
    code, out, _ = retry(capsys, config, "--metadata-changed")
    assert code == 0 and "0 photo(s) queued" in out, out
    with db:  # ... made with other settings too: it cannot be told, and is redone, said so
        db.execute("UPDATE photos SET fingerprint = 's1-older'")
    db.close()
    code, out, _ = retry(capsys, config, "--metadata-changed")
    assert "queued  a.jpg (its metadata settings were not recorded)" in out, out


def test_metadata_changed_loads_no_model_where_every_copy_says_how_it_was_made(
    tmp_path, brisque, capsys
):
    """No daemon running: `retry --metadata-changed` loaded the configured models (KonCept512:
    229 MB of weights read) to compute the settings' fingerprints, though every copy's report
    says what it was made with. Weights the config names that are not there show it: a load
    says so in a note. A copy whose report does not say (made by an earlier pixcamd, with other
    settings) still has them computed."""
    config = make_config(tmp_path)
    real_photo(config.inbox / "a.jpg")
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["a.jpg"]), 60, "the first pass")
    text = config.source.read_text().replace('model = "brisque"', 'model = "koncept512"')
    config.source.write_text(text + f'weights = "{tmp_path / "gone.pth"}"\n')
    code, out, _ = retry(capsys, config, "--metadata-changed")
    assert code == 0 and "0 photo(s) queued again, 0 skipped: nothing to do" in out, out
    assert "do not load" not in out, out  # nothing loaded (before: the note, a load tried)
    db = sqlite3.connect(config.ledger_path)
    with db:  # made before reports recorded it, with settings neither the record nor the
        db.execute("UPDATE photos SET report = json_remove(report, '$.copy_metadata')")
        db.execute("UPDATE photos SET fingerprint = 's1-older'")  # config's tell
    db.close()
    code, out, _ = retry(capsys, config, "--metadata-changed")
    assert code == 0 and "note: the config's models do not load" in out, out
    assert "queued  a.jpg (its metadata settings were not recorded)" in out, out


def test_metadata_changed_redoes_unprotected_copies_shipped_to_the_outbox(
    tmp_path, brisque, capsys
):
    """on_unprotected = "ship": a photo that could not be protected is shipped all the same,
    with the metadata the config let copies keep then — `retry --metadata-changed` redoes it
    as any shipped copy, not only the held-back ones."""
    import piexif

    config = make_config(tmp_path, epsilon=0, epsilon_cap=0, steps=5, on_unprotected="ship")
    photo = real_photo(config.inbox / "a.jpg", seed=5)
    serial = {piexif.ExifIFD.BodySerialNumber: b"SN-4242"}
    piexif.insert(piexif.dump({"0th": {}, "Exif": serial, "GPS": {}}), str(photo))
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["a.jpg"]), 60, "the first pass")
    row = ledger_rows(config)["a.jpg"]
    assert row["state"] == "unprotected" and row["output"] == "a.jpg" and not row["held"], row
    assert b"SN-4242" in (config.outbox / "a.jpg").read_bytes()
    config.source.write_text(config.source.read_text() + "strip_metadata = true\n")
    code, out, _ = retry(capsys, config, "--metadata-changed")
    assert code == 0 and "queued  a.jpg (made without the GPS position" in out, out
    with running(load_config(config.source), [brisque]):
        wait_for(lambda: ledger_rows(config)["a.jpg"]["state"] != "queued", 60, "the redo")
        wait_for(lambda: finished(config, ["a.jpg"]), 60, "the redo")
    assert b"SN-4242" not in (config.outbox / "a.jpg").read_bytes()


def test_metadata_changed_beside_a_daemon_that_recorded_no_fingerprints_queues_nothing(
    tmp_path, brisque, capsys
):
    """A daemon started by a pixcamd from before ``--metadata-changed`` records no
    ``metadata_fingerprints``: a copy made before its report recorded its metadata cannot be
    told by them, and every such copy of the library was queued again — refused as
    ``--model-changed`` and ``--platforms-changed`` are, nothing queued."""
    config = make_config(tmp_path)
    real_photo(config.inbox / "a.jpg")
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["a.jpg"]), 60, "the first pass")
        db = sqlite3.connect(config.ledger_path)
        with db:
            db.execute("DELETE FROM daemon WHERE key = 'metadata_fingerprints'")
            db.execute("UPDATE photos SET report = json_remove(report, '$.copy_metadata')")
        db.close()
        code, out, err = retry(capsys, config, "--metadata-changed")
        assert code == 2 and "has not recorded its settings' fingerprints" in err, (out, err)
        assert "restart it" in err and "queued" not in out
        assert ledger_rows(config)["a.jpg"]["state"] == "done"
    # stopped: the config's settings tell it, as the next start records them
    code, out, _ = retry(capsys, config, "--metadata-changed")
    assert code == 0 and "0 photo(s) queued again" in out, out


def test_the_reload_asked_for_names_the_unit_an_earlier_pixcamd_installed(home, brisque, capsys):
    """A config elsewhere that the release before's pixcamd.service runs (it named every
    config's unit so): the note named pixcamd-config, a unit not there, so the reload asked
    for failed and the daemon kept the platforms before."""
    config = make_config(home / "photos")  # photos/config.toml: its own unit is pixcamd-config
    units = home / "config" / "systemd" / "user"
    args = ["init", "--config", str(config.source), "--systemd-user", "--if-missing"]
    assert main(args) == 0
    (units / "pixcamd-config.service").rename(units / "pixcamd.service")
    capsys.readouterr()
    shop = '[pipelines.shop]\nresize = "long 320"\nquality = 70\n'
    with running(config, [brisque]):
        text = config.source.read_text().replace('["task"]', '["task", "shop"]')
        config.source.write_text(text + shop)
        code, out, _ = retry(capsys, config, "--platforms-changed")
    assert code == 0 and "note: the config names shop (long320-q70) too" in out, out
    assert "reload the daemon (systemctl --user reload pixcamd, or SIGHUP)" in out, out
