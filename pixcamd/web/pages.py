"""What the pages show, from ledger rows: the photo list and one photo's record in full.

Everything comes from what the daemon recorded — the row and the report stored with it
(``photos.report``: protect()'s summary plus the copy's own check, metadata notes, the colour
filter, a stronger retry's budget) — nothing is recomputed here but the images.
"""

from __future__ import annotations

from datetime import datetime

from pixcamd.daemon.config import Config
from pixcamd.daemon.decisions import decided
from pixcamd.daemon.ledger_row import Row

# the photo list's filter: name → (label, ledger states)
FILTERS = {
    "all": ("all", ("done", "unprotected", "failed", "queued", "processing")),
    "protected": ("protected", ("done",)),
    "unprotected": ("unprotected / held", ("unprotected",)),
    "failed": ("failed", ("failed",)),
    "queued": ("queued", ("queued", "processing")),
}


def when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "—"


def label(row: Row) -> str:
    """The verdict as a person reads it."""
    if row.state == "done":
        if row.duplicate_of and not row.output:
            return f"renamed copy of {row.duplicate_of}"
        return row.verdict or "done"
    if row.state == "unprotected":
        if row.earlier_copy:
            return "NOT protected this time, held back; its earlier copy stays in the outbox"
        if row.output:
            by = " by your decision" if decided(row) == "shipped" else ""
            return f"NOT protected, shipped{by}"
        if decided(row) == "removed":
            return "NOT protected, its copy removed by your decision"
        return "NOT protected, held back"
    return row.state


def no_copy(config: Config, row: Row) -> str:
    """Why the page has no copy to show, in the words of what happened to it."""
    if decided(row) == "removed":
        return "removed from the outbox by your decision"
    if row.output:
        return "it has left the outbox (taken by the uploader?)"
    if row.held:
        return f"its held copy is gone from {config.hold_dir or 'the hold folder'}"
    if row.state != "unprotected":
        return ""
    if config.hold_dir is None:
        return "none was kept (set hold_dir to keep the best attempt)"
    return "none was kept"


def summary(row: Row) -> dict:
    report = row.report if isinstance(row.report, dict) else {}
    return {
        "id": row.id,
        "path": row.path,
        "state": row.state,
        "label": label(row),
        "worst": report.get("worst"),
        "psnr": row.psnr,
        "seconds": row.seconds,
        "at": when(row.finished_at or row.queued_at),
        "output": row.output,
        "held": row.held,
        "error": row.error if row.state != "done" else None,
    }


def _low(score: float, model: dict | None) -> bool | None:
    """Judged low quality (what protection wants), by the model's threshold."""
    if not model:
        return None
    if model.get("direction") == "lower_is_better":
        return score >= model["threshold"]
    return score <= model["threshold"]


def _by_pipeline(scores: dict) -> dict:
    """pipeline → model → view → score; a record from before platform pipelines (2026-12-01)
    holds model → view → score, judged after the task's JPEG-90 alone."""
    legacy = any(
        isinstance(views, dict) and any(not isinstance(v, dict) for v in views.values())
        for views in scores.values()
    )
    return {"task": scores} if legacy else scores


def score_rows(report: dict, scores: dict | None) -> list[dict]:
    """One row per (model, pipeline, view): before, after (the shipped file's own check when
    recorded, else the optimizer's last check), and whether each is judged low quality."""
    models = {m.get("model"): m for m in report.get("models") or []}
    before = _by_pipeline(report.get("before") or {})
    after = _by_pipeline((scores or {}).get("file") or report.get("after_jpeg") or {})
    out = []
    for pipeline in dict.fromkeys([*before, *after]):
        per_model_b, per_model_a = before.get(pipeline, {}), after.get(pipeline, {})
        for model in dict.fromkeys([*per_model_b, *per_model_a]):
            views_b, views_a = per_model_b.get(model, {}), per_model_a.get(model, {})
            for view in dict.fromkeys([*views_b, *views_a]):
                b, a = views_b.get(view), views_a.get(view)
                info = models.get(model)
                out.append(
                    {
                        "model": model,
                        "pipeline": pipeline,
                        "view": view,
                        "before": b,
                        "after": a,
                        "low_before": None if b is None else _low(b, info),
                        "low_after": None if a is None else _low(a, info),
                        "threshold": info.get("threshold") if info else None,
                    }
                )
    return out


def detail(config: Config, row: Row, has_original: bool, copy_where: str | None) -> dict:
    """Everything the photo page shows, and which decisions make sense for it now."""
    report = row.report if isinstance(row.report, dict) else {}
    enhancement = report.get("enhancement") or {}
    finished = row.state in ("done", "unprotected", "failed")
    metadata = report.get("metadata_notes")  # None: an older report, before it was recorded
    return {
        **summary(row),
        "sha256": row.sha256,
        "model": row.model,
        "fingerprint": row.fingerprint,
        "attempts": row.attempts,
        "mode": report.get("mode"),
        "scores": score_rows(report, row.scores),
        "ssim": report.get("ssim"),
        "linf": report.get("linf"),
        "epsilon": report.get("epsilon"),
        "steps": report.get("steps"),
        "filter": enhancement.get("description"),
        "metadata": metadata,
        "warnings": report.get("warnings") or [],  # what the decoder changed in the input
        "budget": row.budget or report.get("budget"),
        "decision": row.decision,
        "decided_at": when(row.decision.get("at")) if isinstance(row.decision, dict) else None,
        "timings": row.timings or {},
        "platforms": report.get("platforms") or [],
        "has_original": has_original,
        "copy_where": copy_where,
        "after_shipped": bool(row.output) and not row.earlier_copy,  # else the attempt's own
        "no_copy": "" if copy_where else no_copy(config, row),
        "can_retry": finished and has_original,
        # a larger budget helps a photo the search could not protect, not one that failed
        "can_stronger": (
            finished and row.state != "failed" and has_original and config.executor != "ray"
        ),
        "can_ship": row.state == "unprotected" and not row.output and copy_where == "hold",
        "can_remove": finished and bool(row.output),
    }
