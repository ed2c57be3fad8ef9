"""How close the optimizer's view of a platform's downscale is to the real one (Pillow).

    .venv/bin/python bench/bench_resize.py ../shared/corpus/photos/*.jpg [--platforms LIST]

For each photo and downscaling pipeline, on the centre window the loop computes:

* ``forward``: the loop's forward value (Pillow's resize of the native region the loop view
  reads, after our JPEG 95 4:4:4) against Pillow's resize of the whole encoded photo, cut to
  the same window — grey levels, max and mean;
* ``surrogate``: the differentiable stand-in whose gradients the loop uses (torch's antialiased
  bilinear downscale) against the same Pillow values — how far the gradient's model is off;
* ``bicubic-aa``: torch's antialiased bicubic for comparison (the usual "close to Pillow"
  choice, three times the backward cost on a CPU);
* ``view``: the whole loop view — that resize, then the pipeline's codec on the window — against
  the real pipeline on the whole encoded photo (``Pipeline.apply``), cut to the view: equal for
  a JPEG up to the resize's rounding; for a WebP pipeline, how far libwebp's encode of the window
  is from its encode of the whole photo. With ``--model`` (e.g. brisque), also how far the
  model's score of the loop's view is from its score of the real one.

    .venv/bin/python bench/bench_resize.py PHOTO... --platforms long1080-webp75,long2048-webp90 \
        --model brisque

Prints a markdown table; medians over photos.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from pixcamd.jpeg import decode, encode
from pixcamd.models import load_model
from pixcamd.photo import load_photo, to_tensor
from pixcamd.pipeline_views import DownscaledCrop, plan_loop_views, straight_through_resize
from pixcamd.platform_specs import parse_platforms
from pixcamd.platforms import DEFAULT_PLATFORMS, FILTERS


def measure(photo: Image.Image, pipeline, model=None) -> dict[str, tuple[float, float]]:
    (view,) = plan_loop_views(*photo.size, ("center",), (pipeline,))
    assert isinstance(view, DownscaledCrop)
    served = pipeline.output_size(*photo.size)
    encoded = decode(encode(photo, 95, "4:4:4"))
    left, top, right, bottom = view.window
    real = to_tensor(encoded.resize(served, FILTERS[pipeline.filter]))[..., top:bottom, left:right]
    x0, y0, x1, y1 = view.region
    region = to_tensor(photo)[..., y0:y1, x0:x1]
    forward = straight_through_resize(
        region, (x0, y0), view.window, view.scale, pipeline.filter, (95, "4:4:4")
    )
    sx, sy = view.scale
    sub = to_tensor(encoded)[
        ..., round(top * sy) : round(bottom * sy), round(left * sx) : round(right * sx)
    ]
    size = (bottom - top, right - left)
    bilinear = F.interpolate(sub, size=size, mode="bilinear", antialias=True).clamp(0, 1)
    bicubic = F.interpolate(sub, size=size, mode="bicubic", antialias=True).clamp(0, 1)
    out = {}
    for name, approx in (("forward", forward), ("surrogate", bilinear), ("bicubic-aa", bicubic)):
        diff = (torch.round(approx * 255) - torch.round(real * 255)).abs()
        out[name] = (float(diff.max()), float(diff.mean()))
    with torch.no_grad():
        loop = view.render(region)
    bl, bt, bw, bh = view.box
    served_view = to_tensor(pipeline.apply(encoded))[..., bt : bt + bh, bl : bl + bw]
    diff = (torch.round(loop * 255) - torch.round(served_view * 255)).abs()
    out["view"] = (float(diff.max()), float(diff.mean()))
    if model is not None:
        with torch.no_grad():
            gap = abs(float(model(loop)) - float(model(served_view)))
        out[f"view, {model.name} score"] = (gap, gap)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", nargs="+", type=Path)
    parser.add_argument("--platforms", default=",".join(DEFAULT_PLATFORMS))
    parser.add_argument("--model", help="also score the loop's view and the real one (brisque)")
    args = parser.parse_args(argv)
    model = load_model(args.model, None, "cpu") if args.model else None
    pipelines = [p for p in parse_platforms(args.platforms) if p.resize != "none"]
    rows: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for path in args.photos:
        photo = load_photo(path)
        for pipeline in pipelines:
            if pipeline.output_size(*photo.size) == photo.size:
                continue
            for name, figures in measure(photo, pipeline, model).items():
                rows.setdefault((pipeline.name, name), []).append(figures)
    print(
        f"{len(args.photos)} photos; grey levels (0–255) against Pillow, medians over photos "
        "(a score row: its median and largest gap over photos)\n"
    )
    print("| pipeline | what | max abs | mean abs |\n|---|---|---|---|")
    for (pipeline, name), figures in rows.items():
        if name.endswith(" score"):
            gaps = [f[0] for f in figures]
            print(f"| {pipeline} | {name} | {max(gaps):.2f} | {statistics.median(gaps):.2f} |")
            continue
        peak = statistics.median(f[0] for f in figures)
        mean = statistics.median(f[1] for f in figures)
        print(f"| {pipeline} | {name} | {peak:.0f} | {mean:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
