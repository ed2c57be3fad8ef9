"""``pixcamd web``, ``pixcamd ship`` and ``pixcamd remove``: the local page on its own, and a
person's decisions from the command line (the same operations as the page's buttons)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from pixcamd.errors import OutputUnwritable, PixcamdError
from pixcamd.streams import discard_stdout


def add_commands(commands, config_help: str) -> None:
    web = commands.add_parser(
        "web",
        help="serve the local web page alone, for a daemon that runs elsewhere on this machine",
        description="Serve the page (dashboard, photos before and after, retry / ship / "
        "remove) against the ledger of the daemon configured by --config; `pixcamd run` serves "
        'it by itself unless web = "". Ctrl-C stops it.',
    )
    web.add_argument("--config", type=Path, metavar="FILE", help=config_help)
    web.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="address instead of the config's web (e.g. 127.0.0.1:8766 while the daemon "
        'serves 8765; where the config has web = "", 127.0.0.1:8765); not loopback only with '
        "web_token set",
    )
    web.set_defaults(handler=serve)

    for name, summary, description in (
        (
            "ship",
            "ship photos held back as unprotected anyway (your decision, recorded)",
            "Publish the kept copy (hold_dir) of each photo held back as unprotected to the "
            "outbox, NOT protected: recorded in the ledger as your decision.",
        ),
        (
            "remove",
            "take protected copies back out of the outbox (the originals stay)",
            "Delete each photo's copy from the outbox and record it; the original in the inbox "
            "is never touched, and the photo is not protected again unless you retry it.",
        ),
    ):
        decision = commands.add_parser(name, help=summary, description=description)
        decision.add_argument("paths", nargs="+", metavar="PATH", help="photos in the inbox")
        decision.add_argument("--config", type=Path, metavar="FILE", help=config_help)
        decision.set_defaults(handler=decide, decision=name)


def serve(args: argparse.Namespace) -> int:
    from pixcamd.commands.daemon import _load
    from pixcamd.daemon.schema import KEYS
    from pixcamd.web.server import WebServer

    config = _load(args)
    address = args.listen
    if address is None and not config.web:
        # web = "" turns the daemon's page off (the system service has no network): this
        # command is how the page is opened then, on the default loopback address
        address = KEYS["web"].default
    server = WebServer(config, address)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        url = server.start()
    except PixcamdError as exc:
        raise _served_by_daemon(config, args.listen, exc) or exc from None
    try:
        _say_where(f"the web page: {url} (Ctrl-C stops it)")
        stop.wait()
    finally:
        server.stop()
    return 0


def _served_by_daemon(config, listen, exc: PixcamdError) -> PixcamdError | None:
    """The config's own address in use while its daemon runs: that daemon's page, most
    likely — said so, with its address, rather than as another program's port."""
    from pixcamd.daemon.locks import held_by

    if listen is not None or not config.web or "port is in use" not in str(exc):
        return None
    pid = held_by(config.state_dir / "daemon.lock")
    if pid is None:
        return None
    return PixcamdError(
        f"web: {config.web} is in use: `pixcamd run`{f' (pid {pid})' if pid else ''} runs "
        f"this config and serves its page there — open http://{config.web}/ (this command "
        "serves the page alone: where no daemon runs, or with --listen another address)"
    )


def _say_where(line: str) -> None:
    """The page's address on stdout; a stdout that cannot take it (closed, ``>&-``; a full
    disk) stops no page, as it did not before such a failure was an error: said on stderr."""
    try:
        print(line, flush=True)
    except OutputUnwritable:
        print(line, file=sys.stderr, flush=True)
        discard_stdout()  # the line still buffered, not tried at exit


def decide(args: argparse.Namespace) -> int:
    from pixcamd.commands.daemon import _load
    from pixcamd.daemon import decisions, retry
    from pixcamd.daemon.events import printable
    from pixcamd.daemon.ledger import Ledger
    from pixcamd.daemon.ledger_file import ledger_there

    config = _load(args)
    ledger_there(config.ledger_path)
    ledger = Ledger(config.ledger_path)
    act = decisions.ship if args.decision == "ship" else decisions.remove
    failed = 0
    try:
        for row in retry.rows_for(config, ledger, args.paths):
            try:
                done = act(config, ledger, row, "pixcamd " + args.decision)
            except decisions.DecisionError as exc:
                print(printable(f"not done: {exc}"), file=sys.stderr)
                failed += 1
                continue
            if args.decision == "ship":
                print(printable(f"shipped {row.path} → {done.output} (NOT protected)"))
            else:
                print(printable(f"removed {row.output} from the outbox ({row.path})"))
    finally:
        ledger.close()
    return 1 if failed else 0
