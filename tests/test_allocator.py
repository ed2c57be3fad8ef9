"""glibc's allocator as the CLI sets it: one arena for every thread (pixcamd.allocator)."""

from __future__ import annotations

import subprocess
import sys

import pytest

# A thread allocates and frees; then glibc's malloc_info lists the arenas ("heaps") it keeps.
PROBE = r"""
import ctypes, re, sys, tempfile, threading
from pixcamd.allocator import one_arena
applied = one_arena() if sys.argv[1] == "one" else None
def work():
    blocks = [bytearray(4096) for _ in range(2000)]
    del blocks
thread = threading.Thread(target=work)
thread.start()
thread.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
with tempfile.NamedTemporaryFile(suffix=".xml") as out:
    handle = libc.fopen(out.name.encode(), b"w")
    libc.malloc_info(0, handle)
    libc.fclose(handle)
    heaps = len(re.findall(r'<heap nr="\d+">', open(out.name).read()))
print(applied, heaps)
"""


def probe(mode: str) -> tuple[str, int]:
    run = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    )
    applied, heaps = run.stdout.split()
    return applied, int(heaps)


def test_one_arena_keeps_a_threads_allocations_in_the_main_arena():
    import ctypes

    if not hasattr(ctypes.CDLL(None), "gnu_get_libc_version"):
        pytest.skip("not glibc: its arenas do not apply")
    assert probe("default") == ("None", 2)  # glibc's default: the thread got an arena of its own
    assert probe("one") == ("True", 1)  # set first: the thread allocated from the main one
