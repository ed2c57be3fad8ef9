"""Each command with unusual output streams, as a script or a self-hoster meets them: stdout on
a full disk (``>/dev/full``) or closed (``>&-``), stderr closed (``2>&-``). An answer that could
not be written is said in one line, exit 2 — never a traceback, never a silent exit 0 — and
nothing is written in the wrong place."""

from __future__ import annotations

import io
import json
import os
import pwd
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_daemon_support import events, make_config, wait_for

ROOT = Path(__file__).resolve().parents[1]


def environment(tmp_path: Path) -> dict[str, str]:
    """This environment with a home of the test's own, and this tree's pixcamd."""
    return {**os.environ, "HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT)}


def pixcamd(tmp_path: Path, *args: str, close: int | None = None, **kwargs):
    """``python -m pixcamd ARGS…`` with its own home; ``close``: that descriptor closed, as
    ``>&-`` or ``2>&-`` leaves it."""
    env = environment(tmp_path)
    for name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "PIXCAMD_CONFIG"):
        env.pop(name, None)
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    return subprocess.run(
        [sys.executable, "-m", "pixcamd", *args],
        cwd=tmp_path,
        env=env,
        text=True,
        timeout=120,
        preexec_fn=None if close is None else (lambda: os.close(close)),
        **kwargs,
    )


@pytest.fixture
def config(tmp_path):
    return make_config(tmp_path)


@pytest.mark.parametrize(
    "args",
    [("model", "info"), ("model", "info", "--json"), ("config", "check"), ("status", "--json")],
)
def test_an_answer_to_a_full_disk_is_an_error(tmp_path, config, args):
    if args[0] in ("config", "status"):
        args = (*args, "--config", str(config.source))
    with open("/dev/full", "w") as full:
        result = pixcamd(tmp_path, *args, stdout=full)
    assert "Traceback" not in result.stderr
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[-1] == (
        "pixcamd: error: cannot write the answer to stdout (No space left on device): it is "
        "lost or cut short"
    )


def test_an_answer_to_a_closed_stdout_is_an_error(tmp_path):
    result = pixcamd(tmp_path, "model", "info", close=1)
    assert result.returncode == 2, result.stderr  # was 0: the answer printed to nowhere
    assert result.stderr.splitlines() == [
        "pixcamd: error: cannot write the answer to stdout (Bad file descriptor): it is lost "
        "or cut short"
    ]


@pytest.mark.parametrize("args", [("--version",), ("protect", "--help")])
@pytest.mark.parametrize("unbuffered", ["", "1"])
@pytest.mark.parametrize("close", [None, 1])
def test_argparses_own_answer_to_a_full_or_closed_stdout_is_an_error(
    tmp_path, monkeypatch, args, unbuffered, close
):
    """--help and --version print before any command runs: their failure was a traceback
    (exit 1) or "Exception ignored" at exit (120), as PYTHONUNBUFFERED had it."""
    monkeypatch.setenv("PYTHONUNBUFFERED", unbuffered)
    with open("/dev/full", "w") as full:
        result = pixcamd(tmp_path, *args, close=close, stdout=full)
    why = "No space left on device" if close is None else "Bad file descriptor"
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"pixcamd: error: cannot write the answer to stdout ({why}): it is lost or cut short"
    ]


@pytest.mark.parametrize("close", [None, 1])
def test_a_folder_runs_results_to_a_full_or_closed_stdout_are_said_once(tmp_path, close):
    """The result lines of `protect FOLDER --outdir DIR >&-`: the folder run took their
    OutputUnwritable for its executor failing ("stopped: … run the same command again") and
    retyped it, so the line still buffered failed again at the end — said twice."""
    from tinybiqa import synthetic_photo

    album = tmp_path / "album"
    album.mkdir()
    synthetic_photo(160, 120, 0).save(album / "p0.jpg", quality=95)
    fast = ["--model", "brisque", "--views", "center", "--steps", "5", "--platforms", "task"]
    args = ["protect", str(album), "--outdir", str(tmp_path / "out"), *fast]
    with open("/dev/full", "w") as full:
        result = pixcamd(tmp_path, *args, close=close, stdout=full)
    why = "No space left on device" if close is None else "Bad file descriptor"
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert result.returncode == 2, result.stderr
    assert errors == [
        f"pixcamd: error: cannot write the answer to stdout ({why}): it is lost or cut short"
    ], result.stderr


@pytest.mark.parametrize("close", [None, 1])
def test_pixcamd_web_serves_with_a_full_or_closed_stdout(tmp_path, config, close):
    """`pixcamd web >&-` served the page before stdout's failures became errors; then the
    line with its address ended it at once, exit 2 (its server not even stopped)."""
    import urllib.request

    from pixcamd.daemon.ledger import Ledger

    Ledger(config.ledger_path).close()
    env = environment(tmp_path)
    argv = ["web", "--config", str(config.source), "--listen", "127.0.0.1:0"]
    with open("/dev/full", "w") as full:
        process = subprocess.Popen(
            [sys.executable, "-m", "pixcamd", *argv],
            cwd=tmp_path,
            env=env,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=None if close is None else (lambda: os.close(close)),
        )
    try:
        said = [process.stderr.readline(), process.stderr.readline()]
        assert said[1].startswith("the web page: http://127.0.0.1:"), "".join(said)
        with urllib.request.urlopen(said[1].split()[3], timeout=30) as page:
            assert page.status == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        assert process.stderr.read() == ""
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize("close", [None, 1])
def test_an_error_after_part_of_the_answer_leaves_no_traceback_at_exit(
    tmp_path, config, monkeypatch, close
):
    """`retry --model-changed NAME` prints the models, then finds NAME not in the ledger (exit
    2): the models' line, still buffered, failed in the interpreter's last flush — "Exception
    ignored" and its traceback, exit 120."""
    from pixcamd.daemon.ledger import Ledger

    Ledger(config.ledger_path).close()
    monkeypatch.setenv("PYTHONUNBUFFERED", "")  # the line kept in stdout's buffer, as usual
    args = ["retry", "--model-changed", "nowhere.jpg", "--config", str(config.source)]
    with open("/dev/full", "w") as full:
        result = pixcamd(tmp_path, *args, close=close, stdout=full)
    why = "No space left on device" if close is None else "Bad file descriptor"
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[1:] == [
        "pixcamd: error: not in the ledger (the daemon has never seen them; `pixcamd status` "
        "lists what it has): nowhere.jpg",
        f"pixcamd: error: cannot write the answer to stdout ({why}): it is lost or cut short",
    ]


def test_a_closed_stderr_keeps_stdout_the_answer_alone(tmp_path, config):
    result = pixcamd(tmp_path, "config", "check", "--config", str(config.source), close=2)
    assert result.returncode == 0
    # the "config: FILE (…)" line meant for stderr went into the answer
    assert result.stdout.startswith(f"# effective configuration from {config.source}\n")
    assert "(your user config)" not in result.stdout and "\nconfig: " not in result.stdout


def test_a_closed_stdout_is_not_the_next_file_opened(tmp_path):
    """`run >&-` with its log on /dev/stdout: the descriptor left free was the next file the
    daemon opened — its lock — and the events went into it."""
    config = make_config(tmp_path, log_file="/dev/stdout")
    env = environment(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "pixcamd", "run", "--config", str(config.source)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.close(1),
    )
    said = []
    try:
        for line in process.stderr:
            said.append(line)
            if " ready: " in line:
                break
    finally:
        process.send_signal(signal.SIGTERM)
        said += process.stderr.readlines()
        process.wait(timeout=60)
    assert any(" ready: " in line for line in said), "".join(said)
    for path in (tmp_path / "state").rglob("*"):
        if path.is_file():
            assert b'"daemon_started"' not in path.read_bytes(), path
    assert any("log_unwritable" in line for line in said), "".join(said)


def test_a_relative_xdg_folder_is_ignored_as_the_spec_says(tmp_path):
    """XDG_CONFIG_HOME=conf (relative): `init` wrote ./conf/pixcamd/config.toml under the
    folder it was started in, where `status` or `run` started anywhere else never looks."""
    here, home = tmp_path / "here", tmp_path / "home"
    here.mkdir()
    env = environment(tmp_path) | {
        "XDG_CONFIG_HOME": "conf",
        "XDG_STATE_HOME": "state",
        "XDG_CACHE_HOME": "cache",
    }
    env.pop("PIXCAMD_CONFIG", None)
    command = [sys.executable, "-m", "pixcamd"]
    init = subprocess.run(
        [*command, "init"], cwd=here, env=env, capture_output=True, text=True, timeout=120
    )
    assert init.returncode == 0, init.stderr
    assert (home / ".config" / "pixcamd" / "config.toml").is_file()
    check = subprocess.run(
        [*command, "config", "check"], cwd=here, env=env, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    assert f'state_dir = "{home}/.local/state/pixcamd"' in check.stdout
    info = subprocess.run([*command, "model", "info"], cwd=here, env=env, capture_output=True)
    assert f"{home}/.cache/pixcamd/KonCept512.pth".encode() in info.stdout
    assert list(here.iterdir()) == []


def test_a_relative_home_is_ignored_for_the_passwd_entry(tmp_path):
    """HOME=. (relative, as a misconfigured service or `env HOME=. …` leaves it): a config's
    `~/…` and the weights' default folder counted from wherever the command ran — another
    folder from every working directory — so a daemon's inbox or state moved with its `cd`."""
    here = tmp_path / "here"
    here.mkdir()
    config = tmp_path / "config.toml"
    config.write_text('inbox = "~/Pictures/inbox"\noutbox = "~/Pictures/outbox"\n')
    env = environment(tmp_path) | {"HOME": ".", "PIXCAMD_CONFIG": str(config)}
    for name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        env.pop(name, None)
    owner = pwd.getpwuid(os.getuid()).pw_dir
    command = [sys.executable, "-m", "pixcamd"]
    check = subprocess.run(
        [*command, "config", "check"], cwd=here, env=env, capture_output=True, text=True
    )
    assert f"inbox: {owner}/Pictures/inbox does not exist" in check.stderr, check.stderr
    info = subprocess.run([*command, "model", "info"], cwd=here, env=env, capture_output=True)
    assert f"{owner}/.cache/pixcamd/KonCept512.pth".encode() in info.stdout, info.stdout
    assert list(here.iterdir()) == []


class _Terminal(io.StringIO):
    """stderr on a terminal: the folder run draws its bars there."""

    def isatty(self) -> bool:
        return True


def folder_run_on_a_terminal(tmp_path, capsys, monkeypatch, term: str):
    """Two photos protected as a folder, stderr a terminal of kind ``term``: the exit status,
    stdout and what the terminal was sent."""
    from tinybiqa import synthetic_photo

    from pixcamd.cli import main

    album = tmp_path / "album"
    album.mkdir()
    for seed in (0, 1):
        synthetic_photo(512, 384, seed).save(album / f"p{seed}.jpg", quality=95)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setenv("TERM", term)
    fast = ["--model", "brisque", "--views", "center", "--steps", "5", "--platforms", "task"]
    code = main(["protect", str(album), "--outdir", str(tmp_path / "out"), *fast])
    return code, capsys.readouterr().out, terminal.getvalue(), album


def test_results_go_to_a_redirected_stdout_while_the_bars_are_drawn(tmp_path, capsys, monkeypatch):
    """`protect FOLDER --outdir DIR > results.txt` on a terminal: each photo's result line was
    written above the bars on stderr alone, and results.txt stayed empty."""
    # not the dumb terminal a CI console may be: bars drawn
    code, out, said, album = folder_run_on_a_terminal(tmp_path, capsys, monkeypatch, "xterm")
    assert code in (0, 1), said
    assert "\r" in said, "no bars were drawn"
    results = [line for line in out.splitlines() if line]
    assert len(results) == 2, (out, said)
    for seed in (0, 1):
        assert any(line.startswith(f"{album / f'p{seed}.jpg'} ") for line in results), results


def test_a_dumb_terminal_gets_plain_lines(tmp_path, capsys, monkeypatch):
    """TERM=dumb cannot move the cursor up: the two bars' escape sequences were printed as
    they are (``^[[A``) between the lines."""
    code, out, said, _ = folder_run_on_a_terminal(tmp_path, capsys, monkeypatch, "dumb")
    assert code in (0, 1), said
    assert "\x1b" not in said and "\r" not in said, repr(said)
    assert len(out.splitlines()) == 2


def test_status_follow_ends_when_its_reader_has_gone(tmp_path, config):
    """`status --follow | head -1` with the daemon idle: no event is written that would find
    the pipe closed, and the follow waited for ever."""
    from pixcamd.daemon.ledger import Ledger

    Ledger(config.ledger_path).close()
    env = environment(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "pixcamd", "status", "--follow", "--config", str(config.source)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.close()  # the reader has enough
    try:
        code = process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail("status --follow went on after its reader had gone")
    err = process.stderr.read().decode()
    assert code == 0, err
    assert "Traceback" not in err and "Exception ignored" not in err, err


@pytest.mark.parametrize("args", [("config", "check"), ("status", "--json")])
def test_a_full_stderr_stops_no_answer(tmp_path, config, args):
    """`2>/dev/full`: the "config: FILE (…)" line on stderr failed, and the command died of
    it with exit 1 before its answer (`run` before it started: its events never did so)."""
    from pixcamd.daemon.ledger import Ledger

    Ledger(config.ledger_path).close()
    with open("/dev/full", "w") as full:
        result = pixcamd(tmp_path, *args, "--config", str(config.source), stderr=full)
    assert result.returncode == 0
    if args[0] == "config":
        assert result.stdout.startswith(f"# effective configuration from {config.source}\n")
    else:
        assert json.loads(result.stdout)["daemon"] == "stopped"


def test_the_daemon_starts_with_a_full_stderr(tmp_path, config):
    """`run 2>/dev/full` died before it started (exit 1, said nowhere); its event lines on
    stderr were always allowed to fail (`EventLog._print`), its log and ledger keep them."""
    env = environment(tmp_path)
    with open("/dev/full", "w") as full:
        process = subprocess.Popen(
            [sys.executable, "-m", "pixcamd", "run", "--config", str(config.source)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=full,
        )
    try:
        wait_for(
            lambda: (
                process.poll() is not None or any(e["event"] == "ready" for e in events(config))
            ),
            60,
            "the daemon ready",
        )
        assert process.poll() is None, f"ended with {process.returncode}"
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
    assert code == 0
