"""Outputs of ``bench/evaluate.py``: JSON, markdown tables, the figure and the contact sheets.

Kept apart from the measuring code and out of the ``pixcamd`` package: the figure needs
matplotlib (the ``bench`` extra, ``pip install -e '.[bench]'``); without it the figure is
skipped with a note and everything else is still written.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BEGIN, END = "<!-- evaluate:begin -->", "<!-- evaluate:end -->"
LABELS = {
    "original": "original photo",
    "pixcamd": "pixcamd (default platforms)",
    "task": "pixcamd --platforms task",
    "enhance": "pixcamd enhance",
    "auto": "pixcamd auto",
    "baseline": "baseline (task I-FGSM)",
}
COLOURS = {
    "original": "#7f7f7f",
    "pixcamd": "#1f77b4",
    "task": "#ff7f0e",
    "enhance": "#2ca02c",
    "auto": "#9467bd",
    "baseline": "#d62728",
}
METHODS = ("pixcamd", "task", "enhance", "auto", "baseline")  # table and figure order
VISIBLE_EDITS = ("enhance", "auto")  # methods meant to be seen: no ×20 difference tile
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
DOCS_LIMIT = 300_000  # bytes, for the copies under docs/img
AMPLIFY = 20


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


# --------------------------------------------------------------------------------------------
# Figure (matplotlib, optional)


def worst_view(per_view: dict, higher: bool) -> float:
    """The view score nearest the good side: the one that decides a pipeline's verdict."""
    values = list(per_view.values())
    return max(values) if higher else min(values)


def figure(report: dict, path: Path) -> bool:
    """Per pipeline, each photo's deciding (worst-view) score — original and every method; and
    PSNR against the deciding score over the default set. The main photos only (the small
    photos have a table of their own)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    model, rows = report["model"], report["photos"]  # the small photos: their own table
    pipelines = report["harness"]["pipelines"]
    methods = methods_of(report["summary"])
    threshold = model["threshold"]
    higher = model["direction"] == "higher_is_better"
    groups = ["original", *methods]
    fig, (ax, ax2) = plt.subplots(
        1, 2, figsize=(5 + 1.1 * len(pipelines), 4.6), width_ratios=[max(2, len(pipelines)), 3]
    )
    rng = np.random.default_rng(0)
    width = 0.8 / len(groups)
    for g, group in enumerate(groups):
        for i, p in enumerate(pipelines):
            recs = [r["original"] if group == "original" else r["methods"].get(group) for r in rows]
            ys = [worst_view(rec["judged"][p["name"]], higher) for rec in recs if rec]
            x = i - 0.4 + width * (g + 0.5) + rng.uniform(-width / 4, width / 4, len(ys))
            label = LABELS[group] if i == 0 else None
            ax.scatter(x, ys, s=10, color=COLOURS[group], alpha=0.8, zorder=3, label=label)
    for i, p in enumerate(pipelines):
        if p["group"] != "default":
            ax.axvspan(i - 0.5, i + 0.5, color="#f0f0f0", zorder=0)
    for a in (ax, ax2):
        a.axhline(threshold, color="k", ls="--", lw=1)
    lo, hi = ax.get_ylim()
    ax.axhspan(lo if higher else threshold, threshold if higher else hi, color="#ffe0e0", zorder=0)
    ax.set_ylim(lo, hi)
    ax.set_xticks(
        range(len(pipelines)),
        [p["name"] + ("" if p["group"] == "default" else "*") for p in pipelines],
        rotation=30,
        ha="right",
        fontsize=8,
    )
    ax.set_ylabel(f"{model['model']} worst view score (shaded: low quality)")
    ax.set_title("per pipeline (* grey: not in the default set)", fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper left", ncol=len(groups), fontsize=8, frameon=False)
    defaults = [p["name"] for p in pipelines if p["group"] == "default"] or [
        p["name"] for p in pipelines
    ]
    for method in methods:
        recs = [r["methods"][method] for r in rows if method in r["methods"]]
        ys = [
            worst_view({p: worst_view(r["judged"][p], higher) for p in defaults}, higher)
            for r in recs
        ]
        rate = report["summary"][method]["protection_rate_defaults"]
        label = f"{method}: {rate:.0%} protected" if rate is not None else method
        ax2.scatter([r["psnr"] for r in recs], ys, s=14, color=COLOURS[method], label=label)
    lo, hi = ax2.get_ylim()
    ax2.axhspan(lo if higher else threshold, threshold if higher else hi, color="#ffe0e0", zorder=0)
    ax2.set_ylim(lo, hi)
    ax2.set_xlabel("PSNR of the saved file against the original (dB)")
    ax2.set_ylabel("worst score over the default set")
    ax2.set_title("invisibility against protection", fontsize=10)
    ax2.legend(fontsize=7)
    name = model["model"] + (" — RANDOM WEIGHTS, TIMING ONLY" if model.get("timing_only") else "")
    fig.suptitle(
        f"{name}: {len(rows)} photos — {model['fingerprint'][:60]}", fontsize=9, x=0.99, ha="right"
    )
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


# --------------------------------------------------------------------------------------------
# Contact sheets (Pillow only)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


def edit_lines(record: dict) -> list[str]:
    """The enhancement, as pixcamd described it, and the invisible budget added on top."""
    lines = ["filter:", *(record.get("enhancement") or "none").split(", ")]
    if record.get("epsilon"):
        lines += ["", f"+ invisible perturbation, eps {record['epsilon']:.0f}/255"]
    return lines


def text_tile(lines: list[str], size: tuple[int, int], font) -> Image.Image:
    tile = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(tile)
    for i, line in enumerate(lines):
        text = line.replace("−", "-")  # ASCII for Pillow's built-in font
        draw.text((12, 12 + 20 * i), text, fill="black", font=font)
    return tile


def difference(a: Image.Image, b: Image.Image, gain: int = AMPLIFY) -> Image.Image:
    """Mid-grey where nothing changed; each channel's change ×``gain``."""
    d = np.asarray(b, dtype=np.int16) - np.asarray(a, dtype=np.int16)
    return Image.fromarray(np.clip(128 + gain * d, 0, 255).astype(np.uint8), "RGB")


def _verdict(rec: dict) -> str:
    if rec["protected_defaults"] is None:
        return "protected" if rec["protected_all"] else "NOT protected"
    text = "protected on defaults" if rec["protected_defaults"] else "NOT protected on defaults"
    for group in ("nearby", "unseen"):
        if rec.get(f"protected_{group}") is not None:
            text += f", {group} " + ("yes" if rec[f"protected_{group}"] else "NO")
    return text


def flat_strip(item: dict, methods: list[str], font) -> tuple[Image.Image, list[str]]:
    """The flattest region at 100 %: original, each method's file beside it, then each
    invisible method's difference ×20. Returns the strip and its captions."""
    crops = [item["flat_original"], *(item["flat_methods"][m] for m in methods)]
    heads = ["original", *methods]
    for m in methods:
        if m not in VISIBLE_EDITS:
            crops.append(difference(item["flat_original"], item["flat_methods"][m]))
            heads.append(f"{m} x{AMPLIFY}")
    side, pad = crops[0].width, 4
    strip = Image.new("RGB", (len(crops) * (side + pad) + pad, crops[0].height + 18), "white")
    draw = ImageDraw.Draw(strip)
    for c, (crop, head) in enumerate(zip(crops, heads, strict=True)):
        draw.text((pad + c * (side + pad) + 2, 1), head, fill="black", font=font)
        strip.paste(crop, (pad + c * (side + pad), 18))
    return strip, heads


def contact_sheet(report: dict, sheet: list[dict]) -> Image.Image | None:
    """Per photo: the whole photo (centre view red, flattest region blue), then at native
    resolution the centre view of the original and, per method, of its saved file and the
    difference ×20 (for the visible edits of enhance / auto: what the filter did, in words);
    below, the flattest region at 100 %: original beside each method's file, and the ×20
    differences.

    Labels are ASCII: Pillow's built-in font has no × or ∞."""
    if not sheet:
        return None
    tw, th = sheet[0]["original"].size
    methods = list(sheet[0]["methods"])
    heads = ["whole photo (centre red, flattest blue)", "original, centre view"]
    for m in methods:
        second = "what the filter did" if m in VISIBLE_EDITS else f"{m} difference x{AMPLIFY}"
        heads += [f"{m} file", second]
    small, big = _font(13), _font(15)
    strips = [flat_strip(item, methods, small)[0] for item in sheet]
    cols, label, pad = len(heads), 40, 4
    width = max(cols * (tw + pad) + pad, *(s.width for s in strips))
    flat_h = max(s.height for s in strips) + 20
    height = 24 + len(sheet) * (th + label + flat_h + pad) + pad
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for c, text in enumerate(heads):
        draw.text((pad + c * (tw + pad) + 4, 4), text, fill="black", font=big)
    for r, item in enumerate(sheet):
        y = 24 + r * (th + label + flat_h + pad)
        lines = [f"{item['name']} {item['size'][0]}x{item['size'][1]}"]
        for m in methods:
            rec = item["records"][m]
            w = rec["worst"]
            lines.append(
                f"{m}: {_verdict(rec)} (worst {w['pipeline']} {w['view']} {w['score']:.1f}), "
                f"PSNR {rec['psnr']:.1f} dB"
            )
        draw.text((pad + 4, y + 2), lines[0], fill="black", font=small)
        draw.text((pad + 4, y + 20), "   ".join(lines[1:]), fill="black", font=small)
        y += label
        thumb = item["thumbnail"].copy()
        scale = thumb.width / item["size"][0]
        marks = ImageDraw.Draw(thumb)
        for box, colour in ((item["box"], "red"), (item["flat_box"], "blue")):
            left, top, w, h = box
            marks.rectangle(
                [left * scale, top * scale, (left + w) * scale, (top + h) * scale],
                outline=colour,
                width=2,
            )
        tiles = [thumb, item["original"]]
        for m in methods:
            if m in VISIBLE_EDITS:  # a visible edit: ×20 differences would only saturate
                second = text_tile(edit_lines(item["records"][m]), (tw, th), small)
            else:
                second = difference(item["original"], item["methods"][m])
            tiles += [item["methods"][m], second]
        for c, tile in enumerate(tiles):
            canvas.paste(tile, (pad + c * (tw + pad), y))
        y += th + 2
        fl, ft, fw, fh = item["flat_box"]
        draw.text(
            (pad + 4, y),
            f"flattest region at 100 %: {fw}x{fh} at ({fl}, {ft}), luma std "
            f"{item['flat_std']:.2f} grey levels",
            fill="black",
            font=small,
        )
        canvas.paste(strips[r], (0, y + 18))
    if report["model"].get("timing_only"):
        draw.text((width - 420, 4), "RANDOM WEIGHTS - TIMING ONLY", fill="red", font=big)
    return canvas


def flat_sheet(sheet: list[dict]) -> Image.Image | None:
    """The flattest-region strips alone, one photo a row, at 100 % (lossless on disk)."""
    if not sheet:
        return None
    font = _font(13)
    methods = list(sheet[0]["methods"])
    strips = [flat_strip(item, methods, font)[0] for item in sheet]
    canvas = Image.new("RGB", (max(s.width for s in strips), sum(s.height + 18 for s in strips)))
    canvas.paste((255, 255, 255), (0, 0, *canvas.size))
    draw = ImageDraw.Draw(canvas)
    y = 0
    for item, strip in zip(sheet, strips, strict=True):
        draw.text((6, y + 2), f"{item['name']}: flattest region", fill="black", font=font)
        canvas.paste(strip, (0, y + 18))
        y += strip.height + 18
    return canvas


def small_jpeg(img: Image.Image, limit: int = DOCS_LIMIT, width: int = 1800) -> bytes:
    """A downscaled JPEG under ``limit`` bytes, for the docs."""
    while True:
        copy = img.copy()
        copy.thumbnail((width, width))
        for quality in (85, 75, 65):
            buffer = io.BytesIO()
            copy.save(buffer, "JPEG", quality=quality, optimize=True)
            if buffer.tell() <= limit:
                return buffer.getvalue()
        width = int(width * 0.8)


# --------------------------------------------------------------------------------------------


def write_all(
    report: dict,
    sheet: list[dict],
    out: Path,
    name: str,
    docs: Path | None = None,
    docs_img: Path | None = None,
) -> dict:
    """Write every output; returns their paths (also recorded in the JSON)."""
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"evaluate_{name}"
    outputs: dict[str, str | None] = {"json": str(stem) + ".json", "markdown": str(stem) + ".md"}
    fig_path = Path(str(stem) + ".png")
    outputs["figure"] = str(fig_path) if figure(report, fig_path) else None
    if outputs["figure"] is None:
        outputs["figure_note"] = "matplotlib missing: pip install -e '.[bench]'"
    canvas, flats = contact_sheet(report, sheet), flat_sheet(sheet)
    outputs["contact_sheet"] = outputs["flat_sheet"] = None
    if canvas is not None:
        sheet_path = Path(str(stem) + "_sheet.jpg")
        canvas.save(sheet_path, "JPEG", quality=92)
        outputs["contact_sheet"] = str(sheet_path)
    if flats is not None:
        flat_path = Path(str(stem) + "_flat.png")
        flats.save(flat_path, "PNG")
        outputs["flat_sheet"] = str(flat_path)
    images: dict[str, str] = {}
    if docs_img is not None:
        docs_img.mkdir(parents=True, exist_ok=True)
        base = docs.parent if docs is not None else docs_img
        if outputs["figure"] and fig_path.stat().st_size <= DOCS_LIMIT:
            target = docs_img / f"evaluate_{name}.png"
            shutil.copyfile(fig_path, target)
            images["worst score per pipeline, and PSNR against protection"] = os.path.relpath(
                target, base
            )
        if canvas is not None:
            target = docs_img / f"evaluate_{name}_sheet.jpg"
            target.write_bytes(small_jpeg(canvas))
            images["contact sheet: original, protected, difference ×20"] = os.path.relpath(
                target, base
            )
        if flats is not None:  # at 100 % where it fits: the point is to see the flat areas
            target = docs_img / f"evaluate_{name}_flat.jpg"
            target.write_bytes(small_jpeg(flats, width=max(flats.size)))
            images["flattest region at 100 %: original beside protected"] = os.path.relpath(
                target, base
            )
        outputs["docs_images"] = [str(docs_img / Path(p).name) for p in images.values()]
    block = markdown(report, images)
    Path(outputs["markdown"]).write_text(block + "\n")
    if docs is not None:
        update_docs(docs, name, block)
        outputs["docs"] = str(docs)
    report["outputs"] = outputs
    write_json(report, Path(outputs["json"]))
    return outputs
