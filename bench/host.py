"""The machine a benchmark runs on, named as docs/benchmarks.md names it: every figure says where
it was measured (the CPU's model name, family and model, AVX-512 or not, cores, torch)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np
import torch


def machine() -> dict:
    info: dict = {}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = (s.strip() for s in line.partition(":"))
            if key in ("model name", "cpu family", "model", "vendor_id") and key not in info:
                info[key] = value
            if key == "flags" and "flags" not in info:
                info["flags"] = "avx512f" if "avx512f" in value.split() else "no avx512f"
    memory = None
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        first = meminfo.read_text().splitlines()[0].split()
        memory = round(int(first[1]) / 1024**2, 1)
    import kornia
    import PIL

    return {
        "cpu": info.get("model name") or platform.processor() or platform.machine(),
        "cpu_vendor": info.get("vendor_id"),
        "cpu_family_model": f"{info.get('cpu family')}/{info.get('model')}",
        "cpu_flags": info.get("flags"),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gb": memory,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "kornia": kornia.__version__,
        "pillow": PIL.__version__,
        "numpy": np.__version__,
    }


def machine_line() -> str:
    """``AMD EPYC (family 25 model 17, avx512f), 2 cores, torch 2.13.0+cpu``."""
    m = machine()
    family, _, model = m["cpu_family_model"].partition("/")
    return (
        f"{m['cpu']} (family {family} model {model}, {m['cpu_flags']}), {m['cpu_count']} cores, "
        f"torch {m['torch']}" + (f", GPU {m['gpu']}" if m["gpu"] else "")
    )
