"""Loading and validating `dictionaries/*.csv`, the synthetic inputs of the simulation.

One validator serves every file: each file declares its columns (kind, required, range) and keys;
the first fault found raises `DictionaryError` naming the file, row (1-based, header excluded),
column and the expected form. Nothing downstream runs on a dictionary that failed.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import polars as pl


class DictionaryError(ValueError):
    """A dictionary file is missing, empty or malformed."""


@dataclass(frozen=True)
class Col:
    name: str
    kind: str = "str"  # str | int | float | bool | zip
    required: bool = True
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class DictionarySpec:
    name: str
    columns: tuple[Col, ...]
    key: tuple[str, ...]
    description: str

    @property
    def filename(self) -> str:
        return f"{self.name}.csv"


SPECS: dict[str, DictionarySpec] = {
    s.name: s
    for s in (
        DictionarySpec(
            "geographies",
            (Col("geo_id", "int", low=1), Col("city"), Col("state"), Col("county"), Col("zip", "zip"),
             Col("lat", "float", low=18, high=72), Col("lon", "float", low=-180, high=-60),
             Col("population", "int", low=1), Col("region")),
            ("geo_id",),
            "Synthetic towns with state, county, zip, coordinates, population and region.",
        ),
        DictionarySpec(
            "tax_rates",
            (Col("state"), Col("county"), Col("general_rate", "float", low=0, high=0.2),
             Col("grocery_rate", "float", low=0, high=0.2)),
            ("state", "county"),
            "Sales tax per jurisdiction: general merchandise and grocery food rates.",
        ),
        DictionarySpec("first_names", (Col("first_name"), Col("weight", "float", low=0)),
                       ("first_name",), "Given names with popularity weights."),
        DictionarySpec("last_names", (Col("last_name"), Col("weight", "float", low=0)),
                       ("last_name",), "Surnames with popularity weights."),
        DictionarySpec("street_names", (Col("street_name"),), ("street_name",),
                       "Street name stems for synthetic addresses."),
        DictionarySpec("street_types", (Col("street_type"), Col("abbreviation")), ("street_type",),
                       "Street suffixes and their postal abbreviations."),
        DictionarySpec(
            "departments",
            (Col("department"), Col("volatility_class"), Col("demand_weight", "float", low=0, high=1),
             Col("shrink_rate", "float", low=0, high=0.5)),
            ("department",),
            "Departments with price volatility class, share of basket lines and shrink rate.",
        ),
        DictionarySpec(
            "products",
            (Col("base_product_id", "int", low=1), Col("product_name"), Col("department"),
             Col("category"), Col("subcategory"), Col("base_price", "float", low=0.01, high=10_000),
             Col("unit_size"), Col("taxable", "bool"), Col("refrigerated", "bool"),
             Col("perishable", "bool")),
            ("base_product_id",),
            "The generic grocery catalog: one row per base product, expanded to SKUs with brands.",
        ),
        DictionarySpec("brands", (Col("brand"), Col("company"), Col("department"), Col("tier")),
                       ("brand", "department"), "Synthetic brands, their companies and departments."),
        DictionarySpec("banners", (Col("banner"), Col("positioning"),
                                   Col("price_index", "float", low=0.5, high=1.5)),
                       ("banner",), "Store banners of the chain and their price positioning."),
        DictionarySpec(
            "promotion_types",
            (Col("promotion_type"), Col("discount_kind"), Col("min_discount", "float", low=0),
             Col("max_discount", "float", low=0), Col("scope"), Col("min_days", "int", low=1),
             Col("max_days", "int", low=1), Col("season", required=False),
             Col("weight", "float", low=0)),
            ("promotion_type",),
            "Promotion mechanics: percent or amount off, product or category scope, duration, season.",
        ),
    )
}

_ALLOWED = {
    ("departments", "volatility_class"): {"HIGH", "MEDIUM", "LOW", "VERY_LOW"},
    ("brands", "tier"): {"VALUE", "NATIONAL", "PREMIUM", "PRIVATE_LABEL"},
    ("banners", "positioning"): {"VALUE", "MAINSTREAM", "PREMIUM"},
    ("promotion_types", "discount_kind"): {"PERCENT", "AMOUNT"},
    ("promotion_types", "scope"): {"PRODUCT", "CATEGORY"},
    ("promotion_types", "season"): {"", "WINTER", "SPRING", "SUMMER", "FALL", "HOLIDAY"},
    ("geographies", "region"): {"Northeast", "Southeast", "Midwest", "Southwest", "West"},
}
_BOOLS = {"true": True, "false": False}
_DTYPES = {"str": pl.String, "zip": pl.String, "int": pl.Int64, "float": pl.Float64, "bool": pl.Boolean}


@dataclass(frozen=True)
class Dictionaries:
    """Every dictionary as a validated polars frame, plus a digest of their bytes."""

    frames: dict[str, pl.DataFrame]
    fingerprint: str
    directory: Path

    def __getattr__(self, name: str) -> pl.DataFrame:
        frames = object.__getattribute__(self, "frames")
        if name in frames:
            return frames[name]
        raise AttributeError(name)


def _fail(path: Path, row: int | None, column: str | None, message: str) -> DictionaryError:
    where = str(path)
    if row is not None:
        where += f", row {row}"
    if column is not None:
        where += f", column '{column}'"
    return DictionaryError(f"dictionary {where}: {message}")


def _parse_cell(spec: DictionarySpec, col: Col, raw: str, path: Path, row: int):
    value = raw.strip()
    if value == "":
        if col.required:
            raise _fail(path, row, col.name, "is blank; a value is required")
        return None if col.kind != "str" else ""
    if col.kind == "int":
        try:
            parsed = int(value)
        except ValueError:
            raise _fail(path, row, col.name, f"{value!r} is not a whole number") from None
    elif col.kind == "float":
        try:
            parsed = float(value)
        except ValueError:
            raise _fail(path, row, col.name, f"{value!r} is not a number") from None
    elif col.kind == "bool":
        if value.lower() not in _BOOLS:
            raise _fail(path, row, col.name, f"{value!r} is not a boolean; expected true or false")
        return _BOOLS[value.lower()]
    elif col.kind == "zip":
        if not (len(value) == 5 and value.isdigit()):
            raise _fail(path, row, col.name, f"{value!r} is not a zip code; expected 5 digits")
        return value
    else:
        allowed = _ALLOWED.get((spec.name, col.name))
        if allowed is not None and value not in allowed:
            raise _fail(path, row, col.name,
                        f"{value!r} is not allowed; expected one of {', '.join(sorted(a for a in allowed if a))}")
        return value
    if (col.low is not None and parsed < col.low) or (col.high is not None and parsed > col.high):
        rng = f"between {col.low} and {col.high}" if col.high is not None else f">= {col.low}"
        raise _fail(path, row, col.name, f"{value} is out of range; expected a value {rng}")
    return parsed


def load_dictionary(directory: Path, spec: DictionarySpec) -> pl.DataFrame:
    path = Path(directory) / spec.filename
    if not path.is_file():
        raise _fail(path, None, None, "file not found; expected a CSV with columns "
                    + ", ".join(c.name for c in spec.columns))
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise _fail(path, None, None, "file is empty; expected a header row and data rows")
        header = [h.strip() for h in header]
        missing = [c.name for c in spec.columns if c.name not in header]
        if missing:
            raise _fail(path, None, missing[0], "is missing from the header; expected columns "
                        + ", ".join(c.name for c in spec.columns))
        index = {name: header.index(name) for name in (c.name for c in spec.columns)}
        columns: dict[str, list] = {c.name: [] for c in spec.columns}
        seen: dict[tuple, int] = {}
        row_number = 0
        for row_number, record in enumerate(reader, start=1):
            if not any(cell.strip() for cell in record):
                raise _fail(path, row_number, None, "is an empty line; remove it")
            if len(record) != len(header):
                raise _fail(path, row_number, None,
                            f"has {len(record)} fields; expected {len(header)} like the header")
            parsed = {c.name: _parse_cell(spec, c, record[index[c.name]], path, row_number)
                      for c in spec.columns}
            key = tuple(parsed[k] for k in spec.key)
            if key in seen:
                raise _fail(path, row_number, ",".join(spec.key),
                            f"duplicate key {key if len(key) > 1 else key[0]!r}; first seen on row {seen[key]}")
            seen[key] = row_number
            for name, value in parsed.items():
                columns[name].append(value)
        if row_number == 0:
            raise _fail(path, None, None, "has a header but no data rows")
    return pl.DataFrame({c.name: pl.Series(c.name, columns[c.name], dtype=_DTYPES[c.kind])
                         for c in spec.columns})


def _check_references(frames: dict[str, pl.DataFrame], directory: Path) -> None:
    """Cross-file rules: every reference between dictionaries resolves."""
    geos = frames["geographies"].select("state", "county").unique()
    taxes = frames["tax_rates"].select("state", "county")
    missing = geos.join(taxes, on=["state", "county"], how="anti").sort("state", "county")
    if missing.height:
        first = missing.row(0)
        raise _fail(directory / "tax_rates.csv", None, "state,county",
                    f"no rate for jurisdiction {first[0]}/{first[1]} used in geographies.csv; "
                    "expected one row per (state, county) of geographies.csv")
    departments = set(frames["departments"]["department"])
    for name in ("products", "brands"):
        frame = frames[name].with_row_index("row", offset=1)
        bad = frame.filter(~pl.col("department").is_in(list(departments)))
        if bad.height:
            raise _fail(directory / f"{name}.csv", int(bad["row"][0]), "department",
                        f"{bad['department'][0]!r} is not a department of departments.csv")
    no_brand = departments - set(frames["brands"]["department"])
    if no_brand:
        raise _fail(directory / "brands.csv", None, "department",
                    f"no brand for department(s) {', '.join(sorted(no_brand))}; expected at least one")
    promo = frames["promotion_types"].with_row_index("row", offset=1)
    bad = promo.filter((pl.col("min_discount") > pl.col("max_discount")) | (pl.col("min_days") > pl.col("max_days")))
    if bad.height:
        raise _fail(directory / "promotion_types.csv", int(bad["row"][0]), "min_discount,min_days",
                    "a minimum exceeds its maximum; expected min <= max")
    pct = promo.filter((pl.col("discount_kind") == "PERCENT") & (pl.col("max_discount") >= 0.9))
    if pct.height:
        raise _fail(directory / "promotion_types.csv", int(pct["row"][0]), "max_discount",
                    "a PERCENT discount must be a fraction below 0.9 (e.g. 0.25 for 25%)")


def dictionary_digest(directory: Path, name: str) -> str:
    """A digest of one dictionary file's bytes: its data version in Dagster."""
    path = Path(directory) / f"{name}.csv"
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else "missing"


@lru_cache(maxsize=8)
def _load_cached(directory: str, stamp: tuple) -> Dictionaries:
    root = Path(directory)
    frames = {name: load_dictionary(root, spec) for name, spec in SPECS.items()}
    _check_references(frames, root)
    digest = hashlib.sha256("".join(dictionary_digest(root, n) for n in sorted(SPECS)).encode())
    return Dictionaries(frames=frames, fingerprint=digest.hexdigest()[:16], directory=root)


def load_dictionaries(directory: Path | str) -> Dictionaries:
    """Load and validate every dictionary in `directory` (cached while the files are unchanged)."""
    root = Path(directory).resolve()
    if not root.is_dir():
        raise DictionaryError(f"dictionaries directory {root} does not exist; expected a folder "
                              f"with {', '.join(s.filename for s in SPECS.values())}")
    stamp = tuple(
        (name, (root / spec.filename).stat().st_mtime_ns if (root / spec.filename).exists() else 0,
         (root / spec.filename).stat().st_size if (root / spec.filename).exists() else 0)
        for name, spec in SPECS.items()
    )
    return _load_cached(str(root), stamp)
