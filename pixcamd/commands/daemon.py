"""``pixcamd run``, ``pixcamd config check`` and ``pixcamd status``: the daemon's commands."""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import os
import select
import shlex
import signal
import stat
import sys
import threading
from pathlib import Path

from pixcamd.errors import PixcamdError

CONFIG_HELP = (
    "daemon config file (default: $PIXCAMD_CONFIG, else ~/.config/pixcamd/config.toml, "
    "else /etc/pixcamd/config.toml)"
)


def add_commands(commands) -> None:
    """Add the ``init``, ``run``, ``config`` and ``status`` subparsers."""
    config_help = CONFIG_HELP
    init = commands.add_parser(
        "init",
        help="set up: write your config and create the inbox and outbox",
        description="Write your config (~/.config/pixcamd/config.toml, or $PIXCAMD_CONFIG, or "
        "--config FILE), every key documented with its default, and create the inbox and "
        "outbox, so that run, status and config check need no flag. An existing config is "
        "never replaced without --force.",
    )
    init.add_argument(
        "--inbox",
        metavar="DIR",
        default="~/Pictures/pixcamd-inbox",
        help="folder to watch: your synced camera folder (~/Pictures/pixcamd-inbox)",
    )
    init.add_argument(
        "--outbox",
        metavar="DIR",
        default="~/Pictures/pixcamd-outbox",
        help="folder for the protected copies (~/Pictures/pixcamd-outbox)",
    )
    exists = init.add_mutually_exclusive_group()
    exists.add_argument("--force", action="store_true", help="replace an existing config")
    exists.add_argument(
        "--if-missing",
        action="store_true",
        help="leave an existing config as it is and succeed (for scripts run more than once)",
    )
    init.add_argument("--config", type=Path, metavar="FILE", help="write the config here")
    init.add_argument(
        "--systemd-user",
        action="store_true",
        help="also install the user service that starts this pixcamd at login: "
        "~/.config/systemd/user/pixcamd.service for your user config, pixcamd-NAME.service "
        "for a config elsewhere (NAME after its file); then systemctl --user enable --now UNIT",
    )
    init.set_defaults(handler=init_setup)
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
        "configuration as the daemon will use it: the folders as absolute paths, the models "
        'model = "auto" resolves to and the device (the other keys as written).',
    )
    check.add_argument("--config", type=Path, metavar="FILE", help=config_help)
    check.set_defaults(handler=config_check)

    status = commands.add_parser(
        "status",
        help="what the daemon is doing: counts, current photo, failures, throughput",
        description="Read the daemon's ledger (also while it runs): photos per state, the "
        "current photo, the last photos (verdict, worst pipeline and view, PSNR, seconds, where "
        "the copy is), failures with reasons, throughput over the last hour, the last events. "
        "--follow streams the events as they happen.",
    )
    status.add_argument("--config", type=Path, metavar="FILE", help=config_help)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument(
        "--events", type=int, default=10, metavar="N", help="last events to show (10)"
    )
    status.add_argument(
        "--photos", type=int, default=10, metavar="N", help="last finished photos to show (10)"
    )
    status.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="stream events as they happen (the last --events first) until Ctrl-C; "
        "human lines, or JSON lines with --json (ts: ISO-8601 in UTC as in the log file; "
        "unix_time: seconds since the epoch)",
    )
    status.set_defaults(handler=show_status)


def init_setup(args: argparse.Namespace) -> int:
    from pixcamd.daemon.init import init_config, target_path
    from pixcamd.daemon.user_units import install_user_unit, unit_in_the_way, user_unit

    path, how = target_path(args.config)
    # one unit per config (pixcamd.service the user config's, pixcamd-NAME another's): refused
    # before the config is written, not after
    unit = user_unit(path, how) if args.systemd_user else None
    if unit is not None:
        unit_in_the_way(unit, args.force, keep=args.if_missing)
    if args.if_missing and os.path.exists(path) and not path.is_file():
        raise PixcamdError(f"{path}: exists and is not a file")
    if args.if_missing and path.exists():
        # the command that shows this file: a --config one only with the flag
        flag = f" --config {shlex.quote(str(path))}" if how == "--config" else ""
        which = how if how.startswith(("your", "the")) else f"the config {how} names"
        print(f"kept {which}: {path} (already there; `pixcamd config check{flag}` shows it)")
    else:
        _report_init(init_config(args.config, args.inbox, args.outbox, args.force))
    if unit is not None:
        if args.if_missing and unit.path.exists():
            print(f"kept the user service: {unit.path}")
            with contextlib.suppress(OSError):  # unreadable: kept all the same, said above
                if unit.path.read_text() != unit.text():  # an earlier pixcamd's, or edited
                    # stopped first: removed, an earlier pixcamd's pixcamd.service for a
                    # config elsewhere comes back as pixcamd-NAME, refused while it still runs
                    print(
                        "  it is not the unit this pixcamd writes (an earlier version's, or "
                        f"edited): to replace it, `systemctl --user disable --now {unit.name}`, "
                        "remove it and run this command again",
                        file=sys.stderr,
                    )
        else:
            replaced = install_user_unit(unit, args.force)
            print(f"{'replaced' if replaced else 'wrote'} the user service: {unit.path}")
        print(
            "start it now and at every login:\n"
            f"  systemctl --user daemon-reload && systemctl --user enable --now {unit.name}\n"
            f"  systemctl --user status {unit.name}   # running? its current photo\n"
            f"  journalctl --user -u {unit.name} -f   # what it does"
        )
    return 0


def _report_init(done) -> None:
    config = done.config
    verb = "replaced" if done.replaced else "wrote"
    which = done.how if done.how.startswith(("your", "the")) else f"the config {done.how} names"
    lines = [f"{verb} {which}: {done.path}"]
    if done.created:
        lines.append("created: " + ", ".join(str(p) for p in done.created))
    flag = f" --config {shlex.quote(str(done.path))}" if done.named else ""
    lines.append(f"inbox:  {config.inbox}  (photos synced or dropped here get protected)")
    # a folder that was there, and no record yet: a sync folder's whole history or a library
    # is taken at the first start, said before it starts rather than found out from the queue
    if config.inbox not in done.created and not _has_record(done.record):
        from pixcamd.folder_plan import count_photos

        found, whole = count_photos(config.inbox, config.extensions, config.ignore)
        if found == 1 and whole:
            lines.append("        1 photo there already: the first start protects it")
        elif found:
            count = f"{found:,} photos" + ("" if whole else " or more")
            lines.append(
                f"        {count} there already: the first start protects every one, today's "
                "first (`pixcamd status` says how long its queue takes)"
            )
    lines.append(f"outbox: {config.outbox}  (protected copies appear here, ready to share)")
    from pixcamd.daemon.schema import KEYS

    if config.web and config.web != KEYS["web"].default:  # init chose it: said, not found out
        lines.append(f"page:   http://{config.web}/  (another config here has the default port)")
    from pixcamd.daemon.settings import resolve_models

    names, note = resolve_models(config)
    if config.model == ["auto"] and names == ["brisque"]:  # said now, not first in the log
        where = " (the service's: systemd/README.md, step 4)" if done.system else ""
        lines.append(
            "model:  BRISQUE (embedded) until KonCept512's weights are installed — the filter "
            f"to fool is usually KonCept512: `pixcamd model fetch`{where}, about 229 MB"
        )
    else:
        lines.append(f"model:  {note}")
    if done.system:  # a server's: its service runs it (systemd/README.md), as its user
        lines += [
            "next (a server's system service: systemd/README.md):",
            f"  sudo -u pixcamd pixcamd config check{flag}   # as the service's user",
            "  sudo systemctl enable --now pixcamd   # the system unit, once installed",
        ]
    else:
        lines += [
            "next:",
            f"  pixcamd run{flag}            # start protecting (Ctrl-C stops it)",
            f"  pixcamd status{flag}         # what it is doing, from another terminal",
            f"  pixcamd config check{flag}   # every setting in force",
        ]
    print("\n".join(lines))


def _has_record(ledger: Path) -> bool:
    """Whether ``ledger`` is there; one that cannot be looked at (a state dir another user
    made) is taken as there: nothing said of what it may hold, and init never fails on it."""
    try:
        return ledger.exists()
    except OSError:
        return True


def _load(args: argparse.Namespace):
    """The config every daemon command reads; says on stderr which file and why."""
    from pixcamd.daemon.config import load_config, locate_config

    config = load_config(args.config)  # its errors name every place it looked
    path, how = locate_config(args.config)
    print(f"config: {path} ({how})", file=sys.stderr)
    return config


def background_priority() -> str:
    """Lower this process to what a background job should be; what it became, in words.
    Unprivileged processes may always lower their own priority."""
    done = []
    try:
        os.setpriority(os.PRIO_PROCESS, 0, 19)
        done.append("nice 19")
    except (OSError, AttributeError):
        pass
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        done.append("idle CPU class")
    except (OSError, AttributeError):  # not Linux
        pass
    return ", ".join(done) or "unchanged (not supported here)"


def run_daemon(args: argparse.Namespace) -> int:
    from pixcamd import early_signals
    from pixcamd.daemon.config import ConfigError
    from pixcamd.daemon.service import Daemon, record_refused_config

    # a SIGHUP from here on is a reload asked for: kept until the daemon can take it (the
    # config read next may already be older than the edit that sent it)
    asked = threading.Event()
    signal.signal(signal.SIGHUP, lambda signum, frame: asked.set())
    if early_signals.stopped_before_start():  # SIGTERM or SIGINT since the process started
        return 0
    try:
        config = _load(args)
    except ConfigError as exc:  # where `status` reads, as any refused start, on one line
        record_refused_config(args.config, " ".join([exc.head, "; ".join(exc.problems)]).strip())
        raise
    priority = None
    if config.priority == "background":  # said once the daemon has started, not before a refusal
        priority = f"background ({background_priority()})"
    daemon = Daemon(config, priority=priority)
    stop = threading.Event()

    def on_signal(signum, frame) -> None:
        if stop.is_set():  # a second signal: do not wait for the grace time
            daemon.request_abandon()
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, lambda signum, frame: daemon.request_reload())
    if asked.is_set():
        daemon.request_reload()
    # a stop asked while the config was read (pixcamd.launch's handlers kept it), or since
    # these handlers took over: the daemon never starts
    if early_signals.stopped_before_start(stop):
        return 0
    code = daemon.run(stop)
    if not daemon.clean_exit:
        # A photo did not unwind: its row is queued again and it can no longer publish; do not
        # let interpreter shutdown wait for (or tear down under) that thread.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def config_check(args: argparse.Namespace) -> int:
    from pixcamd.daemon.config_toml import render_effective
    from pixcamd.daemon.fs import access_problems, choose_tmp_dir, creatable_note
    from pixcamd.daemon.schema import DEFAULT_IGNORE
    from pixcamd.daemon.settings import build_settings, resolve_models, weights_file
    from pixcamd.devices import resolve_device
    from pixcamd.models import model_class
    from pixcamd.models.weights import fetch_command, present

    config = _load(args)
    problems = access_problems(config)  # as `run` refuses them: run it as the daemon's user
    if problems:
        raise PixcamdError("\n".join(problems))
    names, note = resolve_models(config)
    if "koncept512" in names:  # what `run` would refuse first; loading them is its job
        weights = weights_file(config)
        key = "weights" if config.weights_path else "model"
        if not present(weights):
            service = (
                ""
                if config.weights_path or os.environ.get("CACHE_DIRECTORY")
                else " (a service finds them in its CacheDirectory=: check with "
                "CACHE_DIRECTORY set to it)"
            )
            raise PixcamdError(
                f"{key}: KonCept512 weights not found at {weights}; "
                f"`{fetch_command(config.weights_path)}` installs them{service}"
            )
        try:  # as `run` reads them (a file another user installed under umask 077)
            with open(weights, "rb") as handle:
                handle.read(1)
        except OSError as exc:
            raise PixcamdError(
                f"{key}: cannot read KonCept512's weights at {weights} ({exc.strerror or exc}); "
                "the user running pixcamd must be able to read them and open every folder on "
                "their path"
            ) from None
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
    # the targets against these models' thresholds, as `run` judges them
    settings = build_settings(config, [model_class(n) for n in names], derived["device"])
    derived["platforms"] = [p.name for p in settings.platforms]  # repeats dropped, names folded
    notes = [f"# {note}"]
    if config.executor == "ray":  # does the cluster answer? (it can go away later: run says so)
        notes.append(f"# {_probe_cluster(config.ray_address)}")
    if config.outbox.is_dir():
        derived["tmp_dir"] = str(choose_tmp_dir(config, create=False))
    else:
        notes.append(creatable_note("outbox", config.outbox, config.state_dir))
    for key, folder in (("state_dir", config.state_dir), ("hold_dir", config.hold_dir)):
        if folder is not None and not folder.is_dir():  # `run` makes it, or refuses the start
            notes.append(creatable_note(key, folder, config.state_dir))
    # a list of one's own replaces the default one: say what is no longer passed over — not a
    # default pattern whose names one of the list matches (".*" hides .stversions and the rest)
    dropped = [
        p for p in DEFAULT_IGNORE if not any(fnmatch.fnmatchcase(p, q) for q in config.ignore)
    ]
    if dropped:
        versions = " — .stversions holds every photo's old versions" * (".stversions" in dropped)
        notes.append(
            f"# ignore: your list replaces the default one, so these are not ignored now: "
            f"{', '.join(dropped)} (add back those you want: a name one of them matches, such as "
            f"a sync tool's part-written file, is no longer passed over{versions})"
        )
    sys.stdout.write(render_effective(config, derived))
    sys.stdout.write("\n".join(notes) + "\n")
    return 0


def _probe_cluster(address: str) -> str:
    from pixcamd.executors.ray_link import reachable

    if address == "local":
        return 'ray_address "local": the daemon starts a private Ray on this machine'
    why = reachable(address)
    if why is not None:
        raise PixcamdError(f"ray_address: the Ray cluster at {address} is unreachable: {why}")
    return f"the Ray cluster at {address} answers"


def _stop_when_reader_gone(stop: threading.Event) -> threading.Event:
    """``status --follow | head -1``: a reader that has what it wanted closes the pipe, and with
    the daemon idle no event is written to find that out — the follow waited for ever. A pipe's
    write end reports POLLERR once its reader is gone (what ``tail -f`` watches): then ``stop``
    is set, and the event returned."""
    gone = threading.Event()
    try:
        fd = sys.stdout.fileno()
        if not stat.S_ISFIFO(os.fstat(fd).st_mode) or not hasattr(select, "poll"):
            return gone
    except (OSError, AttributeError, ValueError):  # no descriptor behind stdout (a test's)
        return gone

    def watch() -> None:
        poller = select.poll()
        poller.register(fd, 0)  # POLLERR and POLLHUP are reported whatever is asked
        while not stop.is_set():  # a follow ended otherwise (Ctrl-C) ends the watch too
            if poller.poll(250):
                gone.set()
                stop.set()

    threading.Thread(target=watch, name="pixcamd-reader", daemon=True).start()
    return gone


def show_status(args: argparse.Namespace) -> int:
    from pixcamd.daemon.config import ConfigError, locate_config, record_of
    from pixcamd.daemon.status import follow, gather
    from pixcamd.daemon.status_text import render

    def unreadable(exc: PixcamdError, ledger: str | None = None) -> PixcamdError:
        if args.json:  # a script reading stdout gets JSON it can parse, the error named in it
            json.dump({"error": str(exc), "ledger": ledger}, sys.stdout)
            sys.stdout.write("\n")
        return exc

    try:
        config = _load(args)
    except ConfigError as exc:  # a running daemon's record is shown all the same
        try:
            config = record_of(args.config)
        except ConfigError:
            raise unreadable(exc) from None
        if not os.path.lexists(config.ledger_path):  # the problem may be where the record is
            raise unreadable(exc, str(config.ledger_path)) from None
        path, how = locate_config(args.config)  # which file, as every other status says
        print(f"config: {path} ({how}; it does not validate)", file=sys.stderr)
        print(
            f"pixcamd: warning: {exc}\n(the daemon refuses this config at its next start or "
            f"reload; showing the record at {config.ledger_path})",
            file=sys.stderr,
        )
    if args.follow:
        # Ctrl-C (or SIGTERM) is how one stops following. It sets the stop event rather than
        # raising KeyboardInterrupt wherever the main thread happens to be: raised inside the
        # event's wait, it could leave a lock held and the process hung at exit (seen under load).
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        gone = _stop_when_reader_gone(stop)
        follow(config, sys.stdout, stop, args.json, backlog=max(0, args.events))
        if gone.is_set():
            raise BrokenPipeError  # as a write would have found: the reader has enough
        return 0
    try:
        report = gather(config, events=max(0, args.events), photos=max(0, args.photos))
    except PixcamdError as exc:
        raise unreadable(exc, str(config.ledger_path)) from None
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render(report))
    return 0
