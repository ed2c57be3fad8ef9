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
        self.lengths: dict[str, str] = {}  # path → the Content-Length it claims instead

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class ShareHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        status, body, sent = self.server.routes.get(self.path, (404, b"not found", None))
        self.send_response(status)
        self.send_header("Content-Length", self.server.lengths.get(self.path, str(len(body))))
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
    assert f"KonCept512 weights: {missing} (not found)" in out  # named here, not installed
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


def stalled_fetch(share, cache, checkpoint_bytes, **kwargs) -> subprocess.Popen:
    """A `pixcamd model fetch` in its own process whose download has begun and then hangs."""
    share.routes[DOWNLOAD] = (200, checkpoint_bytes, 1 << 20)  # a megabyte, then it hangs
    share.stalled[DOWNLOAD] = threading.Event()
    dest = cache / "KonCept512.pth"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "pixcamd", "model", "fetch", "--url", share.url(DOWNLOAD)]
    process = subprocess.Popen(
        [*command, "--to", str(dest)], env=env, stderr=subprocess.PIPE, **kwargs
    )
    deadline = time.monotonic() + 60
    while not any(part.stat().st_size for part in cache.glob(".*.part")):
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            pytest.fail(f"no download began: {process.stderr.read().decode()}")
        time.sleep(0.05)
    return process


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["TERM", "HUP"])
def test_a_fetch_stopped_by_a_signal_leaves_no_part_file(share, cache, checkpoint_bytes, signum):
    """`kill`, `timeout` or a service manager stopping a download, or its ssh session gone:
    stopped as Ctrl-C is, its part file removed at once (it waited for the next fetch's
    sweep), nothing installed."""
    process = stalled_fetch(share, cache, checkpoint_bytes)
    try:
        process.send_signal(signum)
        code = process.wait(30)
    finally:
        share.stalled[DOWNLOAD].set()
        process.kill()
    err = process.stderr.read().decode()
    assert code == 128 + signum and "stopped; nothing was installed" in err, err
    assert list(cache.iterdir()) == [], list(cache.iterdir())


def test_a_second_fetch_beside_a_running_one_is_told_and_installs_nothing(
    share, cache, checkpoint_bytes, capsys
):
    """Two at once would each print their own file as installed, and the last rename wins."""
    process = stalled_fetch(share, cache, checkpoint_bytes)
    try:
        assert main(["model", "fetch", "--url", share.url("/other")]) == 2
        err = capsys.readouterr().err
        assert "another `pixcamd model fetch` is installing there now" in err, err
        # its lock is no daemon's outbox lock: a copy written below that folder is not refused
        from test_daemon_support import noise_photo

        photo = noise_photo(cache.parent / "p.png", 1)
        out = cache / "copies" / "p.jpg"
        argv = ["protect", str(photo), "-o", str(out), "--model", "brisque", "--threads", "1"]
        assert main([*argv, "--platforms", "task"]) == 0, capsys.readouterr().err
        assert out.is_file()
    finally:
        share.stalled[DOWNLOAD].set()
        process.kill()
        process.wait(30)
    assert not (cache / "KonCept512.pth").exists()


def damaged(state: dict, how: str) -> dict:
    """The recipe's weights with one head tensor made unusable."""
    import torch

    state = dict(state)
    if how == "nan":
        state["fc.12.bias"] = torch.full_like(state["fc.12.bias"], float("nan"))
    else:  # a converted copy: half precision throughout
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    return state


@pytest.mark.parametrize(
    ("how", "words"),
    [
        ("nan", "is damaged: 1 tensors hold NaN or infinite values (fc.12.bias)"),
        ("half", "of another type than KonCept512.pth's"),
    ],
)
def test_weights_that_load_but_are_not_the_checkpoint_install_nothing(
    cache, tmp_path, capsys, how, words
):
    import torch
    from conftest import recipe_state_dict

    wrong = tmp_path / "KonCept512.pth"
    torch.save(damaged(recipe_state_dict(), how), wrong)
    assert main(["model", "fetch", "--from", str(wrong)]) == 2
    err = capsys.readouterr().err
    assert words in err and "nothing was installed" in err and "Traceback" not in err, err
    assert not (cache / "KonCept512.pth").exists()
    # named directly, the same refusal: never a score from them
    assert main(["score", str(wrong), "--weights", str(wrong)]) == 2
    assert words in capsys.readouterr().err


def test_a_model_that_gives_no_score_is_an_error_never_low_quality(tmp_path):
    """A NaN is on neither side of the threshold; read as "not good" it would have counted a
    photo as protected."""
    import torch
    from conftest import recipe_state_dict
    from PIL import Image

    from pixcamd.errors import WeightsError
    from pixcamd.models.koncept512 import KonCept512
    from pixcamd.scoring import score_file

    model = KonCept512(recipe_state_dict()).eval()
    with torch.no_grad():
        model.fc[12].weight.fill_(float("inf"))  # finite weights read, then overflowing
    photo = tmp_path / "p.png"
    Image.new("RGB", (640, 480), (120, 130, 140)).save(photo)
    with pytest.raises(WeightsError, match="gave no score"):
        score_file(photo, model)


@pytest.mark.parametrize(
    ("length", "installs"), [("abc", True), (" 12 ", False)], ids=["no-number", "a-lie"]
)
def test_a_content_length_that_is_no_number_is_not_trusted(
    share, cache, checkpoint_bytes, capsys, length, installs
):
    share.routes[DOWNLOAD] = (200, checkpoint_bytes, None)
    share.lengths[DOWNLOAD] = length
    code = main(["model", "fetch", "--url", share.url(DOWNLOAD)])
    err = capsys.readouterr().err  # (the server's own thread may say the client hung up)
    assert code == (0 if installs else 2) and "invalid literal" not in err, err
    assert (cache / "KonCept512.pth").exists() == installs
    if not installs:
        assert "nothing was installed" in err


def test_every_failed_download_says_nothing_was_installed_and_what_else_to_do(share, cache, capsys):
    share.routes["/moved"] = (404, b"gone", None)
    assert main(["model", "fetch", "--url", share.url("/moved")]) == 2
    err = capsys.readouterr().err
    assert "answered 404" in err and "nothing was installed" in err, err
    assert "`pixcamd model fetch --from FILE`" in err
    assert main(["model", "fetch", "--url", "http://127.0.0.1:9/x.pth"]) == 2
    assert "nothing was installed" in capsys.readouterr().err


def test_a_full_disk_mid_download_is_one_line_and_installs_nothing(share, cache, checkpoint_bytes):
    """A real write refused by the kernel (a file size limit: EFBIG, as ENOSPC would be)."""
    import resource

    share.routes[DOWNLOAD] = (200, checkpoint_bytes, None)

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails instead of the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (8 << 20, 8 << 20))

    command = [sys.executable, "-m", "pixcamd", "model", "fetch", "--url", share.url(DOWNLOAD)]
    done = subprocess.run(
        [*command, "--to", str(cache / "KonCept512.pth")],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=small_files,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "cannot write the weights (File too large); nothing was installed" in done.stderr
    assert list(cache.iterdir()) == []


def test_fetch_says_what_comes_next_and_where_auto_looks(
    cache, tmp_path, recipe_checkpoint, capsys
):
    elsewhere = tmp_path / "models" / "KonCept512.pth"
    assert main(["model", "fetch", "--from", str(recipe_checkpoint), "--to", str(elsewhere)]) == 0
    out = capsys.readouterr().out
    assert f'without weights = "{elsewhere}"' in out and "model auto looks at" in out, out
    assert "`pixcamd retry --model-changed`" in out
    assert main(["model", "fetch", "--from", str(recipe_checkpoint)]) == 0
    assert "model auto looks at" not in capsys.readouterr().out  # the place auto looks


def test_fetch_names_every_daemon_to_reload_one_unit_per_inbox(
    home, cache, recipe_checkpoint, capsys
):
    """A phone's inbox and a camera's: two daemons read the weights, each reloaded by its
    own unit — `systemctl --user reload pixcamd` alone left the camera's on the model before."""
    assert main(["init", "--systemd-user"]) == 0
    camera = home / "config" / "pixcamd" / "camera.toml"
    args = ["--inbox", str(home / "camera"), "--outbox", str(home / "camera-out")]
    assert main(["init", "--config", str(camera), *args, "--systemd-user"]) == 0
    capsys.readouterr()
    assert main(["model", "fetch", "--from", str(recipe_checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "(systemctl --user reload pixcamd pixcamd-camera, or SIGHUP)" in out, out


def test_flags_that_would_be_ignored_are_refused(cache, tmp_path, recipe_checkpoint, capsys):
    argv = ["model", "fetch", "--from", str(recipe_checkpoint), "--url", "http://127.0.0.1:9/"]
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    photo = tmp_path / "p.png"
    photo.write_bytes(b"")
    with pytest.raises(SystemExit) as exited:
        main(["score", str(photo), "--model", "brisque", "--weights", str(recipe_checkpoint)])
    assert exited.value.code == 2
    assert "--model brisque does not use them" in capsys.readouterr().err
    assert main(["model", "fetch", "--from", os.devnull]) == 2
    assert f"{os.devnull}: not a regular file" in capsys.readouterr().err


@pytest.mark.parametrize("closed", ["file", "folder"])
def test_weights_this_user_cannot_read_are_said_so_by_every_command(
    tmp_path, recipe_checkpoint, closed
):
    """As `sudo pixcamd model fetch` under umask 077 leaves them: the file, or the folder it
    made for them, closed to the user that runs pixcamd."""
    from PIL import Image
    from test_daemon_support import unprivileged

    private = tmp_path / "cache" / "pixcamd" / "KonCept512.pth"
    private.parent.mkdir(parents=True)
    private.write_bytes(recipe_checkpoint.read_bytes())
    os.chmod(private if closed == "file" else private.parent, 0o000)
    photo = tmp_path / "p.png"
    Image.new("RGB", (640, 480), (120, 130, 140)).save(photo)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("CACHE_DIRECTORY", None)
    for argv in (
        ["score", str(photo), "--weights", str(private)],
        ["score", str(photo)],  # model auto: the weights are there, closed — not BRISQUE
        ["model", "info", "--weights", str(private)],
    ):
        done = subprocess.run(
            unprivileged([sys.executable, "-m", "pixcamd", *argv]),
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        said = done.stdout + done.stderr
        assert done.returncode in (1, 2) and "Traceback" not in said, (argv, said)
        assert f"{private}: cannot read it (Permission denied)" in said, (argv, said)
    os.chmod(private.parent, 0o755)
