"""Scores in words: never rounded onto the threshold from the verdict's side."""

from __future__ import annotations

import pytest

from pixcamd.report import score_text, scores_text


@pytest.mark.parametrize(
    "value, shown",
    [
        (59.97, "59.97"),
        (60.04, "60.04"),
        (49.96, "49.96"),
        (59.9999, "59.9999"),
        (60.0, "60.0"),
        (82.14, "82.1"),
        (0.0, "0.0"),
        (float("nan"), "nan"),
        (float("inf"), "inf"),
    ],
)
def test_a_score_is_never_rounded_onto_a_whole_number_it_is_not(value, shown):
    assert score_text(value) == shown


def test_the_summary_line_keeps_a_good_score_under_the_threshold():
    worst = {"pipeline": "task", "view": "center", "score": 59.97}
    assert scores_text({"task": {"brisque": {"center": 59.97}}}, worst) == (
        "task: center 59.97 — worst: task center 59.97"
    )
