"""The Parquet lake: one file per table per partition, staged under a hidden name, then renamed
into place, so a reader sees the previous version or the new one and never half a file.

Layout: `<lake>/<table>/date=YYYY-MM-DD/<table>.parquet`; price ticks add `tick=HHMM/`.
Staged files end in `.staging`, which no reader's `*.parquet` glob matches.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from grocery_pipeline.tables import TABLES, Table


@dataclass(frozen=True)
class StagedPartition:
    table: str
    business_date: date
    tick: str | None
    staged_path: Path
    final_path: Path
    rows: int


class Lake:
    def __init__(self, root: Path | str):
        self.root = Path(root).resolve()

    # -- paths -------------------------------------------------------------------------------
    def table_dir(self, table: str) -> Path:
        return self.root / table

    def partition_dir(self, table: str, business_date: date, tick: str | None = None) -> Path:
        path = self.table_dir(table) / f"date={business_date.isoformat()}"
        return path / f"tick={tick}" if tick is not None else path

    def partition_path(self, table: str, business_date: date, tick: str | None = None) -> Path:
        return self.partition_dir(table, business_date, tick) / f"{table}.parquet"

    def glob(self, table: str) -> str:
        """The absolute glob of every published file of a table (what the catalog views read)."""
        depth = "*/*" if TABLES[table].partitioning == "price_tick" else "*"
        return str(self.table_dir(table) / depth / f"{table}.parquet")

    # -- writing -----------------------------------------------------------------------------
    def stage(self, table: Table, frame: pl.DataFrame, business_date: date,
              tick: str | None = None) -> StagedPartition:
        """Write the frame under a hidden temporary name beside its final place."""
        final = self.partition_path(table.name, business_date, tick)
        final.parent.mkdir(parents=True, exist_ok=True)
        staged = final.with_name(f".{final.name}.{uuid.uuid4().hex}.staging")
        frame.write_parquet(staged, compression="zstd", statistics=True)
        return StagedPartition(table.name, business_date, tick, staged, final, frame.height)

    @staticmethod
    def publish(staged: StagedPartition) -> Path:
        """Atomically replace the partition with the staged file."""
        os.replace(staged.staged_path, staged.final_path)
        return staged.final_path

    @staticmethod
    def discard(staged: StagedPartition) -> None:
        staged.staged_path.unlink(missing_ok=True)

    # -- reading -----------------------------------------------------------------------------
    def has_partition(self, table: str, business_date: date, tick: str | None = None) -> bool:
        return self.partition_path(table, business_date, tick).is_file()

    def partition_dates(self, table: str) -> list[date]:
        root = self.table_dir(table)
        if not root.is_dir():
            return []
        out = []
        for child in root.iterdir():
            if child.name.startswith("date="):
                try:
                    out.append(date.fromisoformat(child.name[5:]))
                except ValueError:
                    continue
        return sorted(out)

    def read_partition(self, table: str, business_date: date, columns: list[str] | None = None,
                       tick: str | None = None) -> pl.DataFrame:
        path = self.partition_path(table, business_date, tick)
        if not path.is_file():
            raise MissingPartitionError(table, [business_date.isoformat() + (f" tick {tick}" if tick else "")])
        return pl.read_parquet(path, columns=columns)

    def read_as_of(self, table: str, business_date: date, columns: list[str] | None = None) -> pl.DataFrame:
        """Every row of a (daily) table that existed on `business_date`: all partitions up to it."""
        files = [self.partition_path(table, d) for d in self.partition_dates(table) if d <= business_date]
        files = [f for f in files if f.is_file()]
        if not files:
            raise MissingPartitionError(table, [f"any partition on or before {business_date}"])
        frame = read_files_cached(self, table, files)
        return frame.select(columns) if columns else frame


@dataclass
class _History:
    signatures: list[tuple]  # of the files read, oldest first
    rows: list[int]          # rows of each file
    frame: pl.DataFrame      # their rows, concatenated in that order


# (lake root, table) -> what was read of it. A run that walks the days oldest first reads each new
# partition once instead of the whole history every day, which keeps a day's cost flat however
# long the history; readers one day behind (price ticks price yesterday's catalog) share it.
_AS_OF_CACHE: dict[tuple[Path, str], _History] = {}


def _signature(path: Path) -> tuple:
    stat = path.stat()
    return (str(path), stat.st_ino, stat.st_mtime_ns, stat.st_size)


def read_files_cached(lake: "Lake", table: str, files: list[Path]) -> pl.DataFrame:
    """The rows of `files` (a table's partitions, oldest first), reading only files not read
    before in this process; a file replaced since (a re-materialized partition) is read again."""
    signatures = [_signature(f) for f in files]
    key = (lake.root, table)
    seen = _AS_OF_CACHE.get(key)
    if seen is not None and seen.signatures[: len(signatures)] == signatures:
        return seen.frame.head(sum(seen.rows[: len(signatures)]))
    if seen is not None and signatures[: len(seen.signatures)] == seen.signatures:
        new = [pl.read_parquet(f) for f in files[len(seen.signatures):]]
        frame = pl.concat([seen.frame, *new], how="vertical_relaxed")
        _AS_OF_CACHE[key] = _History(signatures, seen.rows + [f.height for f in new], frame)
        return frame
    parts = [pl.read_parquet(f) for f in files]
    frame = pl.concat(parts, how="vertical_relaxed")
    _AS_OF_CACHE[key] = _History(signatures, [f.height for f in parts], frame)
    return frame


class MissingPartitionError(RuntimeError):
    """An upstream partition this computation needs has not been published."""

    def __init__(self, table: str, partitions: list[str]):
        self.table = table
        self.partitions = partitions
        shown = ", ".join(partitions[:10]) + (f" and {len(partitions) - 10} more" if len(partitions) > 10 else "")
        super().__init__(
            f"upstream table '{table}' has no published partition for {shown}; "
            f"materialize grocery/{table} for it first (or run a backfill in date order)"
        )
