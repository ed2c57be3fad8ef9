"""Installing KonCept512's weights: from the organizers' public share, or from a file you have.

Either way the file is written next to its destination under a temporary name, synced, checked
to load strictly as KonCept512, and only then renamed into place — so an interrupted or wrong
download never replaces working weights, and a daemon never sees a half-written file.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import http.client
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pixcamd.errors import DownloadError, TruncatedCheckpoint, WeightsMissing
from pixcamd.models.weights import WEIGHTS_URL, default_weights_path, load_checkpoint
from pixcamd.output import check_destination, plain_mode

CHUNK = 1 << 20


@dataclass
class Installed:
    path: Path
    size: int
    sha256: str
    fingerprint: str


class Progress:
    """A one-line progress bar on a terminal; a line every 10 % otherwise (logs stay short)."""

    def __init__(self, total: int | None, stream=None):
        self.total, self.done, self.stream = total, 0, stream or sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.last_decile, self.last_draw = -1, 0.0

    def update(self, n: int) -> None:
        self.done += n
        mb = self.done / 1e6
        if self.total:
            fraction = min(1.0, self.done / self.total)
            if self.tty and (time.monotonic() - self.last_draw > 0.1 or fraction == 1.0):
                bar = "#" * int(fraction * 30)
                self.stream.write(f"\r[{bar:<30}] {fraction:6.1%} {mb:7.1f} MB")
                self.last_draw = time.monotonic()
            elif not self.tty and int(fraction * 10) > self.last_decile:
                self.last_decile = int(fraction * 10)
                self.stream.write(f"{fraction:.0%} ({mb:.1f} of {self.total / 1e6:.1f} MB)\n")
        elif self.tty:
            self.stream.write(f"\r{mb:7.1f} MB")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _install(source: BinaryIO, total: int | None, dest: Path, origin: str) -> Installed:
    """Under ``_one_install``: the destination's folder exists and is this install's."""
    _sweep_parts(dest)
    free = shutil.disk_usage(dest.parent).free
    if total is not None and total > free:  # said before 229 MB are fetched, not after
        raise DownloadError(
            f"{dest.parent}: {free / 1e6:.0f} MB free, the weights need {total / 1e6:.0f} "
            f"MB; {NOTHING}"
        )
    return _write(source, total, dest, origin)


def _write(source: BinaryIO, total: int | None, dest: Path, origin: str) -> Installed:
    digest, size = hashlib.sha256(), 0
    # Same folder as the destination: the final rename is atomic (same filesystem).
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    progress = Progress(total)
    try:
        # unbuffered: the chunks are large already, and a close after a failed write has no
        # buffer left to fail on again
        with os.fdopen(fd, "wb", buffering=0) as out:
            while chunk := source.read(CHUNK):
                try:
                    view = memoryview(chunk)
                    while view:
                        view = view[out.write(view) :]
                except OSError as exc:  # a full disk, a quota
                    raise _unwritable(dest, exc) from None
                digest.update(chunk)
                size += len(chunk)
                progress.update(len(chunk))
            try:
                os.fsync(out.fileno())
            except OSError as exc:
                raise _unwritable(dest, exc) from None
        progress.close()
        if total is not None and size != total:
            raise TruncatedCheckpoint(
                f"{origin}: got {size} of {total} bytes; the transfer was cut off, try again "
                f"({NOTHING})"
            )
        from pixcamd.models.koncept512 import KonCept512

        # refuses anything but KonCept512 weights, naming what the user gave, not our copy
        model = KonCept512(load_checkpoint(tmp, name=origin, how_to_get=NOT_INSTALLED))
        os.chmod(tmp, plain_mode())  # readable as any file of the user's (a service account)
        os.replace(tmp, dest)
        dir_fd = os.open(dest.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        tmp.unlink(missing_ok=True)
    return Installed(dest, size, digest.hexdigest(), model.fingerprint)


NOTHING = "nothing was installed"


def _unwritable(dest: Path, exc: OSError) -> DownloadError:
    return DownloadError(
        f"{dest.parent}: cannot write the weights ({exc.strerror or exc}); {NOTHING}"
    )


NOT_INSTALLED = (
    f"{NOTHING}; check the file or the URL — KonCept512.pth is the task organizers' "
    "(`pixcamd model fetch` with no --url or --from downloads it)"
)


@contextlib.contextmanager
def _one_install(dest: Path):
    """One install into ``dest`` at a time, from before its transfer: a second is told, not
    raced (each would print its own file as installed, and the last rename wins). The lock is
    a hidden file beside ``dest``, removed when done (a lock on the folder itself would read
    as a daemon's outbox lock to `pixcamd protect` writing below it)."""
    lock = dest.parent / f".{dest.name}.fetching"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"{dest.parent}: {exc.strerror or exc}; {NOTHING}") from None
    fd = -1
    held = False
    try:
        for _ in range(3):  # a lock its holder removed as we opened it: open the new one
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                raise DownloadError(f"{dest.parent}: {exc.strerror or exc}; {NOTHING}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                break
            except OSError:  # a filesystem without flock: as before, unguarded
                held = True
                break
            try:  # the file it locked is still the lock, not one its holder removed meanwhile
                same = os.fstat(fd).st_ino == os.stat(lock).st_ino
            except OSError:
                same = False
            if same:
                held = True
                break
            os.close(fd)
            fd = -1
        if not held:
            raise DownloadError(
                f"{dest}: another `pixcamd model fetch` is installing there now; let it finish "
                f"({NOTHING} by this one)"
            )
        yield
    finally:
        if held:
            with contextlib.suppress(OSError):
                lock.unlink()  # before the lock is let go: a waiter then sees it was removed
        if fd >= 0:
            os.close(fd)


STALE_PART = 600.0  # seconds: a download in progress writes its part file all the time


def _sweep_parts(dest: Path) -> None:
    """The part files of installs that were killed (SIGTERM, SIGKILL: no clean-up ran), a
    whole checkpoint each; one written to in the last minutes may be another fetch's."""
    stale = time.time() - STALE_PART
    for part in dest.parent.glob(f".{glob.escape(dest.name)}.*.part"):
        with contextlib.suppress(OSError):
            if part.stat().st_mtime < stale:
                part.unlink()


def fetch_weights(
    url: str = WEIGHTS_URL, dest: Path | None = None, timeout: float = 60.0
) -> Installed:
    """Download KonCept512.pth from ``url`` into ``dest`` (default: the user's cache dir)."""
    dest = dest or default_weights_path()
    check_destination(dest)  # said now, not after the download
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "pixcamd"})
    except ValueError as exc:  # "notaurl": no scheme
        raise DownloadError(f"{url}: not a URL ({exc}); give one such as https://…") from None
    try:
        with _one_install(dest), urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length", "").strip()
            # a length that is no number says nothing: the checkpoint's own check still runs
            total = int(length) if length.isdecimal() else None
            return _install(response, total, dest, url)
    except urllib.error.HTTPError as exc:
        reason = " ".join(str(exc.reason).split())  # a redirect loop's reason spans lines
        hint = ""
        if exc.code in (403, 404, 410):  # the share moved or closed
            hint = " (a copy you have installs with `pixcamd model fetch --from FILE`)"
        raise DownloadError(
            f"{url}: the server answered {exc.code} {reason}; {NOTHING}{hint}"
        ) from exc
    except http.client.IncompleteRead as exc:
        raise DownloadError(f"{url}: the transfer was cut off, try again ({NOTHING})") from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"{url}: cannot download ({reason}); check the network ({NOTHING})"
        ) from exc


def install_weights(source: str | os.PathLike, dest: Path | None = None) -> Installed:
    """Install a KonCept512.pth the user already has (copied; the original is left alone)."""
    source, dest = Path(source), dest or default_weights_path()
    if not source.is_file():
        if source.is_dir():
            what = "a folder, not a checkpoint file"
        elif source.exists():  # /dev/null, a pipe: nothing whose size can be checked
            what = "not a regular file"
        else:
            what = "no such file"
        raise WeightsMissing(f"{source}: {what}; {NOTHING}")
    check_destination(dest)  # said now, not after the copy and the check
    try:
        f = source.open("rb")
    except OSError as exc:
        why = exc.strerror or exc
        raise WeightsMissing(f"{source}: cannot read it ({why}); {NOTHING}") from None
    with f, _one_install(dest):
        return _install(f, source.stat().st_size, dest, str(source))
