"""Protection where no default pipeline goes: WebP, AVIF, square crops, sharpening, re-shares.

    .venv/bin/python bench/bench_beyond.py PHOTO... [--model brisque] [--out bench/out]
        [--named long1600-webp75] [--seed N]

Each photo is protected with the default settings (the default platforms), and then the file
pixcamd wrote (its JPEG) and the original are put through destinations that are not in the
default set — the kind a platform may also do:

* WebP or AVIF instead of JPEG after the downscale (Pillow's libwebp, lossy, and libavif; such a
  destination can be named in ``platforms`` — ``--named`` measures what that buys);
* a square centre crop before the downscale, as a square-format feed does;
* an unsharp mask after the downscale, as some platforms sharpen (gentle to strong);
* another resampling filter than Lanczos: the box (area averaging), Hamming, nearest neighbour;
* a re-share: one platform's copy downloaded and uploaded to another (two pipelines in a row);
* another resizer and encoder than Pillow's, on the file itself: ImageMagick's ``convert`` and
  libvips's ``vipsthumbnail`` (sharp's engine, which shrinks a JPEG while decoding it), as a
  server would run them (Debian: ``apt-get install imagemagick libvips-tools``);
* Pillow's own ``thumbnail()`` on the file, as a Python web app makes its previews: the JPEG
  shrunk by 2, 4 or 8 in its decoder (``draft``) and by a whole factor (``reduce``) while the
  photo stays twice the box, then bicubic — not the Lanczos ``resize`` the presets model.

With ``--named LIST`` each photo is protected a second time, in the same process, for the
default set plus those pipelines, and judged the same way: what naming a destination buys there
and on its neighbours, and what it costs (seconds, ratio against the default run, steps, PSNR).

Each destination is scored on its ``center`` and ``resize`` views; protected = every view on the
low-quality side of the model's threshold. Prints a markdown table; writes every score to
``OUT/bench_beyond.json`` (``rows``, beside the ``machine`` and ``model`` that made them).
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from host import machine_line
from PIL import Image, ImageFilter, ImageOps

from pixcamd.check import score_image_views
from pixcamd.jpeg import decode
from pixcamd.models import load_model
from pixcamd.photo import load_photo
from pixcamd.platform_specs import parse_inline, parse_platforms
from pixcamd.platforms import PRESETS, Pipeline
from pixcamd.protect import Settings, protect
from pixcamd.views import parse_views


def _long(img: Image.Image, side: int) -> Image.Image:
    """Downscaled as a pipeline's ``long`` rule does (Lanczos), without its re-encode."""
    size = Pipeline("long", resize="long", size=side).output_size(*img.size)
    return img.resize(size, Image.LANCZOS)


def _width(img: Image.Image, width: int) -> Image.Image:
    """Downscaled as a pipeline's ``width`` rule does (Lanczos), without its re-encode."""
    size = Pipeline("width", resize="width", size=width).output_size(*img.size)
    return img.resize(size, Image.LANCZOS)


def _square(img: Image.Image) -> Image.Image:
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    return img.crop((left, top, left + side, top + side))


DESTINATIONS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "long 1080, WebP 80": parse_inline("long1080-webp80").apply,
    "long 1600, WebP 75": parse_inline("long1600-webp75").apply,
    "long 2048, WebP 90": parse_inline("long2048-webp90").apply,
    # avifenc's default quality, a smaller one, and Pillow's (and Next.js's) default
    "long 1080, AVIF 60": parse_inline("long1080-avif60").apply,
    "long 1600, AVIF 50": parse_inline("long1600-avif50").apply,
    "long 2048, AVIF 75": parse_inline("long2048-avif75").apply,
    "square crop, long 1080, JPEG 80": lambda i: parse_inline("long1080-q80").apply(_square(i)),
    "long 1600, unsharp mask, JPEG 85": lambda i: parse_inline("none-q85").apply(
        _long(i, 1600).filter(ImageFilter.UnsharpMask(1, 50, 2))
    ),
    # ImageMagick's usual sharpening after a downscale (-unsharp 0x0.75+0.75+0.008), and a
    # strong one, after which BRISQUE reads most originals as excellent
    "width 1080, gentle unsharp mask, JPEG 80": lambda i: parse_inline("none-q80").apply(
        _width(i, 1080).filter(ImageFilter.UnsharpMask(0.75, 75, 2))
    ),
    "long 2048, strong unsharp mask, JPEG 85": lambda i: parse_inline("none-q85").apply(
        _long(i, 2048).filter(ImageFilter.UnsharpMask(3, 200, 0))
    ),
    "facebook, then instagram (a re-share)": lambda i: PRESETS["instagram"].apply(
        PRESETS["facebook"].apply(i)
    ),
    # Other resampling filters than the presets' Lanczos (the roaming views draw Lanczos,
    # bicubic and bilinear): the box — area averaging, as OpenCV's INTER_AREA, the usual
    # downscale in Python image pipelines —, Hamming, and nearest neighbour (no averaging at
    # all: one native pixel in every factor², as a cheap thumbnailer takes)
    "long 1080, box (area averaging), JPEG 80": parse_inline("long1080-q80-box").apply,
    "width 1080, Hamming, JPEG 80": parse_inline("width1080-q80-hamming").apply,
    "long 1600, nearest neighbour, JPEG 85": parse_inline("long1600-q85-nearest").apply,
}


# Commands run on the file (the original's, or the protected copy's JPEG bytes) as a server
# would: {src} the file, {out} the JPEG it serves. ImageMagick downscales with its Lanczos and
# encodes with its libjpeg at 4:2:0 below quality 90; vipsthumbnail shrinks the JPEG in its
# decoder first (by 2, 4 or 8), then resamples with Lanczos 3. Both only ever shrink (">").
TOOLS: dict[str, str] = {
    "ImageMagick: width 1080, JPEG 80": (
        "convert {src} -auto-orient -resize 1080x> -quality 80 {out}"
    ),
    "ImageMagick: long 2048, JPEG 85": (
        "convert {src} -auto-orient -resize 2048x2048> -quality 85 {out}"
    ),
    "libvips: width 1080, JPEG 80": "vipsthumbnail {src} --size 1080x> -o {out}[Q=80]",
    "libvips: long 1600, JPEG 75": "vipsthumbnail {src} --size 1600x1600> -o {out}[Q=75]",
}


def _thumbnail(box: int, quality: int) -> Callable[[bytes], Image.Image]:
    """Pillow's ``thumbnail()`` at its defaults (bicubic, ``reducing_gap`` 2, the JPEG's
    ``draft``), the file upright, then a JPEG at ``quality`` (Pillow's 4:2:0), decoded."""

    def serve(data: bytes) -> Image.Image:
        with Image.open(io.BytesIO(data)) as img:
            img.thumbnail((box, box))  # before anything loads the pixels: draft needs that
            upright = ImageOps.exif_transpose(img).convert("RGB")
        out = io.BytesIO()
        upright.save(out, "JPEG", quality=quality)
        return decode(out.getvalue())

    return serve


# Pillow's thumbnail on the file (the original's, or the copy's JPEG bytes)
THUMBNAILS: dict[str, Callable[[bytes], Image.Image]] = {
    "Pillow thumbnail(): box 1080, JPEG 80": _thumbnail(1080, 80),
    "Pillow thumbnail(): box 2048, JPEG 85": _thumbnail(2048, 85),
    "Pillow thumbnail(): box 640, JPEG 75": _thumbnail(640, 75),
}


def served_by(command: str, data: bytes, suffix: str = ".jpg") -> Image.Image:
    """What ``command`` serves from the file ``data`` (named with ``suffix``), decoded."""
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / f"in{suffix}", Path(tmp) / "out.jpg"
        src.write_bytes(data)
        args = [part.format(src=src, out=out) for part in command.split()]
        subprocess.run(args, check=True, capture_output=True)
        return decode(out.read_bytes())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("photos", nargs="+", type=Path)
    parser.add_argument("--model", default="brisque")
    parser.add_argument("--named", help="pipelines to add to the default set in a second run")
    parser.add_argument("--out", type=Path, default=Path("bench/out"))
    parser.add_argument(
        "--seed", type=int, default=0, help="the search's seed (how far the seed alone moves)"
    )
    args = parser.parse_args(argv)
    missing = sorted({t for t in (c.split()[0] for c in TOOLS.values()) if not shutil.which(t)})
    if missing:
        parser.error(f"{', '.join(missing)} not found: apt-get install imagemagick libvips-tools")
    model = load_model(args.model, None, "cpu")
    where = f"{machine_line()}; {model.fingerprint}"
    print(where, flush=True)
    views = parse_views(("center", "resize"))
    runs = {"pixcamd": Settings(seed=args.seed)}
    if args.named:
        extra = parse_platforms(args.named)
        platforms = Settings().platforms + extra
        runs["pixcamd + named"] = Settings(platforms=platforms, seed=args.seed)

    def worst(img: Image.Image) -> float:
        scores = score_image_views(img, [model], views)[model.name].values()
        return max(scores) if model.higher_is_better else min(scores)

    def low(score: float) -> bool:
        return (score < model.threshold) if model.higher_is_better else (score > model.threshold)

    rows = []
    for path in args.photos:
        original, data = load_photo(path).convert("RGB"), path.read_bytes()
        row = {"photo": path.name, "destinations": {}, "runs": {}}
        for name, destination in DESTINATIONS.items():
            row["destinations"][name] = {"original": worst(destination(original))}
        for name, command in TOOLS.items():
            served = served_by(command, data, path.suffix)
            row["destinations"][name] = {"original": worst(served)}
        for name, thumbnail in THUMBNAILS.items():
            row["destinations"][name] = {"original": worst(thumbnail(data))}
        for label, settings in runs.items():
            start = time.perf_counter()
            result = protect(original, [model], settings)
            seconds = time.perf_counter() - start
            written = decode(result.output_jpeg)
            row["runs"][label] = {
                "verdict": result.verdict,
                "seconds": seconds,
                "steps": result.steps,
                "psnr": result.psnr,
                "platforms": [p.name for p in settings.platforms],
            }
            for name, destination in DESTINATIONS.items():
                row["destinations"][name][label] = worst(destination(written))
            for name, command in TOOLS.items():
                row["destinations"][name][label] = worst(served_by(command, result.output_jpeg))
            for name, thumbnail in THUMBNAILS.items():
                row["destinations"][name][label] = worst(thumbnail(result.output_jpeg))
        rows.append(row)
        print(path.name, json.dumps(row["runs"]), json.dumps(row["destinations"]), flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    report = {"machine": where, "model": model.fingerprint, "rows": rows}
    (args.out / "bench_beyond.json").write_text(json.dumps(report, indent=2))
    n = len(rows)
    head = ["destination", "original low", *(f"{label} low" for label in runs)]
    print("\n| " + " | ".join([*head, "worst view, mean: original → " + " / ".join(runs)]) + " |")
    print("|" + "---|" * (len(head) + 1))
    for name in [*DESTINATIONS, *TOOLS, *THUMBNAILS]:
        cells = [name]
        means = []
        for key in ("original", *runs):
            scores = [r["destinations"][name][key] for r in rows]
            cells.append(f"{sum(map(low, scores))}/{n}")
            means.append(f"{statistics.mean(scores):.1f}")
        print("| " + " | ".join([*cells, means[0] + " → " + " / ".join(means[1:])]) + " |")
    print()
    for label in runs:
        runs_of = [r["runs"][label] for r in rows]
        protected = sum(r["verdict"] == "protected" for r in runs_of)
        print(
            f"- {label} ({', '.join(runs_of[0]['platforms'])}): protected on its own set "
            f"{protected}/{n}; s/photo median "
            f"{statistics.median(r['seconds'] for r in runs_of):.1f}; steps "
            f"{[r['steps'] for r in runs_of]}; PSNR mean / min "
            f"{statistics.mean(r['psnr'] for r in runs_of):.1f} / "
            f"{min(r['psnr'] for r in runs_of):.1f}"
        )
    if len(runs) == 2:
        first, second = runs
        ratios = [r["runs"][second]["seconds"] / r["runs"][first]["seconds"] for r in rows]
        medians = [statistics.median(r["runs"][k]["seconds"] for r in rows) for k in runs]
        print(
            f"- time, {second} ÷ {first}: per-photo ratio median ×{statistics.median(ratios):.2f}, "
            f"ratio of medians ×{medians[1] / medians[0]:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
