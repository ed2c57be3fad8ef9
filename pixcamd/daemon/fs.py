"""Filesystem helpers of the daemon: hashing, durable renames, where temp files may live, which
folder of the outbox is closed to its user, and the lock that keeps one daemon per state dir."""

from __future__ import annotations

import ctypes
import errno
import functools
import hashlib
import os
import stat
import tempfile
from pathlib import Path

from pixcamd.daemon.config import Config, ConfigError
from pixcamd.output import nearest_existing

CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fp:
        while chunk := fp.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_dir(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(staged: Path, dest: Path, replace: bool = False) -> None:
    """Move a finished, fsynced file into place and make it durable. ``replace``: ``dest`` is
    this copy's own earlier file, replaced by a rename. Otherwise the name is taken by a
    rename that never replaces (``renameat2`` with ``RENAME_NOREPLACE``), which fails
    (FileExistsError) where a file appeared since the name was chosen — another program
    writing into the outbox: never replaced; the attempt is retried under another name. Either
    way the copy arrives as a move, the event (inotify's ``IN_MOVED_TO``) an upload script
    waits for. Where the kernel, the C library or the filesystem lacks that rename, a hard link
    takes the name (the copy then arrives as a creation, already complete), and without hard
    links (FAT, exFAT, some network shares) the plain rename, after a last look."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if replace:
        os.replace(staged, dest)
    elif not _rename_noreplace(staged, dest):
        try:
            os.link(staged, dest)
        except FileExistsError:
            raise
        except OSError:  # no hard links here
            if os.path.lexists(dest):
                raise FileExistsError(errno.EEXIST, "a file appeared there", str(dest)) from None
            os.replace(staged, dest)
        else:
            os.unlink(staged)
    fsync_dir(dest.parent)


_AT_FDCWD, _RENAME_NOREPLACE = -100, 1


def _rename_noreplace(source: Path, dest: Path) -> bool:
    """``rename`` that fails with FileExistsError where ``dest`` exists; False where it is
    not to be had here (Linux ≥ 3.15 with glibc ≥ 2.28, and a filesystem that supports it)."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    found = renameat2(
        _AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(dest), _RENAME_NOREPLACE
    )
    if found == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    if code == errno.EEXIST:
        raise FileExistsError(code, os.strerror(code), str(dest))
    raise OSError(code, os.strerror(code), str(source), None, str(dest))


@functools.cache
def _renameat2():
    """The C library's ``renameat2``, typed once (threads publish at once: the worker and a
    decision from the page); None where there is none."""
    found = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if found is not None:
        text = ctypes.c_char_p
        found.argtypes = [ctypes.c_int, text, ctypes.c_int, text, ctypes.c_uint]
    return found


def inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def file_inside(path: Path | str, root: Path | None) -> Path | None:
    """``path`` resolved, if it is a plain file inside ``root`` (resolved too); else None —
    what the page serves, a decision ships and a protected photo's held copy removes."""
    if root is None:
        return None
    real = Path(os.path.realpath(path))
    if not inside(real, Path(os.path.realpath(root))) or not real.is_file():
        return None
    return real


def _unescape(field: str) -> str:
    """/proc/self/mountinfo escapes space, tab, newline and backslash as octal."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_point(path: Path) -> str | None:
    """The mount a path is on, from /proc/self/mountinfo (None where that is unavailable).

    rename(2) fails with EXDEV across mounts even on one filesystem (systemd's ReadWritePaths=
    and StateDirectory= are separate bind mounts), so equal st_dev alone is not enough.
    """
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    real = str(path.resolve())
    best = None
    for line in lines:
        fields = line.split(" ")
        if len(fields) < 5:
            continue
        point = _unescape(fields[4])
        if (real == point or real.startswith(point.rstrip("/") + "/")) and (
            best is None or len(point) > len(best)
        ):
            best = point
    return best


def outbox_gone(outbox: Path, mount_at_start: str | None) -> str | None:
    """Why copies must not be written into ``outbox`` now, if they must not: it is gone, or
    the mount it was on at start went away (an unmounted share leaves its empty mount point
    folder behind, and a copy written there would land on the disk below). A mount that
    appears over it later is fine."""
    if not outbox.is_dir():
        return "the outbox is gone (moved, or a mount that went away); retried until it is back"
    now = mount_point(outbox)
    if mount_at_start in (None, "/") or now is None:
        return None
    if now == mount_at_start or now.startswith(mount_at_start.rstrip("/") + "/"):
        return None
    return f"the mount the outbox was on ({mount_at_start}) went away; retried until it is back"


def same_mount(a: Path, b: Path) -> bool:
    if a.stat().st_dev != b.stat().st_dev:
        return False
    return mount_point(a) == mount_point(b)


def choose_tmp_dir(config: Config, create: bool = True) -> Path:
    """Where copies are staged before the atomic rename into the outbox (docs/daemon.md).

    ``tmp_dir`` when configured; otherwise ``<state_dir>/tmp`` if it is on the outbox's mount,
    else the hidden sibling ``<outbox>/../.pixcamd-tmp-<outbox's name>`` — one per outbox:
    two daemons whose outboxes share a folder must not share one (``lock_tmp_dir``). Never
    inside the outbox, where an uploader would see half-written files. ``ConfigError`` if the
    choice cannot work.
    """
    outbox = config.outbox
    if create:
        outbox.mkdir(parents=True, exist_ok=True)
    candidates = (
        [config.tmp_dir_setting]
        if config.tmp_dir_setting is not None
        else [config.state_dir / "tmp", beside_outbox(outbox)]
    )
    # an earlier pixcamd's shared name, made by hand where this user may not create one beside
    # the outbox: still used where the new name cannot be made (locked like any temp folder)
    legacy = outbox.resolve().parent / ".pixcamd-tmp"
    if config.tmp_dir_setting is None and legacy.is_dir() and not legacy.is_symlink():
        candidates.append(legacy)
    for candidate in candidates:
        if inside(candidate.resolve(), outbox.resolve()):
            raise ConfigError(f"tmp_dir: {candidate} is inside the outbox")
        if inside(candidate.resolve(), config.inbox.resolve()):
            raise ConfigError(f"tmp_dir: {candidate} is inside the inbox")
        probe = nearest_existing(candidate)
        if not create and not outbox.exists():
            return candidate
        if outbox.exists() and same_mount(probe, outbox):
            fallback = candidate != candidates[-1] and candidates[-1] == legacy
            if not create and fallback and not os.access(probe, os.W_OK):
                continue  # what the daemon would do: it could not create this one
            if create:
                try:
                    candidate.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    if fallback:
                        continue
                    raise ConfigError(f"tmp_dir: cannot create {candidate} ({exc})") from exc
                if not same_mount(candidate, outbox):
                    continue
            return candidate
    tried = (
        f"{candidates[0]} is not"
        if len(candidates) == 1
        else "neither " + " nor ".join(str(c) for c in candidates) + " is"
    )
    if outbox.exists() and mount_point(outbox) == os.path.realpath(outbox):
        # the outbox is a mount's root (a card, a share, a container volume): its mount has no
        # folder outside it to write in
        raise ConfigError(
            f"tmp_dir: the outbox {outbox} is the root of a mount, so no folder on that mount "
            "lies outside it for copies to be written in and renamed from atomically; make the "
            f"outbox a folder on that mount instead (e.g. {outbox / 'outbox'}; the temp folder "
            "is then made beside it)"
        )
    raise ConfigError(
        f"tmp_dir: {tried} on the outbox's mount ({outbox}), so copies could not be renamed "
        "into it atomically; set tmp_dir to a writable folder on that mount, outside the outbox "
        "(under systemd: add it to ReadWritePaths= together with the outbox, as one folder)"
    )


def beside_outbox(outbox: Path) -> Path:
    """The temp folder beside ``outbox`` (``choose_tmp_dir``), its name within 255 bytes."""
    where = outbox.resolve()
    name = where.name.encode()[:200].decode(errors="ignore")
    return where.parent / f".pixcamd-tmp-{name}"


def access_problems(config: Config) -> list[str]:
    """What this process's user cannot do that the daemon must: list and read the inbox, write
    in the outbox (a service user a sync tool's folder was never opened to). Checked, not
    probed: no file is made in the outbox, where an uploader would see it."""
    user = this_user()
    problems = []
    try:
        with os.scandir(config.inbox):
            readable = os.access(config.inbox, os.R_OK | os.X_OK)
    except OSError:
        readable = False
    if config.inbox.is_dir() and not readable:
        problems.append(
            f"inbox: {config.inbox}: the user {user} cannot read it, so no photo in it would be "
            "seen; give that user read and search permission (a group or an ACL)"
        )
    if config.outbox.is_dir() and not os.access(config.outbox, os.W_OK | os.X_OK):
        problems.append(
            f"outbox: {config.outbox}: the user {user} cannot write in it, so no protected copy "
            "could be published; give that user write permission"
        )
    for key, folder, why in (
        ("state_dir", config.state_dir, "the daemon keeps its record of every photo there"),
        ("hold_dir", config.hold_dir, "photos held back are put there"),
    ):
        if folder is not None and folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
            problems.append(
                f"{key}: {folder}: the user {user} cannot write in it ({why}); give that user "
                "write permission"
            )
    return problems


def creatable_note(key: str, folder: Path, state_dir: Path) -> str:
    """What ``config check`` says of a folder ``run`` will make: not a refusal when this user
    cannot make it, as systemd makes a service's StateDirectory= only when the service starts
    (the state dir, and what ``run`` then makes in it; an outbox or hold dir elsewhere it
    never makes)."""
    above = nearest_existing(folder)
    if os.access(above, os.W_OK | os.X_OK):
        return f"# the {key.replace('_', ' ')} {folder} does not exist yet; `run` creates it"
    if key == "state_dir":
        systemd = " (systemd's StateDirectory= makes it for a service)"
    elif folder.is_relative_to(state_dir) and not state_dir.exists():
        systemd = " (or the state dir it is in: systemd's StateDirectory= makes that for a service)"
    else:
        systemd = ""
    return (
        f"# the {key.replace('_', ' ')} {folder} does not exist yet, and the user {this_user()} "
        f"cannot create it in {above}: `run` will be refused unless it is made first{systemd}"
    )


def this_user() -> str:
    """This process's user by name (its uid where it has none)."""
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def holds_a_file(folder: Path) -> bool:
    """Whether ``folder`` holds a file of any kind at any depth (pixcamd's own dot-names
    aside), stopping at the first: an outbox of a lost ledger's copies, or of other things."""
    for _where, folders, files in os.walk(folder):
        folders[:] = [f for f in folders if not f.startswith(".pixcamd")]
        if any(not f.startswith(".pixcamd") for f in files):
            return True
    return False


def writable_folder(folder: Path) -> None:
    """Make ``folder`` and prove a file can be written in it (a permission check would pass
    root by an immutable or read-only mount); OSError if not."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".pixcamd-probe-"):
        pass


def folder_identity(folder) -> tuple[int, int] | None:
    """(device, inode) of the folder at ``folder``'s path, None when there is none."""
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


# what a folder of the outbox closed to this user lacks: (cannot …, why, give that user …) and
# what it can be again
ACCESS_WORDS = {
    os.X_OK: (
        "enter",
        "its permissions: the folders inside it, where the copies go, cannot even be looked at",
        "permission to enter it",
        "entered",
    ),
    os.W_OK | os.X_OK: (
        "write in",
        "its permissions, or a read-only mount",
        "write permission",
        "written",
    ),
}


def closed_on_the_way(outbox: Path, target: Path) -> Path | None:
    """The folder inside ``outbox``, on the way to ``target`` (a copy's folder), that this
    user cannot use: one it cannot enter — nothing inside it can be looked at, so the folders
    below seem absent (a parent of the copy's folder given chmod 000) — or else the copy's
    folder, or the nearest one above it that exists (the copy's folders are made from there),
    where it cannot write. None where there is none, or where that is the outbox itself
    (``outbox_ready``'s)."""
    folder = outbox
    for part in target.relative_to(outbox).parts:
        if folder != outbox and not os.access(folder, os.X_OK):
            return folder
        if not os.path.lexists(folder / part):
            break
        if not os.path.isdir(folder / part):
            return None  # a file where a folder goes: its publication says so
        folder = folder / part
    return None if folder == outbox or os.access(folder, os.W_OK | os.X_OK) else folder
