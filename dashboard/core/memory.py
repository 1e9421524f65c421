"""Giving freed heap memory back to the system (glibc's `malloc_trim`).

A long-running daemon with hundreds of threads frees most of what a cycle allocated, but glibc keeps
freed chunks in its arenas (one per few threads) and returns only the free top of each heap.
`malloc_trim(0)` releases the free pages inside every arena too. Elsewhere (musl, macOS) it is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    except (OSError, AttributeError):  # no glibc
        return None
    return libc


def trim() -> bool:
    """Release the heap's free pages to the system; whether glibc's malloc_trim ran."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
