"""``pixcamd model fetch|info``: install KonCept512's weights and show what will judge."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

from pixcamd.commands.stopping import exit_status, sigterm_as_interrupt
from pixcamd.defaults import expand_home
from pixcamd.errors import WeightsError

# torch and the models are imported by each handler, when it runs: not by `pixcamd --help`


def fetch(args) -> int:
    from pixcamd.daemon.user_units import installed_units
    from pixcamd.fetch import fetch_weights, install_weights
    from pixcamd.models.weights import default_weights_path

    # absolute: the note below names it for a config, which reads paths from its own folder
    if args.to:
        dest = Path(os.path.abspath(expand_home(args.to, "--to")))
    else:
        dest = default_weights_path()
    terminated = []
    try:
        with sigterm_as_interrupt(terminated):  # as Ctrl-C: the part file removed at once
            if args.source:
                print(f"installing {args.source} → {dest}", file=sys.stderr)
                installed = install_weights(args.source, dest)
            else:
                print(f"downloading {args.url} → {dest}", file=sys.stderr)
                installed = fetch_weights(args.url, dest)
    except KeyboardInterrupt:
        print("pixcamd: stopped; nothing was installed", file=sys.stderr)
        return exit_status(terminated)
    print(f"installed {installed.path}")
    print(f"  size        {installed.size:,} bytes")
    print(f"  sha256      {installed.sha256}")
    print(f"  fingerprint {installed.fingerprint}")
    if dest != default_weights_path():  # `auto` looks in the cache folder only
        print(
            f'note: without weights = "{dest}" in the daemon\'s config (or --weights {dest} '
            f"for score and protect), model auto looks at {default_weights_path()} instead"
        )
    # every daemon that reads these weights: one per inbox, each with a unit of its own
    units = " ".join(installed_units()) or "pixcamd"
    print(
        f"next: a running daemon uses them after a reload (systemctl --user reload {units}, or "
        "SIGHUP) or a restart; `pixcamd retry --model-changed` then protects the copies made "
        "with the model before them again"
    )
    return 0


def info(args) -> int:
    from pixcamd.daemon.fs import sha256_file
    from pixcamd.models import load_model, resolve_name
    from pixcamd.models.weights import default_weights_path, present

    if args.weights:
        weights = Path(expand_home(args.weights, "--weights"))
    else:
        weights = default_weights_path()
    report: dict = {"weights_path": str(weights), "weights_installed": present(weights)}
    if report["weights_installed"]:
        report.update(weights_size=None, weights_sha256=None)
        with contextlib.suppress(OSError):  # unreadable to this user: the load below says so
            report["weights_size"] = weights.stat().st_size
            report["weights_sha256"] = sha256_file(weights)
    report["auto_selects"] = resolve_name("auto", weights if args.weights else None)
    report["models"] = {}
    for name in ("koncept512", "brisque"):
        try:
            model = load_model(name, weights if name == "koncept512" else None)
            report["models"][name] = model.describe()
        except WeightsError as exc:
            report["models"][name] = {"model": name, "error": str(exc)}
    # `auto` picks KonCept512 whenever weights are named or installed; if they do not load, every
    # command left on `auto` fails, so say it here and fail too rather than print a working pick.
    broken = report["models"][report["auto_selects"]].get("error")
    report["auto_works"] = broken is None
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0 if broken is None else 1
    if args.weights:  # a file named here is inspected, not installed anywhere
        state = "present" if report["weights_installed"] else "not found"
    else:
        state = "installed" if report["weights_installed"] else "not installed"
    print(f"KonCept512 weights: {weights} ({state})")
    if report["weights_installed"]:
        if report["weights_sha256"] is None:
            print("  size and sha256 unknown: this user cannot read the file")
        else:
            print(f"  size {report['weights_size']:,} bytes, sha256 {report['weights_sha256']}")
    if broken is None:
        print(f"model auto selects: {report['auto_selects']}")
    else:
        print(f"model auto selects: {report['auto_selects']}, which fails with these weights")
    for name, facts in report["models"].items():
        if "error" in facts:
            print(f"  {name:<11} unavailable: {facts['error']}")
        else:
            side = "higher" if facts["direction"] == "higher_is_better" else "lower"
            print(
                f"  {name:<11} {facts['fingerprint']}  ({side} is better, "
                f"threshold {facts['threshold']:g}, view {facts['view_size'][1]}×"
                f"{facts['view_size'][0]})"
            )
    return 0 if broken is None else 1
