"""The ledger's rows of one content under several paths: a copy in another album queued for an
outbox copy of its own, and a rename or move whose record — its copy, scores, decisions — follows
it to the new path. A mixin of ``pixcamd.daemon.ledger.Ledger``: its connection, lock and
transactions."""

from __future__ import annotations

from dataclasses import replace

from pixcamd.daemon.ledger_row import Offer, Row


class SameContent:
    def offer_settled(
        self,
        path: str,
        sha256: str,
        size: int,
        mtime_ns: int,
        fingerprint: str,
        gone,
        redo_done: bool = False,
    ) -> tuple[Offer, tuple[Row, str | None] | None]:
        """``offer`` a file the daemon saw settle (or a folder run found: ``redo_done``, see
        ``offer``), and where it is a ``duplicate``, in the same transaction, follow it as a
        rename (``follow_rename``'s answer, second) or queue it as a copy (``queue_copy``): no
        reader — `pixcamd status`, the page — sees the new path recorded done with no copy of
        its own in between, and a kill there cannot leave it so for good (its file unchanged,
        every later scan, or run, would find it handled)."""
        with self._tx() as db:
            offer = self._offer(db, path, sha256, size, mtime_ns, fingerprint, redo_done)
            if offer.action != "duplicate":
                return offer, None
            moved = self._follow_rename(db, offer.row.id, offer.row.duplicate_of, gone)
            if moved is not None:
                return offer, moved
            return replace(offer, row=self._queue_copy(db, offer.row.id)), None

    def queue_copy(self, row_id: int) -> Row:
        """A second inbox path with the content of a photo already done (a copy in another
        album): queued so that it gets an outbox copy of its own; ``duplicate_of`` stays."""
        with self._tx() as db:
            return self._queue_copy(db, row_id)

    def _queue_copy(self, db, row_id: int) -> Row:
        self._update(
            db, row_id, state="queued", queued_at=self.clock(), finished_at=None, attempts=0
        )
        return self._get(db, row_id)

    def follow_rename(self, row_id: int, source: str, gone) -> tuple[Row, str | None] | None:
        """``row_id``'s photo is a photo of its content renamed or moved: where a done record
        of this content lies at a path that is ``gone`` from the inbox — ``source``'s (the
        original's), or one with a copy of its own and the new file's size and time (a copy of
        it, renamed — a rename keeps the time a fresh copy does not —, its original still there
        or edited since) — that record stands under the new path (copy, scores, decisions,
        id), whose own row goes: a photo arriving under the old name later is a new one. Of
        several gone (a whole album renamed), the one of the same time, then of the same file
        name, then ``source``'s. A new path with a copy or decision of its own is finished as
        a duplicate of ``source`` (of this content). Returns the row and the path whose record
        it took (None for a duplicate), or None where no record can be followed (every one
        still in the inbox: a copy, which the caller gives a copy of its own; or none of this
        content: protected anew)."""
        with self._tx() as db:
            return self._follow_rename(db, row_id, source, gone)

    def _follow_rename(self, db, row_id: int, source: str, gone) -> tuple[Row, str | None] | None:
        row = self._get(db, row_id)
        found = db.execute(
            "SELECT id, path, output, duplicate_of, size, mtime_ns FROM photos "
            "WHERE state = 'done' AND sha256 = ? AND path != ? ORDER BY id",
            (row.sha256, row.path),
        ).fetchall()
        stamp = (row.size, row.mtime_ns)
        # another path's record only where it owns a copy (one that wrote none is no record
        # of a copy to follow) and the file was that one, renamed: a copy deleted long ago
        # is no record of a new copy made since
        gone_ones = [
            r for r in found if (r[1] == source or (r[2] and (r[4], r[5]) == stamp)) and gone(r[1])
        ]
        name = row.path.rpartition("/")[2]
        gone_ones.sort(
            key=lambda r: (
                (r[4], r[5]) != stamp,
                r[1].rpartition("/")[2] != name,
                r[1] != source,
            )
        )
        old = gone_ones[0] if gone_ones else None
        if old is None:
            return None
        # a path that had a record of its own (a photo moved over another's name) keeps it:
        # its copy stays owned; the moved photo is then a duplicate of source, as before —
        # unless source's record is of other content now: then it is protected anew
        if row.output or row.held or row.decision:
            if old[1] != source:
                return None
            self._update(
                db,
                row_id,
                state="done",
                duplicate_of=source,
                finished_at=self.clock(),
                error=None,
            )
            return self._get(db, row_id), None
        db.execute("DELETE FROM photos WHERE id = ?", (row_id,))
        fields = dict(path=row.path, size=row.size, mtime_ns=row.mtime_ns)
        if old[3] not in {r[1] for r in found}:
            # a copy renamed whose original is edited or gone: no one's duplicate now
            fields["duplicate_of"] = None
        self._update(db, old[0], **fields)
        db.execute("UPDATE photos SET duplicate_of = ? WHERE duplicate_of = ?", (row.path, old[1]))
        return self._get(db, old[0]), old[1]
