"""Outputs of ``bench/evaluate.py`` in pictures: the figure and the contact sheets.

The figure needs matplotlib (the ``bench`` extra, ``pip install -e '.[bench]'``); without it
the figure is skipped with a note and everything else is still written. The sheets need Pillow
alone.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from evaluate_tables import LABELS, methods_of
from PIL import Image, ImageDraw, ImageFont

COLOURS = {
    "original": "#7f7f7f",
    "pixcamd": "#1f77b4",
    "task": "#ff7f0e",
    "enhance": "#2ca02c",
    "auto": "#9467bd",
    "baseline": "#d62728",
}
VISIBLE_EDITS = ("enhance", "auto")  # methods meant to be seen: no ×20 difference tile
DOCS_LIMIT = 300_000  # bytes, for the copies under docs/img
AMPLIFY = 20


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
