"""Command line: parses arguments and hands them to ``pixcamd.commands``; nothing else."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

from pixcamd import __version__
from pixcamd.allocator import one_arena
from pixcamd.commands import arguments
from pixcamd.commands import daemon as daemon_command
from pixcamd.commands import model as model_command
from pixcamd.commands import protect as protect_command
from pixcamd.commands import retry as retry_command
from pixcamd.commands import score as score_command
from pixcamd.commands import web as web_command
from pixcamd.commands.progress import display
from pixcamd.defaults import (
    CHOICES,
    DEFAULT_MODE,
    DEFAULT_VIEWS,
    EPSILON,
    EPSILON_CAP,
    MODES,
    OUTPUT_QUALITY,
    STEPS,
    STRENGTH,
    VIEW_NAMES,
    WEIGHTS_URL,
)
from pixcamd.errors import OutputUnwritable, PixcamdError
from pixcamd.streams import discard_stdout


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pixcamd",
        description="Camouflage photos against automatic image-quality filters (BIQA).",
    )
    parser.add_argument("--version", action="version", version=f"pixcamd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    score = commands.add_parser(
        "score",
        help="judge photos as the quality filter would",
        description="Score each photo per view as each platform pipeline serves it: its resize, "
        "then its JPEG (the task pipeline: JPEG-90 of the full photo, as the MediaEval 2020 "
        "Pixel Privacy task did).",
    )
    score.add_argument(
        "files",
        nargs="+",
        metavar="IN",
        help="photos, or folders (walked recursively, as protect walks them)",
    )
    score.add_argument(
        "--model",
        type=str.lower,  # KonCept512 as koncept512, like --platforms and --views
        choices=CHOICES,
        default="auto",
        help="quality model; auto = KonCept512 if its weights are installed, else BRISQUE",
    )
    score.add_argument("--weights", metavar="PATH", help="KonCept512.pth to use")
    score.add_argument(
        "--views",
        type=arguments.views,
        default=DEFAULT_VIEWS,
        metavar="LIST",
        help=f"comma-separated, from {', '.join(VIEW_NAMES)} (default: {','.join(DEFAULT_VIEWS)})",
    )
    serve = score.add_mutually_exclusive_group()
    arguments.add_platforms(serve, "as-is judges the file exactly as it is (one downloaded back)")
    serve.add_argument(
        "--jpeg",
        dest="platforms",
        type=arguments.jpeg_pipeline,
        metavar="Q|none",
        help="shorthand for one pipeline: a full-size JPEG at quality Q, or none (= as-is)",
    )
    arguments.add_config(score)
    score.add_argument(
        "--device", type=arguments.device, default="cpu", help="cpu (default), cuda, auto"
    )
    score.add_argument("--json", action="store_true", help="machine-readable output")
    score.set_defaults(handler=score_command.run)

    protect = commands.add_parser(
        "protect",
        help="write protected copies that the quality filter scores low",
        description="Protect each photo at full resolution and check the written file the way "
        "each platform serves it and the filter sees it (every pipeline's resize and re-encode, "
        "every view, every model). Exit status 1 when any photo is left unprotected or cannot "
        "be read.",
    )
    protect.add_argument(
        "files",
        nargs="+",
        metavar="IN",
        help="photos, or folders (with --outdir: walked recursively, the tree mirrored)",
    )
    where = protect.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "-o",
        "--output",
        type=arguments.copy_name,
        metavar="OUT",
        help="the protected copy of one photo (a JPEG: name it .jpg or .jpeg)",
    )
    where.add_argument(
        "--outdir",
        type=Path,
        metavar="DIR",
        help="folder for the copies; a re-run skips what is done (record: DIR/.pixcamd/)",
    )
    protect.add_argument(
        "--model",
        type=arguments.models,
        default=["auto"],
        metavar="LIST",
        help="quality model(s) to fool, e.g. koncept512,brisque (default auto: KonCept512 if "
        "installed, else BRISQUE); protected only when every model agrees",
    )
    protect.add_argument("--weights", metavar="PATH", help="KonCept512.pth to use")
    protect.add_argument(
        "--mode",
        choices=MODES,
        default=DEFAULT_MODE,
        help="invisible (default): a perturbation too small to see; enhance: a colour filter "
        "(tone curves, contrast, saturation) a person reads as an edit; auto: the filter, plus "
        "the invisible perturbation only where the filter falls short",
    )
    protect.add_argument(
        "--enhance-strength",
        type=arguments.grey_levels,
        default=None,
        metavar="LEVELS",
        help=f"enhance/auto: largest change of the tone curves in 8-bit grey levels, 0–64 "
        f"(default {STRENGTH:g}); contrast and saturation ranges scale with it",
    )
    protect.add_argument(
        "--views",
        type=arguments.views,
        default=DEFAULT_VIEWS,
        metavar="LIST",
        help=f"views to protect, from {', '.join(VIEW_NAMES)} (default: {','.join(DEFAULT_VIEWS)})",
    )
    arguments.add_platforms(protect, "protected only when every view is low after every one")
    arguments.add_config(protect)
    protect.add_argument(
        "--epsilon",
        type=arguments.grey_levels,
        default=EPSILON,
        metavar="LEVELS",
        help="largest change per pixel in 8-bit grey levels, before escalation, in strong "
        f"texture; flat areas get a sixth of it (default {EPSILON:g})",
    )
    protect.add_argument(
        "--epsilon-cap",
        type=arguments.grey_levels,
        default=None,  # given or not: only a cap given below --epsilon is refused
        metavar="LEVELS",
        help=f"escalation never exceeds this, in strong texture (default {EPSILON_CAP:g}, or "
        "--epsilon where that is more; a cap below --epsilon is refused)",
    )
    protect.add_argument(
        "--target",
        type=arguments.targets,
        default={},
        metavar="SCORE",
        help="score to reach on every view after every pipeline (default: KonCept512 30, "
        "BRISQUE 80); "
        "MODEL=SCORE,… for several models",
    )
    protect.add_argument(
        "--steps",
        type=arguments.positive,
        default=STEPS,
        help=f"steps per round before escalating ({STEPS})",
    )
    protect.add_argument(
        "--seed", type=arguments.seed, default=0, help="random seed 0–2³¹ (same seed, same output)"
    )
    protect.add_argument(
        "--keep-gps",
        action="store_true",
        help="keep the GPS position in the copy (default: removed, as the daemon does — "
        "the copy is made for sharing)",
    )
    protect.add_argument(
        "--strip-metadata",
        action="store_true",
        help="remove all metadata from the copy — EXIF (GPS included), XMP, IPTC, maker notes, "
        "comments — keeping only the colour profile (default: kept, but the GPS position; the "
        "daemon's strip_metadata)",
    )
    protect.add_argument(
        "--device", type=arguments.device, default="auto", help="auto (default), cpu, cuda"
    )
    protect.add_argument(
        "--threads",
        type=arguments.positive,
        help="CPU threads for torch, and at most this many views evaluated at once",
    )
    protect.add_argument(
        "--quality",
        type=arguments.jpeg_quality,
        default=OUTPUT_QUALITY,
        help=f"output JPEG quality (default {OUTPUT_QUALITY})",
    )
    protect.add_argument(
        "--write-unprotected",
        action="store_true",
        help="also write copies that could not be protected (never by default)",
    )
    protect.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="with --outdir: protect on a Ray cluster (e.g. 127.0.0.1:6379; local = a private "
        "one on this machine); needs pip install 'pixcamd[ray]'",
    )
    protect.add_argument(
        "--workers",
        type=arguments.positive,
        help="with --ray: how many workers (default: one per GPU, else CPUs ÷ --threads)",
    )
    protect.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per photo as it finishes, then a summary",
    )
    protect.set_defaults(handler=protect_command.run)

    model = commands.add_parser("model", help="install or inspect the quality models")
    model_commands = model.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    fetch = model_commands.add_parser(
        "fetch",
        help="download KonCept512's weights (about 229 MB) or install a copy you have",
        description="Download KonCept512.pth from the MediaEval 2020 organizers' public share "
        "into the cache folder, check that it loads as KonCept512, and print its sha256.",
    )
    where = fetch.add_mutually_exclusive_group()  # one source: neither silently ignored
    where.add_argument("--from", dest="source", metavar="FILE", help="install this file instead")
    where.add_argument("--url", default=WEIGHTS_URL, help="download address (default: the share)")
    fetch.add_argument("--to", metavar="PATH", help="where to install (default: the cache folder)")
    fetch.set_defaults(handler=model_command.fetch)
    info = model_commands.add_parser("info", help="show installed weights and available models")
    info.add_argument("--weights", metavar="PATH", help="KonCept512.pth to inspect")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(handler=model_command.info)
    daemon_command.add_commands(commands)
    retry_command.add_commands(commands, daemon_command.CONFIG_HELP)
    web_command.add_commands(commands, daemon_command.CONFIG_HELP)
    return parser


def main(argv: list[str] | None = None) -> int:
    one_arena()  # before torch or a view's thread starts (pixcamd.allocator)
    parser = build_parser()
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit:  # --help, --version: their answer (argparse lets its failure pass)
            sys.stdout.flush()
            raise
        if hasattr(args, "platforms_of"):
            arguments.resolve_platforms(args)
        models = getattr(args, "model", None)
        models = [models] if isinstance(models, str) else models or []
        if getattr(args, "weights", None) and models and not {"auto", "koncept512"} & set(models):
            parser.error(  # never silently ignored: the user meant them to be used
                f"argument --weights: names KonCept512's weights; --model {','.join(models)} "
                "does not use them"
            )
        status = args.handler(args)
        sys.stdout.flush()  # the answer's end, still buffered: its failure said here, too
        return status
    except OutputUnwritable as exc:
        return _unwritable(exc)
    except PixcamdError as exc:
        # a file name in the message must neither drive the terminal nor forge a line
        lines = "\n".join(display(line) for line in exc.lines())
        print(f"pixcamd: error: {lines}", file=sys.stderr)
        return _flushed(2)
    except sqlite3.OperationalError as exc:
        from pixcamd.daemon.ledger_file import held_elsewhere

        refusal = held_elsewhere(exc)  # a ledger another process holds: said, as a refusal
        if refusal is None:
            raise
        print(f"pixcamd: error: {refusal}", file=sys.stderr)
        return _flushed(2)
    except KeyboardInterrupt:
        print("pixcamd: interrupted", file=sys.stderr)
        return _flushed(130)
    except BrokenPipeError:  # `pixcamd config check | head`, `--help | head`: it has enough
        discard_stdout()
        return 0


def _flushed(status: int) -> int:
    """``status``, once the part of the answer printed before an error is written — or said
    lost: not left to the interpreter's last flush ("Exception ignored", exit 120)."""
    try:
        sys.stdout.flush()
    except OutputUnwritable as exc:
        _unwritable(exc)
    except BrokenPipeError:
        discard_stdout()
    return status


def _unwritable(exc: OutputUnwritable) -> int:
    print(f"pixcamd: error: {exc}", file=sys.stderr)
    discard_stdout()
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
