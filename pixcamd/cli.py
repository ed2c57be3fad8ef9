"""Command line: parses arguments and hands them to ``pixcamd.commands``; nothing else."""

from __future__ import annotations

import argparse
import os
import shlex
import sqlite3
import sys
from pathlib import Path

from pixcamd import __version__
from pixcamd.allocator import one_arena
from pixcamd.commands import daemon as daemon_command
from pixcamd.commands import model as model_command
from pixcamd.commands import protect as protect_command
from pixcamd.commands import retry as retry_command
from pixcamd.commands import score as score_command
from pixcamd.commands import web as web_command
from pixcamd.commands.progress import display
from pixcamd.daemon import values as read
from pixcamd.daemon.config import SYSTEM_CONFIG, ConfigError, locate_config
from pixcamd.daemon.config_pipelines import config_pipelines
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
    parse_views,
)
from pixcamd.errors import OutputUnwritable, PixcamdError
from pixcamd.platform_specs import UnknownPlatform, parse_platforms
from pixcamd.platforms import DEFAULT_PLATFORMS, PRESETS, Pipeline, PipelineError
from pixcamd.streams import discard_stdout


def _views(text: str) -> tuple[str, ...]:
    try:
        return parse_views(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


DEFAULTS = parse_platforms(DEFAULT_PLATFORMS)


def _add_platforms(parser, note: str) -> None:
    # kept as written here: a name of your own is looked up in the config once every
    # argument, --config included, is read (resolve_platforms)
    parser.add_argument(
        "--platforms",
        default=None,  # the default set, or the platforms of a config named by --config
        metavar="LIST",
        help="where the photo goes, comma-separated: presets "
        + ", ".join(PRESETS)
        + ", or your own written as e.g. long1600-q75, width1080-q80-bicubic-444, "
        "crop1:1-long1080-q80, long2048-webp80 (resize: none, longN, widthN, heightN, scaleF, "
        "mpM for at most M megapixels; "
        "a centre crop cropW:H, before or after the resize; qN for JPEG, webpN for WebP or "
        "avifN for AVIF; "
        "filter; chroma 420/422/444); a name of your own from the config's [pipelines.NAME]; "
        "default: " + ",".join(DEFAULT_PLATFORMS) + f" (with --config: its platforms); {note}",
    )


def _add_config(parser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="a config whose [pipelines.NAME] tables --platforms may name, and whose platforms "
        "list is the default (without it: the config `pixcamd run` reads — $PIXCAMD_CONFIG, "
        "~/.config/pixcamd/config.toml, /etc/pixcamd/config.toml — read only for a name that "
        "is no preset and no inline spec)",
    )
    parser.set_defaults(platforms_of=parser)


def resolve_platforms(args) -> None:
    """``--platforms`` as pipelines. Presets and inline specs need nothing else; another name
    is looked up in the config's ``[pipelines.NAME]`` tables — the file ``--config`` names, or
    else the one ``run`` reads, which is then read only for such a name, so a config being
    edited never stands in the way of ``--platforms instagram``."""
    parser, text = args.platforms_of, args.platforms

    def refuse(argument: str, message: str) -> None:
        parser.error(f"argument {argument}: {message}")

    mine = None
    if args.config is not None:  # named: read whatever the names, a problem of it refused
        try:
            mine = config_pipelines(args.config)
        except ConfigError as exc:
            refuse("--config", "\n".join(exc.lines()))
    if text is not None and not isinstance(text, str):  # --jpeg's pipeline
        return
    if text is None:  # the daemon's set of the config named, else the default set
        try:
            args.platforms = parse_platforms(mine.platforms, mine.custom) if mine else DEFAULTS
        except PipelineError as exc:
            refuse("--config", f"{mine.source}: platforms: {exc}")
        return
    try:
        args.platforms = parse_platforms(text, mine.custom if mine else None)
        return
    except PipelineError as exc:
        problem = exc
    if mine is None:  # a name no preset has, or one that only looks inline: the config's?
        try:
            mine = config_pipelines(optional=True)
        except ConfigError as exc:
            if isinstance(problem, UnknownPlatform):
                refuse(
                    "--platforms",
                    f"{problem}; looked for it in a config that cannot be "
                    "used: " + "\n".join(exc.lines()),
                )
        if mine is not None:
            try:
                args.platforms = parse_platforms(text, mine.custom)
                return
            except PipelineError as exc:
                problem = exc
    if isinstance(problem, UnknownPlatform) and mine is not None:
        refuse("--platforms", f"{problem}; no [pipelines.{problem.name}] in {mine.source}")
    if isinstance(problem, UnknownPlatform):  # no config at all: say where one was looked for
        refuse(
            "--platforms",
            f"{problem}; and no config to find a [pipelines.{problem.name}] in (none at "
            f"{locate_config()[0]} or {SYSTEM_CONFIG}; --config FILE names one)",
        )
    refuse("--platforms", str(problem))


def _jpeg_pipeline(text: str) -> tuple[Pipeline, ...]:
    """``score --jpeg``: a full-size JPEG at a quality, or none (the file as it is)."""
    if text.lower() == "none":
        return (PRESETS["as-is"],)
    try:
        quality = _jpeg_quality(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a JPEG quality 1–100, or none") from None
    # named by its inline spec: what score prints can be given back to --platforms
    return (Pipeline(f"none-q{quality}", quality=quality),)


def _jpeg_quality(text: str) -> int:
    """The copy's own JPEG quality: no "none" here, the copy is always a JPEG."""
    try:
        quality = int(text)
    except ValueError:
        quality = 0
    if not 1 <= quality <= 100:
        raise argparse.ArgumentTypeError(f"{text!r}: give a JPEG quality 1–100")
    return quality


def _device(text: str) -> str:
    from pixcamd.devices import resolve_device  # torch: only once a command names a device

    try:
        return resolve_device(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _models(text: str) -> list[str]:
    """``koncept512,brisque``, read as the config's ``model`` is."""
    try:
        return read.models(text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _targets(text: str) -> dict[str, float]:
    """``30`` (every model) or ``koncept512=25,brisque=85``."""
    try:
        if "=" not in text:
            return {"*": read.score(float(text))}
        pairs = (item.split("=", 1) for item in text.split(","))
        return {name.strip().lower(): read.score(float(value)) for name, value in pairs}
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: give a score 0–100, or MODEL=SCORE,…") from exc


def _grey_levels(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 64:
        raise argparse.ArgumentTypeError(f"{text!r}: give a change in 8-bit grey levels, 0–64")
    return value


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number ≥ 1")
    return int(text)


def _seed(text: str) -> int:
    """The config's ``seed`` range: a torch generator takes no more."""
    try:
        return read.number(0, 2**31, integer=True)(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number 0–2³¹") from None


def _copy_name(text: str) -> Path:
    if text.endswith(("/", os.sep)) and not os.path.isdir(text):  # one there: protect says it
        raise argparse.ArgumentTypeError(
            f"{text!r} is a folder (the / at its end): to write the copy into it, use "
            f"--outdir {shlex.quote(text)}"
        )
    return Path(text)


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
        type=_views,
        default=DEFAULT_VIEWS,
        metavar="LIST",
        help=f"comma-separated, from {', '.join(VIEW_NAMES)} (default: {','.join(DEFAULT_VIEWS)})",
    )
    serve = score.add_mutually_exclusive_group()
    _add_platforms(serve, "as-is judges the file exactly as it is (one downloaded back)")
    serve.add_argument(
        "--jpeg",
        dest="platforms",
        type=_jpeg_pipeline,
        metavar="Q|none",
        help="shorthand for one pipeline: a full-size JPEG at quality Q, or none (= as-is)",
    )
    _add_config(score)
    score.add_argument("--device", type=_device, default="cpu", help="cpu (default), cuda, auto")
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
        type=_copy_name,
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
        type=_models,
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
        type=_grey_levels,
        default=None,
        metavar="LEVELS",
        help=f"enhance/auto: largest change of the tone curves in 8-bit grey levels, 0–64 "
        f"(default {STRENGTH:g}); contrast and saturation ranges scale with it",
    )
    protect.add_argument(
        "--views",
        type=_views,
        default=DEFAULT_VIEWS,
        metavar="LIST",
        help=f"views to protect, from {', '.join(VIEW_NAMES)} (default: {','.join(DEFAULT_VIEWS)})",
    )
    _add_platforms(protect, "protected only when every view is low after every one")
    _add_config(protect)
    protect.add_argument(
        "--epsilon",
        type=_grey_levels,
        default=EPSILON,
        metavar="LEVELS",
        help="largest change per pixel in 8-bit grey levels, before escalation, in strong "
        f"texture; flat areas get a sixth of it (default {EPSILON:g})",
    )
    protect.add_argument(
        "--epsilon-cap",
        type=_grey_levels,
        default=None,  # given or not: only a cap given below --epsilon is refused
        metavar="LEVELS",
        help=f"escalation never exceeds this, in strong texture (default {EPSILON_CAP:g}, or "
        "--epsilon where that is more; a cap below --epsilon is refused)",
    )
    protect.add_argument(
        "--target",
        type=_targets,
        default={},
        metavar="SCORE",
        help="score to reach on every view after every pipeline (default: KonCept512 30, "
        "BRISQUE 80); "
        "MODEL=SCORE,… for several models",
    )
    protect.add_argument(
        "--steps",
        type=_positive,
        default=STEPS,
        help=f"steps per round before escalating ({STEPS})",
    )
    protect.add_argument(
        "--seed", type=_seed, default=0, help="random seed 0–2³¹ (same seed, same output)"
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
    protect.add_argument("--device", type=_device, default="auto", help="auto (default), cpu, cuda")
    protect.add_argument(
        "--threads",
        type=_positive,
        help="CPU threads for torch, and at most this many views evaluated at once",
    )
    protect.add_argument(
        "--quality",
        type=_jpeg_quality,
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
        type=_positive,
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
            resolve_platforms(args)
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
