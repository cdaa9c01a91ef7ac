"""Giving the memory a step freed back to the system, so a day's peak is that of its largest step
and not the sum of what the allocator kept of the steps before it."""

from __future__ import annotations

import ctypes
import ctypes.util


def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): its allocator returns memory its own way
        return None


_TRIM = _malloc_trim()


def give_back() -> None:
    """Return the free pages of the C heap to the system (glibc's `malloc_trim`). numpy takes its
    arrays from that heap: below glibc's mmap threshold, which rises up to 32 MB once such a block
    was freed, an array is carved from the heap, and its pages stay with the process after it is
    freed, so one region's or day's arrays add to the next one's. A few milliseconds; nothing
    where the C library has no such call."""
    if _TRIM is not None:
        _TRIM(0)
