"""What ``pixcamd protect`` shows while it works.

On a terminal: one overall bar (photos done of all, protected / unprotected / failed, photos per
hour, time left) and a line for the current photo's steps, drawn by tqdm; each photo's result is
printed above them. Not on a terminal: plain lines, one per photo. With ``--json``: one JSON
object per photo on stdout as it finishes, and ``{"summary": …}`` at the end.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from tqdm import tqdm

from pixcamd.daemon.events import printable
from pixcamd.daemon.watcher import shown
from pixcamd.errors import without_path
from pixcamd.report import scores_text

if TYPE_CHECKING:  # the folder run and its executors need torch: `pixcamd --help` does not
    from pixcamd.folders import Tally


class RunProgress:
    def __init__(self, stream, json_out=None):
        self.stream, self.json_out = stream, json_out
        # a dumb terminal (TERM=dumb: Emacs' shell, some CI consoles) cannot move the cursor
        # up, which two bars need: it gets the plain lines a pipe gets
        self.tty = getattr(stream, "isatty", lambda: False)() and os.environ.get("TERM") != "dumb"
        self.bar: tqdm | None = None  # tqdm measures the rate and the time left itself
        self.steps: tqdm | None = None
        self.current = ""  # the photo in the step line

    # ---- lines -----------------------------------------------------------------------------

    def say(self, line: str) -> None:
        line = display(line)
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def _result(self, line: str) -> None:
        """A photo's result: stdout for a person (stderr when stdout carries JSON) — above the
        bars on stderr's terminal when they are shown, and on stdout still: with stdout
        redirected (``> results.txt``) the lines go there, not to the terminal alone."""
        import sys

        if self.json_out is not None:
            self.say(line)
        elif self.bar is not None:
            self.bar.write(display(line), file=sys.stdout)
            sys.stdout.flush()
        else:
            print(display(line), file=sys.stdout, flush=True)

    # ---- the run -----------------------------------------------------------------------------

    def begin(self, total: int, where: str | None, ledger) -> None:
        if where is not None:
            self.say(f"{total} photos; working on {where}; record: {ledger}")
        # a terminal that says it is 0×0 (a pty no one sized: `script` from cron, a console
        # before its first resize) is drawn as 80×24: tqdm draws nothing in 0 rows
        sized = min(_size(self.stream)) > 0 if self.tty else True
        size = {} if sized else {"ncols": 80, "nrows": 24}
        if self.tty and total > 1:
            self.bar = tqdm(
                total=total, unit="photo", file=self.stream, dynamic_ncols=sized, **size
            )
        if self.tty:
            self.steps = tqdm(
                total=None,
                bar_format="{desc}",
                file=self.stream,
                position=1 if self.bar is not None else 0,
                leave=False,
                **size,
            )

    def start(self, name: str) -> None:
        self.current = name
        if self.steps is not None:
            self.steps.set_description_str(f"{_short(name)}: starting", refresh=True)

    def step(self, step: int, worst: float) -> None:
        if self.steps is not None:
            text = f"{_short(self.current)}: step {step}, worst view {worst:6.1f}"
            self.steps.set_description_str(text, refresh=True)

    def photo(self, report: dict, tally: Tally) -> None:
        if not report.get("earlier"):  # said when the photo was done, not on every re-run
            for note in report.get("warnings") or []:  # what the decoder changed in the input
                self.say(f"{report['path']}: {note}")
            for note in report.get("metadata_notes") or []:  # e.g. the GPS position removed
                self.say(f"{report['path']}: {note}")
        self._result(summary_line(report))
        if self.json_out is not None:
            print(json.dumps(report, default=str), file=self.json_out, flush=True)
        if self.bar is not None:
            self.bar.set_postfix_str(self._postfix(tally), refresh=False)
            self.bar.update(1)

    def refused(self, path: str, why: str) -> None:
        """A file the plan refused (found, never handed to the run): named, and a JSON line."""
        self.say(f"{path}: refused: {why}")
        if self.json_out is not None:
            print(json.dumps({"path": path, "refused": why}), file=self.json_out, flush=True)

    def _postfix(self, tally: Tally) -> str:
        rate = tally.as_dict()["photos_per_hour"]
        per_hour = f", {rate:.0f}/h" if rate else ""
        counts = f"{tally.protected} protected, {tally.unprotected} unprotected"
        return f"{counts}, {tally.failed} failed{per_hour}"

    def end(self, tally: Tally) -> None:
        for bar in (self.steps, self.bar):
            if bar is not None:
                bar.close()
        self.bar = self.steps = None
        summary = tally.as_dict()
        if self.json_out is not None:
            print(json.dumps({"summary": summary}), file=self.json_out, flush=True)
        if tally.failed or tally.unprotected or tally.refused or tally.finished < tally.total:
            earlier = f" ({tally.earlier} by an earlier run)" if tally.earlier else ""
            refused = f", {tally.refused} refused" if tally.refused else ""
            self.say(
                f"{tally.protected} of {tally.total} photos protected{earlier}; "
                f"{tally.unprotected} left unprotected, {tally.failed} failed{refused} (each "
                "named above)" + (f", {summary['left']} not done yet" if summary["left"] else "")
            )
        elif tally.total > 1:
            earlier = f" ({tally.earlier} by an earlier run)" if tally.earlier else ""
            self.say(f"all {tally.total} photos protected{earlier}")


def _size(stream) -> tuple[int, int]:
    """The terminal's columns and lines as it says them (0 where it says nothing)."""
    try:
        return tuple(os.get_terminal_size(stream.fileno()))
    except (OSError, ValueError, AttributeError):
        return (0, 0)


def _short(name: str, width: int = 40) -> str:
    name = display(name)
    return name if len(name) <= width else "…" + name[-(width - 1) :]


def display(line: str) -> str:
    """``line`` for a terminal: a file name that is not UTF-8 must not stop the run mid-line,
    nor one with a newline or an escape sequence split the line or drive the terminal (as the
    daemon's lines, ``pixcamd.daemon.events.printable``). ``--json`` keeps names exactly."""
    return printable(shown(line))


def summary_line(report: dict) -> str:
    """One photo in words: where its copy went, the verdict, scores per pipeline and the worst."""
    if "error" in report:
        return f"{report['path']}: error: {without_path(report['error'], report['path'])}"
    source = report["path"]
    where = f"→ {report['output']}" if report.get("output") else "(not written)"
    scores = report.get("file_check") or report.get("after_jpeg") or {}
    text = scores_text(scores, report.get("worst"))
    if report.get("earlier"):
        return f"{source} {where}: {str(report['verdict']).upper()} (done by an earlier run)"
    if report.get("duplicate_of"):
        twin = report["duplicate_of"]
        return f"{source} {where}: {str(report['verdict']).upper()} (same photo as {twin})"
    edit = report.get("enhancement")
    edit = f"; filter: {edit['description']}" if edit else ""
    if edit and report.get("mode") == "auto":  # which of the two protected it
        eps = report.get("epsilon") or 0
        edit += f"; then the invisible change, ε {eps:g}" if eps else "; no invisible change"
    psnr = report.get("psnr")
    psnr = f"PSNR {psnr:.1f} dB, " if psnr is not None else ""
    return (
        f"{source} {where}: {report['verdict'].upper()} — {text}{edit}; "
        # PSNR/SSIM are of the written file (its JPEG included), L∞ of our change before it
        f"{psnr}SSIM {report['ssim']:.4f}, changed ≤ {report['linf']}/255 before encoding, "
        f"{report['steps']} steps, {report['seconds']:.1f} s"
        + (f" (again: {report['again']})" if report.get("again") else "")
    )
