"""Publishing a copy exactly once: the commit protocol shared by the daemon's outbox and a
folder run's outdir.

``commit_publication`` stages the copy's bytes beside the destination's filesystem (fsynced),
records the commit in the ledger (the staged file, its sha256 and the row's final fields), renames
it into place, and finishes the row. The rename is the commit: ``recover_interrupted`` finds a
row left ``processing`` by a crash between the record and the end and finishes the rename, or
queues the photo again. ``published_copy`` reads a row's published bytes back, unchanged, for the
same photo under another name.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from pixcamd.daemon.fs import file_inside, publish, sha256_file
from pixcamd.daemon.ledger import Ledger
from pixcamd.daemon.ledger_row import Row, name_key


def commit_publication(
    ledger: Ledger,
    row_id: int,
    data: bytes,
    staged: Path,
    root: Path,
    out_rel: str,
    state: str,
    fields: dict,
    digest: str | None = None,
    mode: int | None = None,
) -> Row:
    """Stage ``data`` at ``staged`` (same filesystem as ``root``; with ``mode``, else this
    process's usual permissions), record the commit, rename it to ``root / out_rel`` and finish
    the row with ``state`` and ``fields``."""
    from pixcamd import output  # looked up here: tests stand in a full disk for it

    output.atomic_write(data, staged, staged.parent, mode)
    digest = digest or hashlib.sha256(data).hexdigest()
    final = {**fields, "state": state, "output": out_rel, "held": None}
    before = ledger.by_id(row_id)
    own = before is not None and before.output == out_rel  # its earlier copy: replaced
    ledger.prepare_commit(row_id, str(staged), out_rel, digest, final)
    try:
        publish(staged, root / out_rel, replace=own)
    except OSError:
        if not holds(root / out_rel, digest):  # (one it cannot read: not proved in place)
            # the retry stages its own: none left behind — its record first, or a recovery
            # would take the missing staged file for a finished move
            ledger.unstage(row_id)
            staged.unlink(missing_ok=True)
            raise
        # renamed, then the folder's fsync failed: the copy is in place, and this row's — a
        # retry would take it for a file no record wrote
    return ledger.finish(row_id, state, output=out_rel, held=None, **fields)


def holds(path: Path, digest: str) -> bool | None:
    """``path`` is a file with these bytes (sha256 ``digest``): True or False — or None where
    a file stands there that this user cannot read (its permissions, an I/O error). Such a file
    cannot be proved to be the copy, so no caller takes it for one (None is false): it is never
    replaced; but it is not known to be another file either, and is said as unreadable."""
    try:
        return path.is_file() and sha256_file(path) == digest
    except OSError:
        return None if os.path.lexists(path) else False


def copy_names(path: str) -> Iterator[str]:
    """The names ``path``'s copy may take, best first: its path with a .jpg extension
    (IMG_1.HEIC → IMG_1.jpg); where another photo has that name (IMG_1.png beside IMG_1.jpg),
    its full name (IMG_1.png.jpg); then numbered (IMG_1.png-2.jpg, …) should a photo really be
    called IMG_1.png.jpg too. A name that would not fit a file name's 255 bytes is shortened
    before its ending (a photo named up to the limit has room for no ``.png.jpg``)."""
    pure = PurePosixPath(path)
    stem, suffix = str(pure.with_suffix("")), pure.suffix
    yield _fitted(stem, ".jpg")
    yield _fitted(stem, f"{suffix}.jpg")
    yield from (_fitted(stem, f"{suffix}-{n}.jpg") for n in itertools.count(2))


NAME_MAX = 255  # bytes in one file name (ext4, btrfs, XFS, tmpfs; FAT and NTFS: 255 characters)


def _fitted(stem: str, ending: str) -> str:
    """``stem + ending``, the stem's last characters left out where the name would not fit."""
    folder, _, name = stem.rpartition("/")
    while name and len(os.fsencode(name + ending)) > NAME_MAX:
        name = name[:-1]  # whole characters: what is left stays valid UTF-8
    return f"{folder}/{name}{ending}" if folder else name + ending


def output_name(
    ledger: Ledger,
    row: Row,
    wanted: str | None = None,
    promised: Callable[[str], bool] = lambda name: False,
    root: Path | None = None,
) -> str:
    """Where ``row``'s copy goes under the outbox: ``wanted`` (default: the first of
    ``copy_names``) unless another row holds it, it is ``promised`` to another photo or a file
    stands there under ``root`` that no row wrote (the user's own, a lost ledger's: never
    replaced), else the first of ``copy_names`` that is none of these. Names are compared by
    ``name_key``: the outbox may be (or be synced to) a case-insensitive filesystem, so
    ``img_1.jpg`` arriving after ``IMG_1.jpg`` takes ``img_1.jpg.jpg``, on every filesystem
    alike, and so are the files that stand under ``root``. A row that has published keeps its
    name (a new copy replaces the old) — unless what stands there now is not the copy its record
    wrote (the uploader took it and a file of yours came under its name): never replaced."""
    if row.output and (root is None or _replaceable(root / row.output, row)):
        return row.output
    for candidate in itertools.chain([wanted] if wanted else [], copy_names(row.path)):
        if candidate != wanted and promised(candidate):
            continue
        if root is not None and _on_disk(root, candidate):
            continue
        if ledger.output_owner(candidate, row.path) is None:
            return candidate
    raise AssertionError("copy_names never ends")


def _replaceable(path: Path, row: Row) -> bool:
    """Whether ``row``'s new copy may replace what stands at its copy's name: nothing, or the
    bytes its record wrote there (a record that kept no digest — an older pixcamd's, a copy
    shipped by a decision — is trusted, as before). A file there that cannot be read is not
    proved to be those bytes: never replaced (``recorded_copy`` says which it is)."""
    return recorded_copy(path, row) is True


def recorded_copy(path: Path, row: Row) -> bool | None:
    """Whether what stands at ``path`` is the copy ``row``'s record wrote: True (or nothing
    there, or a record that kept no digest), False (another file), None (a file this user
    cannot read: it cannot be told)."""
    expected = row.report.get("output_sha256") if isinstance(row.report, dict) else None
    if not expected or not os.path.lexists(path):
        return True
    return holds(path, expected)


def _on_disk(root: Path, name: str) -> bool:
    """A file stands at ``name`` under ``root``, or one whose path a case-insensitive
    filesystem or a sync tool takes for it (``Trip/mine.JPG`` for ``trip/MINE.jpg``): each
    part of the path compared by ``name_key``."""
    if os.path.lexists(root / name):
        return True
    folders = [root]
    for part in PurePosixPath(name).parts:
        key, found = name_key(part), []
        for folder in folders:
            try:
                with os.scandir(folder) as entries:
                    found += [Path(e.path) for e in entries if name_key(e.name) == key]
            except OSError:  # not a folder (a file there), or none yet: nothing in it
                continue
        if not found:
            return False
        folders = found
    return True


def held_name(ledger: Ledger, row: Row, hold_dir: Path) -> str:
    """Where under ``hold_dir`` ``row``'s best attempt is kept: the first of ``copy_names``
    that no other photo's held copy has (``a.jpg`` and ``a.png`` both held back keep
    ``a.jpg`` and ``a.png.jpg``, as in the outbox — one file for both would show, and ship,
    the other photo's pixels)."""
    for candidate in copy_names(row.path):
        if ledger.held_owner(str(hold_dir / candidate), row.path) is None:
            return candidate
    raise AssertionError("copy_names never ends")


def drop_held(hold_dir: Path | None, held: str | None) -> None:
    """Remove a photo's held copy once the photo is in the outbox: it is no longer one a
    person should review. Only a file inside the hold folder is ever removed."""
    path = file_inside(held, hold_dir) if held else None
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()


def published_copy(root: Path, row: Row | None) -> tuple[bytes, str] | None:
    """The bytes ``row`` published under ``root`` and their sha256, if they are still there,
    unchanged (an uploader may have taken or replaced them)."""
    if row is None or not row.output or not isinstance(row.report, dict):
        return None
    expected = row.report.get("output_sha256")
    try:
        data = (root / row.output).read_bytes()
    except OSError:
        return None
    if not expected or hashlib.sha256(data).hexdigest() != expected:
        return None
    return data, expected


MEMORY_HINT = "lower `max_pixels` (a photo needs about 0.12 GB a megapixel)"  # the daemon's


def finish_interrupted(ledger: Ledger, row: Row, root: Path) -> tuple | None:
    """A row whose publication was recorded (staged) and then interrupted — by a crash, or by
    a ledger that refused the write after the rename: the publication finished, or found done,
    or the photo queued again where the outbox refuses it now. (row, event, message, level) to
    log; None where the row recorded no publication."""
    if not (row.staged_output and row.staged_sha256 and row.staged_fields):
        return None
    fields = dict(row.staged_fields)
    state = fields.pop("state")
    staged, dest = Path(row.staged or ""), root / row.staged_output
    if staged.is_file() and holds(dest, row.staged_sha256):  # linked, not yet unlinked
        staged.unlink()
    if staged.is_file() and sha256_file(staged) == row.staged_sha256:
        try:
            publish(staged, dest, replace=row.output == row.staged_output)
        except OSError as exc:  # the outbox refuses it now: never a start that fails
            why = f"could not finish its interrupted publication → {row.staged_output} "
            why += f"({exc.strerror or exc}); queued again"
            ledger.retry(row.id, why, 0.0)
            return (row, "recovered", why, "warning")
        how = "finished its interrupted publication"
    else:  # the rename happened (the uploader may already have taken the file)
        how = "was already published"
    ledger.finish(row.id, state, **fields)
    return (row, "recovered", f"{how} → {row.staged_output}", "info")


def recover_interrupted(
    ledger: Ledger,
    root: Path,
    max_attempts: int,
    memory_hint: str = MEMORY_HINT,
    stop_asked_at: float | None = None,
) -> list[tuple]:
    """Rows left ``processing`` by a crash, SIGKILL or Ctrl-C: finish an interrupted
    publication, or queue the photo again (the interrupted attempt counts towards
    ``max_attempts``). A photo taken before its daemon was asked to stop (``stop_asked_at``:
    SIGTERM then SIGKILL, as ``docker stop`` does once its 10 s are up) is queued again
    (due at once), its attempt not counted: the stop was asked for, no crash. Returns (row, event,
    message, level) for the caller to log; ``memory_hint``: what to do when the kernel's OOM
    killer is the likely cause."""
    said = []
    for row in ledger.processing():
        if row.taken:
            continue  # a person's decision, not a protection: pixcamd.daemon.decisions's
        finished = finish_interrupted(ledger, row, root)
        if finished is not None:
            said.append(finished)
        elif stop_asked_at is not None and stop_asked_at >= (row.started_at or 0.0):
            ledger.requeue(row.id)  # attempt not counted, due at once
            why = "was interrupted by a stop; queued again, the attempt not counted"
            said.append((row, "recovered", why, "info"))
        elif row.attempts >= max_attempts:
            # the usual killer of one photo again and again is the kernel's OOM killer
            reason = (
                f"interrupted {row.attempts} times (crash or kill mid-photo); gave up — if the "
                f"machine ran out of memory, {memory_hint}"
            )
            ledger.finish(row.id, "failed", error=reason)
            said.append((row, "failed", reason, "warning"))
        else:
            ledger.retry(row.id, "interrupted mid-photo (stopped)", 0.0)
            said.append((row, "recovered", "was interrupted mid-photo; queued again", "info"))
    return said
