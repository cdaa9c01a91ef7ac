"""Counter-based randomness: every stream is derived from (seed, table, partition key).

No global RNG, no Python `hash()`: a stream's identity is a stable digest of its names, so the same
partition produces the same numbers in any process, order or machine.
"""

from __future__ import annotations

import hashlib
from datetime import date

import numpy as np


def stable_key(*parts: object) -> int:
    """A 64-bit integer digest of the parts, identical across processes and platforms."""
    text = "\x1f".join(p.isoformat() if isinstance(p, date) else str(p) for p in parts)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def rng_for(seed: int, table: str, partition: object = "", *extra: object) -> np.random.Generator:
    """The random stream for one table's partition (optionally a named sub-stream of it)."""
    entropy = [int(seed), stable_key(table, partition, *extra)]
    return np.random.Generator(np.random.Philox(np.random.SeedSequence(entropy)))
