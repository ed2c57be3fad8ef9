"""Commands that need no tensor start without torch: ``--help``, ``status``, ``retry``, ``init``.

Loading torch takes most of a second or more; ``pixcamd status`` in a loop, or ``--help``, should
not pay it. Each command runs in a fresh interpreter in which importing torch fails, so a heavy
import put back at the top of a module the CLI loads is caught here. (``protect``, ``score``,
``run``, ``model`` and ``config check`` — which resolves the device — load it in their handlers.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# `python -m pixcamd ARGS…`, with every import of torch refused
WITHOUT_TORCH = """
import runpy, sys

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ImportError(f"{name} imported by a command that needs no tensor")

sys.meta_path.insert(0, NoTorch())
runpy.run_module("pixcamd", run_name="__main__", alter_sys=True)
"""


def pixcamd(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture
def config(home) -> Path:
    path = home / "config.toml"
    path.write_text(
        f'inbox = "{home / "inbox"}"\noutbox = "{home / "outbox"}"\n'
        f'state_dir = "{home / "state"}"\nmodel = "brisque"\n'
    )
    for folder in ("inbox", "outbox", "state"):
        (home / folder).mkdir()
    return path


def test_the_guard_refuses_torch():
    # the check below means something only if torch really cannot be imported under the guard
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH.replace("runpy.run_module", "import torch #")],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "needs no tensor" in done.stderr


def test_help_without_torch():
    done = pixcamd("--help")
    assert done.returncode == 0, done.stderr
    assert "status" in done.stdout and "protect" in done.stdout


def test_status_without_torch(config):
    # no ledger yet: said in words, not an ImportError
    done = pixcamd("status", "--config", str(config))
    assert done.returncode == 2, done.stderr
    assert "no ledger" in done.stderr and "needs no tensor" not in done.stderr

    from pixcamd.daemon.ledger import Ledger

    Ledger(config.parent / "state" / "ledger.sqlite3").close()
    for args in ((), ("--json",)):
        done = pixcamd("status", "--config", str(config), *args)
        assert done.returncode == 0, done.stderr
        assert ("queued" in done.stdout) if not args else ('"daemon"' in done.stdout)
    done = pixcamd("retry", "--failed", "--config", str(config))
    assert done.returncode == 0, done.stderr


def test_init_without_torch(home):
    done = pixcamd(
        "init",
        "--config",
        str(home / "mine.toml"),
        "--inbox",
        str(home / "in"),
        "--outbox",
        str(home / "out"),
    )
    assert done.returncode == 0, done.stderr
    assert (home / "mine.toml").is_file()
