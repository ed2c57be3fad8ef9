"""The outbox side of the daemon's worker: what becomes of a photo once its outcome is known.

``Publisher`` ships, holds or records one photo's ``pixcamd.job.Outcome`` (protected in this
process or on a Ray worker), gives a photo whose content is already done its twin's published
bytes, and stages, records and renames every copy with ``commit_publication``. It also keeps
watch on the outbox itself: while it is gone (moved, a mount that went away) or closed to this
user (its permissions changed, a read-only remount) no photo is taken from the queue, so none
spends its attempts on a folder it cannot write in. A folder inside the outbox closed to this user
(``outbox/Album`` for ``inbox/Album/x.jpg``) holds only the photos whose copies go there: each is
queued again, its attempt not spent, and looked at every ``FOLDER_POLL`` seconds; the others go
on. It is said once per folder (``folder_unavailable``, naming the user) and once when it can be
written again (``folder_back``; the folder itself is looked at every ``FOLDER_POLL`` seconds
too, so that it is said where its photos left the inbox meanwhile) — as the outbox itself,
since a person fixes it the same way (its permissions), not photo by photo with ``pixcamd retry
--failed``.

A mixin of ``pixcamd.daemon.worker.Worker``: it reads the worker's config, ledger, log, outbox,
fingerprint, model label, kept outcome and commit lock, and calls its ``_checkpoint``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shlex
import stat
import time
from pathlib import Path, PurePosixPath

from pixcamd.daemon.fs import ACCESS_WORDS, closed_on_the_way, outbox_gone, this_user
from pixcamd.daemon.ledger_row import Row
from pixcamd.daemon.locks import OutboxLock
from pixcamd.daemon.publication import (
    commit_publication,
    copy_names,
    drop_held,
    held_name,
    output_name,
    published_copy,
    recorded_copy,
)
from pixcamd.daemon.retry import config_metadata, held_hint
from pixcamd.report import scores_text

ROOM_MARGIN = 1024 * 1024  # free bytes beyond twice the copy before photos are taken again


FOLDER_POLL = 5.0  # seconds between looks at a photo whose outbox folder is closed to this user


class FolderClosed(Exception):
    """The folder in the outbox that a photo's copy goes to is closed to this user: the photo
    is queued again, its attempt not spent (``Publisher.hold_for_folder``)."""

    def __init__(self, folder: Path):
        super().__init__(str(folder))
        self.folder = folder


class Abandoned(Exception):
    """Shutdown asked the current photo to stop: leave no output, queue it again."""


class Vanished(Exception):
    """The source disappeared before it could be processed or published (moved, deleted);
    its message says before what."""


class Changed(Exception):
    """The source changed while it was being read: queue it again once it settles."""


def no_room(exc: BaseException | None) -> OSError | None:
    """The full disk or exhausted quota ``exc`` is (or was raised from), if it is one."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


INODE_MARGIN = 64  # free inodes (new files) before photos are taken again


def _short(folder, needed: int) -> str | None:
    """Why ``folder``'s disk has no room for a copy of ``needed`` bytes (twice it, and
    ROOM_MARGIN more), or None where it has. A disk out of inodes says ENOSPC with free bytes;
    it counts as full until files can be made there again (a file system that sets no inode
    limit reports 0 of them). A folder gone meanwhile has no room either."""
    try:
        st = os.statvfs(folder)
    except OSError as exc:
        return exc.strerror or "not there"
    free = st.f_bavail * st.f_frsize
    if st.f_files and st.f_favail < INODE_MARGIN:
        return f"no inodes left for new files, {free / 1e6:.1f} MB free"
    if free < 2 * needed + ROOM_MARGIN:
        return f"{free / 1e6:.1f} MB free"
    return None


def renamed_note(source: str, followed: tuple[Row, str | None]) -> str:
    """What a rename did, said in the log (``Ledger.follow_rename``'s answer)."""
    moved, old_path = followed
    if old_path is not None:
        copy = f"its copy {moved.output}" if moved.output else "its record"
        return f"renamed from {old_path}: {copy} follows it; nothing written"
    return f"same content as {source} (renamed); nothing written"


class Publisher:
    _outbox_away: str | None = None  # why the outbox is not there, once said
    outbox_lock: OutboxLock | None = None  # the service's; renewed on an outbox made anew
    _room_needed: int = 0  # bytes a copy needed where it could not be written (0: no block)
    _closed_folders: dict[Path, int]  # outbox folders closed to us, said once: access lacked
    _folders_looked: float = 0.0  # when they were last looked at themselves (monotonic)

    def out_of_room(self, needed: int) -> None:
        """A copy could not be written for want of room: no photo is taken from the queue
        until the outbox's and the temp folder's disks have room for it again (each photo
        would otherwise be protected anew only to fail at its write, and spend its attempts).
        ``needed``: the copy's size, 0 where the write failed before it was known."""
        if not self._room_needed:
            size = f" ({needed / 1e6:.1f} MB)" if needed else ""
            short = [
                f"{p} ({why})" for p in (self.outbox, self.tmp_dir) if (why := _short(p, needed))
            ]
            where = " and ".join(short) if short else f"{self.outbox} or {self.tmp_dir}"
            self.log.emit(
                "outbox_full",
                None,
                f"no room for a copy{size} in {where}; "
                f"{self.ledger.queue_length()} photos stay queued until there is room",
                level="error",
            )
        self._room_needed = max(needed, 1)

    def _room_back(self) -> bool:
        if any(_short(p, self._room_needed) for p in (self.outbox, self.tmp_dir)):
            return False
        self._room_needed = 0
        self.log.emit("outbox_back", None, f"room in {self.outbox} again; protecting again")
        return True

    def _closed_folder(self, rel: str) -> Path | None:
        """The folder inside the outbox, on the way to the copy ``rel``, that this user cannot
        use (``closed_on_the_way``); None where there is none. Said once when one opens again —
        not one below a folder closed now: it cannot be looked at, so it is not said open."""
        target = self.outbox / PurePosixPath(rel).parent
        closed = closed_on_the_way(self.outbox, target)
        near = [f for f in self._closed_folders if f == target or f in target.parents]
        for was in near:
            if was != closed and (closed is None or closed not in was.parents):
                self._said_back(was)
        return closed

    def _said_back(self, folder: Path, gone: bool = False) -> None:
        again = f"can be {ACCESS_WORDS[self._closed_folders.pop(folder)][3]} again"
        said = "is no longer there" if gone else again
        self.log.emit("folder_back", None, f"{folder} {said}; its photos go on")

    def waits_for_folder(self, row: Row) -> bool:
        """Before a photo is protected: where its copy's folder in the outbox is closed to
        this user, it is queued again (``hold_for_folder``) and True. The folder is the one
        of the name the copy will take (``output_name``'s rule, without its look at every
        row: every name it tries is in the photo's own folder): its earlier copy's, where that
        is still the copy (a photo moved to another album keeps its copy's name), else the
        photo's own. A photo that left the inbox while it waited waits no longer: it is
        forgotten as any photo gone before its turn (``_vanished``), and True — not looked at
        every ``FOLDER_POLL`` seconds for as long as the folder stays closed."""
        moved = row.output and PurePosixPath(row.output).parent != PurePosixPath(row.path).parent
        rel = row.output if moved and recorded_copy(self.outbox / row.output, row) else row.path
        closed = self._closed_folder(rel)
        if closed is None:
            return False
        if self._gone(row.path):
            self._vanished(row, "its copy's folder in the outbox opened")
            return True
        self.hold_for_folder(row, closed)
        return True

    def hold_for_folder(self, row: Row, folder: Path) -> None:
        """``row``'s copy cannot go in ``folder`` (closed to this user): queued again, its
        attempt not spent, looked at again in ``FOLDER_POLL`` seconds; said once per folder.
        Its protected pixels, where it was protected already, are kept for then."""
        self.ledger.requeue(row.id, delay=FOLDER_POLL)
        if folder not in self._closed_folders:
            # one it cannot enter (chmod 000, or 600) hides what is inside: said as that, and
            # waited for until it can be entered; one it cannot write in, until it can
            needed = os.W_OK | os.X_OK if os.access(folder, os.X_OK) else os.X_OK
            self._closed_folders[folder] = needed
            what, then, give, _ = ACCESS_WORDS[needed]
            self.log.emit(
                "folder_unavailable",
                row.path,
                f"{folder}: the user {this_user()} cannot {what} this folder of the outbox "
                f"({then}); the photos whose copies go there stay queued, their attempts not "
                f"spent, and the others go on — give that user {give}; looked at again every "
                f"{FOLDER_POLL:g} s",
                level="error",
                folder=str(folder),
                lacks="enter" if needed == os.X_OK else "write",
            )

    def _gone(self, rel: str) -> bool:
        """Nothing at this inbox path now, not even a dangling link (as the intake looks)."""
        return not os.path.lexists(self.inbox / rel)

    def _outbox_gone(self) -> str | None:
        why = outbox_gone(self.outbox, self.outbox_mount)
        if why is None and not os.access(self.outbox, os.W_OK | os.X_OK):
            # its permissions changed, or it was remounted read-only, while the daemon runs:
            # each photo would be protected only to fail at its publication, attempts spent
            why = (
                f"the user {this_user()} cannot write in it (its permissions, or a read-only "
                "mount); give that user write permission — retried until it can"
            )
        if why is None and self.outbox_lock is not None:
            why = self.outbox_lock.renew()
        return why

    def outbox_ready(self) -> bool:
        """Whether copies can be written to the outbox now; said once when it goes away (or
        fills up) and once when it is back. Checked before a photo is taken from the queue: a
        photo protected for an outbox that is gone would spend an attempt on it."""
        why = self._outbox_gone()
        if why != self._outbox_away:
            if why is not None:
                self.log.emit(
                    "outbox_unavailable",
                    None,
                    f"{self.outbox}: {why}; {self.ledger.queue_length()} photos stay queued "
                    "until it is back",
                    level="error",
                    reason=why,
                )
            else:
                self.log.emit("outbox_back", None, f"{self.outbox} is back; protecting again")
            self._outbox_away = why
        if why is not None:
            return False
        self._look_at_closed_folders()
        return not self._room_needed or self._room_back()

    def _look_at_closed_folders(self) -> None:
        """Every ``FOLDER_POLL`` seconds, each folder said closed is looked at itself: open
        again, or gone (its copies' folders are made anew), it is said back — also where no
        photo waits for it any more (they left the inbox), whose next look would have said it:
        the log never leaves a folder unavailable that is not."""
        now = time.monotonic()
        if not self._closed_folders or now - self._folders_looked < FOLDER_POLL:
            return
        self._folders_looked = now
        for folder in sorted(self._closed_folders):
            try:
                gone = not stat.S_ISDIR(os.stat(folder).st_mode)
            except PermissionError:  # a folder above it closed since: not to be told from here
                continue  # (its photos' own look names that one)
            except OSError:
                gone = True
            if gone or os.access(folder, self._closed_folders[folder]):
                self._said_back(folder, gone)

    def output_name(self, row: Row) -> str:
        """``row``'s copy's name in the outbox (``publication.output_name``); when a file
        there that no photo's record wrote has the name it would have had, that file is left
        as it is, and said."""
        name = output_name(self.ledger, row, root=self.outbox)
        first = next(copy_names(row.path))
        if row.output and name != row.output:
            if recorded_copy(self.outbox / row.output, row) is None:
                # its permissions changed, or an I/O error: perhaps the copy, perhaps not
                why = (
                    f"{row.output} in the outbox cannot be read by the user {this_user()} "
                    "(its permissions, or an I/O error), so it cannot be told whether it is still "
                    "the copy this photo's record wrote"
                )
            else:
                why = (
                    f"{row.output} in the outbox is no longer the copy this photo's record wrote "
                    "(the uploader took it, and another file came under its name)"
                )
            self.log.emit("photo_note", row.path, f"{why}; left as it is — this copy is {name}")
        elif name != first and not row.output and self.ledger.output_owner(first, row.path) is None:
            self.log.emit(
                "photo_note",
                row.path,
                f"{first} in the outbox is a file no photo's record wrote (your own, or an "
                f"earlier ledger's copy); left as it is — this copy is {name}",
            )
        return name

    def _renamed(self, row: Row, original: Row) -> bool:
        """The same content as a photo already done, whose file has left the inbox: a rename
        or a move. Its record and copy follow it, nothing is written (True)."""
        source = original.duplicate_of or original.path
        if source == row.path or row.budget:  # retried: see ``_duplicate``
            return False
        moved = self.ledger.follow_rename(row.id, source, self._gone)
        if moved is None:
            return False
        self.log.emit("duplicate", row.path, renamed_note(source, moved))
        return True

    def _duplicate(self, row: Row, original: Row) -> bool:
        """The same content as a photo already done, not a rename (``_renamed``, looked at
        first: the original has left the inbox, its copy is in the outbox already). A copy (the same
        photo in two albums) gets its own outbox copy with the original's published bytes — no
        second optimization; when those bytes are gone from the outbox (the uploader took them)
        or changed there, or were made with other settings, False: the photo is protected like
        any other — as a retried one always is."""
        source = original.duplicate_of or original.path
        if source == row.path or row.budget:
            # retried: the donor is a copy of this very photo, or a stronger attempt was asked
            return False
        # (a rename was looked for just before, by ``_renamed``: the worker's ``_as_rename``)
        if self._gone(source):  # its name holds other content now
            return False
        donor = original if original.output else self.ledger.get(source)
        if donor is None or donor.fingerprint != self.fingerprint:
            # bytes made with other settings (another model, other platforms) are not what
            # this config would write
            note = f"same content as {source}, protected with other settings: protected anew"
            self.log.emit("duplicate", row.path, note)
            return False
        published = published_copy(self.outbox, donor)  # (bytes, their sha256) or None
        if published is None:
            self.log.emit(
                "duplicate",
                row.path,
                f"same content as {source}, whose copy has left the outbox: protected anew",
            )
            return False
        self._checkpoint()
        out_rel = self.output_name(row)
        data, digest = published
        fields = dict(
            verdict=donor.verdict,
            model=donor.model,
            fingerprint=donor.fingerprint,
            scores=donor.scores,
            psnr=donor.psnr,
            seconds=0.0,
            timings=None,
            report=donor.report,
            error=None,
            duplicate_of=source,
        )
        self._commit(row, data, out_rel, "done", fields, digest)
        self.log.emit(
            "duplicate",
            row.path,
            f"same content as {source} → {out_rel} (its protected copy; not optimized again)",
            output=out_rel,
        )
        return True

    def _commit(self, row: Row, data: bytes, out_rel: str, state: str, fields, digest=None):
        """Stage, record, rename into the outbox (``commit_publication``) — never once a hard
        abandon has declared this worker dead."""
        staged = self.tmp_dir / f"stage-{row.id}-{row.attempts}.jpg"
        why = self._outbox_gone()  # never made anew where it was
        if why is not None:
            raise OSError(f"{self.outbox}: {why}")
        closed = self._closed_folder(out_rel)  # closed while the photo was protected
        if closed is not None:
            raise FolderClosed(closed)
        with self.commit_lock:
            if self.dead:
                raise Abandoned()
            commit_publication(
                self.ledger, row.id, data, staged, self.outbox, out_rel, state, fields, digest
            )

    def publish_outcome(self, row: Row, outcome) -> None:
        """Ship, hold or record one photo's ``pixcamd.job.Outcome`` (from this process or a
        Ray worker): the copy's bytes were judged as every pipeline serves them before they
        came back; here they are staged, recorded, and published with one rename."""
        from pixcamd import output

        # Deleted while it was protected: a user may delete a photo precisely so that it is
        # not shared; it is forgotten as one deleted before its turn, nothing shipped or held
        if self._gone(row.path):
            raise Vanished("its copy was published: nothing shipped")
        # What the decoder changed (transparency flattened, frames dropped, CMYK converted):
        # the user sees it in the log and on the photo's page, as the CLI prints it.
        for note in outcome.warnings:
            self.log.emit("photo_note", row.path, note)
        self._checkpoint()
        # what the copy was made with, of the metadata: `pixcamd ship`, `retry --metadata-changed`
        report = {**outcome.report, "copy_metadata": config_metadata(self.config)}
        protected = outcome.protected
        ship = outcome.data is not None and (protected or self.config.on_unprotected == "ship")
        verdict = report["verdict"] if protected else "unprotected"
        scores, worst, protected_on = report["after_jpeg"], report["worst"], report["protected_on"]
        if report.get("file_check") is not None:  # the copy's own check: it is what ships
            scores = report["file_check"]
        edit = report["enhancement"]["description"] if report.get("enhancement") else None
        edit_text = f"; filter: {edit}" if edit else ""
        timings = dict(outcome.timings)
        notes = outcome.notes
        fields = dict(
            state="done" if protected else "unprotected",
            verdict=verdict,
            model=self.model_label,
            fingerprint=self.fingerprint,
            scores={
                "before": report["before"],
                "after_jpeg": report["after_jpeg"],
                "file": report.get("file_check"),
            },
            psnr=None if report.get("psnr") is None else round(report["psnr"], 3),
            seconds=timings.get("total"),
            timings=timings,
            report=report,
            error=None if protected else "not protected: " + scores_text(scores, worst),
            duplicate_of=None,
        )
        verdict_fields = dict(  # what every event of the verdict carries
            filter=edit,
            scores=scores,
            protected_on=protected_on,
            worst=worst,
            seconds=fields["seconds"],
        )
        if not ship:  # held back: never in the outbox
            held = None
            if self.config.hold_dir is not None and outcome.data is not None:
                held_path = self.config.hold_dir / held_name(self.ledger, row, self.config.hold_dir)
                held_path.parent.mkdir(parents=True, exist_ok=True)
                # for people, not uploaders: no need to hide the temp file
                output.atomic_write(outcome.data, held_path, self.config.hold_dir)
                held = str(held_path)
            # A retried photo's earlier copy (protected with other settings, or shipped by a
            # decision) stays as it was, and stays this photo's: `pixcamd remove` can take it
            # out, and no other photo is given its name.
            earlier = (
                row.output if row.output and os.path.lexists(self.outbox / row.output) else None
            )
            if earlier:  # said, so that no one reads the retry's scores as that file's
                # (and what that file holds kept: a file of yours later under its name is not it)
                kept = (row.report or {}) if isinstance(row.report, dict) else {}
                digest = {"output_sha256": kept["output_sha256"]} if "output_sha256" in kept else {}
                fields["report"] = {**report, "earlier_copy": earlier, **digest}
            state = fields.pop("state")
            self.ledger.finish(row.id, state, output=earlier, held=held, **fields)
            self._kept.pop(row.id, None)
            where = f"; best attempt in {held}" if held else ""
            if earlier:
                where += f"; its earlier copy {earlier} stays in the outbox (pixcamd remove)"
            hint = held_hint(shlex.quote(row.path), self.config.executor, held is not None)
            self.log.emit(
                "unprotected",
                row.path,
                f"could not be protected, held back from the outbox{where} — "
                f"{scores_text(scores, worst)}{edit_text} — {hint}",
                level="warning",
                psnr=fields["psnr"],
                **verdict_fields,
            )
            return

        current = self.ledger.by_id(row.id)
        if current is None or current.sha256 != row.sha256:
            raise Changed()
        self._checkpoint()
        out_rel = self.output_name(row)
        digest = hashlib.sha256(outcome.data).hexdigest()
        fields["report"] = {**report, "output_sha256": digest}  # what a copy reuses
        state = fields.pop("state")
        self._commit(row, outcome.data, out_rel, state, fields, digest)
        self._kept.pop(row.id, None)
        drop_held(self.config.hold_dir, row.held)  # once held back, in the outbox now
        # what the copy no longer carries, said where the user reads (the GPS position above all)
        gone = [n for n in notes if "removed" in n or "zeroed" in n]
        removed = f"; metadata: {'; '.join(gone)}" if gone else ""
        psnr = f"; PSNR {report['psnr']:.1f} dB" if report.get("psnr") is not None else ""
        if protected:
            self.log.emit(
                "protected",
                row.path,
                f"{verdict} → {out_rel} — {scores_text(scores, worst)}"
                f"{edit_text}{psnr}, {fields['seconds']:.1f} s{removed}",
                output=out_rel,
                verdict=verdict,
                metadata_notes=notes,
                psnr=fields["psnr"],
                **verdict_fields,
            )
        else:
            self.log.emit(
                "shipped_unprotected",
                row.path,
                f"NOT protected, shipped anyway (on_unprotected = ship) → {out_rel} — "
                f"{scores_text(scores, worst)}{edit_text}",
                level="warning",
                output=out_rel,
                **verdict_fields,
            )
