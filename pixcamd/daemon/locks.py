"""The daemon's locks: flocks the kernel drops with their process. One daemon per state dir
(``daemon.lock``, which names its pid), per outbox and per temp folder; ``status``'s and
``protect``'s looks for a running daemon; a lock's holder named from /proc/locks."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path

from pixcamd.daemon.fs import folder_identity
from pixcamd.errors import PixcamdError

# `protect`'s and `status`'s shared look at a lock lasts microseconds, a daemon's its whole life
LOCK_TRIES, LOCK_PAUSE = 20, 0.05


class LockHeld(Exception):
    """A lock another process holds; ``pid`` as it is known ("" where not)."""

    def __init__(self, pid: str):
        super().__init__(pid)
        self.pid = pid

    def who(self, what: str = "pixcamd daemon") -> str:
        return f"another {what}{f' (pid {self.pid})' if self.pid else ''}"


def hold_lock(path: Path) -> int | None:
    """An flock on ``path`` (made where missing) that the kernel drops when the process
    dies, this pid written in it for the next one to name; ``LockHeld`` where it is held.
    None where the file system cannot lock (NFS without its lock daemon): no lock there."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    taken = _exclusive(fd)
    if taken is None:  # ENOLCK: the last holder's pid in the file would be named for nothing
        os.close(fd)
        return None
    if not taken:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        raise LockHeld(holder)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _exclusive(fd: int) -> bool | None:
    """An exclusive flock on ``fd``, tried ``LOCK_TRIES`` times ``LOCK_PAUSE`` apart (a look by
    `status` or `protect` holds a lock for an instant): True taken, False another process holds
    it, None where the file system cannot lock."""
    for tries_left in reversed(range(LOCK_TRIES)):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if tries_left:
                time.sleep(LOCK_PAUSE)
        except OSError:
            return None
    return False


def lock_free(path: Path) -> bool | None:
    """Whether no process holds ``hold_lock``'s lock on ``path``: True where a shared lock
    can be taken (let go at once), False where it cannot, None where that cannot be told (no
    file, one this user cannot read, a file system without locks).

    A daemon killed (-9, a power cut) leaves its pid in its record and in the file, and in a
    container that pid (1) is alive in every other one: only the lock, which the kernel drops
    with the process, says whether it runs. Looked at with a lock of our own: /proc/locks takes
    none, but hides a holder in another pid namespace (another container). That shared lock
    held for an instant would refuse a daemon starting in it — ``hold_lock`` tries again for a
    second before it refuses, as ``lock_folder`` does for `protect`'s look."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return None
    finally:
        os.close(fd)  # and with it the shared lock just taken
    return True


def release_lock(fd: int | None) -> None:
    """Let go of a ``hold_lock`` lock, its pid taken out of the file first, while it is still
    held: the file names the process that holds it, or none — never a start that was refused,
    nor a daemon that has stopped (the next holder writes its own)."""
    if fd is not None:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
    unlock(fd)


def lock_state_dir(state_dir: Path, config=None) -> int | None:
    """One daemon per state dir (``release_lock`` lets go of it). ``config``: the one a start
    runs, told apart from a second config on the same state dir in the refusal's words."""
    try:
        return hold_lock(state_dir / "daemon.lock")
    except LockHeld as held:
        if config is not None and _runs_it(config):
            raise PixcamdError(_already_running(config, held)) from None
        raise PixcamdError(
            f"{held.who()} is using the state dir {state_dir}; a second config needs a "
            "state_dir of its own"
        ) from None


def _runs_it(config) -> bool:
    """Whether the daemon holding ``config``'s state dir recorded its inbox and outbox: the
    same config started again (a unit running, and `pixcamd run` typed in a terminal)."""
    from pixcamd.daemon.ledger_file import read_only

    try:
        db = read_only(config.ledger_path)
    except Exception:  # no record to tell by (damaged, unreadable): the general words
        return False
    try:
        found = dict(db.execute("SELECT key, value FROM daemon WHERE key IN ('inbox', 'outbox')"))
    except Exception:
        return False
    finally:
        db.close()
    return found == {
        "inbox": json.dumps(str(config.inbox)),
        "outbox": json.dumps(str(config.outbox)),
    }


def _already_running(config, held: LockHeld) -> str:
    import shlex

    from pixcamd.daemon.config import locate_config
    from pixcamd.daemon.user_units import reload_command

    try:  # `status` finds this config without a flag, or is told it
        found = os.path.realpath(locate_config()[0]) == os.path.realpath(config.source)
    except (PixcamdError, OSError, TypeError):
        found = False
    flag = "" if found else f" --config {shlex.quote(str(config.source))}"
    pid = f" (pid {held.pid})" if held.pid else ""
    hup = f"`kill -HUP {held.pid}`" if held.pid else "SIGHUP"
    return (
        f"pixcamd already runs this config{pid}: its inbox {config.inbox} and outbox "
        f"{config.outbox} are that daemon's (`pixcamd status{flag}` shows what it does); to "
        f"apply an edited config, reload it ({reload_command(config.source)}, or {hup}); to "
        "start it here instead, stop it first"
    )


def lock_folder(folder: Path) -> int | None:
    """An flock on ``folder`` itself — nothing is written into it for the lock — that the
    kernel drops when the process dies; ``LockHeld`` where another process holds it. None
    where the file system cannot lock a folder (some network shares), or this user may write
    the folder but not read it (a drop box): no lock there."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except PermissionError:
        return None
    taken = _exclusive(fd)
    if taken:
        return fd
    holder = lock_holder(fd) if taken is False else None
    os.close(fd)
    if taken is None:  # a file system that cannot lock a folder
        return None
    raise LockHeld(str(holder) if holder else "")


def lock_outbox(outbox: Path) -> int | None:
    """One daemon per outbox too, whatever its state dir: two would each ship a copy of every
    photo they both see. Where the outbox cannot be locked, the state dir's lock is all there
    is."""
    try:
        return lock_folder(outbox)
    except LockHeld as held:
        raise PixcamdError(
            f"{held.who()} publishes to the outbox {outbox} from a state dir of its own: both "
            "would ship a copy of every photo; give this config an outbox of its own"
        ) from None


def lock_tmp_dir(tmp_dir: Path) -> int | None:
    """One daemon per temp folder: each empties it at start and stages copies under its own
    row numbers, so two (one ``tmp_dir`` in two configs) would delete or publish each other's
    copies."""
    try:
        return lock_folder(tmp_dir)
    except LockHeld as held:
        raise PixcamdError(
            f"tmp_dir: {held.who()} stages its copies in {tmp_dir}: both would delete or "
            "publish each other's; give this config a tmp_dir of its own"
        ) from None


def held_by(lock: Path) -> str | None:
    """The pid written in ``lock`` while a process holds it ("" where it cannot be read); None
    where the lock is free, or not there to tell."""
    if lock_free(lock) is not False:
        return None
    try:
        return lock.read_text().strip()
    except OSError:
        return ""


def folder_run_into(outbox: Path) -> str | None:
    """Why a daemon must not start on ``outbox``: a `pixcamd protect --outdir` run writes its
    copies there now (its lock, ``pixcamd.folders.lock_outdir``'s ``.pixcamd/run.lock``) —
    both would ship a copy of the photos they share, under names beside each other's. The
    refusal `protect` meets the other way round (``daemon_outbox``). None where none does."""
    pid = held_by(outbox / ".pixcamd" / "run.lock")
    if pid is None:
        return None
    return (
        f"{LockHeld(pid).who('pixcamd protect')} is writing its copies into the outbox "
        f"{outbox} now (--outdir): the daemon and that run would each ship a copy of the "
        "photos they share, under names beside each other's; start the daemon once it has "
        "ended, or give that run another --outdir"
    )


class OutboxLock:
    """``lock_outbox`` kept on the folder that is the outbox now: one deleted and made anew
    while the daemon runs (or a mount back over its mount point) is another folder, which
    another daemon could lock — it is locked again before a copy goes in. ``renew`` says why
    not where another daemon has it by then."""

    def __init__(self, outbox: Path):
        self.outbox = outbox
        self.fd = lock_outbox(outbox)  # refused at start: PixcamdError
        running_run = folder_run_into(outbox)  # once the folder is ours: none starts after
        if running_run is not None:
            self.release()
            raise PixcamdError(running_run)
        self._folder = folder_identity(outbox)  # the folder whose lock is decided (held or none)

    def renew(self) -> str | None:
        now = folder_identity(self.outbox)
        if now is None or now == self._folder:  # gone (outbox_gone says so), or the same
            return None
        unlock(self.fd)
        self.fd, self._folder = None, now
        try:
            self.fd = lock_outbox(self.outbox)
        except PixcamdError as exc:
            self._folder = None  # asked again at the next look: that daemon may stop
            return str(exc)
        return None

    def release(self) -> None:
        unlock(self.fd)
        self.fd = None


def daemon_outbox(*folders: Path) -> str | None:
    """Why a copy must not be written into one of ``folders``: it is a running daemon's
    outbox, or inside one (the daemon mirrors the inbox's folders there) — None where none
    is. The daemon owns its outbox's names: a copy put there beside it would be replaced by the
    daemon's own, or shadow it. Each folder and the ones above it are looked at once."""
    places = dict.fromkeys(p for folder in folders for p in (folder, *folder.parents))
    for place in places:
        try:
            fd = os.open(place, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = lock_holder(fd)
            if holder is None or holder == os.getpid() or is_pixcamd(holder):
                pid = f" (pid {holder})" if holder else ""
                return f"{place} is the outbox of a running pixcamd daemon{pid}"
        except OSError:
            pass
        finally:
            os.close(fd)  # and with it the shared lock just taken
    return None


def lock_holder(fd: int) -> int | None:
    """The pid holding an flock on ``fd``'s file, from /proc/locks (None where not found)."""
    st = os.fstat(fd)
    key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks") as locks:
            for line in locks:
                fields = line.split()
                if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == key:
                    return int(fields[4])
    except (OSError, ValueError):
        pass
    return None


def is_pixcamd(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"pixcamd" in f.read()
    except OSError:
        return True  # another user's process (a service): cannot tell, so take it for one


def unlock(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
