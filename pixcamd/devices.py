"""Choosing where the models run, checking a photo fits in memory, and giving memory back
between photos."""

from __future__ import annotations

import gc
import resource
from pathlib import Path

import torch

from pixcamd.allocator import trim
from pixcamd.errors import NotEnoughMemory, TooLargeForMemory

# What a whole protect() with the default set adds to the process's memory, every thread on one
# malloc arena as the CLI and Ray workers keep them (`bench/bench_protect.py whole`,
# docs/benchmarks.md "Memory of a whole protect()"): BRISQUE 0.51 GB at 0.5 MP, 0.79 at 4, 1.63
# at 12, 2.79–2.92 at 24, 5.49–5.53 at 48; KonCept512 (random weights) 1.25, 1.57, 3.19–3.33
# and 5.85–5.91 at 0.5, 4, 24 and 48 MP. An upper bound of every run, 11–34 % to spare: this check
# exists so that the kernel's OOM killer never ends the daemon mid-photo, so it errs towards
# refusing. (Without one arena a photo adds 0.35–1.1 GB more: a caller of protect() that keeps
# glibc's default arenas should leave that much room.)
BYTES_PER_PIXEL = 115
SLACK = 600_000_000
KONCEPT_EXTRA = 800_000_000


def resolve_device(name: str = "auto") -> str:
    """``auto`` → CUDA when available, else CPU; an explicit choice is checked, not trusted."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but this machine has no usable CUDA GPU")
    try:
        torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {name!r}: use auto, cpu or cuda[:N]") from exc
    return name


def release_memory() -> None:
    """Hand what one photo's tensors left cached back to the system: Python's garbage, torch's
    CUDA cache, and glibc's free lists (``malloc_trim``) — a 24 MP photo leaves ~1 GB in them,
    which an idle daemon on a laptop should not sit on. A no-op where there is nothing to trim."""
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    trim()


def memory_needed(pixels: int, model_names: list[str]) -> int:
    """Bytes that protecting a photo of ``pixels`` on the CPU takes beyond the process's own."""
    extra = KONCEPT_EXTRA if any(n.startswith("koncept") for n in model_names) else 0
    return BYTES_PER_PIXEL * pixels + SLACK + extra


def available_memory(
    proc: Path = Path("/proc"), cgroups: Path = Path("/sys/fs/cgroup")
) -> int | None:
    """Bytes this process can still take: the kernel's MemAvailable, or less where a cgroup
    (a systemd unit's MemoryMax=, a container's limit) or an address-space limit (``ulimit
    -v``) leaves less; None where unknown. ``proc`` and ``cgroups`` are where the kernel's
    files are mounted (other trees in tests)."""
    room = [v for v in (_meminfo(proc, "MemAvailable"), _address_room(proc)) if v is not None]
    room += [limit - used + inactive for limit, used, inactive in _cgroups(proc, cgroups)]
    return min(room) if room else None


def memory_ceiling(
    proc: Path = Path("/proc"), cgroups: Path = Path("/sys/fs/cgroup")
) -> int | None:
    """The most this process could ever take for a photo, however much is freed: the
    machine's memory, a cgroup's limit or the address-space limit, less what the process
    holds now; None where unknown."""
    most = [v for v in (_meminfo(proc, "MemTotal"), _cgroup_limit(proc, cgroups)) if v]
    held = _status(proc, "VmRSS") or 0
    ceilings = [m - held for m in most]
    if (room := _address_room(proc)) is not None:
        ceilings.append(room)  # only this process counts there: its room is its ceiling
    return min(ceilings) if ceilings else None


def check_memory(pixels: int, model_names: list[str], device: str) -> None:
    """Raise ``NotEnoughMemory`` when a photo of ``pixels`` would not fit in the memory left: a
    clear failure instead of the kernel's OOM killer ending the whole daemon mid-photo — or
    ``TooLargeForMemory`` (final, not retried) when it would not fit even were all of it
    free."""
    if not device.startswith("cpu"):
        return  # on a GPU the big tensors live there, and its out-of-memory is caught
    need = memory_needed(pixels, model_names)
    needs = f"needs about {need / 1e9:.1f} GB of memory for its {pixels / 1e6:.1f} MP"
    most = memory_ceiling()
    if most is not None and need > most:
        raise TooLargeForMemory(
            f"{needs}, more than this process may ever have here ({max(most, 0) / 1e9:.1f} GB: "
            "the machine's memory, a service's MemoryMax= or a ulimit): protect a smaller "
            "copy of it, or protect it on a machine with more memory"
        )
    free = available_memory()
    if free is not None and need > free:
        raise NotEnoughMemory(
            f"{needs}, and {max(free, 0) / 1e9:.1f} GB is available: free memory and retry it "
            "(the daemon does, later), or lower the daemon's `max_pixels` to refuse such "
            "photos at once"
        )


def _meminfo(proc: Path, key: str) -> int | None:
    return _kib(proc / "meminfo", key)


def _status(proc: Path, key: str) -> int | None:
    return _kib(proc / "self" / "status", key)


def _kib(path: Path, key: str) -> int | None:
    """``key:  N kB`` of a /proc file, in bytes."""
    try:
        for line in path.read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _address_room(proc: Path) -> int | None:
    """What ``ulimit -v`` (RLIMIT_AS) leaves of this process's address space; None where
    unlimited."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    return soft - (_status(proc, "VmSize") or 0)


def _cgroup_limit(proc: Path, cgroups: Path) -> int | None:
    limits = [limit for limit, _used, _inactive in _cgroups(proc, cgroups)]
    return min(limits) if limits else None


def _cgroups(proc: Path, mount: Path) -> list[tuple[int, int, int]]:
    """(limit, usage, inactive page cache) of this process's memory cgroup and each parent
    that is limited: cgroup v2 (``memory.max``) or v1 (``memory.limit_in_bytes``). Inside a
    container the group named in /proc/self/cgroup may not exist under ``mount`` (its own
    group is mounted as the root): the walk up to the root then reads the container's limit.
    Usage counts the group's page cache too; its inactive part (the photos and libraries read
    once) is reclaimed before the limit kills anyone, so it is room — as the kubelet and
    ``docker stats`` count a container's working set."""
    try:
        lines = (proc / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return []
    groups = []
    for line in lines:
        _id, controllers, group = line.split(":", 2)
        if controllers == "":  # v2
            root, files = mount, ("memory.max", "memory.current", "inactive_file")
        elif "memory" in controllers.split(","):  # v1
            root, files = (
                mount / "memory",
                ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"),
            )
        else:
            continue
        here = root / group.lstrip("/")
        while True:
            try:
                limit = (here / files[0]).read_text().strip()
                if limit != "max" and int(limit) < 2**62:  # v1 says "no limit" with ~2^63
                    used = int((here / files[1]).read_text())
                    groups.append((int(limit), used, _stat(here, files[2], used)))
            except (OSError, ValueError):
                pass
            if here == root or root not in here.parents:
                break
            here = here.parent
    return groups


def _stat(group: Path, key: str, most: int) -> int:
    """``key``'s bytes in the group's memory.stat (0 where unreadable), at most ``most``."""
    try:
        for line in (group / "memory.stat").read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return min(int(value), most)
    except (OSError, ValueError):
        pass
    return 0
