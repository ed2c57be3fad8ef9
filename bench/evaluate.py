"""Evaluation harness: pixcamd and the task's published baseline, measured the same way.

    .venv/bin/python bench/evaluate.py DIR_OR_PHOTO... [--model brisque|koncept512]
        [--weights KonCept512.pth] [--methods pixcamd,enhance,auto,baseline]
        [--views center,resize]
        [--limit N] [--crop WxH] [--sheet 3] [--name NAME] [--out bench/out]
        [--docs docs/benchmarks.md] [--docs-img docs/img] [--save-outputs]

Every method runs on the same photos with the same BIQA and is judged by the same check: its
saved file is decoded, recompressed by Pillow at JPEG quality 90 (4:2:0, as the task did) and
every view is scored. Per photo and in total it reports scores before / after / after JPEG-90
per view, the protection rate (every view on the low-quality side after JPEG-90) and per-view
rates, the task's accuracy (share of photos still judged good on the ``center`` view after
JPEG-90), PSNR and SSIM of the saved file (whole photo and centre crop), the L∞ actually used,
seconds, seconds per megapixel, peak RSS, the machine and the model fingerprint.

Methods:

* ``pixcamd`` — ``pixcamd.protect.protect()`` with its default settings (invisible mode; the
  informational platform scores off, they never change the pixels); the saved file is
  ``Result.output_jpeg`` (JPEG 95, 4:4:4).
* ``enhance``, ``auto`` — the same in ``mode = "enhance"`` (the colour filter alone) and
  ``mode = "auto"`` (the filter, then the invisible perturbation where it falls short); the
  filter's description is recorded per photo.
* ``baseline`` — the MediaEval 2020 Pixel Privacy baseline re-implemented (see
  ``baseline_ifgsm``): I-FGSM on the 512×384 centre view, ε = α = 0.05 in the task's [−1, 1]
  input space (0.025 in [0, 1], 6.4 grey levels), 20 steps, MSE towards the far end of the
  model's scale, no JPEG awareness; rounded to 8 bits, pasted back into the full photo, saved
  losslessly as PNG (as participants submitted).

KonCept512 without real weights (none given with ``--weights``, none installed) runs with RANDOM
weights plus a constant score offset so every photo starts "good" and both methods do their full
work: TIMING ONLY, labelled so in every output; its protection figures mean nothing.

Outputs (default ``bench/out/``, git-ignored): ``evaluate_NAME.json`` (everything),
``evaluate_NAME.md`` (tables), ``evaluate_NAME.png`` (score distributions before/after; PSNR
against the worst view's score; needs the ``bench`` extra: matplotlib) and
``evaluate_NAME_sheet.jpg`` (original, protected, difference ×20 for a few photos). ``--docs``
puts the tables into that markdown file between ``<!-- evaluate:begin -->`` and
``<!-- evaluate:end -->`` (in a block of their own per NAME); ``--docs-img`` also copies the
figure and a downscaled contact sheet there.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from pixcamd.check import psnr_ssim, score_image_views
from pixcamd.jpeg import decode, recompress
from pixcamd.models import load_model, resolve_name
from pixcamd.models.base import QualityModel
from pixcamd.models.weights import default_weights_path
from pixcamd.photo import load_photo, to_image, to_tensor
from pixcamd.protect import Settings, protect
from pixcamd.views import parse_views, plan_views

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "out"
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".heic", ".heif", ".bmp"}
METHODS = ("pixcamd", "enhance", "auto", "baseline")
PIXCAMD_MODES = {"pixcamd": "invisible", "enhance": "enhance", "auto": "auto"}  # → Settings.mode
TIMING_OFFSET = 75.0  # random KonCept512 scores ≈ 0: shift them onto the "good" side


# --------------------------------------------------------------------------------------------
# The baseline: the task's published I-FGSM


@dataclass(frozen=True)
class BaselineSettings:
    """The task's I-FGSM. ε and α are in the task's [−1, 1] input space (x − 0.5) / 0.5."""

    epsilon: float = 0.05
    alpha: float = 0.05
    steps: int = 20
    target: float | None = None  # MSE target; None = the far (worst) end of the model's scale
    png_compress_level: int = 1  # lossless either way; the fastest level keeps zlib out of it

    def target_for(self, model: QualityModel) -> float:
        return self.target if self.target is not None else far_end(model)


def far_end(model: QualityModel) -> float:
    """The MSE target: the worst end of the model's scale, as the task pulled KonCept512 to 0.

    BRISQUE is lower-is-better and unbounded above in practice: nominally 0–100 (the LIVE DMOS
    range its SVR regresses), yet attacked views score up to ~170. A target of 100 would turn the
    attack back whenever it overshoots 100 (seen: 167 after one step, then swings between 24 and
    138), a handicap the task's baseline never had against KonCept512. So the far end is 1000,
    beyond any score reached: the loss then always pushes towards lower quality. With signed
    steps only the sign of (score − target) matters, so any target above the reachable scores
    gives the same attack.
    """
    return 0.0 if model.higher_is_better else 1000.0


def centre_box(width: int, height: int, model: QualityModel) -> tuple[int, int, int, int]:
    """(left, top, width, height) of the task's centre view, as ``pixcamd.views`` places it."""
    return plan_views(width, height, ("center",), model.view_size)[0].box


def baseline_ifgsm(
    image: Image.Image,
    model: QualityModel,
    settings: BaselineSettings = BaselineSettings(),
    device: str = "cpu",
) -> tuple[Image.Image, dict]:
    """The task's baseline on the centre view, lifted back into the full photo.

    x ← clip_{x₀±ε}(x − α·sign(∇ₓ MSE(score(x), target))), 20 times, on the 512×384 centre crop
    at native resolution, in [0, 1] with ε and α halved from the [−1, 1] space (the model
    normalizes inside); no JPEG in the loop. The crop is rounded to 8 bits and pasted back:
    every pixel outside the centre view is the original's.
    """
    width, height = image.size
    vh, vw = model.view_size
    if width < vw or height < vh:
        raise ValueError(f"photo {width}×{height} is smaller than the {vw}×{vh} centre view")
    left, top, w, h = centre_box(width, height, model)
    crop = image.crop((left, top, left + w, top + h))
    x0 = to_tensor(crop).to(device)
    eps, alpha = settings.epsilon / 2, settings.alpha / 2
    target = torch.full((1,), settings.target_for(model), device=device)
    x = x0.clone()
    for _ in range(settings.steps):
        x.requires_grad_(True)
        loss = F.mse_loss(model(x).float(), target)
        (grad,) = torch.autograd.grad(loss, x)
        with torch.no_grad():
            x = x - alpha * grad.sign()
            x = torch.minimum(torch.maximum(x, x0 - eps), x0 + eps).clamp(0, 1)
    out = image.copy()
    out.paste(to_image(x.detach().cpu()), (left, top))
    return out, {"box": [left, top, w, h], "target": settings.target_for(model)}


# --------------------------------------------------------------------------------------------
# Measuring


def reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark of this process (Linux ≥ 4.0); False if not."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """VmHWM (since the last reset) in MB; the process-lifetime peak where that is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Produced:
    """What a method made of one photo: its pixels, its saved file and what that cost."""

    pixels: Image.Image
    file: bytes
    file_format: str
    seconds: float
    peak_rss_mb: float
    extras: dict = field(default_factory=dict)


def run_pixcamd(image: Image.Image, model: QualityModel, settings: Settings) -> Produced:
    reset_peak_rss()
    start = time.perf_counter()
    result = protect(image, [model], settings)
    seconds = time.perf_counter() - start
    extras = {
        "mode": result.mode,
        "enhancement": result.enhancement["description"] if result.enhancement else None,
        "enhancement_change": result.enhancement["change"] if result.enhancement else None,
        "verdict": result.verdict,
        "untouched": result.untouched,
        "margin_met": result.margin_met,
        "steps": result.steps,
        "epsilon": result.epsilon,
        "seconds_per_step": seconds / result.steps if result.steps else None,
        "self_reported_protected": result.protected,
        "self_reported_after_jpeg90": result.after_jpeg[model.name],
    }
    return Produced(result.image, result.output_jpeg, "JPEG", seconds, peak_rss_mb(), extras)


def run_baseline(
    image: Image.Image, model: QualityModel, settings: BaselineSettings, device: str
) -> Produced:
    reset_peak_rss()
    start = time.perf_counter()
    pixels, info = baseline_ifgsm(image, model, settings, device)
    attack = time.perf_counter() - start
    buffer = io.BytesIO()
    pixels.save(buffer, format="PNG", compress_level=settings.png_compress_level)
    seconds = time.perf_counter() - start
    extras = {"steps": settings.steps, "seconds_attack": attack, **info}
    return Produced(pixels, buffer.getvalue(), "PNG", seconds, peak_rss_mb(), extras)


def scores_of(img: Image.Image, model: QualityModel, views) -> tuple[dict, dict]:
    check = score_image_views(img, [model], views)
    return check.scores[model.name], check.low[model.name]


def judge(
    original: Image.Image,
    produced: Produced,
    model: QualityModel,
    views,
    quality: int,
    box: tuple[int, int, int, int],
    megapixels: float,
) -> tuple[dict, Image.Image]:
    """The same check for every method: decode the saved file, JPEG-90 it, score every view."""
    saved = decode(produced.file)
    after, _ = scores_of(produced.pixels, model, views)
    after_jpeg, low = scores_of(recompress(saved, quality), model, views)
    psnr, ssim = psnr_ssim(original, saved)
    left, top, w, h = box
    crop = (left, top, left + w, top + h)
    psnr_c, ssim_c = psnr_ssim(original.crop(crop), saved.crop(crop))
    orig = np.asarray(original, dtype=np.int16)
    changed_pixels = np.asarray(produced.pixels, dtype=np.int16) - orig
    changed_file = np.asarray(saved, dtype=np.int16) - orig
    moved = np.any(changed_file != 0, axis=2)
    outside = int(moved.sum() - moved[top : top + h, left : left + w].sum())
    record = {
        "after": after,
        "after_jpeg90": after_jpeg,
        "low_after_jpeg90": low,
        "protected": all(low.values()),
        "center_good_after_jpeg90": bool(model.is_good(after_jpeg["center"])),
        "psnr": psnr,
        "ssim": ssim,
        "psnr_center": psnr_c,
        "ssim_center": ssim_c,
        "linf": int(np.abs(changed_pixels).max()),
        "linf_file": int(np.abs(changed_file).max()),
        "changed_fraction": float(moved.mean()),
        "changed_outside_center": outside,
        "seconds": produced.seconds,
        "seconds_per_mp": produced.seconds / megapixels,
        "peak_rss_mb": produced.peak_rss_mb,
        "file_format": produced.file_format,
        "file_bytes": len(produced.file),
        **produced.extras,
    }
    if "self_reported_protected" in record:
        record["agrees_with_self_report"] = record["self_reported_protected"] == record["protected"]
    return record, saved


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
# Photos


def find_photos(inputs: list[str | Path]) -> list[Path]:
    photos: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            photos += sorted(
                p for p in item.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES
            )
        else:
            photos.append(item)
    return photos


def centre_crop(image: Image.Image, size: tuple[int, int] | None) -> Image.Image:
    if size is None or (image.width <= size[0] and image.height <= size[1]):
        return image
    w, h = min(size[0], image.width), min(size[1], image.height)
    left, top = (image.width - w) // 2, (image.height - h) // 2
    return image.crop((left, top, left + w, top + h))


# --------------------------------------------------------------------------------------------
# Totals


def _mean(values):
    values = [v for v in values if v is not None and np.isfinite(v)]
    return statistics.mean(values) if values else None


def _min(values):
    values = [v for v in values if v is not None and np.isfinite(v)]
    return min(values) if values else None


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize_method(rows: list[dict], method: str, views) -> dict:
    recs = [r["methods"][method] for r in rows if method in r["methods"]]
    if not recs:
        return {"photos": 0}
    n = len(recs)
    mp = sum(r["megapixels"] for r in rows if method in r["methods"])
    seconds = [r["seconds"] for r in recs]
    return {
        "photos": n,
        "protection_rate": sum(r["protected"] for r in recs) / n,
        "view_rates": {v: sum(r["low_after_jpeg90"][v] for r in recs) / n for v in views},
        "accuracy": sum(r["center_good_after_jpeg90"] for r in recs) / n,
        "mean_after_jpeg90": {v: _mean(r["after_jpeg90"][v] for r in recs) for v in views},
        "psnr_mean": _mean(r["psnr"] for r in recs),
        "psnr_min": _min(r["psnr"] for r in recs),
        "psnr_center_mean": _mean(r["psnr_center"] for r in recs),
        "psnr_center_min": _min(r["psnr_center"] for r in recs),
        "ssim_mean": _mean(r["ssim"] for r in recs),
        "ssim_min": _min(r["ssim"] for r in recs),
        "ssim_center_mean": _mean(r["ssim_center"] for r in recs),
        "ssim_center_min": _min(r["ssim_center"] for r in recs),
        "linf_max": max(r["linf"] for r in recs),
        "linf_file_max": max(r["linf_file"] for r in recs),
        "changed_fraction_mean": _mean(r["changed_fraction"] for r in recs),
        "seconds_total": sum(seconds),
        "seconds_mean": statistics.mean(seconds),
        "seconds_median": statistics.median(seconds),
        "seconds_per_mp": sum(seconds) / mp,
        "seconds_per_mp_median": statistics.median(r["seconds_per_mp"] for r in recs),
        "peak_rss_mb_max": max(r["peak_rss_mb"] for r in recs),
        "steps_median": statistics.median(r["steps"] for r in recs),
        "seconds_per_step_median": _median(r.get("seconds_per_step") for r in recs),
    }


def summarize_original(rows: list[dict], views) -> dict:
    n = len(rows)
    if not n:
        return {"photos": 0}
    return {
        "photos": n,
        "protection_rate": sum(all(r["low_before_jpeg90"].values()) for r in rows) / n,
        "view_rates": {v: sum(r["low_before_jpeg90"][v] for r in rows) / n for v in views},
        "accuracy": sum(r["center_good_before_jpeg90"] for r in rows) / n,
        "mean_after_jpeg90": {v: _mean(r["before_jpeg90"][v] for r in rows) for v in views},
    }


def _ratio(a, b):
    if a is None or b is None:
        return None
    if b == 0:
        return None if a == 0 else float("inf")
    return a / b


def ratios(ours: dict, base: dict) -> dict:
    """``ours`` ÷ ``base``; PSNR also as a difference in dB (the more telling figure)."""
    if not ours.get("photos") or not base.get("photos"):
        return {}
    return {
        "seconds": _ratio(ours["seconds_mean"], base["seconds_mean"]),
        "seconds_median": _ratio(ours["seconds_median"], base["seconds_median"]),
        "seconds_per_mp": _ratio(ours["seconds_per_mp"], base["seconds_per_mp"]),
        "psnr": _ratio(ours["psnr_mean"], base["psnr_mean"]),
        "psnr_db_difference": ours["psnr_mean"] - base["psnr_mean"],
        "psnr_center": _ratio(ours["psnr_center_mean"], base["psnr_center_mean"]),
        "psnr_center_db_difference": ours["psnr_center_mean"] - base["psnr_center_mean"],
        "protection": _ratio(ours["protection_rate"], base["protection_rate"]),
        "peak_rss": _ratio(ours["peak_rss_mb_max"], base["peak_rss_mb_max"]),
    }


def machine() -> dict:
    info: dict = {}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = (s.strip() for s in line.partition(":"))
            if key in ("model name", "cpu family", "model", "vendor_id") and key not in info:
                info[key] = value
            if key == "flags" and "flags" not in info:
                info["flags"] = "avx512f" if "avx512f" in value.split() else "no avx512f"
    memory = None
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        first = meminfo.read_text().splitlines()[0].split()
        memory = round(int(first[1]) / 1024**2, 1)
    import kornia
    import PIL

    return {
        "cpu": info.get("model name") or platform.processor() or platform.machine(),
        "cpu_vendor": info.get("vendor_id"),
        "cpu_family_model": f"{info.get('cpu family')}/{info.get('model')}",
        "cpu_flags": info.get("flags"),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gb": memory,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "kornia": kornia.__version__,
        "pillow": PIL.__version__,
        "numpy": np.__version__,
    }


# --------------------------------------------------------------------------------------------
# The run


@dataclass
class Options:
    methods: tuple[str, ...] = METHODS
    views: tuple[str, ...] = ("center", "resize")
    quality: int = 90
    pixcamd: Settings = field(default_factory=Settings)
    baseline: BaselineSettings = field(default_factory=BaselineSettings)
    crop: tuple[int, int] | None = None
    limit: int | None = None
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
    settings = Settings(
        **{**asdict(options.pixcamd), "views": views, "platform_quality": options.quality}
    )
    paths = find_photos(inputs)[: options.limit]
    pick = set(np.linspace(0, len(paths) - 1, options.sheet).round().astype(int).tolist())
    if not options.sheet or not paths:
        pick = set()
    rows, skipped, sheet = [], [], []
    load_start = os.getloadavg()
    warm_up(model, options.device)
    started = time.perf_counter()
    for index, path in enumerate(paths):
        original = centre_crop(load_photo(path), options.crop)
        vh, vw = model.view_size
        if original.width < vw or original.height < vh:
            skipped.append({"photo": str(path), "why": f"smaller than the {vw}×{vh} views"})
            continue
        megapixels = original.width * original.height / 1e6
        box = centre_box(original.width, original.height, model)
        before, _ = scores_of(original, model, views)
        before_jpeg, low_before = scores_of(recompress(original, options.quality), model, views)
        row = {
            "photo": str(path),
            "name": path.name,
            "width": original.width,
            "height": original.height,
            "megapixels": megapixels,
            "center_box": list(box),
            "before": before,
            "before_jpeg90": before_jpeg,
            "low_before_jpeg90": low_before,
            "center_good_before_jpeg90": bool(model.is_good(before_jpeg["center"])),
            "load_average_1min": os.getloadavg()[0],
            "methods": {},
        }
        saved_files = {}
        for method in options.methods:
            if method in PIXCAMD_MODES:
                mode = replace(settings, mode=PIXCAMD_MODES[method])
                produced = run_pixcamd(original, model, mode)
            else:
                produced = run_baseline(original, model, options.baseline, options.device)
            record, saved = judge(
                original, produced, model, views, options.quality, box, megapixels
            )
            row["methods"][method] = record
            saved_files[method] = saved
            if options.save_outputs is not None:
                folder = options.save_outputs / method
                folder.mkdir(parents=True, exist_ok=True)
                suffix = ".jpg" if produced.file_format == "JPEG" else ".png"
                (folder / (path.stem + suffix)).write_bytes(produced.file)
        rows.append(row)
        if index in pick:
            sheet.append(sheet_material(row, original, saved_files))
        print(progress_line(row, views), file=log, flush=True)
    report = {
        "harness": {
            "script": "bench/evaluate.py",
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "inputs": [str(i) for i in inputs],
            "crop": list(options.crop) if options.crop else None,
            "views": list(views),
            "jpeg_check": f"Pillow JPEG quality {options.quality} (4:2:0) of the saved file",
            "seconds_wall": time.perf_counter() - started,
            # The CPU may be shared: load averages (1, 5, 15 min) put the timings in context.
            "load_average_start": list(load_start),
            "load_average_end": list(os.getloadavg()),
        },
        "machine": machine(),
        "model": {**model.describe(), "timing_only": timing_only},
        "settings": {
            "pixcamd": {**asdict(settings), "output": "JPEG 95 4:4:4 (Result.output_jpeg)"},
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
        "skipped": skipped,
        "summary": summarize(rows, options.methods, views),
    }
    return report, sheet


def summarize(rows: list[dict], methods, views) -> dict:
    summary = {"original": summarize_original(rows, views)}
    for method in methods:
        summary[method] = summarize_method(rows, method, views)
    if "pixcamd" in summary and "baseline" in summary:
        summary["ratios"] = ratios(summary["pixcamd"], summary["baseline"])
    # The modes against the invisible one, run on the same photos in the same process.
    versus = {
        m: ratios(summary[m], summary["pixcamd"])
        for m in ("enhance", "auto")
        if m in summary and "pixcamd" in summary
    }
    if any(versus.values()):
        summary["ratios_vs_invisible"] = versus
    return summary


def sheet_material(row: dict, original: Image.Image, saved: dict[str, Image.Image]) -> dict:
    """Centre crops (native resolution) and a thumbnail: enough for the contact sheet."""
    left, top, w, h = row["center_box"]
    crop = (left, top, left + w, top + h)
    thumb = original.copy()
    thumb.thumbnail((w, h))
    return {
        "name": row["name"],
        "box": row["center_box"],
        "size": (original.width, original.height),
        "thumbnail": thumb,
        "original": original.crop(crop),
        "methods": {m: img.crop(crop) for m, img in saved.items()},
        "records": row["methods"],
    }


def progress_line(row: dict, views) -> str:
    parts = [f"{row['name']} {row['width']}x{row['height']}"]
    parts.append("before " + "/".join(f"{row['before_jpeg90'][v]:.1f}" for v in views))
    for method, r in row["methods"].items():
        scores = "/".join(f"{r['after_jpeg90'][v]:.1f}" for v in views)
        verdict = "protected" if r["protected"] else "NOT protected"
        parts.append(
            f"{method} {scores} {verdict} PSNR {r['psnr']:.1f} L∞ {r['linf']} {r['seconds']:.1f}s"
        )
    return " | ".join(parts)


# --------------------------------------------------------------------------------------------
# Command line


def parse_size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    return int(w), int(h)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="pixcamd vs the task's baseline: protection after JPEG-90, PSNR/SSIM, cost."
    )
    parser.add_argument("inputs", nargs="+", help="photo folders and/or photos")
    parser.add_argument("--model", default="brisque", choices=("auto", "brisque", "koncept512"))
    parser.add_argument("--weights", help="KonCept512.pth (without: random weights, timing only)")
    parser.add_argument("--methods", default="pixcamd,baseline")
    parser.add_argument("--views", default="center,resize")
    parser.add_argument("--quality", type=int, default=90, help="the platform's JPEG quality")
    parser.add_argument("--steps", type=int, default=Settings.steps, help="pixcamd steps/round")
    parser.add_argument(
        "--baseline-target", type=float, help="the baseline's MSE target (default: far end)"
    )
    parser.add_argument("--limit", type=int, help="only the first N photos")
    parser.add_argument("--crop", type=parse_size, help="centre-crop photos to WxH (quick runs)")
    parser.add_argument("--sheet", type=int, default=3, help="photos on the contact sheet")
    parser.add_argument("--name", help="run name (default: the model's name)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--docs", type=Path, help="markdown file to put the tables into")
    parser.add_argument("--docs-img", type=Path, help="folder for the figure and contact sheet")
    parser.add_argument("--save-outputs", action="store_true", help="keep every saved file")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    model, timing_only = build_model(args.model, args.weights, args.device)
    name = args.name or (f"{model.name}-random-timing" if timing_only else model.name)
    options = Options(
        methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()),
        views=parse_views(args.views),
        quality=args.quality,
        pixcamd=Settings(steps=args.steps, platform_checks=False, device=args.device),
        baseline=BaselineSettings(target=args.baseline_target),
        crop=args.crop,
        limit=args.limit,
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

    outputs = evaluate_report.write_all(report, sheet, args.out, name, args.docs, args.docs_img)
    summary = evaluate_report.clean({"summary": report["summary"], "outputs": outputs})
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
