"""Protection where no pipeline of pixcamd's models goes: WebP, square crops, sharpening, re-shares.

    .venv/bin/python bench/bench_beyond.py PHOTO... [--model brisque] [--out bench/out]

Each photo is protected with the default settings (the default platforms), and then the file
pixcamd wrote (its JPEG) and the original are put through destinations that are not "resize,
then JPEG" — the kind a platform may also do, none of which the loop or the check models:

* WebP instead of JPEG after the downscale (Pillow's libwebp, lossy);
* a square centre crop before the downscale, as a square-format feed does;
* an unsharp mask after the downscale, as some platforms sharpen;
* a re-share: one platform's copy downloaded and uploaded to another (two pipelines in a row).

Each is scored on its ``center`` and ``resize`` views; protected = every view on the
low-quality side of the model's threshold. Prints a markdown table; writes every score to
``OUT/bench_beyond.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageFilter

from pixcamd.check import score_image_views
from pixcamd.jpeg import decode
from pixcamd.models import load_model
from pixcamd.photo import load_photo
from pixcamd.platforms import PRESETS, Pipeline, parse_inline
from pixcamd.protect import Settings, protect
from pixcamd.views import parse_views


def _long(img: Image.Image, side: int) -> Image.Image:
    """Downscaled as a pipeline's ``long`` rule does (Lanczos), without its JPEG."""
    size = Pipeline("long", resize="long", size=side).output_size(*img.size)
    return img.resize(size, Image.LANCZOS)


def _webp(img: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    img.save(buffer, "WEBP", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _square(img: Image.Image) -> Image.Image:
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    return img.crop((left, top, left + side, top + side))


DESTINATIONS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "long 1080, WebP 80": lambda i: _webp(_long(i, 1080), 80),
    "long 1600, WebP 75": lambda i: _webp(_long(i, 1600), 75),
    "long 2048, WebP 90": lambda i: _webp(_long(i, 2048), 90),
    "square crop, long 1080, JPEG 80": lambda i: parse_inline("long1080-q80").apply(_square(i)),
    "long 1600, unsharp mask, JPEG 85": lambda i: parse_inline("none-q85").apply(
        _long(i, 1600).filter(ImageFilter.UnsharpMask(1, 50, 2))
    ),
    "facebook, then instagram (a re-share)": lambda i: PRESETS["instagram"].apply(
        PRESETS["facebook"].apply(i)
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("photos", nargs="+", type=Path)
    parser.add_argument("--model", default="brisque")
    parser.add_argument("--out", type=Path, default=Path("bench/out"))
    args = parser.parse_args(argv)
    model = load_model(args.model, None, "cpu")
    views = parse_views(("center", "resize"))

    def worst(img: Image.Image) -> float:
        scores = score_image_views(img, [model], views)[model.name].values()
        return max(scores) if model.higher_is_better else min(scores)

    def low(score: float) -> bool:
        return (score < model.threshold) if model.higher_is_better else (score > model.threshold)

    rows = []
    for path in args.photos:
        original = load_photo(path).convert("RGB")
        result = protect(original, [model], Settings())
        written = decode(result.output_jpeg)
        row = {"photo": path.name, "verdict": result.verdict, "destinations": {}}
        for name, destination in DESTINATIONS.items():
            row["destinations"][name] = {
                "original": worst(destination(original)),
                "pixcamd": worst(destination(written)),
            }
        rows.append(row)
        print(path.name, result.verdict, json.dumps(row["destinations"]), flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_beyond.json").write_text(json.dumps(rows, indent=2))
    print("\n| destination (not modelled) | original low | pixcamd low | worst view, mean |")
    print("|---|---|---|---|")
    for name in DESTINATIONS:
        before = [r["destinations"][name]["original"] for r in rows]
        after = [r["destinations"][name]["pixcamd"] for r in rows]
        print(
            f"| {name} | {sum(map(low, before))}/{len(rows)} | {sum(map(low, after))}/{len(rows)} "
            f"| {statistics.mean(before):.1f} → {statistics.mean(after):.1f} |"  # original → ours
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
