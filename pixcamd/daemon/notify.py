"""sd_notify(3) for ``pixcamd run`` under systemd: READY=1, STATUS=, WATCHDOG=1, RELOADING=1."""

from __future__ import annotations

import os
import socket
import threading


class Notifier:
    """sd_notify(3) without libsystemd: datagrams to $NOTIFY_SOCKET (silent when unset)."""

    def __init__(self, address: str | None = None, env: dict | None = None):
        env = os.environ if env is None else env
        self.address = address if address is not None else env.get("NOTIFY_SOCKET")
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        self.watchdog: float | None = None
        if usec and usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog = int(usec) / 1e6
        self._lock = threading.Lock()

    def send(self, *lines: str) -> bool:
        if not self.address:
            return False
        target = self.address
        if target.startswith("@"):  # abstract namespace
            target = "\0" + target[1:]
        try:
            with (
                self._lock,
                socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock,
            ):
                sock.connect(target)
                sock.sendall("\n".join(lines).encode())
            return True
        except OSError:
            return False
