"""Each method of ``bench/evaluate.py`` run on one photo — pixcamd's ``protect()`` in its modes
and the task's baseline — timed, with the process's peak RSS, then judged the same way: the
saved file decoded and put through every judged pipeline, and its invisibility against the
original.
"""

from __future__ import annotations

import io
import resource
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from evaluate_baseline import BaselineSettings, baseline_ifgsm
from evaluate_judging import judge_image, numbers, verdicts
from PIL import Image

from pixcamd.check import psnr_ssim, score_image_views
from pixcamd.jpeg import decode
from pixcamd.models.base import QualityModel
from pixcamd.platforms import PRESETS, Pipeline
from pixcamd.protect import Settings, protect

PIXCAMD_MODES = {"pixcamd": "invisible", "task": "invisible", "enhance": "enhance", "auto": "auto"}


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


def method_settings(method: str, settings: Settings) -> Settings:
    """The ``protect()`` settings of one of pixcamd's methods, from the run's base settings."""
    if method == "task":
        return replace(settings, platforms=(PRESETS["task"],))
    return replace(settings, mode=PIXCAMD_MODES[method])


def run_pixcamd(image: Image.Image, model: QualityModel, settings: Settings) -> Produced:
    reset_peak_rss()
    start = time.perf_counter()
    result = protect(image, [model], settings)
    seconds = time.perf_counter() - start
    extras = {
        "mode": result.mode,
        "platforms": [p.name for p in settings.platforms],
        "enhancement": result.enhancement["description"] if result.enhancement else None,
        "enhancement_change": result.enhancement["change"] if result.enhancement else None,
        "verdict": result.verdict,
        "untouched": result.untouched,
        "margin_met": result.margin_met,
        "steps": result.steps,
        "epsilon": result.epsilon,
        "seconds_per_step": seconds / result.steps if result.steps else None,
        "checks": result.checks,
        "first_check_passed": result.first_check_passed,
        "first_check_protected": result.first_check_protected,
        "self_reported_protected": result.protected,
        "self_reported_protected_on": dict(result.protected_on),
        "self_reported_after": {p: per[model.name] for p, per in result.after_jpeg.items()},
        "self_reported_worst": result.worst,
        "_pipelines": {p.name: p for p in settings.platforms},  # dropped once compared
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
    extras = {
        "steps": settings.steps,
        "seconds_per_step": attack / settings.steps,
        "seconds_attack": attack,
        "checks": None,  # the baseline never checks
        "first_check_passed": None,
        "first_check_protected": None,
        **info,
    }
    return Produced(pixels, buffer.getvalue(), "PNG", seconds, peak_rss_mb(), extras)


@dataclass
class Judging:
    """What every method is judged by, for one run."""

    model: QualityModel
    views: tuple[str, ...]
    pipelines: tuple[Pipeline, ...]
    groups: dict[str, str]  # pipeline name → group
    task_name: str


def self_report_agreement(record: dict, judging: Judging) -> None:
    """pixcamd's own verdict per pipeline against the harness's, on the pipelines both judged
    (matched by their numbers); the largest score difference on those (pipeline, view) pairs."""
    own = record.pop("_pipelines", None)
    if own is None:
        return
    by_numbers = {numbers(p): p.name for p in judging.pipelines}
    agree, diff, compared = True, 0.0, []
    for name, pipeline in own.items():
        ours = by_numbers.get(numbers(pipeline))
        if ours is None:
            continue
        compared.append(ours)
        agree &= record["self_reported_protected_on"][name] == record["protected_on"][ours]
        for view, score in record["self_reported_after"][name].items():
            if view in record["judged"][ours]:
                diff = max(diff, abs(score - record["judged"][ours][view]))
    record["self_report_pipelines_compared"] = compared
    record["agrees_with_self_report"] = agree if compared else None
    record["self_report_max_score_difference"] = diff if compared else None


def judge_method(
    original: Image.Image,
    produced: Produced,
    judging: Judging,
    boxes: dict[str, tuple[int, int, int, int]],
    megapixels: float,
) -> tuple[dict, Image.Image]:
    """The same check for every method: decode the saved file, put it through every judged
    pipeline, score every view; invisibility against the original."""
    model = judging.model
    saved = decode(produced.file)
    after = score_image_views(produced.pixels, [model], judging.views)[model.name]
    scores, _ = judge_image(saved, model, judging.views, judging.pipelines)
    record: dict = {"after": after, **verdicts(scores, model, judging.groups, judging.task_name)}
    record["psnr"], record["ssim"] = psnr_ssim(original, saved)
    for key, (left, top, w, h) in boxes.items():
        crop = (left, top, left + w, top + h)
        record[f"psnr_{key}"], record[f"ssim_{key}"] = psnr_ssim(
            original.crop(crop), saved.crop(crop)
        )
    left, top, w, h = boxes["center"]
    orig = np.asarray(original, dtype=np.int16)
    changed_pixels = np.abs(np.asarray(produced.pixels, dtype=np.int16) - orig)
    record["linf"] = int(changed_pixels.max())
    del changed_pixels
    changed_file = np.abs(np.asarray(saved, dtype=np.int16) - orig)
    record["linf_file"] = int(changed_file.max())
    moved = np.any(changed_file != 0, axis=2)
    del changed_file
    record["changed_fraction"] = float(moved.mean())
    record["changed_outside_center"] = int(
        moved.sum() - moved[top : top + h, left : left + w].sum()
    )
    record.update(
        {
            "seconds": produced.seconds,
            "seconds_per_mp": produced.seconds / megapixels,
            "peak_rss_mb": produced.peak_rss_mb,
            "file_format": produced.file_format,
            "file_bytes": len(produced.file),
            **produced.extras,
        }
    )
    self_report_agreement(record, judging)
    return record, saved
