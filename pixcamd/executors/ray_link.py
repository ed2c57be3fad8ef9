"""Reaching a Ray cluster without Ray: its address, a bounded TCP probe of the head, this
process's signal handlers kept from what ``ray.init``/``ray.shutdown`` do to them, the readable
line of a Ray error, and a private Ray's session folder removed once it has stopped. Importing
this module never imports Ray (``pixcamd config check`` probes a cluster with it)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading

from pixcamd.errors import PixcamdError

CONNECT_TIMEOUT = 5.0  # s: a TCP connect to the head's port, before ray.init (which can hang)
DEFAULT_PORTS = {"": 6379, "ray://": 10001}  # the GCS, and the Ray Client server


def split_address(address: str) -> tuple[str, int] | None:
    """``host:port`` / ``ray://host[:port]`` → (host, port); None for ``local`` and ``auto``."""
    if address in ("local", "auto"):
        return None
    scheme = "ray://" if address.startswith("ray://") else ""
    rest = address.removeprefix(scheme).rstrip("/")
    host, sep, port = rest.rpartition(":")
    if not sep or "]" in port:  # no port given (or an IPv6 literal without one)
        host, port = rest, str(DEFAULT_PORTS[scheme])
    host = host.strip("[]")
    if not host or not port.isdigit():
        raise PixcamdError(
            f"Ray address {address!r}: expected HOST:PORT, ray://HOST[:PORT] or local"
        )
    return host, int(port)


def reachable(address: str, timeout: float = CONNECT_TIMEOUT) -> str | None:
    """None when the head at ``address`` accepts a TCP connection (or ``address`` is ``local``/
    ``auto``: nothing to try yet), else why not, in words. Needs no Ray, starts nothing."""
    parts = split_address(address)
    if parts is None:
        return None
    sock = _connect(*parts, timeout)
    if isinstance(sock, str):
        return f"nothing answers at {parts[0]}:{parts[1]} ({sock})"
    with sock:  # the same connection asks whether it is a Ray head (the Ray Client's is not)
        other = None if address.startswith("ray://") else not_grpc(sock)
    if other is not None:
        return f"something answers at {parts[0]}:{parts[1]}, but not a Ray head ({other})"
    return None


def probe(host: str, port: int, timeout: float = CONNECT_TIMEOUT) -> str | None:
    """None when something accepts a TCP connection at host:port, else why not."""
    sock = _connect(host, port, timeout)
    if isinstance(sock, str):
        return sock
    sock.close()
    return None


def _connect(host: str, port: int, timeout: float) -> socket.socket | str:
    """A TCP connection to host:port, or why there is none, in words."""
    try:
        return socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        return exc.strerror or type(exc).__name__


# HTTP/2's client preface and an empty SETTINGS frame: a Ray head's GCS is a gRPC server, which
# answers with a SETTINGS frame of its own. ray.init, pointed at anything else that accepts the
# connection (a web server on a mistyped port), retries for many minutes.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def not_grpc(sock: socket.socket, timeout: float = 2.0) -> str | None:
    """What answers on ``sock`` in words when it plainly is not HTTP/2 (gRPC); None when it
    is, or when it says nothing in ``timeout`` (then ray.init decides, as before)."""
    try:
        sock.settimeout(timeout)
        sock.sendall(_H2_PREFACE)
        first = sock.recv(64)
    except OSError:
        return None
    if len(first) < 4 or first[3] == 4:  # nothing said, or a SETTINGS frame: gRPC
        return None
    if 0x14 <= first[0] <= 0x17 and first[1] == 3:  # a TLS record: a head with RAY_USE_TLS
        return None
    line = first.split(b"\n")[0].strip().decode("ascii", "replace")[:40]
    return f"it answered {line!r}" if line.isprintable() else "it does not speak gRPC"


_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP")
_signals_replaced = threading.Event()


@contextlib.contextmanager
def signals_kept():
    """ray.init and ray.shutdown replace the process's SIGTERM/SIGINT handlers at the C level
    (SIGTERM then kills the process, or exits with status 15): the daemon's graceful stop and
    the CLI's Ctrl-C must stay the caller's. Only the main thread may set handlers through
    Python, so off it the C-level dispositions are put back as they were right after the call
    (``_dispositions``), and the main thread is told to re-install its handlers as well
    (``restore_signals``). Waiting for that alone left up to a supervision tick in which a
    SIGTERM killed the daemon: every one of four sent as a lost cluster was reported."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        saved = _dispositions()
        try:
            yield
        finally:
            if saved is not None:
                saved()
            _signals_replaced.set()
        return
    kept = {name: signal.getsignal(getattr(signal, name)) for name in _SIGNALS}
    try:
        yield
    finally:
        _reinstall(kept)


def _dispositions():
    """The C-level dispositions of ``_SIGNALS`` as they are now (libc's ``sigaction``, kept as
    opaque bytes: no struct layout assumed), as a function that puts them back from any
    thread; None where libc cannot be reached."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        numbers = [int(getattr(signal, name)) for name in _SIGNALS]
        kept = {n: ctypes.create_string_buffer(1024) for n in numbers}  # > any sigaction struct
        if any(libc.sigaction(n, None, kept[n]) != 0 for n in numbers):
            return None
    except (OSError, AttributeError):
        return None

    def put_back() -> None:
        for n, disposition in kept.items():
            libc.sigaction(n, disposition, None)

    return put_back


def _reinstall(handlers: dict) -> None:
    import signal

    for name, handler in handlers.items():
        if handler is not None:
            signal.signal(getattr(signal, name), handler)


def restore_signals() -> None:
    """Called by the main thread (the daemon's tick): re-install the handlers Python has
    registered if a Ray connection made or closed in another thread replaced them."""
    import signal

    if _signals_replaced.is_set() and threading.current_thread() is threading.main_thread():
        _signals_replaced.clear()
        _reinstall({name: signal.getsignal(getattr(signal, name)) for name in _SIGNALS})


def first_line(exc: BaseException) -> str:
    """The first non-blank line of an error's text (Ray's run to whole tracebacks)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def last_line(exc: BaseException) -> str:
    """The line of a Ray error that says what happened (its text carries whole tracebacks)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def drop_session(session: str | None) -> None:
    """Remove a private Ray's session folder (``$TMPDIR/ray/session_…``) once it has stopped:
    Ray leaves it behind, with its logs and its object store's spill and fallback files —
    photos' bytes where memory ran short. Ray's ``session_latest`` link to it goes too, and its
    temp root where nothing else is left in it (another Ray's sessions stay)."""
    if not session:
        return
    shutil.rmtree(session, ignore_errors=True)
    root = os.path.dirname(session)
    latest = os.path.join(root, "session_latest")
    with contextlib.suppress(OSError):
        if os.readlink(latest) == session:
            os.unlink(latest)
    with contextlib.suppress(OSError):
        os.rmdir(root)
