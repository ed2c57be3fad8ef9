"""What a protection step costs, and the memory it takes. Three parts, each its own subcommand
(``--json FILE`` goes before the subcommand):

    .venv/bin/python bench/bench_protect.py step [--megapixels 12] [--steps 5] [--mode enhance]
        [--platforms LIST, e.g. task or task,instagram] [--views-per-step 4] [--roaming 2]
        [--near-full 1]
    .venv/bin/python bench/bench_protect.py step --model brisque --per-view
    .venv/bin/python bench/bench_protect.py memory [--megapixels 24] [--model koncept512]
        [--mode enhance] [--platforms LIST] [--views-per-step 4]
    .venv/bin/python bench/bench_protect.py whole --photo PHOTO [--megapixels 24]
        [--model koncept512] [--steps 2]

``step``: seconds per optimizer iteration with views center,resize seen through the platform
pipelines of ``--platforms`` (default: pixcamd's default set; ``--platforms task`` is the
behaviour before issue #11) on a photo of the given size, KonCept512 with RANDOM weights
(labelled: timing only). A step of the invisible perturbation evaluates at most
``--views-per-step`` of the loop views (``pixcamd.pipeline_views``; ``--roaming`` random
pipelines in no preset only fill the slots they leave free; ``--near-full`` downscales near full
size come on top of them), so the result also gives the
bare cost of that many forward+backward passes of the model measured in the same process, and
the ratio — the rest of the pipeline (views, straight-through resizes, in-loop JPEG, update of the
full-resolution perturbation) is what the ratio exposes — and, for comparison with earlier
figures, the bare cost of two passes. With ``--per-view`` (invisible mode), also each loop
view evaluated alone (forward and backward, as a step evaluates it) and three seeded roaming
views, median of ``--steps`` each: which views make a step dear.
``memory``: peak RSS of a few protection steps, a real check of every pipeline and PSNR/SSIM —
protect()'s peaks — on a photo of that size, in a fresh process.
``whole``: the memory a whole ``protect()`` adds — every round of the schedule (``--steps`` a
round), its roaming views, real checks and report — on ``--photo`` resized to ``--megapixels``,
in a fresh process: the kernel's high-water mark of RSS during ``protect()`` (VmHWM, reset just
before it) less the RSS then (the model loaded, the photo in memory), beside the memory check's
estimate (``pixcamd.devices.memory_needed``), which must not be below it. KonCept512's
RANDOM-weight scores are shifted onto the "good" side (``evaluate.TimingOnly``) so that it
protects at all.
``--mode enhance`` measures the colour filter's optimizer (``pixcamd.enhance.Enhancer``) instead
of the invisible perturbation (``auto`` is one, then the other: its peaks are theirs); the filter's
loop models the first pipeline's JPEG at full size only, so ``--platforms`` changes only its check.
Protection rates, PSNR/SSIM and cost per photo on the corpus: ``bench/evaluate.py``.
Medians over the repeats; machine facts printed with every result.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import host
import numpy as np
import torch
from PIL import Image

from pixcamd.allocator import one_arena
from pixcamd.check import check_output, psnr_ssim
from pixcamd.enhance import Enhancer
from pixcamd.jpeg import decode
from pixcamd.models import load_model
from pixcamd.models.koncept512 import KonCept512
from pixcamd.optimizer import Attack
from pixcamd.photo import to_image, to_tensor
from pixcamd.platform_specs import parse_platforms
from pixcamd.platforms import DEFAULT_PLATFORMS
from pixcamd.roaming import near_full_view, roaming_view
from pixcamd.settings import Settings, view_workers


def test_photo(megapixels: float, seed: int = 0) -> Image.Image:
    """A 4:3 photo-like image: smooth gradients plus texture (the content does not change cost)."""
    width = int((megapixels * 1e6 * 4 / 3) ** 0.5) // 16 * 16
    height = width * 3 // 4
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    base = np.stack(
        [120 + 80 * np.sin(7 * x + 3 * y), 100 + 90 * y + 0 * x, 140 - 60 * x + 0 * y], -1
    )
    noise = rng.normal(0, 10, (height, width, 1)).astype(np.float32)
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


def model_for(name: str):
    if name == "koncept512":
        return KonCept512()  # RANDOM weights: timing and memory only, never a protection figure
    return load_model(name)


def settings_for(args, **fields) -> Settings:
    """Settings with the platforms and views per step of the command line."""
    return Settings(
        platforms=parse_platforms(args.platforms),
        views_per_step=args.views_per_step,
        roaming=args.roaming,
        near_full=args.near_full,
        workers=args.workers,
        **fields,
    )


def optimizer(mode: str, photo: torch.Tensor, model, settings: Settings):
    """The mode's optimizer towards a target it never reaches (no early stop), a function that
    runs it ``n`` steps, and the number of model passes (views) one step evaluates."""
    unreachable = {model.name: -1e9 if model.higher_is_better else 1e9}
    views = settings.views
    if mode == "enhance":
        enhancer = Enhancer(photo, [model], views, unreachable, settings.chain())
        return enhancer, lambda n: enhancer.run(n), len(enhancer.views)
    attack = Attack(
        photo,
        [model],
        views,
        unreachable,
        settings.chain(),
        batch_size=settings.batch_size,
        platforms=settings.platforms,
        output=settings.output,
        views_per_step=settings.views_per_step,
        roaming=settings.roaming,
        near_full=settings.near_full,
        workers=view_workers(settings),
    )
    # Unreachable targets: every loop view stays pending, so each step takes the cap — every
    # slot, once the roaming views (random pipelines in no preset) fill what the named views
    # leave free, which they do wherever a named pipeline resizes or crops; the view near full
    # size comes on top where one shrinks the photo (and the photo is large enough for one).
    named = min(attack.views_per_step, len(attack.loop_views))
    per_step = attack.views_per_step if attack.roaming else named
    height, width = photo.shape[-2:]
    if near_full_view(width, height, torch.Generator()) is not None:
        per_step += attack.near_full
    return attack, lambda n: attack.run(4 / 255, n), per_step


def bare_cost(model, views: int, batch_size: int, repeats: int) -> float:
    """Median seconds of ``views`` forward+backward passes of the model alone, in batches of
    ``batch_size`` as the optimizer runs them."""
    batch = torch.rand(views, 3, 384, 512)

    def once():
        for chunk in batch.split(batch_size):
            x = chunk.clone().requires_grad_(True)
            model(x).sum().backward()

    once()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def step_cost(args) -> dict:
    model = model_for(args.model)
    photo = to_tensor(test_photo(args.megapixels))
    settings = settings_for(args)
    loop, run, views = optimizer(args.mode, photo, model, settings)
    run(1)  # warm-up
    per_step = []
    for _ in range(args.steps):
        start = time.perf_counter()
        run(1)
        per_step.append(time.perf_counter() - start)
    step = statistics.median(per_step)
    base = bare_cost(model, views, settings.batch_size, args.steps)
    two = base if views == 2 else bare_cost(model, 2, settings.batch_size, args.steps)
    loop_views = getattr(loop, "loop_views", None)
    per_view = view_costs(loop, args.steps) if args.per_view else None
    return {
        "part": "step",
        "mode": args.mode,
        "model": model.fingerprint,
        "photo": f"{photo.shape[-1]}x{photo.shape[-2]}",
        "megapixels": photo.shape[-1] * photo.shape[-2] / 1e6,
        "views": ",".join(settings.views),
        "platforms": [p.as_dict() for p in settings.platforms],
        "loop_views": [v.label for v in loop_views] if loop_views is not None else None,
        "views_per_step": views,
        "seconds_per_step": step,
        "seconds_bare_fwd_bwd": base,
        "seconds_two_fwd_bwd_alone": two,
        "pipeline_ratio": step / base,
        "seconds_per_step_per_view": step / views,
        "seconds_per_view": per_view,
        "repeats": args.steps,
        "machine": host.machine(),
    }


def view_costs(attack: Attack, repeats: int, roaming: int = 3) -> list[dict]:
    """Median seconds of each loop view evaluated alone, forward and backward, drawn off its
    grid as a step draws it; then ``roaming`` roaming views from a fixed seed."""
    height, width = attack.photo.shape[-2:]
    generator = torch.Generator().manual_seed(5)
    views = list(attack.loop_views) + [
        roaming_view(width, height, attack.largest, generator, attack.output)
        for _ in range(roaming if attack.roaming else 0)
    ]
    rows = []
    for view in (v for v in views if v is not None):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            attack.evaluate(backward=True, chosen=[attack._nearby(view)])
            times.append(time.perf_counter() - start)
        rows.append(
            {"view": view.label, "kind": type(view).__name__, "seconds": statistics.median(times)}
        )
    return rows


def in_fresh_process(args, *options: str) -> dict:
    """Run this part again in a fresh process (``--child``), so that its peak RSS is its own,
    with the options every part shares and ``options``; the child's last line, its JSON."""
    cmd = [sys.executable, __file__, args.part, "--child"]
    for name in ("megapixels", "model", "steps", "platforms", "workers", *options):
        cmd += ["--" + name.replace("_", "-"), str(getattr(args, name))]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def memory(args) -> dict:
    if not args.child:
        return in_fresh_process(args, "mode", "views_per_step", "roaming", "near_full")
    model = model_for(args.model)
    image = test_photo(args.megapixels)
    settings = settings_for(args, targets={}, steps=args.steps, epsilon_cap=4 / 255)
    loop, run, _ = optimizer(args.mode, to_tensor(image), model, settings)
    run(args.steps)
    # protect()'s other peaks happen while the optimizer is alive: the real check of a
    # candidate through every pipeline and the PSNR/SSIM of the result.
    candidate = to_image(loop.pixels())
    data, _ = check_output(
        candidate,
        [model],
        settings.views,
        settings.platforms,
        settings.output,
        view_workers(settings),
    )
    psnr_ssim(image, decode(data))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "part": "memory",
        "mode": args.mode,
        "model": model.fingerprint,
        "photo": f"{image.width}x{image.height}",
        "megapixels": image.width * image.height / 1e6,
        "steps": args.steps,
        "platforms": [p.name for p in settings.platforms],
        "peak_rss_mb": peak_mb,
        "machine": host.machine(),
    }
    print(json.dumps(result))
    return result


def whole(args) -> dict:
    if not args.child:
        return in_fresh_process(args, "photo")
    from evaluate import TimingOnly
    from evaluate_methods import peak_rss_mb, reset_peak_rss

    from pixcamd.devices import memory_needed, release_memory
    from pixcamd.protect import protect

    model = model_for(args.model)
    if args.model == "koncept512":
        model = TimingOnly(model).eval()
    with Image.open(args.photo) as source:
        source = source.convert("RGB")
        k = (args.megapixels * 1e6 / (source.width * source.height)) ** 0.5
        image = source.resize((round(source.width * k), round(source.height * k)), Image.LANCZOS)
    settings = settings_for(args, steps=args.steps)
    release_memory()
    if not reset_peak_rss():
        sys.exit("whole: this kernel cannot reset a process's peak RSS (/proc/self/clear_refs)")
    before = peak_rss_mb()  # right after the reset, the high-water mark is the RSS now
    start = time.perf_counter()
    result = protect(image, [model], settings)
    seconds, peak = time.perf_counter() - start, peak_rss_mb()
    pixels = image.width * image.height
    out = {
        "part": "whole protect()",
        "model": model.fingerprint,
        "photo": f"{Path(args.photo).name} at {image.width}x{image.height}",
        "megapixels": pixels / 1e6,
        "steps": result.steps,
        "checks": result.checks,
        "seconds": seconds,
        "rss_before_mb": before,
        "peak_rss_mb": peak,
        "added_gb": (peak - before) * 2**20 / 1e9,
        "estimate_gb": memory_needed(pixels, [model.name]) / 1e9,
        "machine": host.machine(),
    }
    print(json.dumps(out))
    return out


def main() -> None:
    one_arena()  # as the CLI does, before any thread starts
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="part", required=True)
    for name in ("step", "memory", "whole"):
        p = sub.add_parser(name)
        p.add_argument("--megapixels", type=float, default=12.0 if name == "step" else 24.0)
        p.add_argument("--model", default="koncept512", choices=("koncept512", "brisque"))
        p.add_argument("--steps", type=int, default=5 if name == "step" else 2)
        p.add_argument("--mode", default="invisible", choices=("invisible", "enhance"))
        p.add_argument(
            "--platforms",
            default=",".join(DEFAULT_PLATFORMS),
            help="pipelines the loop sees: presets or inline specs (default: the default set; "
            "task = before issue #11)",
        )
        p.add_argument(
            "--views-per-step",
            type=int,
            default=Settings.views_per_step,
            help="loop views evaluated per step (0 = all)",
        )
        p.add_argument(
            "--roaming",
            type=int,
            default=Settings.roaming,
            help="random pipelines in no preset added to each step",
        )
        p.add_argument(
            "--near-full",
            type=int,
            default=Settings.near_full,
            help="downscales near full size added to each step, beside the roaming ones",
        )
        p.add_argument(
            "--workers",
            type=int,
            default=Settings.workers,
            help="views evaluated side by side (at most the torch threads; 1 = one by one)",
        )
        if name == "step":
            p.add_argument(
                "--per-view",
                action="store_true",
                help="also time each loop view alone (invisible mode)",
            )
        if name == "whole":
            p.add_argument("--photo", type=Path, required=True, help="resized to --megapixels")
        p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    try:
        parse_platforms(args.platforms)
    except ValueError as exc:
        parser.error(f"--platforms: {exc}")
    if getattr(args, "per_view", False) and args.mode != "invisible":
        parser.error("--per-view: only the invisible mode has loop views to time")
    result = {"step": step_cost, "memory": memory, "whole": whole}[args.part](args)
    if args.part == "step" or not args.child:
        print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
