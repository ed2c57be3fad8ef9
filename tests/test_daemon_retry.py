"""``pixcamd retry`` through the CLI, with the daemon stopped and running (real ledger, real
photos, the daemon loop in a thread)."""

from __future__ import annotations

import json
import sqlite3

from test_daemon_support import (
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
