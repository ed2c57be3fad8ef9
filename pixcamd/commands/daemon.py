"""``pixcamd run``, ``pixcamd config check`` and ``pixcamd status``: the daemon's commands."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from pixcamd.errors import PixcamdError


def add_commands(commands) -> None:
    """Add the ``run``, ``config`` and ``status`` subparsers to the CLI's ``commands``."""
    config_help = (
        "daemon config file (default: $PIXCAMD_CONFIG, ~/.config/pixcamd/config.toml, "
        "/etc/pixcamd/config.toml)"
    )
    run = commands.add_parser(
        "run",
        help="the daemon: watch the inbox, write protected copies to the outbox",
        description="Run in the foreground (systemd starts it so): watch the inbox recursively, "
        "protect every photo once it has settled, and publish the copy to the outbox with an "
        "atomic rename. Photos that cannot be protected are held back and reported. SIGTERM or "
        "SIGINT stop it after the current photo (or abandon it after grace_time); exit 0.",
    )
    run.add_argument("--config", type=Path, metavar="FILE", help=config_help)
    run.set_defaults(handler=run_daemon)

    config = commands.add_parser("config", help="check the daemon's configuration")
    actions = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check",
        help="validate the config file and print the effective configuration",
        description="Validate every key (each problem is named with its key) and print the "
        "configuration as the daemon will use it, automatic values resolved.",
    )
    check.add_argument("--config", type=Path, metavar="FILE", help=config_help)
    check.set_defaults(handler=config_check)

    status = commands.add_parser(
        "status",
        help="what the daemon is doing: counts, current photo, failures, throughput",
        description="Read the daemon's ledger (also while it runs): photos per state, the "
        "current photo, the last events, failures with reasons, throughput over the last hour.",
    )
    status.add_argument("--config", type=Path, metavar="FILE", help=config_help)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument(
        "--events", type=int, default=10, metavar="N", help="last events to show (10)"
    )
    status.set_defaults(handler=show_status)


def run_daemon(args: argparse.Namespace) -> int:
    from pixcamd.daemon.config import load_config
    from pixcamd.daemon.service import Daemon

    config = load_config(args.config)
    daemon = Daemon(config)
    stop = threading.Event()

    def on_signal(signum, frame) -> None:
        if stop.is_set():  # a second signal: do not wait for the grace time
            daemon.request_abandon()
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    code = daemon.run(stop)
    if not daemon.clean_exit:
        # A photo did not unwind: its row is queued again and it can no longer publish; do not
        # let interpreter shutdown wait for (or tear down under) that thread.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def config_check(args: argparse.Namespace) -> int:
    from pixcamd.daemon.config import load_config, render_effective
    from pixcamd.daemon.fs import choose_tmp_dir
    from pixcamd.daemon.service import resolve_models
    from pixcamd.devices import resolve_device

    config = load_config(args.config)
    names, note = resolve_models(config)
    derived: dict = {
        "inbox": str(config.inbox),
        "outbox": str(config.outbox),
        "state_dir": str(config.state_dir),
        "log_file": str(config.log_file),
    }
    if config.weights_path is not None:
        derived["weights"] = str(config.weights_path)
    if config.hold_dir is not None:
        derived["hold_dir"] = str(config.hold_dir)
    if config.model == ["auto"]:
        derived["model"] = names
    try:
        derived["device"] = resolve_device(config.device)
    except ValueError as exc:
        raise PixcamdError(f"device: {exc}") from None
    notes = [f"# {note}"]
    if config.outbox.is_dir():
        derived["tmp_dir"] = str(choose_tmp_dir(config, create=False))
    else:
        notes.append(f"# the outbox {config.outbox} does not exist yet; `run` creates it")
    sys.stdout.write(render_effective(config, derived))
    sys.stdout.write("\n".join(notes) + "\n")
    return 0


def show_status(args: argparse.Namespace) -> int:
    from pixcamd.daemon.config import load_config
    from pixcamd.daemon.status import gather, render

    config = load_config(args.config)
    report = gather(config, events=max(0, args.events))
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render(report))
    return 0
