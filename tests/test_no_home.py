"""A container's user: no HOME and no passwd entry (``docker run --user 12345``, ``env -i``).
Each command that needs a home folder says on one line what to set instead and exits 2 like
any refusal — never Python's RuntimeError, a traceback and exit 1 that a restart policy loops
on. Run as a uid with no passwd entry under ``setpriv`` (as root, as CI runs)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOBODY = 54321  # a uid with no passwd entry


def homeless(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run as a uid with no passwd entry")
    try:
        pwd.getpwuid(NOBODY)
        pytest.skip(f"uid {NOBODY} has a passwd entry here")
    except KeyError:
        pass
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}  # no HOME, no XDG_*
    command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    return subprocess.run(
        [*command, sys.executable, "-m", "pixcamd", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def open_root():
    """A folder the uid can enter, with inbox/outbox/state it can write: right under /tmp, not
    pytest's tmp_path — its /tmp/pytest-of-root is root's alone, and another pytest session
    starting meanwhile closes it again (0700), whatever this test opened."""
    root = Path(tempfile.mkdtemp(prefix="pixcamd-nohome-"))
    try:
        os.chmod(root, 0o755)
        for name in ("inbox", "outbox", "state"):
            (root / name).mkdir()
            os.chmod(root / name, 0o777)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def refused(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "RuntimeError" not in result.stderr
    assert "no home folder" in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def test_commands_without_a_home_folder_say_what_to_set(open_root):
    root = open_root
    config = root / "config.toml"
    config.write_text(f'inbox = "{root / "inbox"}"\noutbox = "{root / "outbox"}"\n')
    os.chmod(config, 0o644)
    refused(homeless("config", "check", "--config", str(config), cwd=root), "state_dir")
    refused(homeless("status", cwd=root), "--config", "XDG_CONFIG_HOME")
    refused(homeless("init", cwd=root), "--config", "XDG_CONFIG_HOME")
    named = root / "named.toml"
    refused(homeless("init", "--config", str(named), cwd=root), "--inbox")
    assert not named.exists() and not (root / "~").exists()
    # state_dir named: model = auto looks for KonCept512's weights in the cache
    config.write_text(config.read_text() + f'state_dir = "{root / "state"}"\nmodel = "auto"\n')
    refused(homeless("config", "check", "--config", str(config), cwd=root), "XDG_CACHE_HOME")
    refused(homeless("run", "--config", str(config), cwd=root), "XDG_CACHE_HOME", "weights")


def test_a_path_with_a_tilde_is_refused_not_made_under_the_current_folder(open_root):
    root = open_root
    config = root / "config.toml"
    config.write_text(
        f'inbox = "~/inbox"\noutbox = "{root / "outbox"}"\nstate_dir = "{root / "state"}"\n'
    )
    os.chmod(config, 0o644)
    refused(homeless("config", "check", "--config", str(config), cwd=root), "~/inbox")
