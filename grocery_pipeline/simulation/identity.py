"""Synthetic identities built from dictionary pools: names, addresses, e-mails, phones, plates.

Pools are sampled with numpy and assembled with polars string expressions, never per row.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from grocery_pipeline.dictionaries import Dictionaries

EMAIL_DOMAINS = np.array(["example.com", "example.net", "example.org", "mail.example.com"])
LETTERS = np.array(list("ABCDEFGHJKLMNPRSTUVWXYZ"))


def weighted_choice(values: pl.Series, weights: np.ndarray, n: int, rng: np.random.Generator) -> pl.Series:
    p = np.asarray(weights, dtype=np.float64)
    return values.gather(rng.choice(len(values), size=n, p=p / p.sum()))


def person_names(dicts: Dictionaries, n: int, rng: np.random.Generator) -> tuple[pl.Series, pl.Series]:
    first = weighted_choice(dicts.first_names["first_name"],
                            dicts.first_names["weight"].to_numpy(), n, rng)
    last = weighted_choice(dicts.last_names["last_name"],
                           dicts.last_names["weight"].to_numpy(), n, rng)
    return first, last


def street_addresses(dicts: Dictionaries, n: int, rng: np.random.Generator) -> pl.Series:
    numbers = rng.integers(1, 9900, n)
    streets = dicts.street_names["street_name"].gather(rng.integers(0, dicts.street_names.height, n))
    kinds = dicts.street_types["abbreviation"].gather(rng.integers(0, dicts.street_types.height, n))
    return pl.DataFrame({"n": numbers, "s": streets, "k": kinds}).select(
        pl.format("{} {} {}", "n", "s", "k").alias("address"))["address"]


def emails(first: pl.Series, last: pl.Series, ids: np.ndarray, rng: np.random.Generator) -> pl.Series:
    domains = EMAIL_DOMAINS[rng.integers(0, len(EMAIL_DOMAINS), len(ids))]
    frame = pl.DataFrame({"f": first, "l": last, "i": ids, "d": domains})
    clean = lambda c: pl.col(c).str.to_lowercase().str.replace_all(r"[^a-z]", "")  # noqa: E731
    return frame.select(pl.format("{}.{}{}@{}", clean("f"), clean("l"), pl.col("i") % 997, "d")
                        .alias("email"))["email"]


def phones(n: int, rng: np.random.Generator) -> pl.Series:
    area = rng.integers(201, 990, n)
    line = rng.integers(0, 10_000, n)
    return pl.DataFrame({"a": area, "l": line}).select(
        pl.format("({}) 555-{}", "a", pl.col("l").cast(pl.String).str.zfill(4)).alias("phone"))["phone"]


def license_plates(states: pl.Series, rng: np.random.Generator) -> pl.Series:
    n = len(states)
    letters = {f"l{i}": LETTERS[rng.integers(0, len(LETTERS), n)] for i in range(3)}
    digits = rng.integers(0, 10_000, n)
    return pl.DataFrame({"s": states, **letters, "d": digits}).select(
        pl.format("{}-{}{}{}{}", "s", "l0", "l1", "l2", pl.col("d").cast(pl.String).str.zfill(4))
        .alias("plate"))["plate"]


def scrambled_number(ids: np.ndarray, digits: int = 10) -> np.ndarray:
    """A unique-looking number per id: a bijection of the id modulo 10**digits."""
    modulus = 10 ** digits
    return (np.asarray(ids, dtype=np.uint64) * np.uint64(2654435761) + np.uint64(104729)) % np.uint64(modulus)
