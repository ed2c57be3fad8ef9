"""The command line's values: each option's reader (an ``argparse`` type that refuses a bad value
in words), and ``--platforms``/``--config``, whose names of one's own are looked up in a config
once every argument is read. ``pixcamd.cli`` builds the parser from these."""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from pixcamd.daemon import values as read
from pixcamd.daemon.config import SYSTEM_CONFIG, ConfigError, locate_config
from pixcamd.daemon.config_pipelines import config_pipelines
from pixcamd.defaults import parse_views
from pixcamd.platform_specs import UnknownPlatform, parse_platforms
from pixcamd.platforms import DEFAULT_PLATFORMS, PRESETS, Pipeline, PipelineError


def views(text: str) -> tuple[str, ...]:
    try:
        return parse_views(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


DEFAULTS = parse_platforms(DEFAULT_PLATFORMS)


def add_platforms(parser, note: str) -> None:
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


def add_config(parser) -> None:
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


def jpeg_pipeline(text: str) -> tuple[Pipeline, ...]:
    """``score --jpeg``: a full-size JPEG at a quality, or none (the file as it is)."""
    if text.lower() == "none":
        return (PRESETS["as-is"],)
    try:
        quality = jpeg_quality(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a JPEG quality 1–100, or none") from None
    # named by its inline spec: what score prints can be given back to --platforms
    return (Pipeline(f"none-q{quality}", quality=quality),)


def jpeg_quality(text: str) -> int:
    """The copy's own JPEG quality: no "none" here, the copy is always a JPEG."""
    try:
        quality = int(text)
    except ValueError:
        quality = 0
    if not 1 <= quality <= 100:
        raise argparse.ArgumentTypeError(f"{text!r}: give a JPEG quality 1–100")
    return quality


def device(text: str) -> str:
    from pixcamd.devices import resolve_device  # torch: only once a command names a device

    try:
        return resolve_device(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def models(text: str) -> list[str]:
    """``koncept512,brisque``, read as the config's ``model`` is."""
    try:
        return read.models(text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def targets(text: str) -> dict[str, float]:
    """``30`` (every model) or ``koncept512=25,brisque=85``."""
    try:
        if "=" not in text:
            return {"*": read.score(float(text))}
        pairs = (item.split("=", 1) for item in text.split(","))
        return {name.strip().lower(): read.score(float(value)) for name, value in pairs}
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: give a score 0–100, or MODEL=SCORE,…") from exc


def grey_levels(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 64:
        raise argparse.ArgumentTypeError(f"{text!r}: give a change in 8-bit grey levels, 0–64")
    return value


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number ≥ 1")
    return int(text)


def seed(text: str) -> int:
    """The config's ``seed`` range: a torch generator takes no more."""
    try:
        return read.number(0, 2**31, integer=True)(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number 0–2³¹") from None


def copy_name(text: str) -> Path:
    if text.endswith(("/", os.sep)) and not os.path.isdir(text):  # one there: protect says it
        name = text.rstrip("/" + os.sep)
        if os.path.exists(name):  # a file: no folder to suggest, nor to write it over unasked
            end = "(to write over it, drop the / at its end)"
            raise argparse.ArgumentTypeError(f"{text!r}: {name} is a file, not a folder {end}")
        raise argparse.ArgumentTypeError(
            f"{text!r} is a folder (the / at its end): to write the copy into it, use "
            f"--outdir {shlex.quote(text)}"
        )
    return Path(text)
