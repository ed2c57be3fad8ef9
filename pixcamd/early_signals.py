"""A stop asked of ``pixcamd run`` before the daemon can take it: ``pixcamd.launch`` installs
``take`` for SIGTERM and SIGINT first thing, as it ignores SIGHUP, because a process without a
handler for them dies of them — and PID 1 in a container ignores them instead, so a
``docker stop`` in the second or more that loading torch and the config take was lost, and
ended in SIGKILL ten seconds later. ``pixcamd run`` looks at ``stop`` before it reads the
config and again once its own handlers are in place: one asked before the daemon started
makes it stop before it protects anything, exit 0. Nothing is
imported here (the first lines of the command, and no cycle with ``pixcamd.cli``)."""

from __future__ import annotations

import signal
import threading

stop = threading.Event()  # a SIGTERM or SIGINT received; `run` stops at its first look
received: list[str] = []  # their names, for the line that says why it stopped


def take(signum: int, frame) -> None:
    received.append(signal.Signals(signum).name)
    stop.set()


def install() -> None:
    signal.signal(signal.SIGTERM, take)
    signal.signal(signal.SIGINT, take)


def stopped_before_start(own: threading.Event | None = None) -> bool:
    """Whether a stop was asked before the daemon started (here, or in ``own``, the event of
    the handlers `run` put in place of these); says so on stderr. Taken over when asked: a
    later `run` in the same process (tests) starts with none."""
    import sys

    if not stop.is_set() and not (own is not None and own.is_set()):
        return False
    names = ", ".join(dict.fromkeys(received)) or "a stop"
    stop.clear()
    received.clear()
    print(f"pixcamd: {names} received before the daemon started: stopped", file=sys.stderr)
    return True
