"""Outputs of ``bench/evaluate.py`` in words: the JSON and the markdown tables.

The labels and the method order here are shared with ``evaluate_images`` (the figure and the
contact sheets); ``evaluate_report.write_all`` writes both.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

BEGIN, END = "<!-- evaluate:begin -->", "<!-- evaluate:end -->"
LABELS = {
    "original": "original photo",
    "pixcamd": "pixcamd (default platforms)",
    "task": "pixcamd --platforms task",
    "enhance": "pixcamd enhance",
    "auto": "pixcamd auto",
    "baseline": "baseline (task I-FGSM)",
}
METHODS = ("pixcamd", "task", "enhance", "auto", "baseline")  # table and figure order
GROUP_LABELS = {
    "default": "default set",
    "preset": "other preset",
    "nearby": "nearby",
    "unseen": "unseen",
}
GROUP_RATES = {
    "default": "protection_rate_defaults",
    "preset": "protection_rate_presets",
    "nearby": "protection_rate_nearby",
    "unseen": "protection_rate_unseen",
}
RATIO_LABELS = {
    "pixcamd/task": "pixcamd ÷ task",
    "pixcamd/baseline": "pixcamd ÷ baseline",
    "task/baseline": "task ÷ baseline",
    "enhance/pixcamd": "enhance ÷ pixcamd",
    "auto/pixcamd": "auto ÷ pixcamd",
}


# --------------------------------------------------------------------------------------------
# JSON


def clean(value):
    """JSON without NaN/Infinity: non-finite floats become strings ("inf")."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def write_json(report: dict, path: Path) -> None:
    path.write_text(json.dumps(clean(report), indent=2, allow_nan=False) + "\n")


# --------------------------------------------------------------------------------------------
# Markdown


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.0f} %"


def _num(x, fmt: str = ".1f") -> str:
    if x is None:
        return "—"
    if isinstance(x, float) and math.isinf(x):
        return "∞"
    return format(x, fmt)


def _times(x) -> str:
    if x is None:
        return "—"
    return "∞" if isinstance(x, float) and math.isinf(x) else f"×{x:.2f}"


def _db(x) -> str:
    return "—" if x is None else f"{x:+.1f} dB"


def _pair(a, b, fmt: str = ".1f") -> str:
    return f"{_num(a, fmt)} / {_num(b, fmt)}"


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(head: list[str], rows: list[list]) -> list[str]:
    return [_row(head), "|" + "---|" * len(head), *(_row(r) for r in rows)]


def title(report: dict) -> str:
    model = report["model"]
    label = model["model"]
    if model.get("timing_only"):
        label += " — RANDOM WEIGHTS, TIMING ONLY"
    small = report.get("small_photos") or []
    extra = f" + {len(small)} small" if small else ""
    return f"{label}: {len(report['photos'])} photos{extra}"


def methods_of(summary: dict) -> list[str]:
    return [m for m in METHODS if summary.get(m, {}).get("photos")]


def first_check(r: dict) -> str:
    """The first real check the loop's estimate called for: found protected / photos that ran
    one (reports before that figure existed: the first check called sure of every target)."""
    if "estimate_check_photos" in r:
        keys = ("estimate_check_protected", "estimate_check_photos", "estimate_check_rate")
    else:
        keys = ("first_check_passed", "first_check_photos", "first_check_pass_rate")
    done, photos, rate = keys
    if not r.get(photos):
        return "—"
    return f"{r[done]}/{r[photos]} ({_pct(r[rate])})"


def protection_table(s: dict, pipelines: list[dict]) -> list[str]:
    """Rows original + methods; columns the groups, each pipeline, the task's accuracy."""
    groups = [g for g in GROUP_LABELS if any(p["group"] == g for p in pipelines)]
    head = [""] + [f"all {GROUP_LABELS[g]}" for g in groups]
    head += [p["name"] + ("" if p["group"] == "default" else " *") for p in pipelines]
    head += ["task accuracy"]
    rows = []
    for key in ["original", *methods_of(s)]:
        r = s[key]
        if not r.get("photos"):
            continue
        cells = [LABELS[key]]
        cells += [_pct(r[GROUP_RATES[g]]) for g in groups]
        cells += [_pct(r["pipeline_rates"][p["name"]]) for p in pipelines]
        cells.append(_pct(r["accuracy"]))
        rows.append(cells)
    return _table(head, rows)


def pair_table(s: dict, pipelines: list[dict], views: list[str]) -> list[str]:
    """Rows (pipeline, view); per group: share low and mean score."""
    keys = ["original", *methods_of(s)]
    head = ["pipeline", "view"] + [f"{LABELS[k]}: low (mean score)" for k in keys]
    rows = []
    for p in pipelines:
        name = p["name"] + ("" if p["group"] == "default" else " *")
        for v in views:
            cells = [name, v]
            for k in keys:
                rate, mean = s[k]["pair_rates"][p["name"]][v], s[k]["mean_scores"][p["name"]][v]
                cells.append(f"{_pct(rate)} ({_num(mean)})")
            rows.append(cells)
    return _table(head, rows)


def cost_table(s: dict) -> list[str]:
    head = [
        "",
        "PSNR mean / min (dB)",
        "PSNR centre mean / min",
        "PSNR flattest mean / min",
        "SSIM mean / min",
        "SSIM centre mean / min",
        "SSIM flattest mean",
        "L∞ pixels / file",
        "s / photo mean (median)",
        "s / MP",
        "steps median (mean)",
        "s / step",
        "real checks mean",
        "first check protected",
        "peak RSS MB",
    ]
    rows = []
    for m in methods_of(s):
        r = s[m]
        rows.append(
            [
                LABELS[m],
                _pair(r["psnr_mean"], r["psnr_min"]),
                _pair(r["psnr_center_mean"], r["psnr_center_min"]),
                _pair(r["psnr_flat_mean"], r["psnr_flat_min"]),
                _pair(r["ssim_mean"], r["ssim_min"], ".4f"),
                _pair(r["ssim_center_mean"], r["ssim_center_min"], ".4f"),
                _num(r["ssim_flat_mean"], ".4f"),
                f"{r['linf_max']} / {r['linf_file_max']}",
                f"{_num(r['seconds_mean'], '.2f')} ({_num(r['seconds_median'], '.2f')})",
                _num(r["seconds_per_mp"], ".2f"),
                f"{_num(r['steps_median'], 'g')} ({_num(r['steps_mean'], '.1f')})",
                _num(r["seconds_per_step_median"], ".2f"),
                _num(r["checks_mean"], ".2f"),
                first_check(r),
                _num(r["peak_rss_mb_max"], ".0f"),
            ]
        )
    return _table(head, rows)


def ratio_table(s: dict) -> list[str]:
    head = [
        "",
        "s / photo: ratio of means",
        "ratio of medians",
        "per-photo ratio mean / median",
        "s / MP",
        "steps (medians)",
        "peak RSS",
        "PSNR",
        "PSNR centre",
        "PSNR flattest",
    ]
    rows = []
    for key, q in s.get("ratios", {}).items():
        rows.append(
            [
                RATIO_LABELS.get(key, key),
                _times(q["seconds"]),
                _times(q["seconds_median"]),
                f"{_times(q['seconds_per_photo_ratio_mean'])} / "
                f"{_times(q['seconds_per_photo_ratio_median'])}",
                _times(q["seconds_per_mp"]),
                _times(q["steps_median"]),
                _times(q["peak_rss"]),
                _db(q["psnr_db_difference"]),
                _db(q["psnr_center_db_difference"]),
                _db(q["psnr_flat_db_difference"]),
            ]
        )
    return _table(head, rows) if rows else []


def small_table(s: dict) -> list[str]:
    head = [
        "",
        "photos",
        "all default set",
        "all nearby",
        "all unseen",
        "task accuracy",
        "PSNR mean / min",
        "PSNR flattest mean",
        "s / photo mean (median)",
        "steps median (mean)",
        "real checks mean",
        "first check protected",
        "peak RSS MB",
    ]
    o = s["original"]
    rows = [
        [LABELS["original"], o["photos"], _pct(o["protection_rate_defaults"])]
        + [_pct(o[k]) for k in ("protection_rate_nearby", "protection_rate_unseen", "accuracy")]
        + ["—"] * 7
    ]
    for m in methods_of(s):
        r = s[m]
        rows.append(
            [
                LABELS[m],
                r["photos"],
                _pct(r["protection_rate_defaults"]),
                _pct(r["protection_rate_nearby"]),
                _pct(r["protection_rate_unseen"]),
                _pct(r["accuracy"]),
                _pair(r["psnr_mean"], r["psnr_min"]),
                _num(r["psnr_flat_mean"]),
                f"{_num(r['seconds_mean'], '.2f')} ({_num(r['seconds_median'], '.2f')})",
                f"{_num(r['steps_median'], 'g')} ({_num(r['steps_mean'], '.1f')})",
                _num(r["checks_mean"], ".2f"),
                first_check(r),
                _num(r["peak_rss_mb_max"], ".0f"),
            ]
        )
    return _table(head, rows)


def worst_lines(s: dict) -> list[str]:
    out = []
    for key in ["original", *methods_of(s)]:
        counts = s[key].get("worst_counts") or {}
        if counts:
            top = ", ".join(f"{k} ×{n}" for k, n in list(counts.items())[:3])
            out.append(f"- {LABELS[key]}: {top}")
    return out


def per_photo_table(rows: list[dict], methods: list[str]) -> list[str]:
    head = ["photo", "MP", "original worst"]
    for m in methods:
        head += [f"{m}: defaults / nearby / unseen", f"{m} worst", f"{m} PSNR"]
        head += [f"{m} s", f"{m} steps"]
    table = []
    for row in rows:
        w = row["original"]["worst"]
        cells = [
            row["name"],
            f"{row['megapixels']:.2f}",
            f"{w['pipeline']} {w['view']} {w['score']:.1f}",
        ]
        for m in methods:
            r = row["methods"].get(m)
            if r is None:
                cells += ["—"] * 5
                continue
            w = r["worst"]
            marks = "/".join(
                "—" if f is None else ("✓" if f else "✗")
                for f in (r["protected_defaults"], r["protected_nearby"], r["protected_unseen"])
            )
            cells += [
                marks,
                f"{w['pipeline']} {w['view']} {w['score']:.1f}",
                _num(r["psnr"]),
                _num(r["seconds"]),
                r["steps"],
            ]
        table.append(cells)
    return _table(head, table)


def markdown(report: dict, images: dict[str, str] | None = None) -> str:
    """The run as markdown: context, the tables, per-photo figures (collapsed)."""
    h, m, model = report["harness"], report["machine"], report["model"]
    views, pipelines = h["views"], h["pipelines"]
    s = report["summary"]
    methods = methods_of(s)
    good = ">" if model["direction"] == "higher_is_better" else "<"
    out = [f"### {title(report)} ({h['date'][:10]})", ""]
    if model.get("timing_only"):
        out += [
            "**RANDOM WEIGHTS — timing only.** KonCept512 with random weights (plus a constant "
            "score offset so every photo starts on the good side and every method does its full "
            "work): the seconds, seconds/MP and memory hold for the real weights; the scores, "
            "protection, accuracy and PSNR figures below mean nothing.",
            "",
        ]
    crop = f", centre-cropped to {h['crop'][0]}×{h['crop'][1]}" if h.get("crop") else ""
    small = report.get("small_photos") or []
    small_text = f" and {len(small)} small photos (≤ 1 MP) made from them" if small else ""
    out += [
        f"`{h.get('command', 'bench/evaluate.py')}` — {len(report['photos'])} photos{crop}"
        f"{small_text}, {h['seconds_wall'] / 60:.1f} min in all; load average "
        f"{h['load_average_start'][0]:.1f} at the start, {h['load_average_end'][0]:.1f} at the "
        "end (2 cores: above 2 means other work shared the CPU and timings run slow).",
        "",
        f"- Machine: {m['cpu']} ({m['cpu_vendor']}, family/model {m['cpu_family_model']}, "
        f"{m['cpu_flags']}), {m['cpu_count']} cores, {m['torch_threads']} torch threads, "
        f"{m['memory_gb']} GB; Python {m['python']}, torch {m['torch']}, kornia {m['kornia']}, "
        f"Pillow {m['pillow']}" + (f"; GPU {m['gpu']}" if m.get("gpu") else "") + ".",
        f"- Model: `{model['fingerprint']}`, good quality iff score {good} {model['threshold']:g}.",
        "- Judging (the same for every method and the original): the saved file, decoded, "
        "through each pipeline below for real (Pillow resize, never up; Pillow JPEG), then views "
        f"{', '.join(views)}. Protected on a pipeline = every view low after it; *all default "
        "set* = every (pipeline × view) of the pipelines the pixcamd method protects for "
        f"({', '.join(h['default_set'])}); *nearby* (marked *) = a downscaling default a few "
        "pixels off its size or through another filter, as a platform's own resizer serves it; "
        "*unseen* (marked *) = other pipelines in no preset, never optimized for. Task "
        "accuracy = share of photos still judged good on the center view "
        f"after `{h['task_pipeline']}` (lower is better for the protector).",
        "- Methods: pixcamd = `protect()` defaults, for the pipelines of the default set above; "
        "task = the same with `platforms = (task,)`, the behaviour before issue #11; enhance / "
        "auto: the same pipelines with that `mode`; files: JPEG 95 4:4:4. Baseline: I-FGSM on "
        "the centre view, "
        f"ε = α = 0.05 in [−1, 1] (6.4/255), {report['settings']['baseline']['steps']} steps, "
        f"MSE towards {report['settings']['baseline']['target']:g}, no JPEG, pasted into the "
        "full photo, file = PNG.",
        "- Invisibility: PSNR/SSIM of the saved file against the original — whole photo, the "
        "512×384 centre crop, the 256×256 crop of the flattest region (lowest local luma "
        "deviation, 5 % border left out); L∞ in grey levels of the method's pixels / the file.",
        "",
        "Pipelines judged:",
        "",
    ]
    out += _table(
        ["pipeline", "group", "what it does"],
        [[p["name"], GROUP_LABELS[p["group"]], p["description"]] for p in pipelines],
    )
    out += ["", "**Protection** (share of photos protected; * = not in the default set)", ""]
    out += protection_table(s, pipelines)
    out += ["", "Worst (pipeline, view) — nearest the good side — most often:", ""]
    out += worst_lines(s)
    out += ["", "**Invisibility and cost**", ""]
    out += cost_table(s)
    ratio = ratio_table(s)
    if ratio:
        out += ["", "**Ratios** (same run, same photos)", "", *ratio]
    ss = report.get("summary_small")
    if ss:
        out += ["", f"**Small photos** ({len(small)}, ≤ 1 MP, made from the inputs)", ""]
        out += small_table(ss)
        q = ss.get("ratios", {}).get("pixcamd/task")
        if q:
            out += [
                "",
                f"Small photos, pixcamd ÷ task: {_times(q['seconds'])} the time (ratio of means; "
                f"{_times(q['seconds_median'])} of medians).",
            ]
    out += [
        "",
        "<details><summary>Per pipeline and view: share low (mean score)</summary>",
        "",
        *pair_table(s, pipelines, views),
        "",
        "</details>",
        "",
        "<details><summary>Per photo</summary>",
        "",
        *per_photo_table(report["photos"], methods),
        "",
        "✓ / ✗ = protected or not on every (pipeline × view) of the default set / of the "
        "nearby / of the unseen pipelines; worst = the (pipeline, view) nearest the good side, "
        "with its score.",
        "",
    ]
    if small:
        out += ["Small photos:", "", *per_photo_table(small, methods_of(ss or {})), ""]
    edits = [
        f"- {row['name']}: "
        + "; ".join(
            f"{k} {row['methods'][k]['enhancement']}"
            for k in methods
            if row["methods"].get(k, {}).get("enhancement")
        )
        for row in report["photos"]
        if any(row["methods"].get(k, {}).get("enhancement") for k in methods)
    ]
    if edits:
        out += ["What the colour filter did (enhance / auto), as pixcamd describes it:", ""]
        out += [*edits, ""]
    out += ["</details>", ""]
    for what, path in (images or {}).items():
        out.append(f"![{what}]({path})")
    if images:
        out.append("")
    return "\n".join(out)


def update_docs(path: Path, name: str, block: str) -> None:
    """Put ``block`` into ``path`` between our markers, in a sub-block of its own for ``name``.

    Text outside the markers is never touched; other runs' sub-blocks and any prose between the
    markers stay. A missing file is created with a heading; missing markers are appended.
    """
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start, stop = text.find(BEGIN), text.find(END)
    if start < 0 or stop < 0 or stop < start:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
        start, stop = text.find(BEGIN), text.find(END)
    head, section, tail = text[: start + len(BEGIN)], text[start + len(BEGIN) : stop], text[stop:]
    open_tag, close_tag = f"<!-- evaluate:run {name} -->", f"<!-- evaluate:run-end {name} -->"
    new = f"{open_tag}\n{block.strip()}\n{close_tag}"
    a, b = section.find(open_tag), section.find(close_tag)
    if a >= 0 and b > a:
        section = section[:a] + new + section[b + len(close_tag) :]
    else:
        section = section.rstrip("\n") + "\n\n" + new + "\n"
    path.write_text(head + section.rstrip("\n") + "\n" + tail)
