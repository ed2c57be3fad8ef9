"""Command line: parses arguments and hands them to ``pixcamd.commands``; nothing else."""

from __future__ import annotations

import argparse
import sys

from pixcamd import __version__
from pixcamd.commands import model as model_command
from pixcamd.commands import score as score_command
from pixcamd.devices import resolve_device
from pixcamd.errors import PixcamdError
from pixcamd.models import CHOICES
from pixcamd.models.weights import WEIGHTS_URL
from pixcamd.views import DEFAULT_VIEWS, VIEW_NAMES, parse_views


def _views(text: str) -> tuple[str, ...]:
    try:
        return parse_views(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _jpeg(text: str) -> int | None:
    if text.lower() == "none":
        return None
    try:
        quality = int(text)
    except ValueError:
        quality = 0
    if not 1 <= quality <= 100:
        raise argparse.ArgumentTypeError(f"{text!r}: give a JPEG quality 1–100, or none")
    return quality


def _device(text: str) -> str:
    try:
        return resolve_device(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


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
        description="Score each photo per view, after a JPEG recompression of the full photo "
        "(quality 90 by default, as the MediaEval 2020 Pixel Privacy task did).",
    )
    score.add_argument("files", nargs="+", metavar="FILE", help="photos to score")
    score.add_argument(
        "--model",
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
    score.add_argument(
        "--jpeg",
        type=_jpeg,
        default=90,
        metavar="Q|none",
        help="JPEG quality applied before scoring (default 90), or none",
    )
    score.add_argument("--device", type=_device, default="cpu", help="cpu (default), cuda, auto")
    score.add_argument("--json", action="store_true", help="machine-readable output")
    score.set_defaults(handler=score_command.run)

    model = commands.add_parser("model", help="install or inspect the quality models")
    model_commands = model.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    fetch = model_commands.add_parser(
        "fetch",
        help="download KonCept512's weights (about 229 MB) or install a copy you have",
        description="Download KonCept512.pth from the MediaEval 2020 organizers' public share "
        "into the cache folder, check that it loads as KonCept512, and print its sha256.",
    )
    fetch.add_argument("--from", dest="source", metavar="FILE", help="install this file instead")
    fetch.add_argument("--url", default=WEIGHTS_URL, help="download address (default: the share)")
    fetch.add_argument("--to", metavar="PATH", help="where to install (default: the cache folder)")
    fetch.set_defaults(handler=model_command.fetch)
    info = model_commands.add_parser("info", help="show installed weights and available models")
    info.add_argument("--weights", metavar="PATH", help="KonCept512.pth to inspect")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(handler=model_command.info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except PixcamdError as exc:
        print(f"pixcamd: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pixcamd: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
