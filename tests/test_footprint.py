"""Where pixcamd keeps things — docs/daemon.md, "Where pixcamd keeps things, and removing it" —
checked by running every command a person runs, for real, in a home of the test's own: HOME,
TMPDIR and XDG_RUNTIME_DIR in tmp_path, no XDG base folder set (so their defaults under HOME are
what is used), the working directory inside it. What is left there, outside the folders a person
names (inbox, outbox, a folder run's album and copies), must be exactly the documented list, and
TMPDIR empty after each command: a new place pixcamd writes to, or a temp file it forgets, fails
here."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from test_daemon_support import ROOT, noise_photo, real_photo, wait_for
from test_model_fetch import DOWNLOAD, share  # noqa: F401  (the fixture: a share on 127.0.0.1)

pytestmark = pytest.mark.slow  # model fetch builds KonCept512 to check what it installs

# pixcamd's own files, relative to the home, as docs/daemon.md lists them: each must be there
# at the end, and nothing else may be (an entry ending in / is a folder left empty)
FOOTPRINT = (
    ".config/pixcamd/config.toml",  # init
    ".config/systemd/user/pixcamd.service",  # init --systemd-user
    ".local/state/pixcamd/ledger.sqlite3*",  # the record (-wal, -shm while it runs)
    ".local/state/pixcamd/pixcamd.jsonl",  # the status log
    ".local/state/pixcamd/daemon.lock",
    ".local/state/pixcamd/web-secret",
    ".local/state/pixcamd/web-cache/*",  # the page's images: pixels of the photos
    ".local/state/pixcamd/tmp/",  # copies being written (the state dir is on the outbox's disk)
    "Pictures/pixcamd-held/held.jpg",  # hold_dir, as set here: a copy held back
    "Pictures/protected/.pixcamd/ledger.sqlite*",  # a folder run's record
    "Pictures/protected/.pixcamd/run.lock",
    "Pictures/protected/.pixcamd/tmp/",
    ".cache/pixcamd/KonCept512.pth",  # model fetch
)
# the person's own: the photos and their copies, where they were named
YOURS = (
    "Pictures/pixcamd-inbox/good.jpg",
    "Pictures/pixcamd-inbox/held.jpg",
    "Pictures/pixcamd-outbox/good.jpg",
    "Pictures/album/a.jpg",
    "Pictures/album/sub/b.jpg",
    "Pictures/protected/album/a.jpg",
    "Pictures/protected/album/sub/b.jpg",
    "Pictures/copies/one.jpg",
)
FAST = ("--platforms", "task", "--views", "center")


@pytest.fixture
def sandbox(tmp_path):
    home, tmp, run = tmp_path / "home", tmp_path / "tmp", tmp_path / "run"
    for folder in (home, tmp, run):
        folder.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("XDG_", "PIXCAMD_", "RAY_"))
        and k not in ("STATE_DIRECTORY", "CACHE_DIRECTORY", "LOGS_DIRECTORY")
    }
    env.update(
        HOME=str(home),
        TMPDIR=str(tmp),
        XDG_RUNTIME_DIR=str(run),
        PYTHONPATH=str(ROOT),
        PYTHONDONTWRITEBYTECODE="1",
        OMP_WAIT_POLICY="PASSIVE",
    )
    return home, tmp, run, env


def test_pixcamd_leaves_exactly_the_documented_files(sandbox, share, recipe_checkpoint):  # noqa: F811
    home, tmp, run, env = sandbox

    def pixcamd(*args: str, check: bool = True) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "pixcamd", *args],
            cwd=home,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0 or not check, (args, done.stdout, done.stderr)
        nothing_in_tmp(args)
        return done.stdout

    def nothing_in_tmp(after) -> None:
        for folder in (tmp, run):
            left = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
            assert not left, f"left in {folder.name} after {after}: {left}"

    def status() -> dict:
        """What `pixcamd status --json` says ({"error": …} before the daemon made its ledger)."""
        return json.loads(pixcamd("status", "--json", "--events", "200", check=False))

    def events(kind: str) -> list[dict]:
        return [e for e in status().get("events", []) if e["event"] == kind]

    def states() -> dict[str, str]:
        return {p["path"]: p["state"] for p in status().get("photos", [])}

    pixcamd("init", "--systemd-user")
    pictures = home / "Pictures"
    inbox = pictures / "pixcamd-inbox"
    config = home / ".config" / "pixcamd" / "config.toml"
    edit(
        config,
        views='["center"]',
        platforms='["task"]',
        settle_time="0.3",
        rescan_interval="0",
        web='"127.0.0.1:0"',
        hold_dir='"~/Pictures/pixcamd-held"',
    )

    daemon = subprocess.Popen(
        [sys.executable, "-m", "pixcamd", "run"],
        cwd=home,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: daemon.poll() is not None or events("ready"), 120, "the daemon ready")
        assert daemon.poll() is None, "pixcamd run ended"
        said = events("web")[0]["message"]  # "the web page: URL", or why there is none
        found = re.search(r"http://127\.0\.0\.1:\d+/", said)
        assert found, said
        url = found.group(0)
        # a photo protected
        real_photo(inbox / "good.jpg", seed=5)
        wait_for(lambda: states().get("good.jpg") == "done", 120, "good.jpg protected")
        # one held back: no budget from the reload on, its best attempt kept in hold_dir
        edit(config, epsilon="0", epsilon_cap="0")
        daemon.send_signal(signal.SIGHUP)
        wait_for(lambda: events("reloaded"), 60, "the reload")
        real_photo(inbox / "held.jpg", seed=8)
        wait_for(lambda: states().get("held.jpg") == "unprotected", 120, "held.jpg held back")
        # the web page's images of both: original, thumbnail, difference, copy
        with urllib.request.urlopen(url + "photos") as answer:
            ids = set(re.findall(r'href="/photos/(\d+)"', answer.read().decode()))
        assert len(ids) == 2, ids
        for photo in ids:
            for image in ("original.png", "thumb.jpg", "diff.png", "copy.jpg"):
                with urllib.request.urlopen(f"{url}photos/{photo}/{image}") as answer:
                    assert answer.status == 200 and answer.read()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(120) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    nothing_in_tmp("pixcamd run")

    pixcamd("status")
    pixcamd("config", "check")
    album = pictures / "album"
    real_photo(album / "a.jpg", seed=5)
    noise_photo(album / "sub" / "b.jpg", seed=1)
    pixcamd("protect", str(album), "--outdir", str(pictures / "protected"), *FAST)
    pixcamd("protect", str(album / "a.jpg"), "-o", str(pictures / "copies" / "one.jpg"), *FAST)
    pixcamd("score", str(album / "a.jpg"), *FAST)
    share.routes[DOWNLOAD] = (200, recipe_checkpoint.read_bytes(), None)
    pixcamd("model", "fetch", "--url", share.url(DOWNLOAD))
    pixcamd("model", "info")

    left = footprint(home)
    unlisted = sorted(p for p in left if not matches(p, FOOTPRINT + YOURS))
    assert not unlisted, f"pixcamd wrote where docs/daemon.md does not say: {unlisted}"
    missing = [g for g in FOOTPRINT + YOURS if not any(matches(p, (g,)) for p in left)]
    assert not missing, f"documented but not made (is the list still true?): {missing}"
    assert sorted(os.listdir(home.parent)) == ["home", "run", "tmp"]
    # the record names every photo and the page's cache holds their pixels: this user's alone,
    # under the usual umask 022 too (they were 0755 and the images 0644, open to every account)
    for private in (".local/state/pixcamd", ".local/state/pixcamd/web-cache"):
        assert (home / private).stat().st_mode & 0o077 == 0, private
    assert (pictures / "protected" / ".pixcamd").stat().st_mode & 0o077 == 0


@pytest.fixture(autouse=True)
def usual_umask():
    """022, as a desktop session has it: what pixcamd makes private must be made so."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def edit(config: Path, **values: str) -> None:
    """Set keys of the config ``init`` wrote, each on its own line there."""
    text = config.read_text()
    for key, value in values.items():
        text, found = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, flags=re.M)
        assert found == 1, key
    config.write_text(text)


def footprint(home: Path) -> set[str]:
    """Every file under ``home``, and every folder left empty (with a trailing /)."""
    found = set()
    for path in home.rglob("*"):
        name = path.relative_to(home).as_posix()
        if not path.is_dir():
            found.add(name)
        elif not any(path.iterdir()):
            found.add(name + "/")
    return found


def matches(path: str, globs) -> bool:
    return any(fnmatch.fnmatchcase(path, glob) for glob in globs)
