"""What ``bench/evaluate.py`` judges every saved file by: the judging set (the default presets,
pipelines in no preset, the defaults a little off their grid), each pipeline's group, and the
verdicts that follow from a file's scores after the real pipelines.
"""

from __future__ import annotations

from dataclasses import replace

from PIL import Image

from pixcamd.check import score_image_views
from pixcamd.models.base import QualityModel
from pixcamd.platform_specs import parse_platforms
from pixcamd.platforms import DEFAULT_PLATFORMS, PRESETS, Pipeline

# Pipelines in no preset: a design that only fits the presets' exact numbers falls short here.
UNSEEN = (
    "long1280-q70-bicubic",
    "width1366-q82",
    "long2560-q88-bilinear-444",
    "scale0.33-q75",
    "long1800-q92",  # a high quality after the downscale: JPEG artefacts cannot do the work
    "scale0.5-q85-bicubic",
    "none-q80",  # full size at another quality: a destination keeping a photo within its limit
    # A tenth smaller at the task's quality: the scales between full size and the named
    # downscales, where 8 photos protected with the defaults held on 4 (docs/benchmarks.md,
    # "Mastodon, and the scales between"); in the corpus runs from 2026-12-04 on.
    "scale0.9-q90",
    # About half size at the task's quality: where the largest photo was weakest before `web`
    # joined the default set (docs/benchmarks.md, "Half size on the largest photo"); in the
    # corpus runs from 2026-12-04 evening on.
    "scale0.66-q90",
    "scale0.5-q90",
    # Crops to another aspect: their fits are of a tighter box than any default's.
    "crop1:1-long1080-q80",  # a square post
    "width1080-crop3:4-q80",  # a profile grid's 3:4 thumbnail of the served photo
    "crop191:100-width1200-q85",  # a link preview
)
# The downscaling defaults a few pixels off their size or through another filter: a platform's
# own resizer does not land on Pillow's exact grid, and a perturbation fitted to that grid alone
# loses most of its effect a pixel away (docs/benchmarks.md, "The served grid").
NEARBY = (
    "long2047-q85",
    "width1079-q80",
    "long1599-q75",
    "long2048-q85-bicubic",
    "width1080-q80-bilinear",
)
DEFAULT_JUDGE = (*DEFAULT_PLATFORMS, *UNSEEN, *NEARBY)
GROUPS = ("default", "preset", "nearby", "unseen")


def numbers(pipeline: Pipeline) -> Pipeline:
    """The pipeline without its name: what it does, to compare pipelines by."""
    return replace(pipeline, name="")


def group_of(pipeline: Pipeline, protected_for: tuple[Pipeline, ...]) -> str:
    """``default`` (the run's pixcamd method protects for it), ``preset`` (another preset),
    ``nearby`` (one of ``NEARBY``: a default a little off its grid) or ``unseen`` (any other
    pipeline in no preset), by the pipeline's numbers."""
    if numbers(pipeline) in {numbers(p) for p in protected_for}:
        return "default"
    if numbers(pipeline) in {numbers(p) for p in PRESETS.values()}:
        return "preset"
    if numbers(pipeline) in {numbers(p) for p in parse_platforms(NEARBY)}:
        return "nearby"
    return "unseen"


def task_pipeline_name(pipelines: tuple[Pipeline, ...]) -> str:
    """The judged pipeline that is the task's (no resize, Pillow JPEG-90 4:2:0)."""
    for p in pipelines:
        if numbers(p) == numbers(PRESETS["task"]):
            return p.name
    raise ValueError(
        "the task's accuracy is judged after the task pipeline: include task in --judge"
    )


def view_name(label: str) -> str:
    return "tiles" if label.startswith("tile@") else label


def judge_image(
    img: Image.Image, model: QualityModel, views, pipelines: tuple[Pipeline, ...]
) -> tuple[dict, dict]:
    """pipeline → view → score of ``img`` (a decoded file) as each pipeline really serves it, and
    pipeline → served size. Tiles are reduced to the worst tile (the one nearest "good")."""
    scores, served = {}, {}
    sign = 1.0 if model.higher_is_better else -1.0
    for pipeline in pipelines:
        seen = pipeline.apply(img)
        served[pipeline.name] = list(seen.size)
        per_label = score_image_views(seen, [model], views)[model.name]
        per_view: dict[str, float] = {}
        for label, score in per_label.items():
            name = view_name(label)
            if name not in per_view or sign * score > sign * per_view[name]:
                per_view[name] = score
        scores[pipeline.name] = per_view
    return scores, served


def verdicts(
    scores: dict, model: QualityModel, groups: dict[str, str], task_name: str
) -> dict[str, object]:
    """Everything that follows from pipeline → view → scores: low flags, protected per pipeline
    and per group, the worst (pipeline, view), the task's accuracy flag."""
    low = {p: {v: not bool(model.is_good(s)) for v, s in per.items()} for p, per in scores.items()}
    protected_on = {p: all(per.values()) for p, per in low.items()}
    by_group = {}
    for group in GROUPS:
        names = [p for p in scores if groups[p] == group]
        by_group[group] = all(protected_on[p] for p in names) if names else None
    sign = 1.0 if model.higher_is_better else -1.0
    worst = max(
        (
            {"pipeline": p, "view": v, "score": s, "good_by": sign * (s - model.threshold)}
            for p, per in scores.items()
            for v, s in per.items()
        ),
        key=lambda r: r["good_by"],
    )
    return {
        "judged": scores,
        "low": low,
        "protected_on": protected_on,
        "protected_defaults": by_group["default"],
        "protected_presets": by_group["preset"],
        "protected_nearby": by_group["nearby"],
        "protected_unseen": by_group["unseen"],
        "protected_all": all(protected_on.values()),
        "worst": worst,
        "center_good_task": bool(model.is_good(scores[task_name]["center"])),
    }
