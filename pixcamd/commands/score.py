"""``pixcamd score``: how the BIQA judges photos, view by view, as the task would."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pixcamd.commands.progress import display
from pixcamd.errors import PixcamdError, without_path
from pixcamd.report import score_text

if TYPE_CHECKING:
    from pixcamd.scoring import PhotoScore

# torch and the models are imported by the handler, when it runs: not by `pixcamd --help`


def run(args) -> int:
    from pixcamd.models import load_model
    from pixcamd.scoring import score_file

    photos, notes = photos_to_score(args.files)  # before the model: said at once
    model = load_model(args.model, args.weights, args.device)
    announce_model(model, args.model)
    for line in notes:
        print(display(line), file=sys.stderr)
    pipelines = args.platforms
    results: list[dict] = []
    failures = 0
    for path, refused in photos:
        try:
            if refused:
                raise PixcamdError(f"{path}: {refused}")
            scored = score_file(path, model, args.views, pipelines)
        except PixcamdError as exc:
            failures += 1
            why = without_path(str(exc), str(path))
            print(display(f"{path}: error: {why}"), file=sys.stderr)
            results.append({"path": str(path), "error": str(exc)})
            continue
        results.append(scored.as_dict())
        for note in scored.warnings:  # as protect says them, on stderr
            print(display(f"{path}: {note}"), file=sys.stderr)
        if not args.json:
            print_table(scored)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
    if failures:
        print(f"{failures} of {len(photos)} files could not be scored", file=sys.stderr)
    return 1 if failures else 0


def photos_to_score(given: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """The photos ``given`` names, in its order, each once and with why it is refused ("" if
    not): a file as it is (``score_file`` says what is wrong with anything but a photo), a
    folder walked as ``protect`` walks one; and what the walks left alone, in words, never
    unseen — once, however often a folder was given."""
    from pixcamd.folder_plan import Plan, plan_notes, plan_sources

    photos: list[tuple[str, str]] = []
    notes: list[str] = []
    walked = Plan()  # every walk's leftovers and the photos met again, said once at the end
    for name in given:
        # no record keeps a score: a name that is not UTF-8 is scored, as on its own
        plan = plan_sources([Path(name)], keyed=False)
        folder = Path(name).is_dir()
        found = []
        for source in plan.sources:  # by where its name is: a photo and its folder, one
            if source.place in walked.taken:
                walked.repeated += 1
            else:
                walked.taken.add(source.place)
                found.append((str(source.path) if folder else name, ""))  # a file as given
        found += [
            (str(path), why) for path, why in plan.refused if (path, why) not in walked.refused
        ]
        walked.refused += plan.refused
        walked.hidden += plan.hidden
        walked.passed_over += plan.passed_over
        walked.others |= plan.others
        # a file as it came, a folder's photos in the folder's order, refused files among them
        photos += sorted(found) if folder else found
        if folder and not plan.sources and not plan.refused:
            notes.append(f"{name}: no photo in it to score")
    walked.hidden = list(dict.fromkeys(walked.hidden))
    walked.passed_over = list(dict.fromkeys(walked.passed_over))
    return photos, plan_notes(walked, "score", "scored") + notes


def announce_model(model, asked: str) -> None:
    """Say which scorer judges, loudly when ``auto`` fell back to BRISQUE."""
    side = ">" if model.higher_is_better else "<"
    line = f"model {model.name} ({model.fingerprint}): good quality iff score {side} "
    line += f"{model.threshold:g}"
    if asked == "auto" and model.name == "brisque":
        line += " — KonCept512 weights not installed (`pixcamd model fetch`), using BRISQUE"
    print(line, file=sys.stderr)


def side(model: dict, score: float, good: bool) -> str:
    """Which side of ``model``'s threshold ``score`` lies on, as a person checks it: ``< 60``
    or ``≥ 60`` under BRISQUE (good below), ``> 50`` or ``≤ 50`` under KonCept512 (good
    above) — the verdict's reason beside the score."""
    higher = model["direction"] == "higher_is_better"
    sign = (">" if higher else "<") if good else ("≤" if higher else "≥")
    return f"{sign} {model['threshold']:g}"


def good_side(model: dict) -> str:
    """``brisque: good below 60``: the model, and which side of its threshold is good."""
    where = "above" if model["direction"] == "higher_is_better" else "below"
    return f"{model['model']}: good {where} {model['threshold']:g}"


def print_table(scored: PhotoScore) -> None:
    width, height = scored.size
    worst = scored.worst()
    jpeg = scored.encoding
    if jpeg:
        near = "" if jpeg["exact"] else "≈"
        jpeg_text = f", a JPEG {near}q{jpeg['quality']} {jpeg['subsampling']}"
    else:
        jpeg_text = ""
    name = display(str(scored.path))
    print(
        f"{name}  ({width}×{height}{jpeg_text}): {scored.verdict.upper()} — best seen by "
        f"{worst['pipeline']} {worst['view']} ({score_text(worst['score'], 2)}; "
        f"{good_side(scored.model)})"
    )
    for p in scored.platforms:
        served = "×".join(map(str, p.served))
        print(f"  {p.pipeline.name} — {p.pipeline.describe()}, served at {served}")
        for v in p.views:
            sides = side(scored.model, v.score, v.good)
            print(f"    {v.view:<16} {score_text(v.score, 2):>8}  {v.verdict} ({sides})")
