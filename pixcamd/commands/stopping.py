"""How a command that works for a while stops on SIGTERM (`kill`, `timeout`, a service manager
stopping it): as on Ctrl-C, through KeyboardInterrupt, so its own clean-up runs."""

from __future__ import annotations

import contextlib
import signal


@contextlib.contextmanager
def sigterm_as_interrupt(terminated: list):
    """SIGTERM raises KeyboardInterrupt inside the block instead of ending the process
    mid-line; ``terminated`` records that it came (the exit status is then 128 + 15)."""

    def stop(signum, frame):
        terminated.append(signum)
        raise KeyboardInterrupt

    try:
        before = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread (an embedding program): its own handling
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)
