"""A real Ray cluster on this machine for the tests: ``ray start`` once per node, one CPU each,
token authentication on, every process found and stopped by its session afterwards (any other
Ray on the machine is left alone). The fixtures ``ray_env`` and ``cluster`` (conftest.py) use it."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

RAY = Path(sys.executable).parent / "ray"


def ephemeral_ports() -> range:
    """The ports the kernel hands out to outgoing connections (and to a bind on port 0)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)


# Ports `ray start` keeps for itself by default, which it refuses as the head's --port: its
# workers' (10002–19999), the dashboard's (8265, kept even when it is not started) and the
# dashboard agent's (52365, on every node).
RAY_PORTS = frozenset({8265, 52365, *range(10002, 20000)})


def free_port() -> int:
    """A port nothing holds on any address, none of Ray's own (``RAY_PORTS``), picked below the
    ephemeral range where there is room: a port the kernel handed out (bind to port 0) can
    meanwhile become some outgoing connection's own port on the machine's other address, and
    Ray's GCS, which listens on all addresses, then fails to start ("Failed to start the grpc
    server", one CI run in many). Where the range leaves nothing from 20000 up below it (one
    that starts low, 1024), a port outside it, else any from 20000 up — never the kernel's, which
    there could be one of Ray's own."""
    ephemeral = ephemeral_ports()
    ours = [port for port in range(20000, 65536) if port not in RAY_PORTS]
    below = [port for port in ours if port < ephemeral.start]
    outside = [port for port in ours if port not in ephemeral]
    for pool in (below, outside, ours):
        for port in random.sample(pool, k=min(200, len(pool))):
            with socket.socket() as s:
                try:
                    s.bind(("", port))
                except OSError:
                    continue
                return port
    raise OSError("no free port from 20000 up")


def session_processes(sids: set[int]) -> list[int]:
    """Live processes in these sessions: everything a ``ray start`` we ran left behind (each was
    started in a session of its own), and nothing of any other Ray on this machine."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()  # after "pid (comm)": state ppid pgrp session
        if fields[0] != "Z" and int(fields[3]) in sids:
            pids.append(int(entry.name))
    return pids


def stop_sessions(sids: set[int]) -> None:
    for sig, grace in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 10.0)):
        for pid in session_processes(sids):
            with contextlib.suppress(ProcessLookupError):  # gone meanwhile
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while session_processes(sids) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not session_processes(sids):
            return


def ray_start(args: list[str], env: dict, sids: set[int]) -> None:
    proc = subprocess.Popen(
        [str(RAY), "start", *args],
        env=env,
        start_new_session=True,  # its daemons keep this session: teardown finds them all by it
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    sids.add(proc.pid)
    out, _ = proc.communicate(timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"ray start {' '.join(args)} failed:\n{out}")


def reread_auth_settings() -> None:
    """Ray reads RAY_AUTH_MODE/RAY_AUTH_TOKEN once per process, when it is imported — long
    before this module's fixture sets them for the driver: make it read them again (what Ray's
    own tests do). Rays older than token authentication ignore those settings anyway."""
    try:
        from ray._private.authentication_test_utils import reset_auth_token_state
    except ImportError:
        return
    reset_auth_token_state()


@dataclass
class Cluster:
    address: str
    nodes: list[set[int]]  # per node (the head first): the sessions its processes run in


@contextlib.contextmanager
def ray_cluster(nodes: int, env: dict, port: int | None = None, cpus: int = 1):
    """``nodes`` Ray nodes of ``cpus`` CPUs each on 127.0.0.1 (the first is the head, on
    ``port`` or a free one), all stopped and their folder removed on the way out — a failed start
    included."""
    # Ray's socket paths must stay under 108 characters: a short folder right under /tmp.
    temp = Path(tempfile.mkdtemp(prefix="pxray", dir="/tmp"))
    chosen = port is None  # a port of our choosing may be tried again with another
    port = port or free_port()
    common = ["--num-cpus", str(cpus), "--disable-usage-stats", "--temp-dir", str(temp)]
    common += ["--object-store-memory", str(100 * 2**20)]
    cluster = Cluster(f"127.0.0.1:{port}", [])
    try:
        for i in range(nodes):
            cluster.nodes.append(set())
            if i == 0:
                for attempt in range(3):
                    head = ["--head", "--node-ip-address", "127.0.0.1", "--port", str(port)]
                    try:
                        ray_start(
                            [*head, "--include-dashboard=false", *common], env, cluster.nodes[0]
                        )
                        break
                    except RuntimeError as e:
                        # taken between our check and the GCS's bind: another port, if ours
                        if not chosen or attempt == 2 or "grpc server" not in str(e):
                            raise
                        stop_sessions(cluster.nodes[0])
                        port = free_port()
                        cluster.address = f"127.0.0.1:{port}"
            else:
                ray_start(["--address", cluster.address, *common], env, cluster.nodes[i])
        yield cluster
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        everything = set().union(*cluster.nodes)
        stop_sessions(everything)
        left = session_processes(everything)
        subprocess.run(["rm", "-rf", str(temp)], check=False)
    assert not left, f"Ray processes left behind: {left}"
