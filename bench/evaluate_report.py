"""Outputs of ``bench/evaluate.py``: JSON, markdown tables, the figure and the contact sheet.

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
    "pixcamd": "pixcamd (invisible)",
    "enhance": "pixcamd enhance",
    "auto": "pixcamd auto",
    "baseline": "baseline (task I-FGSM)",
}
COLOURS = {
    "original": "#7f7f7f",
    "pixcamd": "#1f77b4",
    "enhance": "#2ca02c",
    "auto": "#9467bd",
    "baseline": "#d62728",
}
METHODS = ("pixcamd", "enhance", "auto", "baseline")  # table and figure order
SHORT = {"pixcamd": "invisible"}  # axis labels: the rest are short already
VISIBLE_EDITS = ("enhance", "auto")  # methods meant to be seen: no ×20 difference tile
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
    return "—" if x is None else ("∞" if math.isinf(x) else f"×{x:.2f}")


def worst(scores: dict, model: dict) -> float:
    """The view score furthest on the good side: the one that decides protection."""
    values = list(scores.values())
    return max(values) if model["direction"] == "higher_is_better" else min(values)


def title(report: dict) -> str:
    model = report["model"]
    label = model["model"]
    if model.get("timing_only"):
        label += " — RANDOM WEIGHTS, TIMING ONLY"
    return f"{label}: {report['summary']['original']['photos']} photos"


def ratio_row(label: str, q: dict, views) -> str:
    """One table row of ratios (see ``evaluate.ratios``), under the summary table's columns."""
    cells = [label, _times(q["protection"])] + [""] * (len(views) + 1)
    cells += [
        f"{_times(q['psnr'])} ({q['psnr_db_difference']:+.1f} dB)",
        f"{_times(q['psnr_center'])} ({q['psnr_center_db_difference']:+.1f} dB)",
        "",
        "",
        "",
        f"{_times(q['seconds'])} ({_times(q['seconds_median'])})",
        _times(q["seconds_per_mp"]),
        _times(q["peak_rss"]),
    ]
    return "| " + " | ".join(cells) + " |"


def markdown(report: dict, images: dict[str, str] | None = None) -> str:
    """The run as markdown: context, one summary table, per-photo figures (collapsed)."""
    h, m, model = report["harness"], report["machine"], report["model"]
    views = h["views"]
    s = report["summary"]
    methods = [k for k in METHODS if k in s]
    good = ">" if model["direction"] == "higher_is_better" else "<"
    out = [f"### {title(report)} ({h['date'][:10]})", ""]
    if model.get("timing_only"):
        out += [
            "**RANDOM WEIGHTS — timing only.** KonCept512 with random weights (plus a constant "
            "score offset so every photo starts on the good side and both methods do their full "
            "work): the seconds, seconds/MP and memory hold for the real weights; the scores, "
            "protection, accuracy and PSNR figures below mean nothing.",
            "",
        ]
    crop = f", centre-cropped to {h['crop'][0]}×{h['crop'][1]}" if h.get("crop") else ""
    out += [
        f"`{h.get('command', 'bench/evaluate.py')}` — {len(report['photos'])} photos{crop}, "
        f"{h['seconds_wall'] / 60:.1f} min in all; load average "
        f"{h['load_average_start'][0]:.1f} at the start, {h['load_average_end'][0]:.1f} at the "
        "end (2 cores: above 2 means other work shared the CPU and timings run slow).",
        "",
        f"- Machine: {m['cpu']} ({m['cpu_vendor']}, family/model {m['cpu_family_model']}, "
        f"{m['cpu_flags']}), {m['cpu_count']} cores, {m['torch_threads']} torch threads, "
        f"{m['memory_gb']} GB; Python {m['python']}, torch {m['torch']}, kornia {m['kornia']}, "
        f"Pillow {m['pillow']}" + (f"; GPU {m['gpu']}" if m.get("gpu") else "") + ".",
        f"- Model: `{model['fingerprint']}`, good quality iff score {good} {model['threshold']:g}.",
        f"- Check: {h['jpeg_check']}, views {', '.join(views)}. Protected = every view on the "
        "low-quality side after that JPEG-90. Task accuracy = share of photos still judged good "
        "on the center view after JPEG-90 (lower is better for the protector).",
        "- pixcamd: `protect()` defaults (invisible mode; enhance / auto: the same with that "
        "`mode`), file = its JPEG 95 4:4:4. Baseline: I-FGSM on the "
        f"centre view, ε = α = 0.05 in [−1, 1] (6.4/255), {report['settings']['baseline']['steps']}"
        f" steps, MSE towards {report['settings']['baseline']['target']:g}, no JPEG, pasted into "
        "the full photo, file = PNG. PSNR/SSIM of the saved file against the original (whole "
        "photo; centre 512×384 crop); L∞ in grey levels of the saved file.",
        "",
    ]
    head = ["", "protected after JPEG-90"] + [f"{v} low" for v in views] + ["task accuracy"]
    head += ["PSNR mean / min (dB)", "PSNR centre mean / min", "SSIM mean / min"]
    head += [
        "SSIM centre mean",
        "L∞ max pixels / file",
        "s / photo mean (median)",
        "s / MP",
        "peak RSS MB",
    ]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    o = s["original"]
    cells = [LABELS["original"], _pct(o["protection_rate"])]
    cells += [_pct(o["view_rates"][v]) for v in views] + [_pct(o["accuracy"])]
    cells += ["—"] * (len(head) - len(cells))
    out.append("| " + " | ".join(cells) + " |")
    for method in methods:
        r = s[method]
        if not r.get("photos"):
            continue
        cells = [LABELS[method], _pct(r["protection_rate"])]
        cells += [_pct(r["view_rates"][v]) for v in views] + [_pct(r["accuracy"])]
        cells += [
            f"{_num(r['psnr_mean'])} / {_num(r['psnr_min'])}",
            f"{_num(r['psnr_center_mean'])} / {_num(r['psnr_center_min'])}",
            f"{_num(r['ssim_mean'], '.4f')} / {_num(r['ssim_min'], '.4f')}",
            _num(r["ssim_center_mean"], ".4f"),
            f"{r['linf_max']} / {r['linf_file_max']}",
            f"{_num(r['seconds_mean'], '.2f')} ({_num(r['seconds_median'], '.2f')})",
            _num(r["seconds_per_mp"], ".2f"),
            _num(r["peak_rss_mb_max"], ".0f"),
        ]
        out.append("| " + " | ".join(cells) + " |")
    if s.get("ratios"):
        out.append(ratio_row("pixcamd ÷ baseline", s["ratios"], views))
    for method, q in s.get("ratios_vs_invisible", {}).items():
        if q:
            out.append(ratio_row(f"{method} ÷ invisible", q, views))
    for method in methods:
        r = s[method]
        if r.get("seconds_per_step_median") is not None:
            out += [
                "",
                f"{method}: median {r['steps_median']:g} optimizer steps per photo, "
                f"{r['seconds_per_step_median']:.2f} s per step (median over photos).",
            ]
    out += [
        "",
        "<details><summary>Per photo (scores after JPEG-90 of the saved file)</summary>",
        "",
    ]
    head = ["photo", "MP", "original " + " / ".join(views)]
    for method in methods:
        head += [f"{method} " + " / ".join(views), f"{method} PSNR"]
        head += [f"{method} L∞ pixels / file", f"{method} s"]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report["photos"]:
        cells = [row["name"], f"{row['megapixels']:.1f}"]
        cells.append(" / ".join(f"{row['before_jpeg90'][v]:.1f}" for v in views))
        for method in methods:
            r = row["methods"].get(method)
            if r is None:
                cells += ["—"] * 4
                continue
            mark = "" if r["protected"] else " ✗"
            cells.append(" / ".join(f"{r['after_jpeg90'][v]:.1f}" for v in views) + mark)
            cells += [_num(r["psnr"]), f"{r['linf']} / {r['linf_file']}", _num(r["seconds"])]
        out.append("| " + " | ".join(cells) + " |")
    out += ["", "✗ = not protected (some view still judged good).", ""]
    edits = [
        f"- {row['name']}: "
        + "; ".join(
            f"{m} {row['methods'][m]['enhancement']}"
            for m in methods
            if row["methods"].get(m, {}).get("enhancement")
        )
        for row in report["photos"]
        if any(row["methods"].get(m, {}).get("enhancement") for m in methods)
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


def figure(report: dict, path: Path) -> bool:
    """Score distributions before/after per view, and PSNR against the deciding score."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    model, views, rows = report["model"], report["harness"]["views"], report["photos"]
    methods = [m for m in METHODS if m in report["summary"]]
    threshold = model["threshold"]
    higher = model["direction"] == "higher_is_better"
    fig, axes = plt.subplots(1, len(views) + 1, figsize=(4.2 * (len(views) + 1), 4.2))
    rng = np.random.default_rng(0)
    groups = ["original", *methods]
    for ax, view in zip(axes, views, strict=False):
        data = [[r["before_jpeg90"][view] for r in rows]]
        data += [[r["methods"][m]["after_jpeg90"][view] for r in rows] for m in methods]
        ax.boxplot(data, showfliers=False, widths=0.5)
        for i, (group, values) in enumerate(zip(groups, data, strict=True), start=1):
            x = i + rng.uniform(-0.15, 0.15, len(values))
            ax.scatter(x, values, s=14, color=COLOURS[group], alpha=0.8, zorder=3)
        ax.axhline(threshold, color="k", ls="--", lw=1)
        lo, hi = ax.get_ylim()
        ax.axhspan(
            lo if higher else threshold, threshold if higher else hi, color="#ffe0e0", zorder=0
        )
        ax.set_ylim(lo, hi)
        ax.set_xticks(range(1, len(groups) + 1), [SHORT.get(g, g) for g in groups])
        ax.set_title(f"{view} view after JPEG-90")
        ax.set_ylabel(f"{model['model']} score (shaded: low quality)")
    ax = axes[-1]
    for method in methods:
        recs = [r["methods"][method] for r in rows]
        rate = report["summary"][method]["protection_rate"]
        ys = [worst(r["after_jpeg90"], model) for r in recs]
        label = f"{method}: {rate:.0%} protected"
        xs = [r["psnr"] for r in recs]
        ax.scatter(xs, ys, s=18, color=COLOURS[method], label=f"{label} (whole photo)", zorder=3)
        xs = [r["psnr_center"] for r in recs]
        hollow = {"facecolors": "none", "edgecolors": COLOURS[method], "zorder": 3}
        ax.scatter(xs, ys, s=18, marker="^", label=f"{method} (centre view)", **hollow)
    ax.axhline(threshold, color="k", ls="--", lw=1)
    lo, hi = ax.get_ylim()
    ax.axhspan(lo if higher else threshold, threshold if higher else hi, color="#ffe0e0", zorder=0)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("PSNR of the saved file against the original (dB)")
    ax.set_ylabel("deciding view score after JPEG-90")
    ax.set_title("invisibility against protection")
    ax.legend(fontsize=8)
    fig.suptitle(f"{title(report)} — {model['fingerprint'][:60]}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


# --------------------------------------------------------------------------------------------
# Contact sheet (Pillow only)


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


def contact_sheet(report: dict, sheet: list[dict]) -> Image.Image | None:
    """Per photo: the whole photo (centre view boxed), then at native resolution the centre
    view of the original and, per method, of its saved file and the difference ×20 (for the
    visible edits of enhance / auto: what the filter did, in words).

    Labels are ASCII: Pillow's built-in font has no × or ∞."""
    if not sheet:
        return None
    tw, th = sheet[0]["original"].size
    methods = list(sheet[0]["methods"])
    heads = ["whole photo (centre view boxed)", "original, centre view"]
    for m in methods:
        second = "what the filter did" if m in VISIBLE_EDITS else f"{m} difference x{AMPLIFY}"
        heads += [f"{LABELS[m]} file", second]
    cols, label, pad = len(heads), 40, 4
    width = cols * (tw + pad) + pad
    height = 24 + len(sheet) * (th + label + pad) + pad
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    small, big = _font(13), _font(15)
    for c, text in enumerate(heads):
        draw.text((pad + c * (tw + pad) + 4, 4), text, fill="black", font=big)
    model = report["model"]
    for r, item in enumerate(sheet):
        y = 24 + r * (th + label + pad)
        scores = [f"{item['name']} {item['size'][0]}x{item['size'][1]}"]
        for m in methods:
            rec = item["records"][m]
            verdict = "protected" if rec["protected"] else "NOT protected"
            views = ", ".join(f"{v} {s:.1f}" for v, s in rec["after_jpeg90"].items())
            scores.append(f"{m}: {verdict} after JPEG-90 ({views}), PSNR {rec['psnr']:.1f} dB")
        draw.text((pad + 4, y + 2), scores[0], fill="black", font=small)
        draw.text((pad + 4, y + 20), "   ".join(scores[1:]), fill="black", font=small)
        y += label
        thumb = item["thumbnail"].copy()
        scale = thumb.width / item["size"][0]
        left, top, w, h = item["box"]
        ImageDraw.Draw(thumb).rectangle(
            [left * scale, top * scale, (left + w) * scale, (top + h) * scale],
            outline="red",
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
    if model.get("timing_only"):
        draw.text((width - 420, 4), "RANDOM WEIGHTS - TIMING ONLY", fill="red", font=big)
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
    canvas = contact_sheet(report, sheet)
    outputs["contact_sheet"] = None
    if canvas is not None:
        sheet_path = Path(str(stem) + "_sheet.jpg")
        canvas.save(sheet_path, "JPEG", quality=92)
        outputs["contact_sheet"] = str(sheet_path)
    images: dict[str, str] = {}
    if docs_img is not None:
        docs_img.mkdir(parents=True, exist_ok=True)
        base = docs.parent if docs is not None else docs_img
        if outputs["figure"] and fig_path.stat().st_size <= DOCS_LIMIT:
            target = docs_img / f"evaluate_{name}.png"
            shutil.copyfile(fig_path, target)
            images["score distributions and PSNR against protection"] = os.path.relpath(
                target, base
            )
        if canvas is not None:
            target = docs_img / f"evaluate_{name}_sheet.jpg"
            target.write_bytes(small_jpeg(canvas))
            images["contact sheet: original, protected, difference ×20"] = os.path.relpath(
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
