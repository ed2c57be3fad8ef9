"""What a folder run has to do: each photo named or found in the folders offered to the run's
ledger, and sorted — handled by an earlier run from the same bytes with the same settings
(reported, not redone), a copy of a photo done already (its copy reused), one whose copy left
the outdir or a settings change asks to redo, or a photo of the same name from another folder
(refused: its copy would replace this one's).

A mixin of ``pixcamd.folders.FolderRun``: it reads the run's sources, ledger, outdir,
fingerprint and settings, and calls its ``_copy_from`` and its reporting.
"""

from __future__ import annotations

import os
import stat
import unicodedata
from collections import Counter
from pathlib import Path

from pixcamd.daemon.fs import sha256_file
from pixcamd.daemon.ledger_row import Row
from pixcamd.daemon.publication import holds
from pixcamd.folder_plan import Source


class Offers:
    """``FolderRun``'s look at what there is to do (``_offer_all``), before any work."""

    def _offer_all(self) -> list[int]:
        """Row ids to protect, in order; photos handled by an earlier run are reported now."""
        todo = []
        for key, source in self.sources.items():
            try:
                st = os.stat(source.path)
                if not stat.S_ISREG(st.st_mode):  # a pipe named on its own would block a read
                    self._report_failure(key, f"{source.path}: not a regular file")
                    continue
                row = self.ledger.get(key)
                # size and time vouch for the bytes only of the file the record saw
                seen = row is None or self._seen_here(row, source)
                if row is not None and seen and self._still_done(row, st):
                    self._report_earlier(row)
                    continue
                digest = sha256_file(source.path)
                other = None if seen else self._other_source(row, digest)
                if other:
                    self._report_failure(
                        key,
                        f"{source.path}: this --outdir holds the copy of another photo of the "
                        f"same name, {other} (both are {key} in its record); protect this one "
                        "into another --outdir",
                    )
                    continue
            except OSError as exc:
                self._report_failure(key, f"{source.path}: cannot read the file ({exc})")
                continue
            earlier = row
            # a duplicate is followed as a rename or queued as a copy in the offer's own
            # transaction: a run stopped in between (Ctrl-C, a kill) would leave it recorded
            # done with no copy of its own, reported so by every later run
            offer, moved = self.ledger.offer_settled(
                key, digest, st.st_size, st.st_mtime_ns, self.fingerprint, self._renamed(key), True
            )
            row = offer.row
            if offer.why == "settings changed":  # done before from these bytes: say why again
                self.again[row.id] = self._why_again(earlier)
            if moved is not None:  # one name respelled: its record, and copy, followed it
                self._report_earlier(moved[0])
            elif offer.action == "duplicate":  # the same photo under another name: its own copy
                if not self._copy_from(row, self.ledger.get(row.duplicate_of)):
                    todo.append(row.id)  # queued
            elif row.state == "failed" or row.state == "queued":
                todo.append(row.id)  # new, changed, or failed last time: (again) now
            elif not self._copy_in_place(row) or self._wants_copy(row):
                # its copy was deleted from the outdir since, or --write-unprotected asks for
                # one an earlier run did not write: made again, under its name
                self.ledger.requeue_many([row.id])
                todo.append(row.id)
            else:
                self._report_earlier(row)
        for why, count in Counter(self.again[i] for i in todo if i in self.again).items():
            self.on_note(f"{count} photos an earlier run did are protected again: {why}")
        return todo

    def _why_again(self, earlier: Row) -> str:
        recorded = (earlier.report or {}).get("settings_key")
        if recorded is None:  # a record from before the key was kept
            return "made with other settings, or by an earlier pixcamd"
        if recorded == self.settings_key:
            return "pixcamd's search changed since (the same settings)"
        return "the settings changed"

    def _renamed(self, key: str):
        """``offer_settled``'s ``gone`` for ``key``: only the record of the photo ``key``'s
        duplicates (its ``duplicate_of``), and only where ``_respelled``."""

        def gone(path: str) -> bool:
            # inside the offer's transaction: its connection sees the row just written
            row = self.ledger.get(key)
            return path == row.duplicate_of and self._respelled(key, self.ledger.get(path))

        return gone

    @staticmethod
    def _respelled(key: str, donor: Row | None) -> bool:
        """``donor`` is this photo under its name spelled otherwise — its accents composed or
        decomposed (a Mac's sync rewrites é as e + ◌́) — and gone under that spelling: one
        name (docs/folder-runs.md), not a photo copied under another."""
        if donor is None or unicodedata.normalize("NFC", donor.path) != unicodedata.normalize(
            "NFC", key
        ):
            return False
        recorded = (donor.report or {}).get("source")
        return isinstance(recorded, str) and not os.path.lexists(recorded)

    def _origin(self, key: str) -> str:
        """Where ``key``'s photo is (its planned ``place``): two folders of one name (2019/May,
        2020/May) are one key in the record, never one photo."""
        return str(self.sources[key].place)

    def _seen_here(self, row: Row, source: Source) -> bool:
        """The record's photo for this key is this very file — the same place, or one file by
        two paths (a link, a second mount, a share's other case) — or the record does not
        say."""
        recorded = (row.report or {}).get("source")
        if not isinstance(recorded, str) or recorded == str(source.place):
            return True
        try:
            return os.path.samefile(recorded, source.path)
        except OSError:
            return False

    def _other_source(self, row: Row, digest: str) -> str | None:
        """The photo an earlier run recorded under this key (not ``_seen_here``), when it is
        still there with other bytes than ``digest`` (one moved away since is this one,
        moved; one with the same bytes is a copied folder)."""
        recorded = row.report["source"]
        if not os.path.lexists(recorded) or holds(Path(recorded), digest):
            return None
        return recorded

    def _wants_copy(self, row: Row) -> bool:
        """--write-unprotected, and an earlier run left this photo unprotected without its own
        copy (none, or the copy of an earlier version of it, kept)."""
        mine = (row.report or {}).get("output_sha256") if row.output else None
        return self.write_unprotected and row.state == "unprotected" and not mine

    def _still_done(self, row: Row, st: os.stat_result) -> bool:
        """Handled by an earlier run from these bytes with these settings, its copy in place."""
        if (row.size, row.mtime_ns) != (st.st_size, st.st_mtime_ns) or self._wants_copy(row):
            return False
        if row.fingerprint != self.fingerprint or row.state not in ("done", "unprotected"):
            return False
        return self._copy_in_place(row)

    def _copy_in_place(self, row: Row) -> bool:
        """The copy a finished row published is still in the outdir (or it published none)."""
        return row.output is None or (self.outdir / row.output).is_file()
