"""``pixcamd protect``: write protected copies of photos, and say honestly how each one fared."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from pixcamd.check import verify_file
from pixcamd.errors import PixcamdError
from pixcamd.models import load_model
from pixcamd.output import write_jpeg
from pixcamd.photo import open_photo
from pixcamd.protect import Result, Settings, make_settings, protect
from pixcamd.report import scores_text


def plan_outputs(inputs: list[Path], output: Path | None, outdir: Path | None) -> list[Path]:
    """Where each protected copy goes; refuses collisions and overwriting an original."""
    if output is not None:
        if len(inputs) != 1:
            raise PixcamdError("-o/--output takes one photo; use --outdir DIR for several")
        targets = [output]
    else:
        assert outdir is not None
        targets = [outdir / f"{p.stem}.jpg" for p in inputs]
    seen: dict[Path, Path] = {}
    originals = {p.resolve() for p in inputs}
    for source, target in zip(inputs, targets, strict=True):
        if target.resolve() in originals:
            raise PixcamdError(
                f"{target}: would overwrite an original photo; choose another output"
            )
        if target.resolve() in seen:
            raise PixcamdError(
                f"{seen[target.resolve()]} and {source} would both be written to {target}"
            )
        seen[target.resolve()] = source
    return targets


def run(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.model
    models = [load_model(name, args.weights, args.device) for name in names]
    for model in models:
        print(f"model {model.name} ({model.fingerprint})", file=sys.stderr)
    try:
        settings = make_settings(
            models,
            target=args.target,
            epsilon=args.epsilon,
            epsilon_cap=args.epsilon_cap,
            enhance_strength=args.enhance_strength,
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
    inputs = [Path(p) for p in args.files]
    outputs = plan_outputs(inputs, args.output, args.outdir)
    reports, failures, unprotected = [], 0, 0
    for source, target in zip(inputs, outputs, strict=True):
        try:
            report = protect_one(source, target, models, settings, args)
        except PixcamdError as exc:
            failures += 1
            print(f"{source}: error: {exc}", file=sys.stderr)
            reports.append({"path": str(source), "error": str(exc)})
            continue
        unprotected += not report["protected"]
        reports.append(report)
    if args.json:
        json.dump(reports, sys.stdout, indent=2)
        sys.stdout.write("\n")
    if failures or unprotected:
        print(
            f"{len(inputs) - failures - unprotected} of {len(inputs)} photos protected; "
            f"{unprotected} left unprotected, {failures} could not be read",
            file=sys.stderr,
        )
        return 1
    return 0


def protect_one(source: Path, target: Path, models, settings: Settings, args) -> dict:
    photo = open_photo(source)
    for note in photo.warnings:
        print(f"{source}: {note}", file=sys.stderr)
    bar = ProgressLine(source.name, sys.stderr)
    result = protect(photo.image, models, settings, progress=bar.update)
    bar.close()
    report = {"path": str(source), **result.summary(), "output": None}
    if result.protected or args.write_unprotected:
        notes = write_jpeg(
            result.image,
            target,
            photo.metadata,
            quality=settings.output_quality,
            subsampling=settings.output_subsampling,
            strip_gps=not args.keep_gps,  # the same privacy default as the daemon's
        )
        for note in notes:  # what was changed or removed, e.g. the GPS position
            print(f"{source}: {note}", file=sys.stderr)
        # The proof is on the file we wrote: read it back and judge it as the platform would.
        confirmed = verify_file(target, models, settings.views, settings.platforms)
        report.update(output=str(target), metadata_notes=notes, file_check=confirmed.scores)
        # What counts is the file: its check decides the verdict, per pipeline and worst.
        report.update(worst=confirmed.worst(), protected_on=confirmed.protected_on)
        if not confirmed.all_low and result.protected:
            report.update(protected=False, verdict="unprotected")
    print(summary_line(source, report, result), file=sys.stderr if args.json else sys.stdout)
    return report


def summary_line(source: Path, report: dict, result: Result) -> str:
    scores = scores_text(report.get("file_check") or result.after_jpeg, report["worst"])
    where = f"→ {report['output']}" if report["output"] else "(not written)"
    edit = f"; filter: {result.enhancement['description']}" if result.enhancement else ""
    return (
        f"{source} {where}: {report['verdict'].upper()} — {scores}{edit}; "
        f"PSNR {result.psnr:.1f} dB, SSIM {result.ssim:.4f}, L∞ {result.linf}/255, "
        f"{result.steps} steps, {result.seconds:.1f} s"
    )


class ProgressLine:
    """``name: step N, worst view 63.2`` redrawn in place on a terminal; silent otherwise."""

    def __init__(self, name: str, stream):
        self.name, self.stream = name, stream
        self.tty = getattr(stream, "isatty", lambda: False)()
        self.drawn = False

    def update(self, step: int, worst: float) -> None:
        if self.tty:
            self.stream.write(f"\r{self.name}: step {step}, worst view {worst:6.1f}   ")
            self.stream.flush()
            self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
