"""``pixcamd protect``: write protected copies of photos and folders, and say honestly how each
one fared. ``-o OUT`` protects one photo; ``--outdir DIR`` runs ``pixcamd.folders`` (resumable,
on this machine or a Ray cluster with ``--ray``)."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pixcamd.commands.stopping import exit_status, sigterm_as_interrupt
from pixcamd.defaults import EPSILON_CAP, STRENGTH
from pixcamd.errors import OutputUnwritable, PixcamdError

if TYPE_CHECKING:
    from pixcamd.commands.progress import RunProgress
    from pixcamd.executors import JobOptions

# torch and the models are imported by the handler, when it runs: not by `pixcamd --help`

JPEG_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif")  # what -o may be named


def run(args) -> int:
    import torch

    from pixcamd.daemon.locks import unlock
    from pixcamd.folder_plan import plan_sources
    from pixcamd.folders import lock_outdir, make_outdir
    from pixcamd.output import check_destination

    if args.ray is not None and not args.ray.strip():  # `--ray "$RAY_HEAD"` with it unset
        raise PixcamdError(
            "--ray needs an address: HOST:PORT of a Ray head, or local for a private one here"
        )
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.output is not None and len(args.files) != 1:
        raise PixcamdError("-o/--output takes one photo; use --outdir DIR for several or folders")
    if args.workers and not args.ray:
        raise PixcamdError("--workers is for --ray: without it the photos are protected here")
    if args.ray and args.output is not None:
        raise PixcamdError(
            "--ray works with --outdir DIR (a folder run); -o protects one photo here"
        )
    if args.keep_gps and args.strip_metadata:  # never one of them silently unused
        raise PixcamdError(
            "--keep-gps and --strip-metadata contradict each other: --strip-metadata removes the "
            "GPS position with all other metadata; give one of them"
        )
    inputs = [Path(p) for p in args.files]
    if args.epsilon_cap is not None and args.epsilon_cap < args.epsilon:  # never a silent cap
        raise PixcamdError(
            f"--epsilon-cap {args.epsilon_cap:g} is below --epsilon {args.epsilon:g}; the cap "
            "must be at least the starting budget"
        )
    if args.enhance_strength is not None and args.mode == "invisible":  # never silently unused
        raise PixcamdError(
            "--enhance-strength sets the colour filter of --mode enhance or auto; the invisible "
            "mode has none (its budget is --epsilon)"
        )
    if args.enhance_strength == 0 and args.mode == "enhance":
        raise PixcamdError(
            "--enhance-strength 0 leaves the colour filter nothing to change: give a strength "
            "above 0, or --mode invisible"
        )
    strength = STRENGTH if args.enhance_strength is None else args.enhance_strength
    if args.output is not None:
        if Path(args.output).resolve() == inputs[0].resolve():
            raise PixcamdError(f"{args.output}: would overwrite an original photo")
        if inputs[0].is_dir():
            raise PixcamdError(f"{inputs[0]}: a folder; use --outdir DIR to protect folders")
        if Path(args.output).is_dir():  # before the suffix: a folder meant, not a misnamed copy
            raise PixcamdError(
                f"{args.output}: is a folder, not a file name; to write the copy into it, "
                f"use --outdir {shlex.quote(str(args.output))}"
            )
        if Path(args.output).suffix.lower() not in JPEG_SUFFIXES:
            # the copy is a JPEG (the encoding the check judged): under another name a viewer
            # or an upload form would take it for what it is not
            raise PixcamdError(
                f"{args.output}: the protected copy is a JPEG; name it .jpg or .jpeg"
            )
        check_destination(args.output)  # said now, not after minutes of work
        _not_a_daemon_s(Path(os.path.realpath(args.output)).parent)
        _not_an_inbox(args.output)
        plan = None
    else:  # every problem with the plan is said before any work is done
        plan = plan_sources(inputs, args.outdir)
        # DIR itself (its record) and every DIR/<the folder given>/… the copies go to: any of
        # those may be a daemon's outbox
        folders = {""} | {s.copy.rpartition("/")[0] for s in plan.sources}
        _not_a_daemon_s(*(Path(os.path.realpath(Path(args.outdir) / f)) for f in sorted(folders)))
        _not_an_inbox(*(Path(args.outdir) / f for f in sorted(folders)))
        make_outdir(args.outdir)  # the run's first write: a folder that cannot be made, now
        run_lock = lock_outdir(args.outdir)  # another run into it: said before the models load
        try:
            return _protect(args, inputs, strength, plan)
        finally:
            unlock(run_lock)
    return _protect(args, inputs, strength, plan)


def _protect(args, inputs: list[Path], strength: float, plan) -> int:
    from pixcamd.commands.progress import RunProgress
    from pixcamd.daemon.settings import settings_fingerprint, settings_key
    from pixcamd.executors import JobOptions
    from pixcamd.folder_plan import plan_notes
    from pixcamd.folders import STATE_DIR, FolderRun, Interrupted
    from pixcamd.models import load_model
    from pixcamd.settings import make_settings

    models = [load_model(name, args.weights, args.device) for name in args.model]
    for model in models:
        print(f"model {model.name} ({model.fingerprint})", file=sys.stderr)
    try:
        settings = make_settings(
            models,
            target=args.target,
            epsilon=args.epsilon,
            # not given: the default, which make_settings raises to --epsilon where that is more
            epsilon_cap=EPSILON_CAP if args.epsilon_cap is None else args.epsilon_cap,
            enhance_strength=strength,
            mode=args.mode,
            views=args.views,
            steps=args.steps,
            seed=args.seed,
            output_quality=args.quality,
            platforms=args.platforms,
            device=args.device,
        )
    except ValueError as exc:
        raise PixcamdError(str(exc)) from None
    options = JobOptions(
        settings,
        strip_gps=not args.keep_gps,  # the same privacy default as the daemon's
        strip_metadata=args.strip_metadata,
        keep_unprotected=args.write_unprotected,
    )
    show = RunProgress(sys.stderr, json_out=sys.stdout if args.json else None)
    if plan is None:
        return _one(inputs[0], args.output, models, options, show)
    for path, why in plan.refused:
        show.refused(str(path), why)
    for line in plan_notes(plan):
        show.say(line)
    executor = _executor(args, models, options, show)
    label = "+".join(m.name for m in models)
    folder_run = FolderRun(
        plan.sources,
        args.outdir,
        executor,
        settings_fingerprint(settings, models, options.strip_gps, options.strip_metadata),
        label,
        write_unprotected=args.write_unprotected,
        settings_key=settings_key(settings, models, options.strip_gps, options.strip_metadata),
        on_photo=show.photo,
        on_start=show.start,
        on_note=show.say,
    )
    folder_run.tally.refused = len(plan.refused)
    show.begin(len(plan.sources), executor.describe, args.outdir / STATE_DIR / "ledger.sqlite")
    terminated = []
    try:
        with sigterm_as_interrupt(terminated):  # `kill`, `timeout`, systemd: as Ctrl-C
            tally = folder_run.run()
    except Interrupted as exc:
        show.end(folder_run.tally)
        print(f"pixcamd: {exc}", file=sys.stderr, flush=True)
        return exit_status(terminated)
    except PixcamdError as exc:  # said before the close: Ray may end a process whose
        show.end(folder_run.tally)  # cluster went away while it disconnects
        if isinstance(exc, OutputUnwritable):
            raise  # said once, by cli.main, which drops what stdout still buffers
        print(f"pixcamd: error: {exc}", file=sys.stderr, flush=True)
        return 2
    finally:
        executor.close()
    show.end(tally)
    failed = tally.failed + tally.refused
    return 1 if failed or tally.unprotected else 0


def _not_a_daemon_s(*folders: Path) -> None:
    from pixcamd.daemon.locks import daemon_outbox

    why = daemon_outbox(*folders)
    if why:  # its names are the daemon's: a copy beside its own would replace or shadow one
        raise PixcamdError(
            f"{why}: drop the photos into its inbox instead (the daemon protects them and "
            "ships the copies), or write these copies elsewhere"
        )


def _not_an_inbox(*places: Path) -> None:
    """Copies written into a daemon's inbox would be protected again by it — a copy of a
    protected copy, its changes on top of these —, whether it runs now or starts later
    (``places``: the copy, or the folders a run writes copies into)."""
    from pixcamd.daemon.init import inboxes_here

    inboxes = inboxes_here()
    for place in places:
        real = Path(os.path.realpath(place))
        for inbox, config in inboxes.items():
            if real.is_relative_to(inbox):
                raise PixcamdError(
                    f"{place}: in the inbox of {config} ({inbox}) — its daemon would protect "
                    "what is written there again, a copy of a copy; write it elsewhere, or "
                    "drop the originals into that inbox for the daemon to protect"
                )


def _executor(args, models, options: JobOptions, show: RunProgress):
    from pixcamd.executors import LocalExecutor

    if getattr(args, "ray", None):
        from pixcamd.executors.ray import RayExecutor

        return RayExecutor(
            args.ray,
            [m.name for m in models],
            args.weights,
            options,
            workers=args.workers,
            threads=args.threads or 1,
        )
    return LocalExecutor(models, options, progress=show.step)


def _one(source: Path, target: Path, models, options: JobOptions, show: RunProgress) -> int:
    """One photo to one named file: no ledger, nothing to resume."""
    from pixcamd.executors import LocalExecutor, Task
    from pixcamd.folders import Tally
    from pixcamd.output import atomic_write

    executor = LocalExecutor(models, options, progress=show.step)
    tally = Tally(total=1)
    show.begin(1, None, None)
    if not source.is_file():
        tally.failed = 1
        why = "not a regular file" if source.exists() else "no such file"
        show.photo({"path": str(source), "error": f"{source}: {why}"}, tally)
        show.end(tally)
        return 1
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise PixcamdError(f"{source}: cannot read the file ({exc})") from None
    executor.submit(Task(0, str(source), data))
    show.start(str(source))
    (done,) = executor.wait()
    if done.error is not None:
        if not isinstance(done.error, PixcamdError):
            raise done.error
        tally.failed = 1
        show.photo({"path": str(source), "error": str(done.error)}, tally)
        show.end(tally)
        return 1
    outcome = done.outcome
    report = {"path": str(source), **outcome.report, "output": None}
    if outcome.data is not None:
        atomic_write(outcome.data, target)
        report["output"] = str(target)
    if outcome.protected:
        tally.protected = 1
    else:
        tally.unprotected = 1
    show.photo(report, tally)
    show.end(tally)
    return 0 if outcome.protected else 1
