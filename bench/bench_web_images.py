"""Memory the web page takes to make its images of a large photo: the original rendered as PNG,
the thumbnail and the difference, several asked at once as a browser asks (six connections to a
page), made through the page's own cache as the page makes them (``pixcamd.web.files``).

    .venv/bin/python bench/bench_web_images.py [--megapixels 24] [--asked 6] [--repeats 3]

Each measurement is a fresh process (one malloc arena and torch loaded, as in the daemon, and
the photo decoded once beforehand): the peak resident memory (VmHWM, reset through
``/proc/self/clear_refs``) above what it held just before the images, for ``--asked`` distinct
images made at once with the page's limit (``MAKERS``) and with no limit (as many makers as
requests), and the seconds until all were made; medians over ``--repeats`` processes.
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

CHILD = """
import json, sys, threading, time
from pathlib import Path
from pixcamd.allocator import one_arena
one_arena()  # as the CLI sets it, before any thread
import torch  # noqa: F401  (the daemon has it loaded)
from pixcamd.web import files

def status(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024

kind, asked, makers, original, copy, root = sys.argv[1:]
asked, makers = int(asked), int(makers)
big = 10**9
make = {
    "original": lambda: files.png(files.decode(Path(original), big)),
    "thumbnail": lambda: files.thumbnail(Path(original), big),
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


def main() -> None:
    from pixcamd.web.files import MAKERS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megapixels", type=float, default=24)
    parser.add_argument("--asked", type=int, default=6, help="images asked for at once")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(machine_line())
    with tempfile.TemporaryDirectory() as folder:
        original, copy = Path(folder) / "original.jpg", Path(folder) / "copy.jpg"
        photo = test_photo(args.megapixels)
        photo.save(original, quality=92)
        # a protected copy's kind of change: a grey level or two, everywhere
        noisy = photo.point(lambda v: min(v + 1, 255))
        noisy.save(copy, quality=92)
        print(
            f"{photo.width}×{photo.height}, {args.asked} images asked for at once, "
            f"MB above the process before them, median of {args.repeats}"
        )
        print(f"| image | one | limited (MAKERS = {MAKERS}) | unlimited |")
        print("|---|---|---|---|")
        for kind in ("thumbnail", "original", "difference"):
            row = []
            for asked, makers in ((1, 1), (args.asked, MAKERS), (args.asked, args.asked)):
                runs = [measure(kind, asked, makers, original, copy) for _ in range(args.repeats)]
                mb = statistics.median(mb for mb, _ in runs)
                seconds = statistics.median(s for _, s in runs)
                row.append(f"{mb:.0f} MB, {seconds:.1f} s")
            print(f"| {kind} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
