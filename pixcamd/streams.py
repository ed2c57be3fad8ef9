"""The standard streams, made safe before anything is opened or printed (``pixcamd.launch``
does it first): a closed one held by /dev/null, a terminal that is not UTF-8 given ``?`` for
what it cannot show, stdout's failure to take the answer an error (exit 2), stderr's a loss
that stops nothing."""

from __future__ import annotations

import contextlib
import os
import sys

from pixcamd.errors import OutputUnwritable


def printable_everywhere() -> None:
    """A terminal or pipe in an encoding other than UTF-8 (``LANG=en_US.ISO-8859-1``,
    ``PYTHONIOENCODING=ascii``) cannot take every character pixcamd prints — ×, →, –, a photo's
    name —: it gets ``?`` for those instead of a traceback in place of the answer."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")


def closed_descriptors_held() -> None:
    """stdin, stdout or stderr closed by the caller (``>&-``, ``2>&-``) is held by /dev/null
    before anything is opened: else the next file opened — the daemon's lock, the ledger —
    takes its number, and what is written to stdout or stderr (a ``log_file = "/dev/stdout"``)
    goes into it. stdout is held read-only, so an answer written to it fails as one to a full
    disk does (``OutputUnwritable``); stderr, closed on purpose, takes what is said and keeps
    nothing."""
    for fd, flags, mode in ((0, os.O_RDONLY, "r"), (1, os.O_RDONLY, "w"), (2, os.O_WRONLY, "w")):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        os.open(os.devnull, flags)  # the lowest number free: this one, those below are open
        stream = open(fd, mode, errors="replace", closefd=False)  # noqa: SIM115 (held for good)
        setattr(sys, ("stdin", "stdout", "stderr")[fd], stream)


def discard_stdout() -> None:
    """What stdout still buffers goes nowhere, not tried again at exit (a reader gone, or a
    stdout that cannot take it: its failure said once already)."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, sys.stdout.fileno())
    os.close(null)


class _Stream:
    """A standard stream, everything but its writes passed through."""

    def __init__(self, stream):
        self._stream = stream

    def __getattr__(self, name):
        return getattr(self._stream, name)


class _Answer(_Stream):
    """stdout, whose failure to take the answer is ``OutputUnwritable`` (``BrokenPipeError``
    stays itself: a reader gone early, ``| head``)."""

    def _guarded(self, call, *args):
        try:
            return call(*args)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputUnwritable(
                f"cannot write the answer to stdout ({exc.strerror or exc}): it is lost or cut "
                "short"
            ) from None

    def write(self, text):
        return self._guarded(self._stream.write, text)

    def writelines(self, lines):
        return self._guarded(self._stream.writelines, lines)

    def flush(self):
        return self._guarded(self._stream.flush)


class _Said(_Stream):
    """stderr, which takes what is said or loses it: one that takes nothing — a full disk
    (``2>>log``), its reader gone — stops no command (``run`` least of all, whose events its
    log and ledger keep), as the daemon's event lines never did; the exit status still says
    how it went, and stdout still carries the answer."""

    def write(self, text):
        try:
            return self._stream.write(text)
        except (OSError, ValueError):
            return len(text)

    def flush(self):
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()


def make_safe() -> None:
    """All of the above, in the order that matters: a closed descriptor held before stdout and
    stderr are looked at, their encoding's errors set before they are wrapped."""
    closed_descriptors_held()
    printable_everywhere()
    sys.stdout, sys.stderr = _Answer(sys.stdout), _Said(sys.stderr)
