"""Per-pipeline scores in words, the same in the CLI, the daemon's log and ``pixcamd status``."""

from __future__ import annotations


def score_text(value: float, digits: int = 1) -> str:
    """A score to ``digits`` decimals, never rounded onto a whole number it is not: the models'
    thresholds are whole numbers (50, 60), so a good 59.97 under BRISQUE's 60 reads 59.97, not
    60.0, a score at the threshold itself, which the verdict is not."""
    text = f"{value:.{digits}f}"
    while digits < 6 and float(text).is_integer() and float(text) != value:  # nan, inf: never
        digits += 1
        text = f"{value:.{digits}f}"
    return text


def scores_text(scores: dict, worst: dict | None = None) -> str:
    """``{pipeline: {model: {view: score}}}`` → ``task: center 82.1 resize 98.1 | instagram: …``,
    naming the models only when there are several, and the worst (pipeline, view) at the end."""
    several = len({m for per_model in scores.values() for m in per_model}) > 1
    parts = []
    for pipeline, per_model in scores.items():
        text = ", ".join(
            (f"{model} " if several else "")
            + " ".join(f"{view} {score_text(value)}" for view, value in per_view.items())
            for model, per_view in per_model.items()
        )
        parts.append(f"{pipeline}: {text}")
    out = " | ".join(parts)
    return f"{out} — {worst_text(worst, several)}" if worst else out


def worst_text(worst: dict, model: bool = False) -> str:
    """``worst: instagram center 83.8`` (what decides the verdict)."""
    name = f" ({worst['model']})" if model else ""
    return f"worst: {worst['pipeline']} {worst['view']} {score_text(worst['score'])}{name}"
