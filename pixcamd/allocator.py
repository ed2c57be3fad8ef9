"""glibc's allocator, set for a process that protects photos: one arena for every thread, and
freed memory handed back between photos. Nothing here imports torch: the CLI calls it first."""

from __future__ import annotations

import ctypes
import ctypes.util

M_ARENA_MAX = -8  # mallopt's parameter number in glibc's malloc.h


def _libc_function(name: str):
    """The C library's function ``name``, or None where it has none (musl, macOS)."""
    path = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(path), name) if path else None
    except (OSError, AttributeError):
        return None


def one_arena() -> bool:
    """Let every thread allocate from glibc's main arena. By default each thread that allocates
    gets an arena of its own (up to 8 a core), and what a view's thread frees stays in its arena
    for that thread alone: a whole protection held about 0.4 GB more at every photo size, for
    no gain in time (docs/benchmarks.md, "Memory of a whole protect()"). Threads that already
    have an arena keep it, so call this before any start. False where it does not apply."""
    mallopt = _libc_function("mallopt")
    return bool(mallopt is not None and mallopt(M_ARENA_MAX, 1))


def trim() -> None:
    """Hand the free lists' memory back to the system (``malloc_trim``); a no-op elsewhere."""
    malloc_trim = _libc_function("malloc_trim")
    if malloc_trim is not None:
        malloc_trim(0)
