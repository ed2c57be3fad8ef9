"""Views side by side: ``protect()`` with a step's views (and a check's pipelines) on one thread
against two, on real photos, in one process — the same copy to the bit, and how much sooner.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/bench_workers.py PHOTO... [--repeats 3]
        [--platforms task,facebook,...] [--model brisque] [--json FILE]

For each photo and each platform set (the default set, then ``task`` alone), the two settings
alternate ``--repeats`` times, after one warm-up run of the process (so a slow minute of the
machine falls on both); the report gives each one's median seconds, their ratio, and whether
every run wrote the same bytes. Two torch threads (the workers never exceed them). BRISQUE is
the model here; its cost per view is mostly small tensor operations and Pillow's resize and
JPEG, which keep one core busy however many torch threads there are. KonCept512's convolutions
already use both cores: ``bench/bench_protect.py step --workers 1|2`` measures its step.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import host  # noqa: E402

from pixcamd.models import load_model  # noqa: E402
from pixcamd.photo import load_photo  # noqa: E402
from pixcamd.platform_specs import parse_platforms  # noqa: E402
from pixcamd.platforms import DEFAULT_PLATFORMS  # noqa: E402
from pixcamd.protect import Settings, protect  # noqa: E402


def timed(image, model, settings: Settings) -> tuple[float, str, int]:
    start = time.perf_counter()
    result = protect(image, [model], settings)
    seconds = time.perf_counter() - start
    return seconds, hashlib.sha256(result.output_jpeg).hexdigest(), result.steps


def one_photo(path: Path, model, platforms: str, repeats: int) -> dict:
    image = load_photo(path)
    pipelines = parse_platforms(platforms)
    settings = {w: Settings(platforms=pipelines, workers=w) for w in (1, 2)}
    seconds: dict[int, list[float]] = {1: [], 2: []}
    digests, steps = set(), set()
    for _ in range(repeats):
        for w in (1, 2):
            s, digest, n = timed(image, model, settings[w])
            seconds[w].append(s)
            digests.add(digest)
            steps.add(n)
    one, two = statistics.median(seconds[1]), statistics.median(seconds[2])
    return {
        "photo": path.name,
        "megapixels": round(image.width * image.height / 1e6, 2),
        "platforms": platforms,
        "steps": sorted(steps),
        "seconds_one_thread": seconds[1],
        "seconds_two_threads": seconds[2],
        "median_one": one,
        "median_two": two,
        "ratio": two / one,
        "same_bytes": len(digests) == 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", nargs="+", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="brisque", choices=("brisque",))
    parser.add_argument(
        "--platforms",
        default=f"{','.join(DEFAULT_PLATFORMS)};task",
        help="platform sets separated by ';' (default: the default set, then task)",
    )
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = load_model(args.model)
    print(f"{host.machine_line()}; {model.fingerprint}", flush=True)
    first = load_photo(args.photos[0])
    timed(first, model, Settings(platforms=parse_platforms("task")))  # warm-up: caches, allocator
    rows = []
    for platforms in args.platforms.split(";"):
        for path in args.photos:
            row = one_photo(path, model, platforms, args.repeats)
            rows.append(row)
            print(
                f"{row['photo']} ({row['megapixels']} MP) [{platforms}]: "
                f"{row['median_one']:.1f} s → {row['median_two']:.1f} s, "
                f"×{row['ratio']:.2f}, steps {row['steps']}, "
                f"same bytes: {'yes' if row['same_bytes'] else 'NO'}",
                flush=True,
            )
    report = {"model": model.fingerprint, "rows": rows, "machine": host.machine()}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
