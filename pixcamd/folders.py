"""Folder runs: ``pixcamd protect PHOTO|FOLDER... --outdir DIR`` over a whole archive, resumable.

What is taken, and under which names, is ``pixcamd.folder_plan``'s: folders walked with the
daemon's rules, each folder's tree mirrored under ``--outdir`` as ``cp -r`` would (``2019/`` →
``DIR/2019/…``), a photo named on its own as ``DIR/NAME.jpg``.

The run keeps the daemon's ledger (``pixcamd.daemon.ledger``, one design) in
``DIR/.pixcamd/ledger.sqlite``, beside the copies it describes, with its staging folder
``DIR/.pixcamd/tmp`` on the same filesystem. Run the same command again and it skips every photo
already handled from the same bytes with the same settings (model fingerprints, platforms,
budget: ``settings_fingerprint``), redoes photos whose bytes or settings changed, retries
failures, and finishes what an interrupted run left (``recover_interrupted``). A photo that
keeps its size and modification time is trusted to be unchanged without hashing it again, as
rsync does.

What there is to do — each photo sorted against the ledger: done earlier, a copy of one done,
to redo, refused — is ``pixcamd.folder_offers``'s (a mixin of ``FolderRun``); here: the outdir,
its lock, the run, its work and what it reports.

``FolderRun`` (with that mixin) is the only writer of the outdir and the ledger; an executor
(``pixcamd.executors``: this process, or Ray actors) only turns photo bytes into copy bytes and a
report. Publication is the daemon's: record the commit, then one rename.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pixcamd.daemon.ledger import Ledger
from pixcamd.daemon.ledger_file import FOLDER_FRESH
from pixcamd.daemon.ledger_row import Row, name_key
from pixcamd.daemon.locks import LockHeld, hold_lock
from pixcamd.daemon.publication import (
    commit_publication,
    output_name,
    published_copy,
    recover_interrupted,
)
from pixcamd.daemon.watcher import shown
from pixcamd.errors import OutputUnwritable, PhotoError, PixcamdError, without_path
from pixcamd.executors import Done, Task
from pixcamd.folder_offers import Offers
from pixcamd.folder_plan import STATE_DIR, Source, output_key

MAX_ATTEMPTS = 3  # transient failures (and lost workers) per photo and run
MEMORY_HINT = "protect it on a machine with more memory (it needs about 0.12 GB a megapixel)"


@dataclass
class Tally:
    """What a run did, and what it found done by an earlier one."""

    total: int = 0
    protected: int = 0
    unprotected: int = 0
    failed: int = 0
    refused: int = 0  # found in the folders and refused before the run (not in ``total``)
    earlier: int = 0  # of those, handled by an earlier run (same bytes, same settings)
    seconds: float = 0.0  # wall-clock time of this run's work so far
    done_here: int = 0  # photos this run finished

    @property
    def finished(self) -> int:
        return self.protected + self.unprotected + self.failed

    def as_dict(self) -> dict:
        hours = self.seconds / 3600
        return {
            "photos": self.total,
            "protected": self.protected,
            "unprotected": self.unprotected,
            "failed": self.failed,
            "refused": self.refused,
            "left": self.total - self.finished,
            "from_earlier_run": self.earlier,
            "photos_per_hour": round(self.done_here / hours, 1) if hours > 0 else None,
        }


def make_outdir(outdir: Path) -> None:
    """The outdir and its record's folders, or in words why they cannot be made."""
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        (outdir / STATE_DIR).mkdir(mode=0o700, exist_ok=True)  # the record names every photo
        (outdir / STATE_DIR / "tmp").mkdir(exist_ok=True)
    except OSError as exc:
        raise PixcamdError(
            f"{outdir}: cannot create the output folder ({exc.strerror or exc})"
        ) from None


def lock_outdir(outdir: Path) -> int | None:
    """One folder run per outdir at a time: two (a run re-started while the first still
    runs, a cron job over a manual one) would each protect every photo and sweep each
    other's staged copies. The lock is the caller's to release (``unlock``)."""
    try:
        return hold_lock(outdir / STATE_DIR / "run.lock")
    except LockHeld as held:
        raise PixcamdError(
            f"{outdir}: {held.who('pixcamd protect')} is protecting into this "
            "--outdir now; wait until it ends (run the same command again then: it continues "
            "where that one stops), or protect into another --outdir"
        ) from None
    except OSError as exc:
        raise PixcamdError(
            f"{outdir}: cannot lock the output folder ({exc.strerror or exc})"
        ) from None


def _never(path: str) -> bool:
    """No photo's record is followed here as a rename (``offer_settled``'s ``gone``)."""
    return False


class Interrupted(PixcamdError):
    """Ctrl-C: the run stopped cleanly; the same command continues it."""


class FolderRun(Offers):
    """Protect ``sources`` into ``outdir`` through ``executor``, remembering it in the ledger.

    ``on_photo(report, tally)`` is called as each photo finishes (or is found done earlier),
    ``on_start(name)`` as one is handed to the executor.
    """

    def __init__(
        self,
        sources: list[Source],
        outdir: Path,
        executor,
        fingerprint: str,
        model_label: str,
        write_unprotected: bool = False,
        settings_key: str | None = None,
        on_photo: Callable[[dict, Tally], None] = lambda report, tally: None,
        on_start: Callable[[str], None] = lambda name: None,
        on_note: Callable[[str], None] = lambda line: None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.sources = {s.key: s for s in sources}
        self.promised = {name_key(s.copy): s.key for s in sources if s.copy}  # name → key
        self.outdir = outdir
        self.executor = executor
        self.fingerprint = fingerprint
        self.model_label = model_label
        self.write_unprotected = write_unprotected
        self.settings_key = settings_key  # the person's part of the fingerprint
        self.again: dict[int, str] = {}  # row id → why a photo done before is done again
        self.on_photo, self.on_start, self.on_note = on_photo, on_start, on_note
        self.clock = clock
        self.tally = Tally(total=len(sources))
        self.started = clock()  # when the work began (reset by ``_work``)
        self.ledger: Ledger | None = None
        self.tmp = outdir / STATE_DIR / "tmp"

    def run(self) -> Tally:
        make_outdir(self.outdir)
        self.ledger = Ledger(self.outdir / STATE_DIR / "ledger.sqlite", fresh=FOLDER_FRESH)
        try:
            # first what a stopped run left half-published (its staged copy is the one to
            # rename), then the rest of the staging folder: ours alone, dead attempts
            for row, _event, message, _level in recover_interrupted(
                self.ledger, self.outdir, MAX_ATTEMPTS, MEMORY_HINT
            ):
                self.on_note(f"{self._where(row.path)}: {message}")
            for leftover in self.tmp.iterdir():
                leftover.unlink(missing_ok=True)
            todo = self._offer_all()
            self._work(todo)
        except KeyboardInterrupt:
            self._stop()
            raise Interrupted(
                f"stopped: {self.tally.finished} of {self.tally.total} photos done; run the "
                "same command again to continue where this one stopped"
            ) from None
        except OutputUnwritable:  # stdout, not the executor: said as it is (cli.main)
            self._stop()
            raise
        except PixcamdError as exc:  # the executor cannot go on (its cluster went away)
            self._stop()
            raise PixcamdError(
                f"{exc} — stopped: {self.tally.finished} of {self.tally.total} photos done; run "
                "the same command again to continue where this one stopped"
            ) from None
        finally:
            self.ledger.close()
        return self.tally

    def _stop(self) -> None:
        """The photos in flight queued again; their executor is its owner's to close, after
        saying why the run stopped (a cluster that went away can hold a close up)."""
        for row in self.ledger.processing():  # nothing of theirs was written ...
            if not row.staged_output:  # ... or it was, and the next run's recovery ends it
                self.ledger.requeue(row.id)

    # ---- a copy published ------------------------------------------------------------------

    def _copy_from(self, row: Row, donor: Row | None) -> bool:
        """Publish the copy already made for the same bytes under another name, if it is
        still there unchanged (a second optimization would give the same pixels)."""
        published = published_copy(self.outdir, donor)
        if published is None:
            return False
        data, digest = published
        fields = {
            "verdict": donor.verdict,
            "model": donor.model,
            "fingerprint": donor.fingerprint,
            "scores": donor.scores,
            "psnr": donor.psnr,
            "report": {**donor.report, "source": self._origin(row.path)},
            "duplicate_of": donor.duplicate_of or donor.path,
        }
        if row.state != "processing":
            self.ledger.claim(row.id)
        out_rel = self._copy_name(row)
        if not self._commit(row, data, out_rel, "done", fields, digest):
            return True  # said, and recorded as failed
        self.tally.protected += 1
        report = {
            **donor.report,
            "path": str(self.sources[row.path].path),
            "duplicate_of": donor.path,
        }
        report["output"] = str(self.outdir / out_rel)
        self.on_photo(report, self.tally)
        return True

    def _copy_name(self, row: Row) -> str:
        """The name planned for ``row``'s copy, unless an earlier run's copy of another photo
        holds it (the folder changed since): then the next free one. A copy published before
        keeps its name."""
        mine = self.sources[row.path].copy or output_key(row.path)
        return output_name(
            self.ledger,
            row,
            mine,
            lambda name: self.promised.get(name_key(name), row.path) != row.path,
        )

    def _commit(self, row: Row, data: bytes, out_rel: str, state: str, fields, digest: str):
        """Publish ``row``'s copy; False when it cannot be (said, the row failed, nothing
        left staged): a file there that no run recorded is never overwritten — it may be
        the user's own — and a folder that cannot be written is said in words."""
        target = self.outdir / out_rel
        staged = self.tmp / f"stage-{row.id}.jpg"
        if row.output != out_rel and os.path.lexists(target):
            why = (
                f"{target}: a file this --outdir's record did not write is already there; "
                "left as it is — move it away, or protect into another --outdir"
            )
        else:
            try:
                commit_publication(
                    self.ledger, row.id, data, staged, self.outdir, out_rel, state, fields, digest
                )
                return True
            except OSError as exc:  # (renamed, then a folder's fsync failed: published)
                staged.unlink(missing_ok=True)
                why = f"cannot write its copy {target} ({exc.strerror or exc}); nothing written"
        self.ledger.finish(row.id, "failed", error=shown(why), model=self.model_label)
        self._report_failure(row.path, why)
        return False

    # ---- the work ----------------------------------------------------------------------------

    def _work(self, todo: list[int]) -> None:
        attempts: dict[int, int] = {}
        busy: dict[int, str] = {}  # row id → sha256 of the photos in flight
        pending = list(todo)
        self.started = self.clock()
        while pending or self.executor.in_flight():
            waiting = []  # the same bytes as a photo in flight: its copy will do
            while pending and self.executor.in_flight() < self.executor.capacity:
                row = self.ledger.by_id(pending.pop(0))
                if row.sha256 in busy.values():
                    waiting.append(row.id)
                    continue
                donor = self.ledger.done_with_sha(row.sha256, row.path)
                if donor is not None and self._copy_from(row, donor):
                    continue
                task = self._task(row)
                if task is not None:
                    busy[row.id] = row.sha256
                    self.executor.submit(task)
                    self.on_start(task.name)
            pending[:0] = waiting
            for done in self.executor.wait(timeout=1.0):
                row_id = done.task.key
                busy.pop(row_id, None)
                attempts[row_id] = attempts.get(row_id, 0) + 1
                if self._finish(done, attempts[row_id]):
                    pending.append(row_id)  # lost or transient: once more, later

    def _task(self, row: Row) -> Task | None:
        source = self.sources[row.path]
        try:
            data = source.path.read_bytes()
        except OSError as exc:
            self.ledger.finish(row.id, "failed", error=shown(f"cannot read the file ({exc})"))
            self._report_failure(row.path, f"{source.path}: cannot read the file ({exc})")
            return None
        st = os.stat(source.path)
        if (st.st_size, st.st_mtime_ns) != (row.size, row.mtime_ns):
            # changed since it was planned (hashed then): record what is protected now — as a
            # copy queued where it is a duplicate now, in the offer's transaction (never done
            # with no copy of its own, should the run stop before the claim)
            digest = hashlib.sha256(data).hexdigest()
            self.ledger.offer_settled(
                row.path, digest, st.st_size, st.st_mtime_ns, self.fingerprint, _never, True
            )
        self.ledger.claim(row.id)
        return Task(row.id, str(source.path), data)

    def _finish(self, done: Done, attempt: int) -> bool:
        """Record and publish one finished photo; True when it should be tried again."""
        row = self.ledger.by_id(done.task.key)
        if done.error is not None:
            reason = f"{type(done.error).__name__}: {done.error}"
            if isinstance(done.error, PhotoError):
                # the report names the photo; a folder's name that is not UTF-8 is shown \x..
                path = str(self.sources[row.path].path)
                error = shown(without_path(str(done.error), path))
                self.ledger.finish(row.id, "failed", error=error, model=self.model_label)
                self._report_failure(row.path, error)
                return False
            if attempt < MAX_ATTEMPTS:
                what = "the worker was lost mid-photo" if done.lost else shown(reason)
                self.ledger.retry(row.id, what, 0.0)
                return True
            why = shown(f"gave up after {attempt} attempts: {reason}")
            self.ledger.finish(row.id, "failed", error=why, model=self.model_label)
            self._report_failure(row.path, why)
            return False
        outcome = done.outcome
        # wall clock, not the photos' own seconds: several workers finish photos in parallel
        self.tally.seconds = self.clock() - self.started
        self.tally.done_here += 1
        report = {"path": str(self.sources[row.path].path), **outcome.report, "output": None}
        if row.id in self.again:
            report["again"] = self.again[row.id]
        state = "done" if outcome.protected else "unprotected"
        fields = dict(
            verdict=outcome.verdict,
            model=self.model_label,
            fingerprint=self.fingerprint,
            scores={"before": outcome.report["before"], "file": outcome.report.get("file_check")},
            psnr=outcome.report.get("psnr"),
            seconds=outcome.timings.get("total"),
            timings=outcome.timings,
            report={
                **outcome.report,
                "source": self._origin(row.path),
                "settings_key": self.settings_key,
            },
            error=None if outcome.protected else "not protected",
            duplicate_of=None,
        )
        ship = outcome.data is not None and (outcome.protected or self.write_unprotected)
        if ship:
            out_rel = self._copy_name(row)
            digest = hashlib.sha256(outcome.data).hexdigest()
            fields["report"]["output_sha256"] = digest  # what a copy reuses
            if not self._commit(row, outcome.data, out_rel, state, fields, digest):
                return False
            report["output"] = str(self.outdir / out_rel)
        else:
            # a copy an earlier run made of this photo stays, and stays its own, as the
            # daemon's outbox keeps it: forgetting it would leave a file no record owns
            kept = row.output if self._copy_in_place(row) else None
            self.ledger.finish(row.id, state, output=kept, **fields)
        if outcome.protected:
            self.tally.protected += 1
        else:
            self.tally.unprotected += 1
        self.on_photo(report, self.tally)
        return False

    # ---- reporting -------------------------------------------------------------------------

    def _report_earlier(self, row: Row) -> None:
        self.tally.earlier += 1
        report = dict(row.report or {})
        # its own copy; not an earlier version's, kept (that one has no output_sha256)
        mine = row.output and report.get("output_sha256")
        copy = self.outdir / row.output if mine else None
        report.update(
            path=str(self.sources[row.path].path),
            output=str(copy) if copy is not None and copy.is_file() else None,  # or taken away
            verdict=row.verdict,
            protected=row.state == "done",
            earlier=True,
        )
        if row.state == "done":
            self.tally.protected += 1
        else:
            self.tally.unprotected += 1
        self.on_photo(report, self.tally)

    def _report_failure(self, key: str, reason: str) -> None:
        self.tally.failed += 1
        self.on_photo({"path": self._where(key), "error": reason}, self.tally)

    def _where(self, key: str) -> str:
        return str(self.sources[key].path) if key in self.sources else key
