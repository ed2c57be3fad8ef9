"""What a protection step costs. Two parts, each its own subcommand:

    .venv/bin/python bench/bench_protect.py step [--megapixels 12] [--steps 5] [--mode enhance]
    .venv/bin/python bench/bench_protect.py memory [--megapixels 24] [--model koncept512]
        [--mode enhance]

``step``: seconds per optimizer iteration with views center,resize on a photo of the given size,
KonCept512 with RANDOM weights (labelled: timing only), as a ratio to the bare cost of the two
forward+backward passes of the model measured in the same process — the rest of the pipeline
(views, in-loop JPEG, update of the full-resolution perturbation) is what the ratio exposes.
``memory``: peak RSS of a few protection steps, a real check and PSNR/SSIM — protect()'s
peaks — on a photo of that size, in a fresh process.
``--mode enhance`` measures the colour filter's optimizer (``pixcamd.enhance.Enhancer``) instead
of the invisible perturbation (``auto`` is one, then the other: its peaks are theirs).
Protection rates, PSNR/SSIM and cost per photo on the corpus: ``bench/evaluate.py``.
Medians over the repeats; machine facts printed with every result.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pixcamd.check import check_output, psnr_ssim
from pixcamd.enhance import Enhancer
from pixcamd.jpeg import Chain, decode
from pixcamd.models import load_model
from pixcamd.models.koncept512 import KonCept512
from pixcamd.optimizer import Attack
from pixcamd.photo import to_image, to_tensor
from pixcamd.protect import Settings


def machine() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


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


def optimizer(mode: str, photo: torch.Tensor, model, views, chain):
    """The mode's optimizer towards a target it never reaches (no early stop), and a function
    that runs it ``n`` steps."""
    unreachable = {model.name: -1e9 if model.higher_is_better else 1e9}
    if mode == "enhance":
        enhancer = Enhancer(photo, [model], views, unreachable, chain)
        return enhancer, lambda n: enhancer.run(n)
    attack = Attack(photo, [model], views, unreachable, chain)
    return attack, lambda n: attack.run(4 / 255, n)


def step_cost(args) -> dict:
    model = model_for(args.model)
    photo = to_tensor(test_photo(args.megapixels))
    _, run = optimizer(args.mode, photo, model, ("center", "resize"), Chain())
    run(1)  # warm-up
    per_step = []
    for _ in range(args.steps):
        start = time.perf_counter()
        run(1)
        per_step.append(time.perf_counter() - start)
    views = torch.rand(2, 3, 384, 512)

    def bare():
        x = views.clone().requires_grad_(True)
        model(x).sum().backward()

    bare()
    bare_times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        bare()
        bare_times.append(time.perf_counter() - start)
    step, base = statistics.median(per_step), statistics.median(bare_times)
    return {
        "part": "step",
        "mode": args.mode,
        "model": model.fingerprint,
        "photo": f"{photo.shape[-1]}x{photo.shape[-2]}",
        "megapixels": photo.shape[-1] * photo.shape[-2] / 1e6,
        "views": "center,resize",
        "seconds_per_step": step,
        "seconds_two_fwd_bwd_alone": base,
        "pipeline_ratio": step / base,
        "seconds_per_step_per_view": step / 2,
        "repeats": args.steps,
        "machine": machine(),
    }


def memory(args) -> dict:
    if not args.child:
        cmd = [sys.executable, __file__, "memory", "--child", "--megapixels", str(args.megapixels)]
        cmd += ["--model", args.model, "--steps", str(args.steps), "--mode", args.mode]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])
    model = model_for(args.model)
    image = test_photo(args.megapixels)
    settings = Settings(targets={}, steps=args.steps, epsilon_cap=4 / 255, platform_checks=False)
    loop, run = optimizer(args.mode, to_tensor(image), model, settings.views, settings.chain())
    run(args.steps)
    # protect()'s other peaks happen while the optimizer is alive: the real check of a
    # candidate and the PSNR/SSIM of the result.
    candidate = to_image(loop.pixels())
    data, _ = check_output(candidate, [model], settings.views, settings.chain())
    psnr_ssim(image, decode(data))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "part": "memory",
        "mode": args.mode,
        "model": model.fingerprint,
        "photo": f"{image.width}x{image.height}",
        "megapixels": image.width * image.height / 1e6,
        "steps": args.steps,
        "peak_rss_mb": peak_mb,
        "machine": machine(),
    }
    print(json.dumps(result))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="part", required=True)
    for name in ("step", "memory"):
        p = sub.add_parser(name)
        p.add_argument("--megapixels", type=float, default=12.0 if name == "step" else 24.0)
        p.add_argument("--model", default="koncept512", choices=("koncept512", "brisque"))
        p.add_argument("--steps", type=int, default=5 if name == "step" else 2)
        p.add_argument("--mode", default="invisible", choices=("invisible", "enhance"))
        p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    result = {"step": step_cost, "memory": memory}[args.part](args)
    if args.part != "memory" or not args.child:
        print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
