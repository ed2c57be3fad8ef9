"""An upgrade from the last release, and a downgrade back to it, on the same state dir: what
that release leaves in its ledger — its daemon's record without ``metadata_fingerprints`` (it
never clears ``stop_asked_at`` either), its copies' reports without ``copy_metadata`` — as
pixcamd c3aba77 writes them (read from a ledger it wrote), made here by removing those keys
from what this pixcamd writes."""

from __future__ import annotations

import json
import sqlite3
import time

from test_daemon_support import (
    dead_pid,
    finished,
    ledger_rows,
    make_config,
    no_leaked_threads,  # noqa: F401
    real_photo,
    running,
    wait_for,
)

from pixcamd.cli import main
from pixcamd.daemon.ledger import Ledger


def as_the_last_release_left_it(config) -> None:
    """The record and the reports as c3aba77's daemon writes them."""
    db = sqlite3.connect(config.ledger_path)
    with db:
        db.execute("DELETE FROM daemon WHERE key = 'metadata_fingerprints'")
        db.execute("UPDATE photos SET report = json_remove(report, '$.copy_metadata')")
    db.close()


def test_metadata_changed_after_an_upgrade_redoes_only_copies_made_otherwise(
    tmp_path, brisque, capsys
):
    """Upgraded, the daemon not started yet: its record (the last release's) has no
    ``metadata_fingerprints`` — every copy it made was "not recorded" and queued, the whole
    library protected again with its metadata settings never changed. The config's settings
    tell them, as the next start records them."""
    config = make_config(tmp_path)  # strip_gps = true, strip_metadata = false
    real_photo(config.inbox / "a.jpg")
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["a.jpg"]), 60, "the first pass")
    as_the_last_release_left_it(config)
    code = main(["retry", "--metadata-changed", "--config", str(config.source)])
    out = capsys.readouterr().out
    assert code == 0 and "0 photo(s) queued again, 0 skipped: nothing to do" in out, out
    assert ledger_rows(config)["a.jpg"]["state"] == "done"
    config.source.write_text(config.source.read_text() + "strip_metadata = true\n")
    code = main(["retry", "--metadata-changed", "--config", str(config.source)])
    out = capsys.readouterr().out
    assert code == 0 and "queued  a.jpg (made without the GPS position" in out, out


def test_status_after_a_downgrade_killed_says_no_stop_was_cut_short(tmp_path, capsys):
    """This pixcamd stopped (its stop recorded as it began), the last release started on the
    same state dir (it neither clears nor records a stop) and was killed: status said the stop
    asked before that start was cut short by a stop timeout, with advice about it."""
    config = make_config(tmp_path)
    config.state_dir.mkdir(parents=True)
    now = time.time()
    ledger = Ledger(config.ledger_path)
    ledger.set_daemon(pid=dead_pid(), started_at=now - 60, heartbeat=now - 5, stopped_at=None)
    ledger.set_daemon(stop_asked_at=now - 120)  # this pixcamd's last stop, before that start
    ledger.close()
    assert main(["status", "--config", str(config.source)]) == 0
    out = capsys.readouterr().out
    assert "ended without stopping" in out and "a stop was asked" not in out, out
    assert main(["status", "--json", "--config", str(config.source)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ended_unexpectedly"] and report["stop_asked_at"] is None, report


def test_ship_of_a_held_copy_whose_photo_left_the_inbox_says_to_put_it_back(
    tmp_path, brisque, capsys
):
    """Held back with its GPS position by the last release, the photo since gone from the
    inbox, strip_gps turned on: ship refuses it and said `pixcamd retry PATH` makes a new one
    — which skips it ("no longer in the inbox: nothing to protect")."""
    from web_support import gps_photo

    hold = tmp_path / "hold"
    config = make_config(
        tmp_path, epsilon=0, epsilon_cap=0, steps=5, hold_dir=str(hold), strip_gps=False
    )
    gps_photo(config.inbox / "a.jpg")
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["a.jpg"]), 60, "the first pass")
    assert ledger_rows(config)["a.jpg"]["held"], ledger_rows(config)
    as_the_last_release_left_it(config)
    (config.inbox / "a.jpg").unlink()
    text = config.source.read_text().replace("strip_gps = false", "strip_gps = true")
    config.source.write_text(text)
    assert main(["ship", "--config", str(config.source), "a.jpg"]) != 0
    err = capsys.readouterr().err
    assert "carries a GPS position" in err and "nothing was shipped" in err, err
    assert "no longer in the inbox: put it back there, then `pixcamd retry a.jpg`" in err, err
    assert (hold / "a.jpg").exists() and not (config.outbox / "a.jpg").exists()


def test_a_reload_turning_strip_metadata_on_names_retry_metadata_changed():
    """Upgraded, strip_metadata turned on by a reload (systemctl reload, SIGHUP): the copies
    the last release shipped keep the camera's serials and the owner — the reload said only
    "strip_metadata false → true; … from the next photo", where one that adds a platform or
    changes the models names the retry that redoes the shipped copies."""
    from pixcamd.daemon.reload import describe

    said = describe({"strip_metadata": (False, True)})
    assert said.startswith("strip_metadata false → true (copies already shipped keep"), said
    assert "`pixcamd retry --metadata-changed`" in said, said
    said = describe({"strip_gps": (False, True), "epsilon": (6.0, 4.0)})
    assert "`pixcamd retry --metadata-changed`" in said, said
    assert "--metadata-changed" not in describe({"epsilon": (6.0, 4.0)})
