"""Each command with unusual output streams, as a script or a self-hoster meets them: stdout on
a full disk (``>/dev/full``) or closed (``>&-``), stderr closed (``2>&-``). An answer that could
not be written is said in one line, exit 2 — never a traceback, never a silent exit 0 — and
nothing is written in the wrong place."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_daemon_support import make_config

ROOT = Path(__file__).resolve().parents[1]


def pixcamd(tmp_path: Path, *args: str, close: int | None = None, **kwargs):
    """``python -m pixcamd ARGS…`` with its own home; ``close``: that descriptor closed, as
    ``>&-`` or ``2>&-`` leaves it."""
    env = {**os.environ, "HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT)}
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
