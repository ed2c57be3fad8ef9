"""``pixcamd model fetch|info`` against a real HTTP server on 127.0.0.1 (no internet)."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

from pixcamd.cli import main

pytestmark = pytest.mark.slow


class Share(http.server.ThreadingHTTPServer):
    """Serves ``routes``: path → (status, body, bytes actually sent or None for all)."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), ShareHandler)
        self.routes: dict[str, tuple[int, bytes, int | None]] = {}
        self.stalled: dict[str, threading.Event] = {}  # path → set to end its stalled transfer

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class ShareHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        status, body, sent = self.server.routes.get(self.path, (404, b"not found", None))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:sent] if sent is not None else body)
        if sent is not None and self.path in self.server.stalled:  # a transfer that hangs
            self.wfile.flush()
            self.server.stalled[self.path].wait(60)

    def log_message(self, *args):
        pass


@pytest.fixture
def share():
    server = Share()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    assert not thread.is_alive()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CACHE_DIRECTORY", raising=False)
    return tmp_path / "cache" / "pixcamd"


@pytest.fixture(scope="module")
def checkpoint_bytes(recipe_checkpoint) -> bytes:
    return recipe_checkpoint.read_bytes()


DOWNLOAD = "/files/index.php/s/share/download"


def test_fetch_installs_verified_weights(share, cache, checkpoint_bytes, capsys):
    share.routes[DOWNLOAD] = (200, checkpoint_bytes, None)
    assert main(["model", "fetch", "--url", share.url(DOWNLOAD)]) == 0
    out = capsys.readouterr().out
    installed = cache / "KonCept512.pth"
    assert installed.read_bytes() == checkpoint_bytes
    assert hashlib.sha256(checkpoint_bytes).hexdigest() in out
    assert f"{len(checkpoint_bytes):,} bytes" in out
    assert list(cache.iterdir()) == [installed]  # no temporary file left behind

    assert main(["model", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["weights_installed"] and info["auto_selects"] == "koncept512"
    assert info["auto_works"]
    assert info["weights_sha256"] == hashlib.sha256(checkpoint_bytes).hexdigest()
    assert info["models"]["koncept512"]["fingerprint"].startswith("koncept512-irv2")


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ("cut", "cut off"),
        ("html", "not a PyTorch checkpoint"),
        ("missing", "answered 404"),
    ],
)
def test_a_failed_fetch_leaves_working_weights_alone(
    share, cache, checkpoint_bytes, capsys, route, message
):
    share.routes["/cut"] = (200, checkpoint_bytes, len(checkpoint_bytes) // 3)
    share.routes["/html"] = (200, b"<html><body>Too many requests</body></html>", None)
    cache.mkdir(parents=True)
    good = cache / "KonCept512.pth"
    good.write_bytes(checkpoint_bytes)
    assert main(["model", "fetch", "--url", share.url(f"/{route}")]) == 2
    assert message in capsys.readouterr().err
    assert good.read_bytes() == checkpoint_bytes
    assert list(cache.iterdir()) == [good]


def test_fetch_from_a_local_file(cache, recipe_checkpoint, checkpoint_bytes, capsys):
    assert main(["model", "fetch", "--from", str(recipe_checkpoint)]) == 0
    assert (cache / "KonCept512.pth").read_bytes() == checkpoint_bytes
    # readable as any file the user makes (a service account given --weights), not mkstemp's 0600
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE((cache / "KonCept512.pth").stat().st_mode) == 0o666 & ~umask
    assert recipe_checkpoint.read_bytes() == checkpoint_bytes  # the source is only read
    assert hashlib.sha256(checkpoint_bytes).hexdigest() in capsys.readouterr().out


def test_fetch_from_a_wrong_file_installs_nothing(cache, tmp_path, capsys):
    wrong = tmp_path / "KonCept512.pth"
    wrong.write_bytes(b"\x00" * 4096)
    assert main(["model", "fetch", "--from", str(wrong)]) == 2
    err = capsys.readouterr().err
    assert f"{wrong} is not a PyTorch checkpoint" in err and ".part" not in err  # what you gave
    assert not (cache / "KonCept512.pth").exists()
    assert main(["model", "fetch", "--from", str(tmp_path / "absent.pth")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_a_bad_url_or_destination_is_one_line_before_any_transfer(
    cache, tmp_path, recipe_checkpoint, capsys
):
    assert main(["model", "fetch", "--url", "notaurl"]) == 2
    err = capsys.readouterr().err
    assert "notaurl: not a URL" in err and "Traceback" not in err
    folder = tmp_path / "weights.pth"  # a folder where the file would go
    folder.mkdir()
    for argv in (["--from", str(recipe_checkpoint)], ["--url", "http://127.0.0.1:9/x.pth"]):
        assert main(["model", "fetch", *argv, "--to", str(folder)]) == 2
        err = capsys.readouterr().err
        assert f"{folder}: is a folder, not a file name" in err and "Traceback" not in err
    assert list(folder.iterdir()) == []


def test_info_without_weights(cache, capsys):
    assert main(["model", "info"]) == 0
    out = capsys.readouterr().out
    assert "fails" not in out
    assert "not installed" in out and "model auto selects: brisque" in out
    assert "koncept512  unavailable" in out and "pixcamd model fetch" in out


def test_info_with_weights_that_are_not_there_fails_and_says_auto_would(cache, tmp_path, capsys):
    missing = tmp_path / "BAD.pth"
    assert main(["model", "info", "--weights", str(missing)]) == 1
    out = capsys.readouterr().out
    assert f"KonCept512 weights: {missing} (not installed)" in out
    assert "model auto selects: koncept512, which fails with these weights" in out
    assert f"weights not found at {missing}" in out
    assert main(["model", "info", "--weights", str(missing), "--json"]) == 1
    info = json.loads(capsys.readouterr().out)
    assert info["auto_selects"] == "koncept512" and not info["auto_works"]


def test_info_with_installed_weights_that_do_not_load_fails(cache, capsys):
    cache.mkdir(parents=True)
    (cache / "KonCept512.pth").write_bytes(b"<html>not a checkpoint</html>")
    assert main(["model", "info"]) == 1
    out = capsys.readouterr().out
    assert "model auto selects: koncept512, which fails with these weights" in out
    assert "koncept512  unavailable: " in out


def test_a_fetch_stopped_by_sigterm_leaves_no_part_file(share, cache, checkpoint_bytes):
    """`kill`, `timeout` or a service manager stopping a download: stopped as Ctrl-C is, its
    part file removed at once (it waited for the next fetch's sweep), nothing installed."""
    share.routes[DOWNLOAD] = (200, checkpoint_bytes, 1 << 20)  # a megabyte, then it hangs
    share.stalled[DOWNLOAD] = threading.Event()
    dest = cache / "KonCept512.pth"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "pixcamd", "model", "fetch", "--url", share.url(DOWNLOAD)]
    process = subprocess.Popen([*command, "--to", str(dest)], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not any(part.stat().st_size for part in cache.glob(".*.part")):
            assert time.monotonic() < deadline and process.poll() is None, "no download began"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
    finally:
        share.stalled[DOWNLOAD].set()
        process.kill()
    err = process.stderr.read().decode()
    assert code == 128 + signal.SIGTERM and "stopped; nothing was installed" in err, err
    assert list(cache.iterdir()) == [], list(cache.iterdir())
