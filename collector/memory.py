"""Process-wide allocator settings that keep a long-running daemon's resident memory small.

A sidecar is judged by its peak RSS next to the test runner. Two allocators keep freed memory by
default: pyarrow's mimalloc pool holds on to its segments (~50 MB after a load test), and glibc
gives each of the 32 gRPC threads its own malloc arena. Arrow buffers here are short-lived (one
request, one commit), so the system allocator costs nothing measurable and returns them.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util

import pyarrow as pa

M_ARENA_MAX = -8  # glibc <malloc.h>
ARENAS = 2  # one per core of the machines we size for; threads share them


def bound_allocators() -> None:
    """Call once, early in the daemon (arenas already made by running threads stay)."""
    pa.set_memory_pool(pa.system_memory_pool())
    name = ctypes.util.find_library("c")
    if name:
        with contextlib.suppress(OSError, AttributeError):  # not glibc (musl, macOS): nothing to bound
            ctypes.CDLL(name).mallopt(M_ARENA_MAX, ARENAS)
