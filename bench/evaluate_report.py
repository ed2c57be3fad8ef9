"""Outputs of ``bench/evaluate.py``: the JSON, the markdown tables, the figure and the contact
sheets, written together (``write_all``) and put into the docs.

The words are ``evaluate_tables``, the pictures ``evaluate_images``; kept out of the ``pixcamd``
package.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from evaluate_images import DOCS_LIMIT, contact_sheet, figure, flat_sheet, small_jpeg
from evaluate_tables import markdown, update_docs, write_json


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
