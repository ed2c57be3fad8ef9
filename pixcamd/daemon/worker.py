"""The worker: one thread that owns the loaded model(s) and turns queued rows into outbox files.

It is a thin shell around ``pixcamd.protect.protect``: read the photo, protect it, write the copy
with ``pixcamd.output.write_jpeg`` into the temp folder (never the outbox), judge that file from
disk with ``pixcamd.check.verify_file``, and only then publish it with one rename. The original
is only ever opened for reading.

Failures are sorted: a file that cannot be read as a photo fails at once (``failed``); transient
trouble (disk full, I/O errors, out of memory, anything unexpected) is retried with exponential
backoff up to ``max_attempts``; GPU out-of-memory retries at once with half the batch, then on
the CPU. Abandoning (shutdown past the grace time) raises inside protect()'s progress callback,
so nothing is written and the row goes back to the queue.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from pixcamd.daemon.config import Config
from pixcamd.daemon.events import EventLog
from pixcamd.daemon.fs import inside, mount_point, outbox_gone
from pixcamd.daemon.ledger import Ledger, Row
from pixcamd.daemon.publication import (
    commit_publication,
    drop_held,
    held_name,
    output_name,
    published_copy,
)
from pixcamd.daemon.settings import (
    can_degrade,
    degrade_label,
    degraded,
    is_gpu_oom,
    job_options,
    with_budget,
)
from pixcamd.errors import PhotoError, without_path
from pixcamd.report import scores_text


class Abandoned(Exception):
    """Shutdown asked the current photo to stop: leave no output, queue it again."""


class Changed(Exception):
    """The source changed while it was being read: queue it again once it settles."""


class Vanished(Exception):
    """The source disappeared before it could be processed (moved away, deleted)."""


class Refused(Exception):
    """A permanent problem with this source (e.g. a symlink out of the inbox)."""


class Worker:
    def __init__(
        self,
        config: Config,
        ledger: Ledger,
        models: list,
        settings,
        fingerprint: str,
        log: EventLog,
        tmp_dir: Path,
        on_retry: Callable[[float], None] = lambda when: None,
        on_changed: Callable[[str], None] = lambda rel: None,
        model_label: str | None = None,
    ):
        self.config = config
        self.ledger = ledger
        self.models = models
        self.settings = settings
        self.fingerprint = fingerprint
        # recorded per photo, e.g. "brisque (auto fallback)" when auto found no KonCept512
        self.model_label = model_label or "+".join(m.name for m in models)
        self.log = log
        self.tmp_dir = tmp_dir
        self.inbox = config.inbox.resolve()
        self.outbox, self.outbox_mount = config.outbox, mount_point(config.outbox)
        self.on_retry = on_retry
        self.on_changed = on_changed
        self.wake = threading.Event()
        self.stop_taking = threading.Event()
        self._abandon = threading.Event()
        self.commit_lock = threading.Lock()
        self.dead = False  # set by the service after a hard abandon: never publish again
        self.current: str | None = None
        self.current_since: float | None = None
        self.step = 0
        self.last_progress = time.monotonic()
        self.idle = False
        self._pending = None  # a reload's (config, models, settings, fingerprint, label)
        self._kept: dict = {}  # row id → (sha256, fingerprint, Result): one photo's, at most
        self._pending_lock = threading.Lock()
        self.thread = threading.Thread(target=self.run, name="pixcamd-worker", daemon=True)

    # ---- control ---------------------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def reconfigure(self, config, models, settings, fingerprint: str, model_label: str) -> None:
        """New settings from a reload, taken up before the next photo (the current one
        finishes with what it started with)."""
        with self._pending_lock:
            self._pending = (config, models, settings, fingerprint, model_label)
        self.wake.set()

    def _take_pending(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            self.config, self.models, self.settings, self.fingerprint, self.model_label = pending

    def abandon(self) -> None:
        self._abandon.set()
        self.wake.set()

    def _progress(self, step: int, worst: float) -> None:
        self.step = step
        self.last_progress = time.monotonic()
        if self._abandon.is_set():
            raise Abandoned()

    def _checkpoint(self) -> None:
        self.last_progress = time.monotonic()
        if self._abandon.is_set():
            raise Abandoned()

    def run(self) -> None:
        while not self.stop_taking.is_set():
            self.last_progress = time.monotonic()  # idle is healthy: the loop turns
            self.wake.clear()
            self._take_pending()  # between photos: a reload's settings
            row = self.ledger.claim_next()
            if row is None:
                self._idle()
                continue
            self.process(row)

    def _idle(self) -> None:
        """Nothing to do now: wait for a wake-up or the next retry that falls due."""
        due = self.ledger.next_due()
        wait = 1.0 if due is None else min(1.0, max(0.02, due - time.time()))
        self.idle = True  # waiting for work is healthy (see Daemon.tick's watchdog)
        self.wake.wait(wait)
        self.idle = False

    # ---- one photo ---------------------------------------------------------------------------

    def process(self, row: Row) -> None:
        self.current, self.current_since, self.step = row.path, time.time(), 0
        try:
            self._process(row)
        finally:
            self.current = self.current_since = None
            self.last_progress = time.monotonic()
            from pixcamd.devices import release_memory  # torch is loaded by now

            release_memory()  # an idle daemon should not sit on the last photo's peak

    def _process(self, row: Row) -> None:
        original = self.ledger.done_with_sha(row.sha256, row.path)
        if original is not None and self._as_duplicate(row, original):
            return
        self._started(row)
        self._guard(row, self._protect_and_publish)

    def _started(self, row: Row, executor: str = "local", where: str = "") -> None:
        on = f", on {where}" if where else ""
        self.log.emit(
            "started",
            row.path,
            f"attempt {row.attempts}, model {self.model_label}{on}",
            attempt=row.attempts,
            model=self.model_label,
            executor=executor,
        )

    def _guard(self, row: Row, action: Callable[[Row], None]) -> None:
        """Run ``action(row)`` and sort what goes wrong: stopped, changed, gone, a bad photo
        (failed for good) or anything else (retried with backoff)."""
        try:
            action(row)
        except Abandoned:
            self.ledger.requeue(row.id)
            self.log.emit("abandoned", row.path, "shutdown: nothing written, queued again")
        except Changed:
            self.ledger.requeue(row.id, delay=self.config.settle_time)
            self.on_changed(row.path)
            self.log.emit("requeued", row.path, "the file changed while it was read")
        except Vanished:
            self.ledger.delete(row.id)
            self.log.emit("vanished", row.path, "gone from the inbox before it was processed")
        except (PhotoError, Refused) as exc:
            self._fail(row, without_path(str(exc), row.path))  # the log names the photo
        except Exception as exc:
            self._transient(row, exc)

    def _as_duplicate(self, row: Row, original: Row) -> bool:
        """Its twin's copy published, or what went wrong sorted by ``_guard`` (retried)."""
        reused: list[bool] = []
        self._guard(row, lambda r: reused.append(self._duplicate(r, original)))
        return reused != [False]

    def _duplicate(self, row: Row, original: Row) -> bool:
        """The same content as a photo already done. A rename (the original has left the
        inbox) writes nothing: its protected copy is in the outbox already. A copy (the same
        photo in two albums) gets its own outbox copy with the original's published bytes — no
        second optimization; when those bytes are gone from the outbox (the uploader took them)
        or changed there, or were made with other settings, False: the photo is protected like
        any other — as a retried one always is."""
        source = original.duplicate_of or original.path
        if source == row.path or row.budget:
            # retried: the donor is a copy of this very photo, or a stronger attempt was asked
            return False
        if not os.path.lexists(self.inbox / source):
            self.ledger.finish(row.id, "done", duplicate_of=source, output=None, error=None)
            note = f"same content as {source} (renamed); nothing written"
            self.log.emit("duplicate", row.path, note)
            return True
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
        why = outbox_gone(self.outbox, self.outbox_mount)  # never made anew where it was
        if why is not None:
            raise OSError(f"{self.outbox}: {why}")
        with self.commit_lock:
            if self.dead:
                raise Abandoned()
            commit_publication(
                self.ledger, row.id, data, staged, self.outbox, out_rel, state, fields, digest
            )

    def _fail(self, row: Row, reason: str) -> None:
        self.ledger.finish(row.id, "failed", error=reason, model=self.model_label)
        self.log.emit("failed", row.path, reason, level="warning", reason=reason)

    def _transient(self, row: Row, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        if is_gpu_oom(exc) and can_degrade(self.settings, row.degrade):
            with contextlib.suppress(Exception):
                import torch

                torch.cuda.empty_cache()
            degrade = row.degrade + 1
            self.ledger.retry(row.id, reason, 0.0, degrade=degrade)
            self.ledger.requeue(row.id)  # stepping down is not a failed attempt
            self.log.emit(
                "retried",
                row.path,
                f"GPU out of memory; again {degrade_label(self.settings, degrade)}",
                level="warning",
                reason=reason,
                degrade=degrade,
            )
            self.on_retry(time.time())
            return
        if row.attempts >= self.config.max_attempts:
            self._fail(row, f"gave up after {row.attempts} attempts: {reason}")
            return
        delay = min(
            self.config.retry_backoff * 2 ** (row.attempts - 1), self.config.retry_backoff_max
        )
        self.ledger.retry(row.id, reason, delay)
        self.log.emit(
            "retried",
            row.path,
            f"{reason}; attempt {row.attempts + 1} of {self.config.max_attempts} in {delay:g} s",
            level="warning",
            reason=reason,
            attempt=row.attempts,
            delay=delay,
            traceback=traceback.format_exc(limit=6),
        )
        self.on_retry(time.time() + delay)

    def output_name(self, row: Row) -> str:
        return output_name(self.ledger, row)

    def _protect_and_publish(self, row: Row) -> None:
        from pixcamd.job import protect_photo  # torch and the models: not for `pixcamd status`

        data = self._read(row)
        settings = with_budget(degraded(self.settings, row.degrade), row.budget)
        models = self.models
        moved = settings.device == "cpu" and str(self.settings.device) != "cpu"
        if moved:
            models = [m.to("cpu") for m in self.models]
        try:
            kept = self._kept.get(row.id)
            if kept is not None and kept[:2] == (row.sha256, self.fingerprint):
                outcome = kept[2]  # only the write failed last time: no second optimization
                note = "the protected pixels of the last attempt (only its write failed)"
                self.log.emit("reused", row.path, note)
            else:
                options = job_options(self.config, settings)
                outcome = protect_photo(data, row.path, models, options, self._progress)
                if row.budget:  # a stronger retry: the report says what it ran with
                    outcome.report["budget"] = dict(row.budget)
                # Kept until the photo is finished: if writing or publishing fails (a full
                # disk), the retry writes these bytes instead of optimizing again.
                self._kept = {row.id: (row.sha256, self.fingerprint, outcome)}
        finally:
            if moved:
                for m in self.models:
                    m.to(self.settings.device)
        self.publish_outcome(row, outcome)

    def _read(self, row: Row) -> bytes:
        """The source's bytes, as they were when the ledger settled them."""
        src = self.inbox / row.path
        if not os.path.lexists(src):
            raise Vanished()
        if src.is_symlink() and not inside(src.resolve(), self.inbox):
            raise Refused(f"{row.path}: a symlink that leads out of the inbox; not followed")
        before = os.stat(src)
        try:
            data = src.read_bytes()
        except OSError as exc:
            raise PhotoError(f"{row.path}: cannot read the file ({exc})") from exc
        after = os.stat(src)
        signature = (after.st_size, after.st_mtime_ns)
        if signature != (before.st_size, before.st_mtime_ns) or signature != (
            row.size,
            row.mtime_ns,
        ):
            raise Changed()
        self._checkpoint()
        return data

    def publish_outcome(self, row: Row, outcome) -> None:
        """Ship, hold or record one photo's ``pixcamd.job.Outcome`` (from this process or a
        Ray worker): the copy's bytes were judged as every pipeline serves them before they
        came back; here they are staged, recorded, and published with one rename."""
        from pixcamd import output

        # What the decoder changed (transparency flattened, frames dropped, CMYK converted):
        # the user sees it in the log and on the photo's page, as the CLI prints it.
        for note in outcome.warnings:
            self.log.emit("photo_note", row.path, note)
        self._checkpoint()
        report = outcome.report
        protected = outcome.protected
        ship = outcome.data is not None and (protected or self.config.on_unprotected == "ship")
        out_rel = self.output_name(row)
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
            state = fields.pop("state")
            self.ledger.finish(row.id, state, output=earlier, held=held, **fields)
            self._kept.pop(row.id, None)
            where = f"; best attempt in {held}" if held else ""
            if earlier:
                where += f"; its earlier copy {earlier} stays in the outbox (pixcamd remove)"
            self.log.emit(
                "unprotected",
                row.path,
                f"could not be protected, held back from the outbox{where} — "
                f"{scores_text(scores, worst)}{edit_text}",
                level="warning",
                filter=edit,
                scores=scores,
                protected_on=protected_on,
                worst=worst,
                psnr=fields["psnr"],
                seconds=fields["seconds"],
            )
            return

        current = self.ledger.by_id(row.id)
        if current is None or current.sha256 != row.sha256:
            raise Changed()
        self._checkpoint()
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
                filter=edit,
                verdict=verdict,
                metadata_notes=notes,
                scores=scores,
                protected_on=protected_on,
                worst=worst,
                psnr=fields["psnr"],
                seconds=fields["seconds"],
            )
        else:
            self.log.emit(
                "shipped_unprotected",
                row.path,
                f"NOT protected, shipped anyway (on_unprotected = ship) → {out_rel} — "
                f"{scores_text(scores, worst)}{edit_text}",
                level="warning",
                output=out_rel,
                filter=edit,
                scores=scores,
                protected_on=protected_on,
                worst=worst,
                seconds=fields["seconds"],
            )
