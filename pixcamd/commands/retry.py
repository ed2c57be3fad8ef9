"""``pixcamd retry``: queue photos in the daemon's ledger again — named ones, failed or held
back ones, or those made with other models or for other platforms than the daemon's now."""

from __future__ import annotations

import argparse
from pathlib import Path

from pixcamd.errors import PixcamdError


def add_commands(commands, config_help: str) -> None:
    retry = commands.add_parser(
        "retry",
        help="protect photos again: failed, held back, or made with another model or for "
        "other platforms",
        description="Queue photos in the daemon's ledger again. A running daemon picks them "
        "up at once, a stopped one at its next start. A shipped photo's outbox copy is replaced "
        "(one atomic rename); the ledger keeps what it was (a retry event).",
    )
    retry.add_argument("paths", nargs="*", metavar="PATH", help="photos in the inbox")
    retry.add_argument("--failed", action="store_true", help="every photo that failed")
    retry.add_argument(
        "--unprotected", action="store_true", help="every photo held back as unprotected"
    )
    retry.add_argument(
        "--model-changed",
        action="store_true",
        help="every shipped photo protected against other models than the daemon uses now "
        "(e.g. BRISQUE before KonCept512's weights were installed)",
    )
    retry.add_argument(
        "--platforms-changed",
        action="store_true",
        help="every shipped photo not judged on every platform the daemon protects for now (a "
        "destination added, or a pipeline of yours given another size or quality)",
    )
    retry.add_argument(
        "--metadata-changed",
        action="store_true",
        help="every shipped or held-back copy made with other metadata settings than the "
        "config's (strip_gps, strip_metadata: e.g. made with its metadata before "
        "strip_metadata = true)",
    )
    retry.add_argument(
        "--stronger",
        action="store_true",
        help="with a larger budget for this attempt: epsilon and epsilon_cap doubled (at "
        "least +2 and +4, at most 64) and twice the steps per round",
    )
    retry.add_argument("--config", type=Path, metavar="FILE", help=config_help)
    retry.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pixcamd.commands.daemon import _load
    from pixcamd.daemon import retry
    from pixcamd.daemon.ledger import Ledger
    from pixcamd.daemon.status import gather

    if not (
        args.paths
        or args.failed
        or args.unprotected
        or args.model_changed
        or args.platforms_changed
        or args.metadata_changed
    ):
        raise PixcamdError(
            "say what to retry: PATH…, --failed, --unprotected, --model-changed, "
            "--platforms-changed and/or --metadata-changed"
        )
    config = _load(args)
    state = gather(config, events=0, photos=0)  # also: no ledger yet is a clear error
    fingerprints = None
    if args.model_changed:
        from pixcamd.daemon.settings import resolve_models
        from pixcamd.models import load_model

        def configured() -> set[str]:
            return {load_model(n, config.weights_path).fingerprint for n in names}

        names, note = resolve_models(config)
        running = set(_recorded(state, "model_fingerprints", "its models") or ())
        if running:
            # the models the running daemon protects with now, not the file's: an edit not yet
            # reloaded (or a reload refused) would redo every photo with the same model
            fingerprints = running
            print(f"models the daemon uses now: {', '.join(sorted(running))}")
            try:
                named = configured()
            except PixcamdError as exc:  # the file's own models are only a note here
                named = None
                print(f"note: the config's models do not load ({exc})")
            if named is not None and named != running:
                print(f"note: the config names {', '.join(sorted(named))}; {reload_first(config)}")
        else:
            fingerprints = configured()
            print(f"models now: {', '.join(sorted(fingerprints))} ({note})")
    specs = _platforms_now(config, state) if args.platforms_changed else None
    known = state["metadata_fingerprints"]
    if args.metadata_changed:  # the config's: a shell's ship and the daemon's next start read it
        # a copy made before its report recorded its metadata is told by these (a running
        # daemon of an earlier pixcamd's recorded none: every such copy would be redone)
        running = _recorded(state, "metadata_fingerprints", "its settings' fingerprints")
        known = running or _ConfigFingerprints(config, known)
        print(f"metadata now: copies {retry.describe_metadata(retry.config_metadata(config))}")
    budget = retry.stronger(config) if args.stronger else None
    ledger = Ledger(config.ledger_path)
    try:
        plan = retry.plan(
            config,
            ledger,
            args.paths,
            args.failed,
            args.unprotected,
            args.model_changed,
            fingerprints,
            platforms_changed=args.platforms_changed,
            specs=specs,
            metadata_changed=args.metadata_changed,
            known=known,
            stronger=args.stronger,
        )
        retry.apply(ledger, plan.queue, budget=budget)
    finally:
        ledger.close()
    from pixcamd.daemon.events import printable

    for row, why in plan.queue:
        print(printable(f"queued  {row.path} ({why})"))
    for path, why in plan.skipped:
        print(printable(f"skipped {path}: {why}"))
    when = (
        f"the daemon (pid {state['pid']}) takes them now"
        if state["daemon"] == "running"
        else "the daemon takes them at its next start"
    )
    if budget:
        print(f"stronger: {retry.describe_budget(budget)}")
    done = f"{len(plan.queue)} photo(s) queued again, {len(plan.skipped)} skipped"
    print(f"{done}; {when}" if plan.queue else f"{done}: nothing to do")
    # A photo you named that cannot be queued is a refusal (as for ship and remove) — not one
    # queued already, protected as asked (``retry.plan``); what the flags find and skip is not:
    # nothing to do is not an error.
    return 1 if plan.refused else 0


class _ConfigFingerprints:
    """``known`` for ``retry.copy_metadata`` where no daemon runs: the record's and the
    config's (``_config_fingerprints``) — the config's computed only when a copy's report does
    not say what it was made with (every copy made since it is recorded does): computing them
    loads the configured models (KonCept512: its 229 MB of weights, hashed into its
    fingerprint, so no cheaper look gives the same fingerprint)."""

    def __init__(self, config, recorded: dict[str, str]):
        self.config, self.recorded, self.config_s = config, recorded, None

    def get(self, fingerprint: str, default=None):
        if fingerprint in self.recorded:  # a fingerprint tells its metadata choice, whoever's
            return self.recorded[fingerprint]
        if self.config_s is None:
            self.config_s = _config_fingerprints(self.config)
        return self.config_s.get(fingerprint, default)


def _config_fingerprints(config) -> dict[str, str]:
    """``metadata_fingerprints`` for the config's settings, as its daemon's next start records
    them, where no daemon runs: a record left by a pixcamd from before them has none (the
    library made before the upgrade would all be "not recorded", redone), and one of a stop
    since the config was edited has the earlier settings' only. Its models not loading (the
    weights gone): the record's alone, said."""
    from pixcamd.daemon.retry import metadata_fingerprints
    from pixcamd.daemon.settings import build_settings, resolve_models
    from pixcamd.models import load_model

    names, _ = resolve_models(config)
    try:
        models = [load_model(name, config.weights_path) for name in names]
        return metadata_fingerprints(build_settings(config, models, "cpu"), models)
    except (PixcamdError, OSError, ValueError) as exc:
        print(f"note: the config's models do not load ({exc}); its daemon's record alone tells")
        return {}


def _platforms_now(config, state: dict) -> dict[str, str]:
    """spec → name of the platforms the running daemon protects for (as it recorded them: an
    edit not yet reloaded is only a note), else the config's."""
    from pixcamd.daemon.retry import named_spec

    named = {p.spec(): p.name for p in config.platform_pipelines}
    running = _recorded(state, "platform_specs", "its platforms")
    if not running:
        print(f"platforms now: {', '.join(named.values())} (the config's)")
        return named
    print(f"platforms the daemon protects for now: {', '.join(running.values())}")
    other = [named_spec(spec, name) for spec, name in named.items() if spec not in running]
    if other:
        print(f"note: the config names {', '.join(other)} too; {reload_first(config)}")
    return running


def reload_first(config) -> str:
    """What to do before retrying: reload the daemon of this config — its own unit's name
    (pixcamd-camera for camera.toml): pixcamd would reload another inbox's daemon."""
    from pixcamd.daemon.user_units import reload_command

    command = reload_command(config.source)
    return f"reload the daemon ({command}, or SIGHUP) to use them, then run this again"


def _recorded(state: dict, key: str, what: str):
    """What a running daemon recorded under ``key``; None when none runs (the config's then
    count). A running daemon that recorded nothing is an earlier pixcamd's: refused."""
    if state["daemon"] not in ("running", "unresponsive"):
        return None
    if not state[key]:
        raise PixcamdError(
            f"the running daemon (pid {state['pid']}) has not recorded {what} (a pixcamd from "
            "before this retry could ask): restart it, then run this again; nothing was queued"
        )
    return state[key]
