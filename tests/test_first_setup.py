"""A self-hoster's first hour: ``pixcamd init`` where folders cannot be made or a unit is in
the way, ``config check`` against what ``run`` refuses, a damaged ledger, and model files left by
a killed download. Real files on a temporary HOME, the real CLI; nothing here loads a model."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

import pytest
from test_daemon_init import cli
from test_daemon_support import make_config, unprivileged

from pixcamd.daemon.ledger import Ledger
from pixcamd.daemon.ledger_file import LedgerDamaged

CONFIG = "config/pixcamd/config.toml"
UNIT = "config/systemd/user/pixcamd.service"


def test_a_unit_in_the_way_is_refused_before_the_config_is_written(home, capsys):
    (home / UNIT).parent.mkdir(parents=True)
    (home / UNIT).write_text("[Service]\n")
    code, _, err = cli(capsys, "init", "--systemd-user", "--inbox", str(home / "in"))
    assert code == 2 and "a unit is already there" in err, err
    assert "keep your config" in err and "--if-missing" in err
    assert not (home / CONFIG).exists() and not (home / "in").exists()  # nothing written
    assert (home / UNIT).read_text() == "[Service]\n"


@pytest.mark.parametrize("key", ["--inbox", "--outbox"])
def test_a_folder_init_cannot_make_is_said_by_its_key(home, capsys, key):
    (home / "afile").write_text("x")
    code, _, err = cli(capsys, "init", key, str(home / "afile" / "photos"))
    assert code == 2 and "Traceback" not in err, err
    assert f"{key[2:]}: " in err and str(home / "afile" / "photos") in err, err
    assert "cannot create" in err or "cannot be created" in err, err
    assert not (home / CONFIG).exists()
    code, _, err = cli(capsys, "init", key, "")
    assert code == 2 and f"{key[2:]}: an empty path" in err, err


def test_a_config_that_cannot_be_written_is_said_and_leaves_no_folder(home, capsys):
    (home / "afile").write_text("x")
    code, _, err = cli(
        capsys, "init", "--config", str(home / "afile" / "c.toml"), "--inbox", str(home / "in")
    )
    assert code == 2 and "cannot write the config" in err and "Traceback" not in err, err
    assert not (home / "in").exists()


def test_init_writes_through_a_linked_config_and_quotes_what_it_prints(home, capsys):
    real = home / "dotfiles" / "my pixcamd.toml"
    real.parent.mkdir()
    real.write_text("# mine\n")
    link = home / "conf dir" / "c.toml"
    link.parent.mkdir()
    link.symlink_to(real)
    code, out, err = cli(capsys, "init", "--config", str(link), "--force")
    assert code == 0, err
    assert link.is_symlink() and "inbox =" in real.read_text()
    assert f"pixcamd run --config '{link}'" in out, out
    (home / "adir.toml").mkdir()
    code, _, err = cli(capsys, "init", "--config", str(home / "adir.toml"), "--if-missing")
    assert code == 2 and "exists and is not a file" in err, err


@pytest.mark.parametrize(
    ("how", "why"),
    [
        ("empty", "the file is empty"),
        ("cut", "database disk image is malformed"),
        ("noise", "file is not a database"),
    ],
)
def test_a_damaged_ledger_is_refused_in_words_never_taken_for_a_new_one(tmp_path, capsys, how, why):
    config = make_config(tmp_path)
    ledger = Ledger(config.ledger_path)
    for k in range(200):  # more than one page, so that a cut leaves some behind
        ledger.offer(f"photo-{k}.jpg", f"{k:064x}", 1, 1, "fp")
    ledger.close()
    path = config.ledger_path
    for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        extra.unlink(missing_ok=True)
    if how == "empty":
        path.write_bytes(b"")
    elif how == "cut":
        os.truncate(path, 4096)
    else:
        path.write_bytes(os.urandom(8192))
    before = path.read_bytes()
    with pytest.raises(LedgerDamaged, match=why):
        Ledger(path)
    for command in ("status", "run"):
        code, _, err = cli(capsys, command, "--config", str(config.source))
        assert code == 2 and "Traceback" not in err, err
        assert "the ledger" in err and why in err and "mv " in err, err
    assert path.read_bytes() == before  # nothing changed: it is the user's record


def test_a_ledger_this_user_cannot_open_is_not_called_damaged(tmp_path):
    config = make_config(tmp_path)
    Ledger(config.ledger_path).close()
    os.chmod(config.ledger_path, 0)
    for action in ("status", "run"):
        command = [sys.executable, "-m", "pixcamd", action, "--config", str(config.source)]
        done = subprocess.run(unprivileged(command), capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert "cannot open the ledger" in done.stderr and "may read and write" in done.stderr
        assert "damaged" not in done.stderr and "mv " not in done.stderr, done.stderr


def test_a_folder_run_s_damaged_record_says_what_starting_over_means(tmp_path, capsys):
    from test_folder_runs import FAST
    from tinybiqa import synthetic_photo

    album = tmp_path / "album"
    album.mkdir()
    synthetic_photo(160, 120, 0).save(album / "a.jpg", quality=95)
    out = tmp_path / "out"
    assert cli(capsys, "protect", str(album), "--outdir", str(out), *FAST)[0] in (0, 1)
    record = out / ".pixcamd" / "ledger.sqlite"
    for extra in record.parent.glob("ledger.sqlite-*"):
        extra.unlink()
    record.write_bytes(b"")
    code, _, err = cli(capsys, "protect", str(album), "--outdir", str(out), *FAST)
    assert code == 2 and "the file is empty" in err and "another --outdir" in err, err
    assert record.read_bytes() == b""


def check(capsys, tmp_path, text: str) -> tuple[int, str]:
    (tmp_path / "inbox").mkdir(exist_ok=True)
    path = tmp_path / "c.toml"
    path.write_text(
        f'inbox = "{tmp_path / "inbox"}"\noutbox = "{tmp_path / "outbox"}"\n'
        f'state_dir = "{tmp_path / "state"}"\nweb = ""\n' + text
    )
    code, out, err = cli(capsys, "config", "check", "--config", str(path))
    return code, out + err


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('model = "brisque"\ntarget = -50\n', "a target is a score from 0 to 100, got -50"),
        ('model = "brisque"\ntarget = nan\n', "a target is a score from 0 to 100, got nan"),
        ('model = "brisque"\ntarget = 40\n', "good-quality side of its threshold 60"),
        ('model = "brisque"\ntarget = { koncept512 = 30 }\n', "not among brisque"),
        ('model = "auto"\nweights = "/nonexistent/K.pth"\n', "weights: KonCept512 weights not"),
        ('model = "brisque"\nlog_file = "/tmp"\n', "log_file: /tmp is a folder"),
    ],
)
def test_config_check_refuses_what_run_would_refuse(tmp_path, capsys, text, said):
    code, shown = check(capsys, tmp_path, text)
    assert code == 2 and said in shown and "Traceback" not in shown, shown


def test_a_target_on_the_good_side_is_said_as_every_config_problem_is(tmp_path, capsys):
    code, shown = check(capsys, tmp_path, 'model = "brisque"\ntarget = 50\n')
    where = tmp_path / "c.toml"
    assert code == 2 and "invalid configuration:" in shown, shown
    assert f"{where}: target: 50 for brisque is on the good-quality side of its threshold 60" in (
        shown
    )


def test_config_check_names_a_folder_setting_that_is_a_file(tmp_path, capsys):
    (tmp_path / "outbox").write_text("x")
    (tmp_path / "hold").write_text("x")
    code, shown = check(capsys, tmp_path, f'hold_dir = "{tmp_path / "hold" / "sub"}"\n')
    assert code == 2, shown
    assert f"outbox: {tmp_path / 'outbox'} exists and is not a folder" in shown
    assert f"hold_dir: {tmp_path / 'hold' / 'sub'} cannot be created" in shown


def test_an_inbox_that_is_a_symlink_loop_is_an_error_not_a_traceback(tmp_path, capsys):
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    path = tmp_path / "c.toml"
    path.write_text(f'inbox = "{tmp_path / "loop1"}"\noutbox = "{tmp_path / "out"}"\n')
    code, _, err = cli(capsys, "config", "check", "--config", str(path))
    assert code == 2 and "inbox:" in err and "Traceback" not in err, err


def test_a_start_refused_in_words_is_in_the_log_status_reads(tmp_path):
    hold = tmp_path / "hold"
    hold.mkdir()
    os.chmod(hold, 0o555)  # its owner cannot write there (root neither, under setpriv)
    config = make_config(tmp_path, hold_dir=str(hold / "held"))
    command = [sys.executable, "-m", "pixcamd", "run", "--config", str(config.source)]
    done = subprocess.run(unprivileged(command), capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "cannot start" in done.stderr and str(hold / "held") in done.stderr, done.stderr
    db = sqlite3.connect(config.ledger_path)
    said = [r[0] for r in db.execute("SELECT event FROM events ORDER BY id")]
    db.close()
    assert said[-1] == "start_refused", said


def test_a_killed_download_s_part_file_is_swept_by_the_next(tmp_path, capsys):
    dest = tmp_path / "w" / "KonCept512.pth"
    dest.parent.mkdir()
    stale = dest.parent / ".KonCept512.pth.abc123.part"
    fresh = dest.parent / ".KonCept512.pth.def456.part"
    stale.write_bytes(b"x" * 1000)
    fresh.write_bytes(b"y")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    (tmp_path / "notweights.pth").write_bytes(b"not a checkpoint")
    code, _, err = cli(
        capsys, "model", "fetch", "--from", str(tmp_path / "notweights.pth"), "--to", str(dest)
    )
    assert code == 2 and not dest.exists(), err
    assert not stale.exists() and fresh.exists()  # one written to now may be another fetch's
    code, _, err = cli(capsys, "model", "fetch", "--from", str(tmp_path), "--to", str(dest))
    assert code == 2 and "a folder, not a checkpoint file" in err, err


def test_model_fetch_expands_a_home_folder(home, capsys, monkeypatch):
    monkeypatch.chdir(home)
    (home / "notweights.pth").write_bytes(b"not a checkpoint")
    code, _, err = cli(
        capsys, "model", "fetch", "--from", str(home / "notweights.pth"), "--to", "~/w/K.pth"
    )
    assert code == 2 and f"→ {home / 'w' / 'K.pth'}" in err, err
    assert not (home / "~").exists()  # no folder named ~ where it ran


def test_status_shows_the_record_while_the_config_has_a_typo(tmp_path, capsys):
    """The daemon runs on; its config was edited with a typo its reload refused: `status`
    still shows the record, and says what is wrong with the file."""
    config = make_config(tmp_path)
    ledger = Ledger(config.ledger_path)
    ledger.offer("a.jpg", "0" * 64, 1, 1, "fp")
    # a daemon on `auto` without KonCept512's weights: what status shows of it needs the record
    # alone, not the config it cannot read
    weights = str(tmp_path / "cache" / "KonCept512.pth")
    ledger.set_daemon(model="brisque (auto fallback)", model_note="…", model_fallback=True)
    ledger.set_daemon(weights_file=weights)
    ledger.close()
    text = config.source.read_text().replace(f'"{config.state_dir}"', '" state "')
    config.source.write_text(text + "stepz = 4\n")  # the state dir as a person might write it
    code, out, err = cli(capsys, "status", "--config", str(config.source))
    assert code == 0 and "queued 1" in out, out + err
    assert "stepz: unknown key" in err and "showing the record at" in err, err
    assert f"{config.ledger_path}" in err, err
    assert f"config: {config.source} (--config; it does not validate)" in err, err
    config.source.write_text(text.replace('" state "', '"elsewhere"') + "stepz = 4\n")
    code, out, err = cli(capsys, "status", "--config", str(config.source))
    assert code == 2 and "stepz: unknown key" in err and "showing" not in err, err
    config.source.write_text(config.source.read_text() + "[[broken\n")
    code, _, err = cli(capsys, "status", "--config", str(config.source))
    assert code == 2 and "not valid TOML" in err, err
    # a TOML typo (the commonest refused edit): the state dir's own line still names the record
    config.source.write_text(text + "epsilon = 6,\n")
    code, out, err = cli(capsys, "status", "--config", str(config.source))
    assert code == 0 and "queued 1" in out, out + err
    assert "not valid TOML" in err and "showing the record at" in err, err


def test_a_refused_fetch_says_nothing_was_installed_not_to_fetch_again(tmp_path, capsys):
    (tmp_path / "notweights.pth").write_bytes(b"not a checkpoint")
    dest = tmp_path / "w" / "K.pth"
    code, _, err = cli(
        capsys, "model", "fetch", "--from", str(tmp_path / "notweights.pth"), "--to", str(dest)
    )
    assert code == 2 and "is not a PyTorch checkpoint" in err, err
    assert "nothing was installed" in err and "get them with" not in err, err
    assert "Warning" not in err and not dest.exists()
    # where the weights are merely wrong, fetching them is the advice — to where they are read
    named = tmp_path / "notweights.pth"
    code, out, err = cli(capsys, "model", "info", "--weights", str(named))
    assert code == 1 and f"get them with `pixcamd model fetch --to {named}`" in out + err, out


def test_status_says_weights_installed_since_a_fallback_instead_of_the_stale_advice(
    tmp_path, capsys, monkeypatch, recipe_checkpoint
):
    """A daemon on `auto` fell back to BRISQUE; `pixcamd model fetch` ran since: status must
    not go on saying the weights are not installed, but what brings them into use."""
    import shutil
    import signal

    from test_daemon_support import pixcamd_process, wait_for

    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv("CACHE_DIRECTORY", raising=False)
    config = make_config(tmp_path, model="auto")
    daemon = pixcamd_process(config.source, env_extra={"XDG_CACHE_HOME": str(cache)})
    try:
        wait_for(lambda: cli(capsys, "status", "--config", str(config.source))[0] == 0, 60, "up")
        wait_for(
            lambda: "FALLBACK" in cli(capsys, "status", "--config", str(config.source))[1],
            60,
            "the fallback recorded",
        )
    finally:
        daemon.send_signal(signal.SIGTERM)
        log, _ = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, log
    code, out, _ = cli(capsys, "status", "--config", str(config.source))
    assert "weights are not installed at" in out, out
    (cache / "pixcamd").mkdir(parents=True)
    shutil.copy(recipe_checkpoint, cache / "pixcamd" / "KonCept512.pth")
    code, out, _ = cli(capsys, "status", "--config", str(config.source))
    model = next(line for line in out.splitlines() if line.startswith("model: "))
    assert code == 0 and "not installed" not in model, out  # (the events keep what was said)
    assert "weights were installed since; the daemon uses them after its next start" in model
