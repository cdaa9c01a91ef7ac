"""The allocators' settings: one glibc heap shared by every thread, so memory one thread frees is
reused by the others, and the memory a step freed given back to the system, so a day's peak is
that of its largest step and not the sum of what the allocator kept of the steps before it."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys


M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8  # glibc's mallopt parameters
HEAP_ARRAYS_UP_TO = 256 * 2**20


def _glibc(function: str):
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), function) if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): its allocator returns memory its own way
        return None


# The environment variables that tune glibc's allocator (its tunables, and the older names)
GLIBC_ALLOCATOR_VARIABLES = ("GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
                             "MALLOC_MMAP_MAX_", "MALLOC_ARENA_MAX", "MALLOC_ARENA_TEST")


def _chosen_by_user() -> bool:
    """Whether the process was started with glibc's allocator tuned: then it is left as set."""
    return any(name in os.environ for name in GLIBC_ALLOCATOR_VARIABLES)


_TRIM, _MALLOPT = (None, None) if _chosen_by_user() else (_glibc("malloc_trim"), _glibc("mallopt"))


def one_heap_for_all_threads() -> None:
    """Have every thread take its blocks from glibc's one main heap (`M_ARENA_MAX` 1), where glibc
    gives each new thread a heap of its own (up to 8 per core). The simulation's side threads, the
    auditors and the writer make arrays that other threads free: a freed block goes back to the
    heap of the thread that made it, and only that thread finds it again, so each heap kept its own
    free memory and the others mapped fresh pages. With one heap every thread reuses what any
    freed: a medium 30-day window peaked about a seventh lower (1.0 GB against 1.17 GB) with a
    sixth fewer page faults, a small 90-day one at 0.46 GB against 0.54 GB, the xl window took 1.5 s
    less (its system time); the numpy calls that allocate hold Python's lock anyway, so threads
    hardly wait on the heap's. Called when the package is imported, before it starts threads;
    nothing where the C library is not glibc, or where the user tuned glibc's allocator."""
    if _MALLOPT is not None:
        _MALLOPT(M_ARENA_MAX, 1)


def arrays_from_the_heap() -> None:
    """Let glibc serve blocks up to 256 MB from its heap, reusing freed ones, instead of mapping
    fresh pages for each block over its mmap threshold (which it raises as it goes, up to 32 MB):
    an xl day makes 8M-row columns (64 MB each) by the hundred, and a freed block is found again
    instead of new pages mapped and faulted in. What the heap holds free goes back at each region and day
    (`give_back`). Once per process is enough (a chain of several regions asks for it: a smaller
    one ran faster without, more system time went into heap growth and trims at medium); nothing
    where the C library is not glibc, or where the user tuned glibc's allocator."""
    if _MALLOPT is not None:
        _MALLOPT(M_MMAP_THRESHOLD, HEAP_ARRAYS_UP_TO)


def give_back() -> None:
    """Return the free pages of the C heap to the system (glibc's `malloc_trim`). numpy takes its
    arrays from that heap: below glibc's mmap threshold, which rises up to 32 MB once such a block
    was freed, an array is carved from the heap, and its pages stay with the process after it is
    freed, so one region's or day's arrays add to the next one's. A few milliseconds; nothing
    where the C library has no such call, or where the user tuned glibc's allocator."""
    if _TRIM is not None:
        _TRIM(0)


# polars' allocator (jemalloc) reads its settings from this variable when polars is first imported;
# polars puts its own defaults first (dirty_decay_ms:500, muzzy_decay_ms:1000) and what it finds
# here after them, and the last setting of a name wins.
POLARS_ALLOCATOR_VARIABLE = "_RJEM_MALLOC_CONF"
POLARS_ALLOCATOR_SETTINGS = "muzzy_decay_ms:0"


def polars_pages_back_sooner() -> None:
    """Have polars' allocator give freed pages back to the system half a second after they are
    freed (its dirty decay) instead of first marking them free-when-needed (`MADV_FREE`, "muzzy"),
    which leaves them counted in the process's RSS for another second. A day at xl frees
    gigabytes a second, so those pages added up to about 300-400 MB of a run of its own's peak,
    for the same time (about 15% more page faults). Called when the package is imported, before
    polars is; nothing when polars was imported first (its allocator is set up already), or where
    the user set the variable (their settings stand)."""
    if "polars" in sys.modules or POLARS_ALLOCATOR_VARIABLE in os.environ:
        return
    os.environ[POLARS_ALLOCATOR_VARIABLE] = POLARS_ALLOCATOR_SETTINGS


# pyarrow (which reads a partition's new dimension rows and writes a file part by part) takes its
# buffers from the pool this variable names when it first needs one; its default is its own mimalloc.
ARROW_POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"
ARROW_POOL = "system"


def arrow_buffers_from_the_c_heap() -> None:
    """Have pyarrow take its buffers from the C library's allocator (its "system" pool) instead of
    its own mimalloc, which keeps the memory of freed buffers for reuse by later ones: after
    reading the store products' history of an xl window (8M rows, a 516 MB frame), the process held
    1.29 GB a second later against 0.64 GB with the system pool. From the C heap, freed buffers are
    given back with the rest (`give_back`). The xl window peaked at 2.92-3.01 GB (six runs) against
    3.18-3.23 GB (three), for the same time. Called when the package is imported; pyarrow imported before it is
    switched to that pool too. Nothing where the user set the variable (their pool stands)."""
    if ARROW_POOL_VARIABLE in os.environ:
        return
    os.environ[ARROW_POOL_VARIABLE] = ARROW_POOL
    if "pyarrow" in sys.modules:
        import pyarrow

        pyarrow.set_memory_pool(pyarrow.system_memory_pool())
