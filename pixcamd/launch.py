"""The ``pixcamd`` command's first lines, before its imports: loading torch takes a second or
more, and ``pixcamd run`` must not die of a SIGHUP sent in that time (a script that edits the
config right after starting the daemon, then reloads it). The config is read after this, so a
reload asked for before it has nothing to miss; ``pixcamd run`` takes SIGHUP over from here.
SIGTERM and SIGINT are taken here too (``pixcamd.early_signals``): a stop asked in that time
stops ``run`` before it protects anything — as PID 1 in a container, a signal with no handler
is not even fatal, only lost.

The standard streams are made safe here too, before anything is opened or printed
(``pixcamd.streams``)."""

from __future__ import annotations

import signal
import sys

from pixcamd import streams


def main() -> int:
    streams.make_safe()
    if sys.argv[1:2] == ["run"]:
        from pixcamd import early_signals

        early_signals.install()  # before SIGHUP: once that is ignored, a stop is kept too
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
    from pixcamd.cli import main as cli_main

    return cli_main()
