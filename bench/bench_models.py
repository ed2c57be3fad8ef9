"""Cost of one 384×512 view through each quality model: forward, and forward + backward.

    .venv/bin/python bench/bench_models.py [--repeats 7] [--batch 1] [--json out.json]

KonCept512 runs with RANDOM weights here (the real ones cannot be downloaded on our machines):
the timing and FLOP figures are properties of the architecture and hold for the real weights;
no score from this script means anything about image quality. BRISQUE uses its real LIVE model.

Figures are medians over ``--repeats`` runs after one warm-up. The FLOP count is torch's
FlopCounterMode (convolutions and matrix products, the bulk of KonCept512; BRISQUE's elementwise
statistics are not counted). "Peak" is reported two ways: the machine's theoretical FP32 peak
(cores × measured clock × FLOPs per cycle of its vector units) and the throughput of a large
float32 matrix product measured in the same process, the practical ceiling for the same work.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch
from host import machine_line
from torch.utils.flop_counter import FlopCounterMode

from pixcamd.models.brisque import Brisque
from pixcamd.models.koncept512 import KonCept512

CLOCK_PROBE = r"""
#include <stdio.h>
#include <time.h>
int main(void) {
    struct timespec a, b; unsigned long x = 0; const long n = 400000000;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) { __asm__ volatile("add $1, %0\n\tadd $1, %0" : "+r"(x)); }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) * 1e-9;
    printf("%f\n", 2.0 * n / s / 1e9);  /* two dependent adds: one cycle each */
    return x == 0;
}
"""


def measure_clock_ghz() -> float | None:
    """Core clock from a chain of dependent integer adds (1 per cycle); None without cc."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = Path(tmp, "clock.c"), Path(tmp, "clock")
        src.write_text(CLOCK_PROBE)
        subprocess.run([cc, "-O1", str(src), "-o", str(exe)], check=True)
        runs = [
            float(subprocess.run([exe], capture_output=True, text=True).stdout) for _ in range(3)
        ]
    return max(runs)


def fp32_flops_per_cycle() -> int:
    """Per core: two FMA pipes × lanes × 2. AVX-512 on AMD Zen 4 is double-pumped 256-bit."""
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    amd = "AuthenticAMD" in flags
    if "avx512f" in flags and not amd:
        return 2 * 16 * 2
    if "avx2" in flags or "avx512f" in flags:
        return 2 * 8 * 2
    return 2 * 4 * 2


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: allocator, oneDNN kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gemm_gflops(repeats: int, n: int = 2048) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / median_seconds(lambda: a @ b, repeats) / 1e9


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def bench_model(model, label: str, batch: int, repeats: int) -> dict:
    views = torch.rand(batch, 3, 384, 512, generator=torch.Generator().manual_seed(0))

    def forward():
        with torch.no_grad():
            model(views)

    def forward_backward():
        x = views.clone().requires_grad_(True)
        model(x).sum().backward()

    return {
        "model": label,
        "fingerprint": model.fingerprint,
        "batch": batch,
        "forward_s_per_view": median_seconds(forward, repeats) / batch,
        "forward_backward_s_per_view": median_seconds(forward_backward, repeats) / batch,
        "forward_gflop_per_view": count_flops(forward) / batch / 1e9,
        "forward_backward_gflop_per_view": count_flops(forward_backward) / batch / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    torch.manual_seed(0)
    threads = torch.get_num_threads()
    clock = measure_clock_ghz()
    peak = threads * clock * fp32_flops_per_cycle() if clock else None
    gemm = gemm_gflops(args.repeats)
    rows = [
        bench_model(
            KonCept512(), "koncept512 (RANDOM weights: timing only)", args.batch, args.repeats
        ),
        bench_model(Brisque(), "brisque (LIVE SVR)", args.batch, args.repeats),
    ]
    machine = {
        "cpu": machine_line(),
        "cores_used": threads,
        "clock_ghz_measured": clock,
        "fp32_peak_gflops": peak,
        "gemm_gflops_measured": gemm,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }
    for row in rows:
        for kind in ("forward", "forward_backward"):
            achieved = row[f"{kind}_gflop_per_view"] / row[f"{kind}_s_per_view"]
            row[f"{kind}_gflops_achieved"] = achieved
            row[f"{kind}_fraction_of_peak"] = achieved / peak if peak else None
            row[f"{kind}_fraction_of_gemm"] = achieved / gemm

    print(f"machine: {json.dumps(machine)}")
    print(
        "| model | forward s/view | fwd+bwd s/view | GFLOP fwd | GFLOP fwd+bwd "
        "| fwd % of peak (of GEMM) | fwd+bwd % of peak (of GEMM) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        cells = [
            r["model"],
            f"{r['forward_s_per_view']:.3f}",
            f"{r['forward_backward_s_per_view']:.3f}",
        ]
        cells += [
            f"{r['forward_gflop_per_view']:.3f}",
            f"{r['forward_backward_gflop_per_view']:.3f}",
        ]
        for kind in ("forward", "forward_backward"):
            of_peak = r[f"{kind}_fraction_of_peak"]
            if r["model"].startswith("brisque"):  # no dense maths: a FLOP share means nothing
                cells.append("—")
                continue
            share = f"{of_peak:.0%}" if of_peak is not None else "n/a"
            cells.append(f"{share} ({r[f'{kind}_fraction_of_gemm']:.0%})")
        print("| " + " | ".join(cells) + " |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
