"""Which files the page may show, and the images it makes from them.

Only files the ledger knows, inside the inbox, the outbox or the hold folder, are ever read:
a photo's id names it, its recorded path is joined to its folder and resolved (symlinks
included), and anything that resolves outside that folder, or is not a plain file, is treated
as absent (404). Originals are shown as pixcamd decoded them (upright, sRGB: what was
protected), as lossless PNG, so the side-by-side and the difference are pixel-true.

Made images — originals rendered, thumbnails, differences — go to a cache in the state dir
(``web-cache/``), keyed by the files' identities so a retried photo gets new ones; the cache is
held under ``CACHE_BYTES`` by evicting the least recently used files after each write. They are
made ``MAKERS`` at a time: each decodes a whole photo (a difference two; a JPEG's thumbnail a
photo libjpeg shrank as it decoded), and a browser asks for six images at once per tab — at
24 MP six differences made side by side took 3.1 GB beside the daemon's own protection
(docs/benchmarks.md, "The web page's images").
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections.abc import Callable
from pathlib import Path

from pixcamd.daemon.config import Config
from pixcamd.daemon.fs import file_inside
from pixcamd.daemon.ledger_row import Row

CACHE_BYTES = 256 * 2**20  # an original rendered losslessly at 24 MP is about 40 MB
THUMB_SIDE = 320
DIFF_GAIN = 16  # |original − copy| × 16: a change of one grey level shows as 16
MAKERS = 2  # images made at once, whatever number of requests wait for theirs


def original_file(config: Config, row: Row) -> Path | None:
    return file_inside(config.inbox / row.path, config.inbox)


def copy_file(config: Config, row: Row) -> tuple[Path, str] | None:
    """The photo's protected copy and where it lies: the outbox, or the hold folder — or
    "earlier": an earlier run's copy left in the outbox, shown only where a retry held back
    kept none (the page's scores are the retry's, the copy beside them what it checked)."""
    earlier = row.earlier_copy
    if row.output and not earlier:
        found = file_inside(config.outbox / row.output, config.outbox)
        if found is not None:
            return found, "outbox"
    if row.held:
        found = file_inside(Path(row.held), config.hold_dir)
        if found is not None:
            return found, "hold"
    if earlier:
        found = file_inside(config.outbox / earlier, config.outbox)
        if found is not None:
            return found, "earlier"
    return None


def private_folder(folder: Path) -> None:
    """``folder`` made, or kept, open to this user alone: the page's images are the photos'
    pixels — originals from an inbox that may be closed to others — and a state dir may be
    open to them (made before pixcamd made its own 0700, or a service's StateDirectoryMode=)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder.stat().st_mode & 0o077:
        os.chmod(folder, 0o700)


class Cache:
    """Made images under ``root``, least recently used evicted past ``limit`` bytes.

    The folder is listed when the bytes written since its last listing may have taken it past
    ``limit`` (and every ``RECOUNT`` writes, for another process's writes), not after every
    write: at 30,000 images a listing cost a quarter of a second, and image requests queued
    behind it. Past the limit it is brought down to 90 % of it, so that a full cache is not
    listed again at the next image."""

    RECOUNT = 200

    def __init__(self, root: Path, limit: int = CACHE_BYTES, makers: int = MAKERS):
        self.root, self.limit = root, limit
        if root.is_dir():  # an older pixcamd's, open to every account: closed as the page
            with contextlib.suppress(OSError):  # starts — its images may all be served, none made
                private_folder(root)
        self._makers = threading.BoundedSemaphore(makers)
        self._lock = threading.Lock()
        self._making: dict[str, threading.Lock] = {}
        self._total: int | None = None  # bytes in the folder at its last listing, and since
        self._writes = 0

    def get(self, key: str, make: Callable[[], bytes]) -> Path:
        path = self.root / key
        with self._lock:
            one = self._making.setdefault(key, threading.Lock())
        with one:  # two browsers asking for the same image make it once
            if path.is_file():
                with contextlib.suppress(OSError):
                    os.utime(path)  # recently used
                return path
            with self._makers:  # the memory of a few decoded photos, not of every request's
                data = make()  # a failure keeps the lock: whoever waits on it makes it next
            private_folder(self.root)
            tmp = path.with_name(f".{key}.{os.getpid()}.{threading.get_ident()}")
            tmp.write_bytes(data)
            os.replace(tmp, path)
            with self._lock:  # made: one lock per image being made, not per image ever made
                if self._making.get(key) is one:
                    del self._making[key]  # a waiter still holding it finds the file
        self._written(len(data), keep=path)
        return path

    def _written(self, size: int, keep: Path) -> None:
        with self._lock:
            self._writes += 1
            if self._total is not None:
                self._total += size
            if self._total is None or self._total > self.limit or self._writes >= self.RECOUNT:
                self._evict(keep)

    def _evict(self, keep: Path) -> None:
        """Under ``_lock``: list the folder, and unlink the least recently used past the limit."""
        entries = []
        for child in self.root.iterdir():
            with contextlib.suppress(OSError):
                st = child.stat()
                entries.append((st.st_mtime, st.st_size, child))
        total = sum(size for _, size, _ in entries)
        # down to 90 %, not just under the limit: the next images would each list it again
        target = self.limit * 0.9 if total > self.limit else self.limit
        for _, size, child in sorted(entries, key=lambda e: e[0]):
            if total <= target:
                break
            if child == keep:
                continue
            with contextlib.suppress(OSError):
                child.unlink()
                total -= size
        self._total, self._writes = total, 0


def identity(path: Path) -> str:
    st = path.stat()
    return f"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"


def decode(path: Path, max_pixels: int, reduce_to: int | None = None):
    """Upright sRGB pixels, as the daemon decodes a photo (``pixcamd.photo``); with
    ``reduce_to``, a JPEG decoded smaller, its long side no less than that."""
    from pixcamd.photo import load_photo  # torch comes with it: only once an image is asked

    return load_photo(path, max_pixels, reduce_to=reduce_to)


def png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)  # fast; these are for a screen, not an archive
    return buffer.getvalue()


def thumbnail(path: Path, max_pixels: int) -> bytes:
    # A JPEG shrunk by libjpeg as it decodes, to twice the thumbnail's side as Pillow's own
    # thumbnail() drafts it (the resize after still averages pixels): a 24 MP photo at 1/8, not
    # its 24 MP held and resized for a 320-pixel picture (docs/benchmarks.md). The short side
    # is rounded from the shrunk photo's, so a 213.5 may come out 213 where it came out 214.
    image = decode(path, max_pixels, reduce_to=2 * THUMB_SIDE)
    image.thumbnail((THUMB_SIDE, THUMB_SIDE))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def difference(original: Path, copy: Path, max_pixels: int) -> bytes:
    """|original − copy| × DIFF_GAIN per channel, at most 255, as PNG; ValueError when sizes
    differ. In 8 bits throughout (Pillow's, then a table): int16 arrays of both photos took half
    again the memory for the same bytes."""
    from PIL import ImageChops

    a, b = decode(original, max_pixels), decode(copy, max_pixels)
    if a.size != b.size:
        raise ValueError(f"the copy is {b.width}×{b.height}, the original {a.width}×{a.height}")
    gain = [min(level * DIFF_GAIN, 255) for level in range(256)] * 3  # one table a channel
    return png(ImageChops.difference(a, b).point(gain))
