"""The totals of a ``bench/evaluate.py`` run: protection rates per group, pipeline and (pipeline,
view), invisibility, cost, and the ratios between methods over the same photos.
"""

from __future__ import annotations

import statistics
from collections import Counter

import numpy as np


def _finite(values) -> list:
    return [v for v in values if v is not None and np.isfinite(v)]


def _mean(values):
    values = _finite(values)
    return statistics.mean(values) if values else None


def _min(values):
    values = _finite(values)
    return min(values) if values else None


def _median(values):
    values = _finite(values)
    return statistics.median(values) if values else None


def _rate(flags) -> float | None:
    flags = [f for f in flags if f is not None]
    return sum(flags) / len(flags) if flags else None


def protection_figures(recs: list[dict], pipelines: list[str], views) -> dict:
    """Rates and means over records that hold ``verdicts()``'s keys."""
    n = len(recs)
    worst = Counter(f"{r['worst']['pipeline']}/{r['worst']['view']}" for r in recs)
    worst_pipeline = Counter(r["worst"]["pipeline"] for r in recs)
    return {
        "photos": n,
        "protection_rate_defaults": _rate(r["protected_defaults"] for r in recs),
        "protection_rate_presets": _rate(r["protected_presets"] for r in recs),
        "protection_rate_nearby": _rate(r["protected_nearby"] for r in recs),
        "protection_rate_unseen": _rate(r["protected_unseen"] for r in recs),
        "protection_rate_all": _rate(r["protected_all"] for r in recs),
        "pipeline_rates": {p: _rate(r["protected_on"][p] for r in recs) for p in pipelines},
        "pair_rates": {
            p: {v: _rate(r["low"][p][v] for r in recs) for v in views} for p in pipelines
        },
        "mean_scores": {
            p: {v: _mean(r["judged"][p][v] for r in recs) for v in views} for p in pipelines
        },
        "accuracy": _rate(r["center_good_task"] for r in recs),
        "worst_counts": dict(worst.most_common()),
        "worst_most_often": worst.most_common(1)[0][0] if worst else None,
        "worst_pipeline_counts": dict(worst_pipeline.most_common()),
    }


def summarize_method(rows: list[dict], method: str, pipelines: list[str], views) -> dict:
    taken = [r for r in rows if method in r["methods"]]
    recs = [r["methods"][method] for r in taken]
    if not recs:
        return {"photos": 0}
    mp = sum(r["megapixels"] for r in taken)
    seconds = [r["seconds"] for r in recs]
    firsts = [r.get("first_check_passed") for r in recs]
    ran_check = [f for f in firsts if f is not None]
    called = [r.get("first_check_protected") for r in recs]
    called = [f for f in called if f is not None]
    agreement = [r.get("agrees_with_self_report") for r in recs]
    out = protection_figures(recs, pipelines, views)
    out.update(
        {
            "psnr_mean": _mean(r["psnr"] for r in recs),
            "psnr_min": _min(r["psnr"] for r in recs),
            "ssim_mean": _mean(r["ssim"] for r in recs),
            "ssim_min": _min(r["ssim"] for r in recs),
        }
    )
    for key in ("center", "flat"):
        out.update(
            {
                f"psnr_{key}_mean": _mean(r[f"psnr_{key}"] for r in recs),
                f"psnr_{key}_min": _min(r[f"psnr_{key}"] for r in recs),
                f"ssim_{key}_mean": _mean(r[f"ssim_{key}"] for r in recs),
                f"ssim_{key}_min": _min(r[f"ssim_{key}"] for r in recs),
            }
        )
    out.update(
        {
            "linf_max": max(r["linf"] for r in recs),
            "linf_file_max": max(r["linf_file"] for r in recs),
            "changed_fraction_mean": _mean(r["changed_fraction"] for r in recs),
            "seconds_total": sum(seconds),
            "seconds_mean": statistics.mean(seconds),
            "seconds_median": statistics.median(seconds),
            "seconds_per_mp": sum(seconds) / mp,
            "seconds_per_mp_median": statistics.median(r["seconds_per_mp"] for r in recs),
            "peak_rss_mb_max": max(r["peak_rss_mb"] for r in recs),
            "steps_mean": _mean(r["steps"] for r in recs),
            "steps_median": _median(r["steps"] for r in recs),
            "seconds_per_step_median": _median(r.get("seconds_per_step") for r in recs),
            "checks_mean": _mean(r.get("checks") for r in recs),
            "checks_median": _median(r.get("checks") for r in recs),
            # Photos whose search ran a real check, and how many of those passed the first one
            # (the others were untouched, or never reached their targets in the loop).
            "first_check_photos": len(ran_check),
            "first_check_passed": sum(ran_check),
            "first_check_pass_rate": _rate(ran_check),
            # Photos whose loop called a real check on its estimate (every view low, or every
            # target met), and how many of those the first such check found protected.
            "estimate_check_photos": len(called),
            "estimate_check_protected": sum(called),
            "estimate_check_rate": _rate(called),
            "untouched": sum(bool(r.get("untouched")) for r in recs),
            "agrees_with_self_report": _rate(agreement),
        }
    )
    return out


def summarize_original(rows: list[dict], pipelines: list[str], views) -> dict:
    if not rows:
        return {"photos": 0}
    return protection_figures([r["original"] for r in rows], pipelines, views)


def _ratio(a, b):
    if a is None or b is None:
        return None
    if b == 0:
        return None if a == 0 else float("inf")
    return a / b


def ratios(rows: list[dict], ours: str, base: str, summary: dict) -> dict:
    """``ours`` ÷ ``base`` over the same photos: time as the ratio of the means, of the medians,
    and the mean and median of the per-photo ratios; PSNR also as a difference in dB."""
    a, b = summary.get(ours, {}), summary.get(base, {})
    if not a.get("photos") or not b.get("photos"):
        return {}
    per_photo = [
        _ratio(r["methods"][ours]["seconds"], r["methods"][base]["seconds"])
        for r in rows
        if ours in r["methods"] and base in r["methods"]
    ]

    def db(key):
        return None if a[key] is None or b[key] is None else a[key] - b[key]

    return {
        "seconds": _ratio(a["seconds_mean"], b["seconds_mean"]),
        "seconds_median": _ratio(a["seconds_median"], b["seconds_median"]),
        "seconds_per_photo_ratio_mean": _mean(per_photo),
        "seconds_per_photo_ratio_median": _median(per_photo),
        "seconds_per_mp": _ratio(a["seconds_per_mp"], b["seconds_per_mp"]),
        "steps_median": _ratio(a["steps_median"], b["steps_median"]),
        "psnr": _ratio(a["psnr_mean"], b["psnr_mean"]),
        "psnr_db_difference": db("psnr_mean"),
        "psnr_center": _ratio(a["psnr_center_mean"], b["psnr_center_mean"]),
        "psnr_center_db_difference": db("psnr_center_mean"),
        "psnr_flat_db_difference": db("psnr_flat_mean"),
        "protection_defaults": _ratio(a["protection_rate_defaults"], b["protection_rate_defaults"]),
        "peak_rss": _ratio(a["peak_rss_mb_max"], b["peak_rss_mb_max"]),
    }


RATIO_PAIRS = (
    ("pixcamd", "task"),
    ("pixcamd", "baseline"),
    ("task", "baseline"),
    ("enhance", "pixcamd"),
    ("auto", "pixcamd"),
)


def summarize(rows: list[dict], methods, pipelines: list[str], views) -> dict:
    summary: dict = {"original": summarize_original(rows, pipelines, views)}
    for method in methods:
        summary[method] = summarize_method(rows, method, pipelines, views)
    pairs = {
        f"{a}/{b}": ratios(rows, a, b, summary)
        for a, b in RATIO_PAIRS
        if a in methods and b in methods
    }
    summary["ratios"] = {k: v for k, v in pairs.items() if v}
    return summary
