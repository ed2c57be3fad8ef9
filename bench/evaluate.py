"""Evaluation harness: pixcamd, pixcamd as it was (task pipeline only) and the task's published
baseline, all judged by the same real platform pipelines (issue #11, items 7–9).

    .venv/bin/python bench/evaluate.py DIR_OR_PHOTO... [--model brisque|koncept512]
        [--weights KonCept512.pth] [--methods pixcamd,task,baseline]
        [--judge task,facebook,instagram,whatsapp,long1280-q70-bicubic,...]
        [--platforms LIST] [--views center,resize] [--small N] [--steps 40] [--seed N]
        [--limit N] [--crop WxH] [--sheet 3] [--name NAME] [--out bench/out]
        [--docs docs/benchmarks.md] [--docs-img docs/img] [--save-outputs]

Methods (each runs on every photo, one after the other, in the same process):

* ``pixcamd`` — ``pixcamd.protect.protect()`` with its default ``Settings`` (invisible mode,
  the default platform set, or the pipelines of ``--platforms``); the saved file is
  ``Result.output_jpeg`` (JPEG 95, 4:4:4).
* ``task`` — the same call with ``platforms=(PRESETS["task"],)``: the behaviour before issue #11
  (protected for the task's JPEG-90 only), the baseline for time.
* ``enhance``, ``auto`` — default ``Settings`` with ``mode = "enhance"`` (the colour filter
  alone) or ``mode = "auto"`` (filter, then the invisible perturbation where it falls short);
  the filter's description is recorded per photo.
* ``baseline`` — the MediaEval 2020 Pixel Privacy baseline re-implemented (``baseline_ifgsm``):
  I-FGSM on the 512×384 centre view, ε = α = 0.05 in the task's [−1, 1] input space (0.025 in
  [0, 1], 6.4 grey levels), 20 steps, MSE towards the far end of the model's scale, no JPEG
  awareness; rounded to 8 bits, pasted back into the full photo, saved losslessly as PNG.

Judging — the same for every method and for the unprotected original. The saved file is decoded
and put through each pipeline of ``--judge`` for real (``Pipeline.apply``: Pillow resize, never
up, then Pillow JPEG encode/decode); every view of ``--views`` of that output is scored (``tiles``
are reduced to their worst tile per pipeline). The default judging set is the default presets
plus pipelines that are in no preset ("unseen": ``long1280-q70-bicubic``, ``width1366-q82``,
``long2560-q88-bilinear-444``, ``scale0.33-q75``, ``long1800-q92``, ``scale0.5-q85-bicubic``,
``none-q80``, ``scale0.9-q90``, and three crops to another aspect: ``crop1:1-long1080-q80``,
a square post; ``width1080-crop3:4-q80``, a profile grid's thumbnail;
``crop191:100-width1200-q85``, a link preview),
so a design that only fits the presets' numbers shows there, and the downscaling defaults a
few pixels off their size or through another filter ("nearby": ``long2047-q85``,
``width1079-q80``, ``long1599-q75``, ``long2048-q85-bicubic``, ``width1080-q80-bilinear``), as
a platform's own resizer serves them. Each judged pipeline falls in one group: ``default`` (the
pipelines the pixcamd method protects for — the default set, or those of ``--platforms`` —
compared by their numbers, not their names),
``preset`` (another preset), ``nearby`` or ``unseen``. Per photo and in total:

* protected on a pipeline = every view low after it; "all defaults" = every (pipeline × view) of
  the default group low; likewise "nearby", "unseen" and "all"; rates per pipeline and per
  (pipeline, view), mean scores, and which (pipeline, view) was the worst (nearest the
  good-quality side) how often; the size each pipeline served the photo at;
* the task's accuracy: the share of photos still judged good on the ``center`` view after the
  ``task`` pipeline (the figure the task ranked by; lower is better for a protector);
* for pixcamd's methods, agreement with ``protect()``'s own verdict on the pipelines both judged.

Invisibility: PSNR (RGB) and SSIM (11×11 Gaussian, luma) of the decoded saved file against the
original — whole photo, the 512×384 centre crop (where the baseline acts), and the 256×256 crop
of the flattest region (lowest local luma standard deviation, outer 5 % border avoided: where a
change shows first); L∞ of the method's pixels and of the decoded file, in grey levels.

Cost: seconds of the method call alone (after one warm-up forward + backward), seconds per
megapixel, optimizer steps, real checks run (``Result.checks``), whether the first check the
loop's estimate called for found the photo protected (``Result.first_check_protected``: how well
the estimate agrees with the real pipelines; the summary gives the share of the photos whose
loop called one) and whether the first check it called sure of its targets met every target
(``Result.first_check_passed``, in the JSON), peak RSS (the kernel's high-water mark reset
before each method call and read after it: it includes what the process already holds, so it
bounds the method from above). Time ratios pixcamd ÷ task (ratio of the means, of the medians,
and the mean and median of the per-photo ratios), pixcamd ÷ baseline, task ÷ baseline and
enhance / auto ÷ pixcamd, all from the same run.

``--small N`` adds N photos of at most 1 MP, made in memory from the inputs (alternately a
640×480 centre crop and a Lanczos downscale to 1024 px on the long side; never written unless
``--save-outputs``), evaluated the same way and summarised separately (``summary_small``).

KonCept512 without real weights (none given with ``--weights``, none installed) runs with RANDOM
weights plus a constant score offset so every photo starts "good" and the methods do their full
work: TIMING ONLY, labelled so in every output; its protection figures mean nothing.

Outputs (default ``bench/out/``, git-ignored): ``evaluate_NAME.json`` (everything),
``evaluate_NAME.md`` (tables), ``evaluate_NAME.png`` (per-pipeline worst scores before/after and
PSNR against protection; needs the ``bench`` extra: matplotlib), ``evaluate_NAME_sheet.jpg``
(per photo: original, protected, difference ×20 of the centre view; and the flattest region at
100 %, original beside protected) and ``evaluate_NAME_flat.png`` (the flattest-region crops
alone, lossless). ``--docs`` puts the tables into that markdown file between
``<!-- evaluate:begin -->`` and ``<!-- evaluate:end -->`` (in a block of their own per NAME);
``--docs-img`` also copies the figure and size-limited copies of the sheets there.

Its parts, in the order of the data: ``evaluate_inputs`` (the photos, the small ones made from
them, each one's flattest region), ``evaluate_methods`` (each method run, timed and judged;
``evaluate_baseline`` is the task's baseline, ``evaluate_judging`` the judging set and the
verdicts), ``evaluate_totals`` (the summary and the ratios), ``evaluate_report`` (writes the
outputs: ``evaluate_tables`` the JSON and the markdown, ``evaluate_images`` the figure and the
contact sheets); this file runs them and holds the command line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from evaluate_baseline import BaselineSettings, centre_box
from evaluate_inputs import (
    FLAT_BORDER,
    FLAT_SIZE,
    PhotoItem,
    find_photos,
    flattest_box,
    photo_items,
)
from evaluate_judging import DEFAULT_JUDGE, group_of, judge_image, task_pipeline_name, verdicts
from evaluate_methods import (
    PIXCAMD_MODES,
    Judging,
    Produced,
    judge_method,
    method_settings,
    run_baseline,
    run_pixcamd,
)
from evaluate_totals import summarize
from host import machine
from PIL import Image

from pixcamd.allocator import one_arena
from pixcamd.check import score_image_views
from pixcamd.models import load_model, resolve_name
from pixcamd.models.base import QualityModel
from pixcamd.models.weights import default_weights_path
from pixcamd.platform_specs import parse_platforms
from pixcamd.platforms import DEFAULT_PLATFORMS, PRESETS, Pipeline
from pixcamd.protect import Settings
from pixcamd.views import parse_views

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "out"
METHODS = ("pixcamd", "task", "enhance", "auto", "baseline")
DEFAULT_METHODS = ("pixcamd", "task", "baseline")
TIMING_OFFSET = 75.0  # random KonCept512 scores ≈ 0: shift them onto the "good" side


# --------------------------------------------------------------------------------------------
# Models


class TimingOnly(QualityModel):
    """A model with a constant added to its scores: RANDOM-weight timing runs only."""

    def __init__(self, inner: QualityModel, offset: float = TIMING_OFFSET):
        super().__init__()
        self.inner, self.offset = inner, offset
        self.name = inner.name
        self.higher_is_better = inner.higher_is_better
        self.threshold = inner.threshold
        self.default_target = getattr(inner, "default_target", inner.threshold)
        self.view_size = inner.view_size
        self.fingerprint = f"{inner.fingerprint}+offset{offset:g} (TIMING ONLY)"

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        return self.inner(views) + self.offset


def build_model(name: str, weights: str | None, device: str) -> tuple[QualityModel, bool]:
    """The model to evaluate and whether it is a timing-only stand-in (random KonCept512)."""
    name = resolve_name(name, weights)
    if name == "koncept512" and weights is None and not default_weights_path().is_file():
        from pixcamd.models.koncept512 import KonCept512

        torch.manual_seed(0)
        print(
            "koncept512: no real weights (--weights) — RANDOM weights, TIMING ONLY",
            file=sys.stderr,
        )
        return TimingOnly(KonCept512()).to(device).eval(), True
    return load_model(name, weights, device), False


def warm_up(model: QualityModel, device: str) -> None:
    """One forward + backward before any clock runs: one-time kernel set-up is no photo's cost."""
    views = torch.rand(1, 3, *model.view_size, generator=torch.Generator().manual_seed(0))
    views = views.to(device).requires_grad_(True)
    torch.autograd.grad(model(views).sum(), views)


# --------------------------------------------------------------------------------------------
# The run


@dataclass
class Options:
    methods: tuple[str, ...] = DEFAULT_METHODS
    views: tuple[str, ...] = ("center", "resize")
    judge: tuple[Pipeline, ...] = field(default_factory=lambda: parse_platforms(DEFAULT_JUDGE))
    pixcamd: Settings = field(default_factory=Settings)
    baseline: BaselineSettings = field(default_factory=BaselineSettings)
    crop: tuple[int, int] | None = None
    limit: int | None = None
    small: int = 0
    sheet: int = 3
    device: str = "cpu"
    save_outputs: Path | None = None


def evaluate(
    inputs: list[str | Path],
    model: QualityModel,
    options: Options | None = None,
    timing_only: bool = False,
    log=sys.stderr,
) -> tuple[dict, list[dict]]:
    """Run every method on every photo; returns (report, contact-sheet material)."""
    options = options or Options()
    views = parse_views(options.views)
    if "center" not in views:
        raise ValueError("the task's accuracy is judged on the center view: include it")
    unknown = set(options.methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown method {sorted(unknown)[0]!r}: choose from {', '.join(METHODS)}")
    settings = replace(options.pixcamd, views=views)
    pipelines = tuple(options.judge)
    names = [p.name for p in pipelines]
    if len(set(names)) != len(names):
        raise ValueError("two judged pipelines share a name")
    judging = Judging(
        model,
        views,
        pipelines,
        {p.name: group_of(p, settings.platforms) for p in pipelines},
        task_pipeline_name(pipelines),
    )
    paths = find_photos(inputs)[: options.limit]
    items = photo_items(paths, options.crop, options.small)
    main = [i for i, item in enumerate(items) if not item.small]
    pick = set()
    if options.sheet and main:
        spots = np.linspace(0, len(main) - 1, min(options.sheet, len(main))).round().astype(int)
        pick = {main[i] for i in spots.tolist()}
    rows, small_rows, skipped, sheet = [], [], [], []
    load_start = os.getloadavg()
    warm_up(model, options.device)
    started = time.perf_counter()
    for index, item in enumerate(items):
        original = item.load()
        vh, vw = model.view_size
        if original.width < vw or original.height < vh:
            skipped.append({"photo": item.path, "why": f"smaller than the {vw}×{vh} views"})
            continue
        row, saved_files, produced_files = measure_photo(item, original, judging, settings, options)
        (small_rows if item.small else rows).append(row)
        if options.save_outputs is not None:
            for method, produced in produced_files.items():
                folder = options.save_outputs / method
                folder.mkdir(parents=True, exist_ok=True)
                suffix = ".jpg" if produced.file_format == "JPEG" else ".png"
                (folder / (Path(row["name"]).stem + suffix)).write_bytes(produced.file)
            if item.small:  # the made photo itself, so the saved files can be judged again
                folder = options.save_outputs / "small"
                folder.mkdir(parents=True, exist_ok=True)
                original.save(folder / (row["name"] + ".png"))
        if index in pick:
            sheet.append(sheet_material(row, original, saved_files))
        print(progress_line(row, judging), file=log, flush=True)
    report = {
        "harness": {
            "script": "bench/evaluate.py",
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "inputs": [str(i) for i in inputs],
            "crop": list(options.crop) if options.crop else None,
            "small": options.small,
            "views": list(views),
            "pipelines": [{**p.as_dict(), "group": judging.groups[p.name]} for p in pipelines],
            "default_set": [p.name for p in settings.platforms],
            "task_pipeline": judging.task_name,
            "judging": "the saved file, decoded, through each pipeline for real (Pillow resize, "
            "Pillow JPEG), then every view; tiles reduced to their worst tile",
            "flattest_region": {"size": FLAT_SIZE, "border": FLAT_BORDER},
            "seconds_wall": time.perf_counter() - started,
            # The CPU may be shared: load averages (1, 5, 15 min) put the timings in context.
            "load_average_start": list(load_start),
            "load_average_end": list(os.getloadavg()),
        },
        "machine": machine(),
        "model": {**model.describe(), "timing_only": timing_only},
        "settings": {
            "pixcamd": {
                **asdict(settings),
                "platforms": [p.as_dict() for p in settings.platforms],
                "output": "JPEG 95 4:4:4 (Result.output_jpeg)",
            },
            "task": {"platforms": [PRESETS["task"].as_dict()], "otherwise": "as pixcamd"},
            "baseline": {
                **asdict(options.baseline),
                "target": options.baseline.target_for(model),
                "epsilon_grey_levels": options.baseline.epsilon / 2 * 255,
                "space": "[-1, 1] (x - 0.5) / 0.5; applied as half that in [0, 1]",
                "view": "center 512x384 at native resolution",
                "loss": "MSE(score, target), step x - alpha * sign(grad)",
                "lift": "rounded to 8 bits, pasted into the full photo",
                "output": "PNG (lossless)",
            },
        },
        "photos": rows,
        "small_photos": small_rows,
        "skipped": skipped,
        "summary": summarize(rows, options.methods, names, views),
        "summary_small": summarize(small_rows, options.methods, names, views)
        if small_rows
        else None,
    }
    return report, sheet


def measure_photo(
    item: PhotoItem,
    original: Image.Image,
    judging: Judging,
    settings: Settings,
    options: Options,
) -> tuple[dict, dict[str, Image.Image], dict[str, Produced]]:
    """One photo: the original judged, then every method run, timed and judged."""
    model = judging.model
    megapixels = original.width * original.height / 1e6
    centre = centre_box(original.width, original.height, model)
    flat, flat_std = flattest_box(original)
    before = score_image_views(original, [model], judging.views)[model.name]
    scores, served = judge_image(original, model, judging.views, judging.pipelines)
    row = {
        "photo": item.path,
        "name": item.name,
        "made": item.made,
        "small": item.small,
        "width": original.width,
        "height": original.height,
        "megapixels": megapixels,
        "center_box": list(centre),
        "flat_box": list(flat),
        "flat_std": flat_std,
        "served": served,
        "before": before,
        "original": verdicts(scores, model, judging.groups, judging.task_name),
        "load_average_1min": os.getloadavg()[0],
        "methods": {},
    }
    saved_files, produced_files = {}, {}
    boxes = {"center": centre, "flat": flat}
    for method in options.methods:
        if method in PIXCAMD_MODES:
            produced = run_pixcamd(original, model, method_settings(method, settings))
        else:
            produced = run_baseline(original, model, options.baseline, options.device)
        record, saved = judge_method(original, produced, judging, boxes, megapixels)
        row["methods"][method] = record
        saved_files[method], produced_files[method] = saved, produced
    return row, saved_files, produced_files


def sheet_material(row: dict, original: Image.Image, saved: dict[str, Image.Image]) -> dict:
    """Centre crops and flattest-region crops (native resolution) and a thumbnail."""
    left, top, w, h = row["center_box"]
    crop = (left, top, left + w, top + h)
    fl, ft, fw, fh = row["flat_box"]
    flat = (fl, ft, fl + fw, ft + fh)
    thumb = original.copy()
    thumb.thumbnail((w, h))
    return {
        "name": row["name"],
        "box": row["center_box"],
        "flat_box": row["flat_box"],
        "flat_std": row["flat_std"],
        "size": (original.width, original.height),
        "thumbnail": thumb,
        "original": original.crop(crop),
        "methods": {m: img.crop(crop) for m, img in saved.items()},
        "flat_original": original.crop(flat),
        "flat_methods": {m: img.crop(flat) for m, img in saved.items()},
        "records": row["methods"],
    }


def _mark(flag) -> str:
    return "—" if flag is None else ("yes" if flag else "NO")


def progress_line(row: dict, judging: Judging) -> str:
    o = row["original"]["worst"]
    parts = [
        f"{row['name']} {row['width']}x{row['height']}",
        f"original worst {o['pipeline']}/{o['view']} {o['score']:.1f}",
    ]
    for method, r in row["methods"].items():
        w = r["worst"]
        parts.append(
            f"{method}: defaults {_mark(r['protected_defaults'])} nearby "
            f"{_mark(r['protected_nearby'])} unseen {_mark(r['protected_unseen'])} "
            f"worst {w['pipeline']}/{w['view']} {w['score']:.1f} "
            f"PSNR {r['psnr']:.1f} {r['seconds']:.1f}s {r['steps']} steps"
        )
    return " | ".join(parts)


# --------------------------------------------------------------------------------------------
# Command line


def parse_size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    return int(w), int(h)


def main(argv: list[str] | None = None) -> int:
    one_arena()  # as the CLI does, before any thread starts
    parser = argparse.ArgumentParser(
        description="pixcamd (default platforms), pixcamd --platforms task and the task's "
        "baseline, judged by the same real platform pipelines: protection, PSNR/SSIM, cost."
    )
    parser.add_argument("inputs", nargs="+", help="photo folders and/or photos")
    parser.add_argument("--model", default="brisque", choices=("auto", "brisque", "koncept512"))
    parser.add_argument("--weights", help="KonCept512.pth (without: random weights, timing only)")
    parser.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help=f"comma-separated, from {', '.join(METHODS)}",
    )
    parser.add_argument(
        "--judge",
        default=",".join(DEFAULT_JUDGE),
        help="the pipelines every saved file is judged by: preset names or inline specs "
        "(default: the default presets, five nearby and thirteen unseen pipelines)",
    )
    parser.add_argument("--views", default="center,resize")
    parser.add_argument("--steps", type=int, default=Settings.steps, help="pixcamd steps/round")
    parser.add_argument(
        "--seed",
        type=int,
        default=Settings.seed,
        help="pixcamd's search seed: another seed takes the search down another path, so runs "
        "with two seeds show how far chance alone moves the figures",
    )
    parser.add_argument(
        "--platforms",
        default=",".join(DEFAULT_PLATFORMS),
        help="the pipelines the pixcamd method protects for (default: the default set), so a "
        "run can show what naming fewer or other destinations costs and buys",
    )
    parser.add_argument(
        "--baseline-target", type=float, help="the baseline's MSE target (default: far end)"
    )
    parser.add_argument("--limit", type=int, help="only the first N photos")
    parser.add_argument("--crop", type=parse_size, help="centre-crop photos to WxH (quick runs)")
    parser.add_argument(
        "--small", type=int, default=0, help="add N photos of ≤ 1 MP made from the inputs"
    )
    parser.add_argument("--sheet", type=int, default=3, help="photos on the contact sheet")
    parser.add_argument("--name", help="run name (default: the model's name)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--docs", type=Path, help="markdown file to put the tables into")
    parser.add_argument("--docs-img", type=Path, help="folder for the figure and contact sheet")
    parser.add_argument("--save-outputs", action="store_true", help="keep every saved file")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    try:
        judge = parse_platforms(args.judge)
        task_pipeline_name(judge)
        platforms = parse_platforms(args.platforms)
        views = parse_views(args.views)
        unknown = sorted(set(methods) - set(METHODS))
        if unknown:
            raise ValueError(f"unknown method {unknown[0]!r}: choose from {', '.join(METHODS)}")
    except ValueError as exc:
        parser.error(str(exc))
    if args.small < 0:
        parser.error("--small: give a number ≥ 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    model, timing_only = build_model(args.model, args.weights, args.device)
    name = args.name or (f"{model.name}-random-timing" if timing_only else model.name)
    options = Options(
        methods=methods,
        views=views,
        judge=judge,
        pixcamd=Settings(steps=args.steps, device=args.device, seed=args.seed, platforms=platforms),
        baseline=BaselineSettings(target=args.baseline_target),
        crop=args.crop,
        limit=args.limit,
        small=args.small,
        sheet=args.sheet,
        device=args.device,
        save_outputs=args.out / f"evaluate_{name}_files" if args.save_outputs else None,
    )
    report, sheet = evaluate(args.inputs, model, options, timing_only)
    report["harness"]["command"] = " ".join(
        ["bench/evaluate.py", *(argv if argv is not None else sys.argv[1:])]
    )
    report["harness"]["name"] = name

    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import evaluate_report  # bench/ only: figures and markdown never ship with the package
    import evaluate_tables

    outputs = evaluate_report.write_all(report, sheet, args.out, name, args.docs, args.docs_img)
    summary = evaluate_tables.clean(
        {
            "summary": report["summary"],
            "summary_small": report["summary_small"],
            "outputs": outputs,
        }
    )
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
