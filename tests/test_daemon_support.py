"""Shared helpers and fixtures of the daemon tests (imported by the test_daemon_* modules).

``no_leaked_threads`` is autouse wherever it is imported: a test fails if it leaves a thread
running (the daemon's worker, observer or scheduler), as watchdog's own test-suite does.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tinybiqa import synthetic_photo

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_leaked_threads():
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 10
    while True:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not leaked, f"threads left running: {[t.name for t in leaked]}"


@pytest.fixture
def one_torch_thread():
    """Daemon tests share 2 cores with everything else: one torch thread keeps a photo's time
    steady (OpenMP threads spinning on a busy machine can make it 30× slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval=0.05):
    """Poll ``predicate`` until it is truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


# ---- photos -----------------------------------------------------------------------------------


def noise_photo(path: Path, seed: int, size=(512, 384)) -> Path:
    """Uniform noise: BRISQUE already scores it low, so protect() passes it through quickly."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"quality": 95} if path.suffix.lower() in (".jpg", ".jpeg") else {}
    Image.fromarray(pixels).save(path, **options)
    return path


def real_photo(path: Path, seed: int = 5, size=(640, 480)) -> Path:
    """A synthetic photo BRISQUE judges good on the centre view: it needs real protection
    (seed 5 at 640×480: about a second on a CPU)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    synthetic_photo(*size, seed).save(path, quality=95)
    return path


def sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- configuration and ledger -----------------------------------------------------------------


def make_config(root: Path, **overrides):
    """A fast configuration in ``root`` (inbox/, outbox/, state/); BRISQUE, centre view, the
    task's pipeline only, no web page. It is written to ``root/config.toml`` (for ``--config``)
    and loaded from there; ``pipelines`` (tables) are written last, as TOML wants."""
    from pixcamd.daemon.config import load_config
    from pixcamd.daemon.config_toml import toml_value

    (root / "inbox").mkdir(parents=True, exist_ok=True)
    raw = {
        "inbox": str(root / "inbox"),
        "outbox": str(root / "outbox"),
        "state_dir": str(root / "state"),
        "model": "brisque",
        "views": ["center"],
        "platforms": ["task"],
        "settle_time": 0.3,
        "settle_timeout": 3.0,
        "rescan_interval": 0,
        "retry_backoff": 0.2,
        "grace_time": 20.0,
        "web": "",  # the page has its own tests (test_web*.py); a fixed port would collide
    }
    raw.update(overrides)
    tables = raw.pop("pipelines", {})
    path = root / "config.toml"
    text = "".join(f"{k} = {toml_value(v)}\n" for k, v in raw.items())
    for name, table in tables.items():
        text += f"[pipelines.{name}]\n" + "".join(
            f"{k} = {toml_value(v)}\n" for k, v in table.items()
        )
    path.write_text(text)
    return load_config(path)


def ledger_rows(config) -> dict[str, dict]:
    """path → row, read from the ledger as another process would (empty before it exists)."""
    if not config.ledger_path.exists():
        return {}
    db = sqlite3.connect(f"file:{config.ledger_path}?mode=ro", uri=True, timeout=10)
    db.row_factory = sqlite3.Row
    try:
        return {r["path"]: dict(r) for r in db.execute("SELECT * FROM photos")}
    except sqlite3.OperationalError:
        return {}
    finally:
        db.close()


def events(config) -> list[dict]:
    """The JSON-lines status log, its complete lines: one the daemon is appending as it is
    read may be there in part (a line across a page of the file is copied in two steps), and
    a poll's json.loads failed on it; the next look has it whole."""
    if not config.log_file.exists():
        return []
    lines = config.log_file.read_text().split("\n")[:-1]  # the last: "" or a part line
    return [json.loads(line) for line in lines if line]


def finished(config, paths) -> bool:
    rows = ledger_rows(config)
    return all(p in rows and rows[p]["state"] in ("done", "unprotected", "failed") for p in paths)


# ---- running the daemon -----------------------------------------------------------------------


class FakeNotifier:
    """Collects sd_notify messages; ``watchdog`` as WATCHDOG_USEC would give it."""

    def __init__(self, watchdog: float | None = None):
        self.watchdog = watchdog
        self.messages: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def send(self, *lines: str) -> bool:
        with self._lock:
            self.messages += [(time.monotonic(), line) for line in lines]
        return True

    def lines(self, prefix: str = "") -> list[str]:
        with self._lock:
            return [m for _, m in self.messages if m.startswith(prefix)]


@contextlib.contextmanager
def running(config, models, notifier=None, timeout=30.0, decode=None, stderr=None):
    """The daemon loop in a thread with a stop event (paperless-ngx consumer style);
    ``decode``: the settle check's full decode instead of the photo's own; ``stderr``: a
    text stream for its human lines (default: none kept)."""
    from pixcamd.daemon.service import Daemon

    stream = stderr or open(os.devnull, "w")  # noqa: SIM115 - closed below
    daemon = Daemon(
        config, models=models, notifier=notifier or FakeNotifier(), stream=stream, decode=decode
    )
    stop = threading.Event()
    outcome: dict = {}

    def target():
        try:
            outcome["code"] = daemon.run(stop)
        except BaseException as exc:  # reported by the test
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="test-daemon")
    thread.start()
    try:
        wait_for(
            lambda: daemon._started or "error" in outcome or not thread.is_alive(),
            timeout,
            "the daemon to start",
        )
        if "error" in outcome:
            raise outcome["error"]
        daemon.outcome = outcome
        yield daemon
    finally:
        stop.set()
        thread.join(timeout + daemon.config.grace_time)
        if stderr is None:
            stream.close()
    assert not thread.is_alive(), "the daemon did not stop"
    if "error" in outcome:
        raise outcome["error"]
    assert outcome.get("code") == 0


def unprivileged(command: list[str]) -> list[str]:
    """``command`` as a process file permissions bind: as root (CI) under ``setpriv`` without
    the capabilities that let root read anything; skipped where root has no ``setpriv``."""
    if os.geteuid() != 0:
        return command
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv (util-linux): cannot drop DAC rights")
    drop = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", *command]


def signals_of(pid: int, field: str) -> int:
    """A signal mask of process ``pid`` from /proc (``SigIgn``, ``SigCgt``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1], 16)
    return 0


def wait_for_hup_ignored(
    proc: subprocess.Popen, caught: bool = False, timeout: float = 30.0
) -> None:
    """Until ``proc`` ignores SIGHUP: the first thing ``pixcamd.launch`` does for ``run``, after
    taking SIGTERM and SIGINT (a signal before it meets the default action: killed). ``caught``:
    or has a handler for it — `run`'s, which follows within a second: a HUP is not fatal either
    way, and a look that came late (a loaded machine) finds the handler, not the ignoring.
    Not so within ``timeout``: killed, and the test fails with its output (read once it ended —
    one read while it runs would wait for as long as it runs)."""

    def taken() -> int:
        mask = signals_of(proc.pid, "SigIgn") | (signals_of(proc.pid, "SigCgt") if caught else 0)
        return mask & (1 << (signal.SIGHUP - 1))

    deadline = time.monotonic() + timeout
    while not taken():
        if proc.poll() is not None:
            raise AssertionError(f"ended before it took SIGHUP:\n{proc.communicate()[0]}")
        if time.monotonic() > deadline:
            proc.kill()
            out = proc.communicate()[0]
            raise AssertionError(f"did not take SIGHUP within {timeout:g} s: killed\n{out}")
        time.sleep(0.001)


def dead_pid() -> int:
    """A pid that was a process and is no more."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def crashed(ledger_path: Path, photo: str = "kill1.jpg") -> None:
    """A ledger as a kill -9 mid-photo leaves it: a dead pid, no stop, ``photo`` processing."""
    from pixcamd.daemon.ledger import Ledger

    ledger = Ledger(ledger_path)
    ledger.set_daemon(pid=dead_pid(), heartbeat=1_796_470_000.0, stopped_at=None)
    ledger.offer(photo, "h1", 10, 1, "fp")
    ledger.claim_next()
    ledger.close()


def pixcamd_process(
    config_path: Path,
    env_extra: dict | None = None,
    command: tuple[str, ...] = ("run",),
    drop_root: bool = False,
    **kwargs,
):
    """``python -m pixcamd run --config FILE`` as systemd would start it (``command``: another
    of its commands; ``drop_root``: bound by file permissions, ``unprivileged``)."""
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "OMP_WAIT_POLICY": "PASSIVE",  # as the systemd unit sets it
        **(env_extra or {}),
    }
    argv = [sys.executable, "-m", "pixcamd", *command, "--config", str(config_path)]
    return subprocess.Popen(
        unprivileged(argv) if drop_root else argv,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


class OutboxRecorder:
    """Records everything that ever appears in the outbox, from its own watchdog observer, and
    reads each new file at once: a partial or temporary file would be caught in the act."""

    def __init__(self, outbox: Path):
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        self.outbox = outbox
        outbox.mkdir(parents=True, exist_ok=True)
        self.events: list[tuple[str, str, bool]] = []  # (kind, path, is a folder)
        self.unreadable: list[tuple[str, str]] = []
        recorder = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event):
                kind = event.event_type
                path = os.fsdecode(getattr(event, "dest_path", "") or event.src_path)
                if kind in ("opened", "closed_no_write"):
                    return
                recorder.events.append((kind, path, event.is_directory))
                if not event.is_directory and kind in ("created", "moved") and os.path.isfile(path):
                    try:
                        with Image.open(path) as img:
                            img.load()
                    except FileNotFoundError:
                        pass  # taken away already (an uploader)
                    except Exception as exc:
                        recorder.unreadable.append((path, str(exc)))

        self.observer = Observer(timeout=0.1)
        self.observer.schedule(Handler(), str(outbox), recursive=True)

    def __enter__(self):
        self.observer.start()
        return self

    def __exit__(self, *exc):
        time.sleep(0.3)  # let the last events arrive
        self.observer.stop()
        self.observer.join(5)

    def names(self) -> set[str]:
        return {
            os.path.relpath(path, self.outbox)
            for kind, path, folder in self.events
            if kind in ("created", "moved") and not folder
        }

    def assert_clean(self) -> None:
        """Only complete JPEGs ever appeared, each by a rename: nothing was written in place."""
        assert not self.unreadable, f"partial files seen in the outbox: {self.unreadable}"
        written = [
            (k, p) for k, p, folder in self.events if k in ("modified", "closed") and not folder
        ]
        assert not written, f"files written in place in the outbox: {written}"
        for name in self.names():
            assert name.endswith(".jpg"), f"a non-photo appeared in the outbox: {name}"
            assert not os.path.basename(name).startswith("."), f"temp file in outbox: {name}"
