"""How a command that works for a while stops on SIGTERM (`kill`, `timeout`, a service manager
stopping it) or SIGHUP (its terminal or ssh session gone): as on Ctrl-C, through
KeyboardInterrupt, so its own clean-up runs."""

from __future__ import annotations

import contextlib
import signal


@contextlib.contextmanager
def sigterm_as_interrupt(terminated: list):
    """SIGTERM and SIGHUP raise KeyboardInterrupt inside the block instead of ending the
    process mid-line (a SIGHUP that ``nohup`` ignores stays ignored); ``terminated`` records
    which came (the exit status is then 128 + its number: :func:`exit_status`)."""

    def stop(signum, frame):
        terminated.append(signum)
        raise KeyboardInterrupt

    before = {}
    try:
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signum == signal.SIGHUP and signal.getsignal(signum) == signal.SIG_IGN:
                continue
            before[signum] = signal.signal(signum, stop)
    except ValueError:  # not the main thread (an embedding program): its own handling
        yield
        return
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def exit_status(terminated: list) -> int:
    """128 + the signal that stopped the block, or 130 (Ctrl-C's) when none did."""
    return 128 + terminated[0] if terminated else 130
