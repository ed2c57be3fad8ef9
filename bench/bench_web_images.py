"""Memory the web page takes to make its images of a large photo: the original rendered as PNG,
the thumbnail and the difference, several asked at once as a browser asks (six connections to a
page), made through the page's own cache as the page makes them (``pixcamd.web.files``).

    .venv/bin/python bench/bench_web_images.py [--megapixels 24] [--asked 6] [--repeats 3]
        [--photo FILE.jpg] [--thumbnails-only] [--runs 9]

Each measurement is a fresh process (one malloc arena and torch loaded, as in the daemon, and
the photo decoded once beforehand): the peak resident memory (VmHWM, reset through
``/proc/self/clear_refs``) above what it held just before the images, for ``--asked`` distinct
images made at once with the page's limit (``MAKERS``) and with no limit (as many makers as
requests), and the seconds until all were made; medians over ``--repeats`` processes.

"thumbnail, whole decode" is the page's thumbnail as it was made before JPEGs were decoded
small (the whole photo decoded, then shrunk); its seconds are also measured against today's in
one process, the two alternating ``--runs`` times (medians, and the median of the per-run
ratios). ``--photo``: a JPEG of your own instead of the synthetic photo (its copy is the same
photo a grey level off).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_protect import test_photo  # noqa: E402
from host import machine_line  # noqa: E402

# What both children run first: the daemon's process as the page finds it, and the thumbnail as
# the page made it before JPEGs were decoded small.
PRELUDE = """
import io, json, statistics, sys, threading, time
from pathlib import Path
from pixcamd.allocator import one_arena
one_arena()  # as the CLI sets it, before any thread
import torch  # noqa: F401  (the daemon has it loaded)
from pixcamd.web import files

big = 10**9

def status(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024

def whole_thumbnail(path, max_pixels):  # the whole photo decoded, then shrunk
    image = files.decode(path, max_pixels)
    image.thumbnail((files.THUMB_SIDE, files.THUMB_SIDE))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return buffer.getvalue()
"""

CHILD = (
    PRELUDE
    + """
kind, asked, makers, original, copy, root = sys.argv[1:]
asked, makers = int(asked), int(makers)
make = {
    "original": lambda: files.png(files.decode(Path(original), big)),
    "thumbnail": lambda: files.thumbnail(Path(original), big),
    "whole": lambda: whole_thumbnail(Path(original), big),
    "difference": lambda: files.difference(Path(original), Path(copy), big),
}[kind]
files.decode(Path(original), big)  # imports and first-use allocations, outside the figure
cache = files.Cache(Path(root), makers=makers)
Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from here
before, start = status("VmRSS"), time.perf_counter()
threads = [threading.Thread(target=cache.get, args=(f"{kind}-{n}", make)) for n in range(asked)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
seconds = time.perf_counter() - start
print(json.dumps({"before": before, "peak": status("VmHWM"), "seconds": seconds}))
"""
)

# One process, the two thumbnails alternating (the first of each a warm-up): the same machine
# state for both, so their ratio holds while a neighbour's load comes and goes.
TIMING = (
    PRELUDE
    + """
runs, original = int(sys.argv[1]), Path(sys.argv[2])
made = {"whole": whole_thumbnail, "thumbnail": files.thumbnail}
seconds = {kind: [] for kind in made}
for n in range(runs + 1):
    for kind, make in made.items():
        start = time.perf_counter()
        make(original, big)
        if n:
            seconds[kind].append(time.perf_counter() - start)
ratios = [w / t for w, t in zip(seconds["whole"], seconds["thumbnail"])]
medians = {kind: statistics.median(values) for kind, values in seconds.items()}
print(json.dumps({**medians, "ratio": statistics.median(ratios)}))
"""
)


def measure(kind: str, asked: int, makers: int, original: Path, copy: Path) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as root:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, kind, str(asked), str(makers), original, copy, root],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        )
    figures = json.loads(done.stdout)
    return figures["peak"] - figures["before"], figures["seconds"]


def timing(runs: int, original: Path) -> dict:
    """Medians of ``runs`` alternating thumbnails in one process, whole decode and small."""
    done = subprocess.run(
        [sys.executable, "-c", TIMING, str(runs), original],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    return json.loads(done.stdout)


def main() -> None:
    from PIL import Image

    from pixcamd.web.files import MAKERS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megapixels", type=float, default=24)
    parser.add_argument("--photo", type=Path, help="a JPEG to use instead of a synthetic one")
    parser.add_argument("--asked", type=int, default=6, help="images asked for at once")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runs", type=int, default=9, help="one-process thumbnail timings")
    parser.add_argument("--thumbnails-only", action="store_true")
    args = parser.parse_args()
    print(machine_line())
    with tempfile.TemporaryDirectory() as folder:
        original, copy = Path(folder) / "original.jpg", Path(folder) / "copy.jpg"
        if args.photo:
            original.write_bytes(args.photo.read_bytes())
            photo = Image.open(original)
            photo.load()
        else:
            photo = test_photo(args.megapixels)
            photo.save(original, quality=92)
        # a protected copy's kind of change: a grey level or two, everywhere
        noisy = photo.point(lambda v: min(v + 1, 255))
        noisy.save(copy, quality=92)
        print(
            f"{args.photo or 'synthetic'}: {photo.width}×{photo.height}, "
            f"{original.stat().st_size / 1e6:.1f} MB; {args.asked} images asked for at once, "
            f"MB above the process before them, median of {args.repeats}"
        )
        print(f"| image | one | limited (MAKERS = {MAKERS}) | unlimited |")
        print("|---|---|---|---|")
        kinds = ["whole", "thumbnail"] + ["original", "difference"] * (not args.thumbnails_only)
        for kind in kinds:
            row = []
            for asked, makers in ((1, 1), (args.asked, MAKERS), (args.asked, args.asked)):
                runs = [measure(kind, asked, makers, original, copy) for _ in range(args.repeats)]
                mb = statistics.median(mb for mb, _ in runs)
                seconds = statistics.median(s for _, s in runs)
                row.append(f"{mb:.0f} MB, {seconds:.2f} s")
            name = {"whole": "thumbnail, whole decode (before)"}.get(kind, kind)
            print(f"| {name} | " + " | ".join(row) + " |")
        same = timing(args.runs, original)
        print(
            f"one process, {args.runs} runs alternating: thumbnail from the whole decode "
            f"{same['whole']:.3f} s, from the small one {same['thumbnail']:.3f} s "
            f"(×{same['ratio']:.1f} faster, median of the runs' ratios)"
        )


if __name__ == "__main__":
    main()
