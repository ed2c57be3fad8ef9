"""Shared by the web page's tests: a real ledger made once by the real daemon protecting real
photos, copied into each test's own folder, and the page served on 127.0.0.1 (an ephemeral
port) against it."""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit

import piexif
import pytest
from test_daemon_support import finished, make_config, noise_photo, real_photo, running, wait_for

# epsilon 0 cannot change a pixel: a good-quality photo is held back (a stronger retry, with
# a budget of its own, can then protect it); noise is already low quality (shipped)
WORLD = dict(
    epsilon=0,
    epsilon_cap=0,
    steps=5,
    max_attempts=1,
    web="127.0.0.1:0",
)
NAMES = ("noise.jpg", "held.jpg", "bad.jpg")


def world_config(root: Path, **extra):
    return make_config(root, **{**WORLD, "hold_dir": str(root / "hold"), **extra})


def gps_photo(path: Path) -> Path:
    """A photo BRISQUE judges good, with a GPS position in its EXIF."""
    real_photo(path)
    gps = {
        piexif.GPSIFD.GPSLatitudeRef: b"N",
        piexif.GPSIFD.GPSLatitude: ((48, 1), (51, 1), (0, 1)),
    }
    piexif.insert(piexif.dump({"0th": {}, "Exif": {}, "GPS": gps}), str(path))
    return path


@pytest.fixture(scope="session")
def world_template(tmp_path_factory, brisque):
    """inbox/outbox/hold/state after one real daemon run: a shipped photo (already low
    quality), a held-back one (with a kept copy and GPS removed from it), a failed one."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("web-world")
    config = world_config(root, web="")
    noise_photo(config.inbox / "noise.jpg", 1)
    gps_photo(config.inbox / "held.jpg")
    (config.inbox / "bad.jpg").write_bytes(b"\xff\xd8 not a photo")
    try:
        with running(config, [brisque]):
            wait_for(lambda: finished(config, NAMES), 120, "the first pass")
    finally:
        torch.set_num_threads(threads)
    return root


@pytest.fixture
def world(world_template, tmp_path):
    """A copy of the template world for this test alone, and its config."""
    return copy_world(world_template, tmp_path / "world")


def copy_world(world_template: Path, root: Path):
    shutil.copytree(world_template, root, symlinks=True)
    (root / "config.toml").unlink()
    db = sqlite3.connect(root / "state" / "ledger.sqlite3")
    with db:  # the held copy's recorded path is absolute: this world's own
        db.execute("UPDATE photos SET held = replace(held, ?, ?)", (str(world_template), str(root)))
    db.close()
    return world_config(root)


def rows(config) -> dict[str, dict]:
    db = sqlite3.connect(f"file:{config.ledger_path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return {r["path"]: dict(r) for r in db.execute("SELECT * FROM photos")}
    finally:
        db.close()


def ids(config) -> dict[str, int]:
    return {path: row["id"] for path, row in rows(config).items()}


def cli(capsys, config, *argv) -> tuple[int, str]:
    from pixcamd.cli import main

    code = main([*argv, "--config", str(config.source)])
    out, err = capsys.readouterr()
    return code, out + err


def events(config, kind: str) -> list[dict]:
    db = sqlite3.connect(f"file:{config.ledger_path}?mode=ro", uri=True)
    try:
        found = db.execute("SELECT path, data FROM events WHERE event = ? ORDER BY id", (kind,))
        return [{"path": p, **json.loads(d)} for p, d in found]
    finally:
        db.close()


@contextlib.contextmanager
def serving(config, address: str = "127.0.0.1:0"):
    from pixcamd.web.server import WebServer

    server = WebServer(config, address)
    server.start()
    try:
        yield server
    finally:
        server.stop()
    assert not server.thread.is_alive()


class Client:
    """Raw HTTP (http.client sends a path exactly as given: no normalizing of tricks)."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port

    def request(self, method: str, path: str, body: bytes | str | None = None, headers=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            headers = dict(headers or {})
            if isinstance(body, str):
                body = body.encode()
                headers.setdefault("content-type", "application/x-www-form-urlencoded")
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return (
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read(),
            )
        finally:
            conn.close()

    def get(self, path: str, **headers):
        return self.request("GET", path, headers=headers)

    def post(self, path: str, form: str, **headers):
        return self.request("POST", path, form, headers=headers)


def secret(config) -> str:
    return (config.state_dir / "web-secret").read_text().strip()
