"""The Parquet lake: one file per table per partition, staged under a hidden name, then renamed
into place, so a reader sees the previous version or the new one and never half a file. A file
may be written part by part (a day simulated region by region): each part is one or more row
groups of it.

Layout: `<lake>/<table>/date=YYYY-MM-DD/<table>.parquet`; price ticks add `tick=HHMM/`.
Staged files end in `.staging`, which no reader's `*.parquet` glob matches. A staged name carries
its writer's host and process id, so the next write of the partition can remove what a killed
writer left behind without touching a live writer's file.
"""

from __future__ import annotations

import os
import socket
import stat
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Callable, Iterable, Iterator

import polars as pl
import pyarrow.parquet as pq

from grocery_pipeline.tables import TABLES, Table

# Crash tests set this to a business date: publishing that date's files waits here, between stage
# and rename, so a test can kill the writer at a known moment. Unset (the default) it costs nothing.
PAUSE_BEFORE_PUBLISH_ENV = "GROCERY_TEST_PAUSE_BEFORE_PUBLISH"
PAUSE_BEFORE_PUBLISH_SECONDS = 120.0
# A staged file from another machine older than this is abandoned (no partition takes a day).
STALE_STAGING_SECONDS = 24 * 3600.0


@dataclass(frozen=True)
class StagedPartition:
    table: str
    business_date: date
    tick: str | None
    staged_path: Path
    final_path: Path
    rows: int
    frame: pl.DataFrame | None = field(default=None, compare=False, repr=False)


# (lake root, table) -> (path, signature, frame) of the partition of a `read_back` table this process
# published last: the next day of a state chain reads it back (yesterday's closing state, the day's
# price snapshot), served from memory while its file is still the very one written. One per table.
_PUBLISHED: dict[tuple[Path, str], tuple[Path, tuple, pl.DataFrame]] = {}

# table folder -> the names in it when last listed, and its partitions by date (`Lake._partitions`):
# a window's audits and day's world list each dimension's folder dozens of times a day, and parsing
# its names and building its paths each time cost more than the stats that check its files
_LISTINGS: dict[str, tuple[tuple[str, ...], list[tuple[date, str]]]] = {}


# zstd at its fastest level: on an xl day's tables, about 10% less CPU than the default level for
# about 5% larger files (the writes share two cores with the audits and the next tick). A file
# written at once goes through polars' writer (it encodes columns in parallel); a file written part
# by part through pyarrow's, which appends row groups.
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 1, "statistics": True}
ARROW_PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 1, "write_statistics": True}
# pyarrow's writer tries a dictionary for every column; on columns of (nearly) distinct values (ids,
# quantities of a wide range) it is built and dropped for each row group. A file written part by part
# gives a dictionary to the columns whose values repeat in its first part's first rows (at most a
# tenth of them distinct): on an xl day's tables, about a tenth less write CPU and smaller files.
DICTIONARY_SAMPLE_ROWS = 100_000


def repeating_columns(frame: pl.DataFrame) -> list[str] | bool:
    """The columns that get a dictionary in a file written part by part (all, for a frame without rows)."""
    sample = frame.head(DICTIONARY_SAMPLE_ROWS)
    if not sample.height:
        return True
    distinct = sample.select(pl.all().n_unique()).row(0)
    return [name for name, n in zip(sample.columns, distinct) if n * 10 <= sample.height]


class Staging:
    """One partition's file being written, part by part, under its staged name (see `Lake.staging`).
    `close` ends the file and says what was staged; `abandon` drops it."""

    def __init__(self, table: Table, business_date: date, tick: str | None, staged: Path, final: Path):
        self.table, self.business_date, self.tick = table, business_date, tick
        self.staged_path, self.final_path = staged, final
        self.rows = 0
        self._frames: list[pl.DataFrame] = []
        self._writer: pq.ParquetWriter | None = None
        self._whole = False  # written at once
        self._read_back = True  # the parts are kept for `publish` (a read_back table's)

    def append(self, frame: pl.DataFrame, last: bool = False, read_back: bool = True) -> None:
        """Write the (conformed) frame as the file's next row groups; `last`: nothing follows it
        (a file of one part is written at once); `read_back=False`: the published file is not
        served from memory, whatever its table (then nor are its earlier parts)."""
        if self._whole:
            raise ValueError(f"{self.final_path}: a part after the last one")
        if last and self._writer is None:
            self._whole = True
            self._create(lambda: frame.write_parquet(self.staged_path, **PARQUET_OPTIONS))
        else:
            arrow = frame.to_arrow()
            if self._writer is None:
                self._create(lambda: setattr(self, "_writer", pq.ParquetWriter(
                    self.staged_path, arrow.schema, use_dictionary=repeating_columns(frame), **ARROW_PARQUET_OPTIONS)))
            self._writer.write_table(arrow)
        self.rows += frame.height
        self._read_back = self._read_back and read_back and TABLES[self.table.name].read_back
        if self._read_back:
            self._frames.append(frame)  # kept for `publish` (see _PUBLISHED)
        else:
            self._frames.clear()

    def _create(self, write: Callable[[], None]) -> None:
        try:
            write()
        except FileNotFoundError:
            # a concurrent discard removed the (then empty) folder between mkdir and write
            self.final_path.parent.mkdir(parents=True, exist_ok=True)
            write()

    def close(self) -> "StagedPartition":
        if self._writer is None and not self._whole:
            self.append(self.table.empty(), last=True)  # a partition without rows is still a file
        if self._writer is not None:
            self._writer.close()
        frames, self._frames = self._frames, []
        frame = None if not frames else frames[0] if len(frames) == 1 else pl.concat(frames, rechunk=False)
        return StagedPartition(self.table.name, self.business_date, self.tick, self.staged_path, self.final_path,
                               self.rows, frame)

    def abandon(self) -> None:
        """Close and drop the staged file (a partition folder left empty goes too)."""
        if self._writer is not None:
            self._writer.close()
        self._frames = []
        Lake.discard(StagedPartition(self.table.name, self.business_date, self.tick, self.staged_path,
                                     self.final_path, self.rows))


class Lake:
    def __init__(self, root: Path | str):
        self.root = Path(root).resolve()
        # partitions generated but not yet published, readable by this Lake only: the next day of a
        # state chain is generated while this one is still being written and audited
        self._pending: dict[tuple[str, date], pl.DataFrame] = {}

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
    def staging(self, table: Table, business_date: date, tick: str | None = None) -> Staging:
        """A file for the partition, to be written part by part under a hidden temporary name beside
        its final place."""
        final = self.partition_path(table.name, business_date, tick)
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_abandoned_staging(final)
        writer = f"{socket.gethostname()}.{os.getpid()}"
        staged = final.with_name(f".{final.name}.{writer}.{uuid.uuid4().hex}.staging")
        return Staging(table, business_date, tick, staged, final)

    def stage(self, table: Table, frame: pl.DataFrame, business_date: date,
              tick: str | None = None) -> StagedPartition:
        """Write the frame under a hidden temporary name beside its final place."""
        staging = self.staging(table, business_date, tick)
        staging.append(frame, last=True)
        return staging.close()

    def publish(self, staged: StagedPartition) -> Path:
        """Atomically replace the partition with the staged file."""
        if os.environ.get(PAUSE_BEFORE_PUBLISH_ENV) == staged.business_date.isoformat():
            time.sleep(PAUSE_BEFORE_PUBLISH_SECONDS)
        os.replace(staged.staged_path, staged.final_path)
        if staged.frame is not None and TABLES[staged.table].read_back:
            _PUBLISHED[(self.root, staged.table)] = (staged.final_path, file_signature(staged.final_path), staged.frame)
        return staged.final_path

    def hold_pending(self, business_date: date, frames: dict[str, pl.DataFrame]) -> None:
        """Let this Lake's readers see a day's frames before they are published (see `read_partition`);
        they must be exactly what will be written (conformed)."""
        for name, frame in frames.items():
            self._pending[(name, business_date)] = frame

    def release_pending(self, business_date: date, tables: Iterable[str]) -> None:
        for name in tables:
            self._pending.pop((name, business_date), None)

    @staticmethod
    def discard(staged: StagedPartition) -> None:
        """Drop a staged file; a partition folder left empty (never published) goes too."""
        staged.staged_path.unlink(missing_ok=True)
        folder = staged.staged_path.parent
        for _ in range(2 if staged.tick is not None else 1):
            try:
                folder.rmdir()
            except OSError:
                return  # not empty: a published version or another writer's file lives there
            folder = folder.parent

    # -- reading -----------------------------------------------------------------------------
    def has_partition(self, table: str, business_date: date, tick: str | None = None) -> bool:
        return self.partition_path(table, business_date, tick).is_file()

    def partition_dates(self, table: str) -> list[date]:
        return [d for d, _ in self._partitions(table)]

    def _partitions(self, table: str) -> list[tuple[date, str]]:
        """The table's partition folders, oldest first: each one's date and the path of its file
        (of a daily table). Parsed again only when the folder's names change (`_LISTINGS`)."""
        folder = str(self.table_dir(table))
        try:
            with os.scandir(folder) as entries:  # names only: far cheaper than Path objects
                names = tuple(entry.name for entry in entries)
        except (FileNotFoundError, NotADirectoryError):
            return []
        seen = _LISTINGS.get(folder)
        if seen is not None and seen[0] == names:
            return seen[1]
        found = []
        for name in names:
            if name.startswith("date="):
                try:
                    found.append((date.fromisoformat(name[5:]), os.path.join(folder, name, f"{table}.parquet")))
                except ValueError:
                    continue
        found.sort()
        _LISTINGS[folder] = (names, found)
        return found

    def published_through(self, table: str, business_date: date) -> tuple[list[date], list[str], list[tuple]]:
        """The published partitions of a daily table up to a date, oldest first: their dates, files
        and signatures (path, inode, mtime, size), with one stat per file. Called for every parent
        of every audit of every day, so it stays on strings and `os.stat`."""
        days, files, signatures = [], [], []
        for d, path in self._partitions(table):
            if d > business_date:
                break
            try:
                status = os.stat(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if stat.S_ISREG(status.st_mode):
                days.append(d)
                files.append(path)
                signatures.append((path, status.st_ino, status.st_mtime_ns, status.st_size))
        return days, files, signatures

    def read_partition(self, table: str, business_date: date, columns: list[str] | None = None,
                       tick: str | None = None) -> pl.DataFrame:
        """One partition's rows: a pending one held by this Lake, else the published file (from
        memory when this process published it and the file has not changed since)."""
        held = self._held(table, business_date, tick)
        if isinstance(held, Path):
            return pl.read_parquet(held, columns=columns)
        return held.select(columns) if columns is not None else held

    def scan_partition(self, table: str, business_date: date) -> pl.LazyFrame:
        """One partition as a lazy frame (what `read_partition` reads), so that a reader of a few
        of its rows (a slice: whole row groups of the file) does not read all of them."""
        held = self._held(table, business_date)
        return pl.scan_parquet(held) if isinstance(held, Path) else held.lazy()

    def _held(self, table: str, business_date: date, tick: str | None = None) -> pl.DataFrame | Path:
        """A partition's frame when this Lake holds it pending or this process published it and
        its file has not changed since, else its file; fails naming a partition not published."""
        frame = self._pending.get((table, business_date)) if tick is None else None
        if frame is not None:
            return frame
        path = self.partition_path(table, business_date, tick)
        try:
            signature = file_signature(path)
        except (FileNotFoundError, NotADirectoryError):
            raise MissingPartitionError(
                table, [business_date.isoformat() + (f" tick {tick}" if tick else "")]) from None
        remembered = _PUBLISHED.get((self.root, table))
        if remembered is not None and remembered[0] == path and remembered[1] == signature:
            return remembered[2]
        return path

    def read_in_parts(self, table: str, business_date: date, rows: int) -> Iterator[pl.DataFrame]:
        """A partition's rows (`scan_partition`), `rows` at a time (slices of the scan: a part
        reads the row groups it needs); one part, maybe empty, for a partition of at most that many."""
        scan = self.scan_partition(table, business_date)
        total = scan.select(pl.len()).collect().item()
        for start in range(0, max(total, 1), rows):
            yield scan.slice(start, rows).collect()

    def read_as_of(self, table: str, business_date: date, columns: list[str] | None = None) -> pl.DataFrame:
        """Every row of a (daily) table that existed on `business_date`: all partitions up to it, in
        id order, without the columns no step reads back (see `read_files_cached`).

        Every day from the first partition through `business_date` must be published: a gap (say a
        run for a later day that started before an earlier day was written) would silently drop
        rows, so it fails naming the missing days instead.
        """
        days, files, signatures = self.published_through(table, business_date)
        if not days:
            raise MissingPartitionError(table, [f"any partition on or before {business_date}"])
        missing = _missing_days(days, business_date)
        if missing:
            raise MissingPartitionError(table, [d.isoformat() for d in missing])
        frame = read_files_cached(self, table, files, signatures)
        return frame.select(columns) if columns else frame


@dataclass
class _History:
    signatures: list[tuple]  # of the files whose rows `frame` holds, oldest first
    rows: list[int]          # rows of each of them
    frame: pl.DataFrame      # their rows in id order (see `read_files_cached`)
    merged: bool = False     # a later file's rows went among earlier ones, not after them
    # files read once but past the day last asked for: their signatures and rows, oldest first
    ahead: list[tuple[tuple, pl.DataFrame]] = field(default_factory=list)

    def known(self) -> list[tuple]:
        return self.signatures + [signature for signature, _ in self.ahead]

    def holds_more_than(self, signatures: list[tuple]) -> bool:
        """Whether `signatures` are the first files of those held, and fewer."""
        return len(signatures) < len(self.signatures) and self.signatures[: len(signatures)] == signatures

    def first_rows(self, files: int) -> pl.LazyFrame:
        """The rows of the first `files` files: the frame's first rows (no copy) when they come first,
        else those of the files' days (a file's rows are those of its partition's business date)."""
        if not self.merged:
            return self.frame.head(sum(self.rows[:files])).lazy()
        return self.frame.lazy().filter(pl.col("business_date") <= _partition_date(self.signatures[files - 1][0]))


# (lake root, table) -> what was read of it. A run that walks the days oldest first reads each new
# partition once instead of the whole history every day, which keeps a day's cost flat however
# long the history; readers one day behind (price ticks price yesterday's catalog) share it.
_AS_OF_CACHE: dict[tuple[Path, str], _History] = {}


def file_signature(path: Path | str) -> tuple:
    """(path, inode, mtime, size): a file that is the very one read or written before has the same."""
    status = os.stat(path)
    return (str(path), status.st_ino, status.st_mtime_ns, status.st_size)


def _partition_date(path: Path | str) -> date:
    return date.fromisoformat(Path(path).parent.name.removeprefix("date="))


def _in_id_order(frames: list[pl.DataFrame], table: str) -> tuple[pl.DataFrame, bool]:
    """The frames' rows (each frame in id order) one after another, or sorted by the table's id when
    a later frame's ids go among earlier ones (store products: an id is the store's and the
    product's, and a day lists new products in every store), and whether they were."""
    frame = pl.concat(frames, how="vertical_relaxed") if len(frames) > 1 else frames[0]
    key = TABLES[table].key if table in TABLES else ()
    if len(key) != 1:
        return frame, False
    if frame[key[0]].is_sorted():
        return frame.with_columns(pl.col(key[0]).set_sorted()), False
    return frame.sort(key[0]), True


def _read_held(path: Path | str, table: str) -> pl.DataFrame:
    """A partition's rows as a history holds them: without the columns no step reads back.

    Read by pyarrow, whose threads are not polars': a day's few new dimension rows are read while
    the day before is written and audited, and a polars read queued behind that work in polars'
    pool (files of 1 to 407 rows: 21-27 ms each beside a big write in another thread, against
    0.9 ms without it and 3.5 ms by pyarrow)."""
    not_held = TABLES[table].not_held
    with pq.ParquetFile(path) as parquet:
        columns = [name for name in parquet.schema_arrow.names if name not in not_held]
        return pl.from_arrow(parquet.read(columns=columns))


def _rewound(seen: _History, files: int) -> _History:
    """The history as of its first `files` files, the rows of the later ones set aside (a file's rows
    are those of its partition's business date): the day's rows are one frame, not a copy beside
    the history through a later day."""
    day = pl.col("business_date")
    later = seen.frame.filter(day > _partition_date(seen.signatures[files - 1][0]))
    ahead = [(signature, later.filter(day == _partition_date(signature[0])))
             for signature in seen.signatures[files:]]
    return _History(seen.signatures[:files], seen.rows[:files], seen.first_rows(files).collect(), True,
                    ahead + seen.ahead)


def holds_history(lake: "Lake", table: str) -> bool:
    """Whether this process holds rows of the table's history (`read_files_cached`)."""
    return (lake.root, table) in _AS_OF_CACHE


def read_files_lazily(lake: "Lake", table: str, files: list[Path] | list[str],
                      signatures: list[tuple] | None = None) -> pl.LazyFrame:
    """The rows of `files` as `read_files_cached` gives them, as a lazy frame for a reader of a few
    columns or rows: when the history held goes past them (a window's day audited while the next
    is made), its rows up to their last day, filtered as the reader collects, and the history is
    left as it is (not set back to that day for the next day to merge again)."""
    if signatures is None:
        signatures = [file_signature(f) for f in files]
    seen = _AS_OF_CACHE.get((lake.root, table))
    if seen is not None and seen.holds_more_than(signatures):
        return seen.first_rows(len(signatures))
    return read_files_cached(lake, table, files, signatures).lazy()


def read_files_cached(lake: "Lake", table: str, files: list[Path] | list[str],
                      signatures: list[tuple] | None = None) -> pl.DataFrame:
    """The rows of `files` (a table's partitions, oldest first), in id order (a table keyed by one
    id column), reading only files not read before in this process; a file replaced since (a
    re-materialized partition) is read again.

    In id order, not file by file: the day's world and the price ticks' catalog want store
    products by id, and a sorted copy beside the history held the 8M rows of xl twice. One frame
    per table: asked for fewer files than it holds (a window's days before its last, once the
    dimensions of every day are published), a history whose later rows went among the earlier
    ones keeps the rows of those files and sets the later rows aside, to merge them back in when
    a later day asks (at xl a few thousand rows a day, against 8M held twice). Without the columns
    no step reads back (`Column.held`): the load time (`_loaded_at`, 61 MB of the store products'
    553 at xl) and the customers' names and contact details (about 100 MB of their 166)."""
    if signatures is None:
        signatures = [file_signature(f) for f in files]
    key = (lake.root, table)
    seen = _AS_OF_CACHE.get(key)
    if seen is not None:
        held, known = len(seen.signatures), seen.known()
        if signatures == seen.signatures:
            return seen.frame  # the very frame when nothing changed, so callers can tell by identity
        if seen.holds_more_than(signatures):
            if not seen.merged:
                return seen.first_rows(len(signatures)).collect()
            _AS_OF_CACHE[key] = seen = _rewound(seen, len(signatures))
            return seen.frame
        reused = min(len(known), len(signatures))
        if len(signatures) > held and signatures[:reused] == known[:reused]:
            ahead = seen.ahead[: reused - held]
            new = [frame for _, frame in ahead] + [_read_held(f, table) for f in files[reused:]]
            frame, merged = _in_id_order([seen.frame, *new], table)
            _AS_OF_CACHE[key] = _History(signatures, seen.rows + [f.height for f in new], frame,
                                         seen.merged or merged, seen.ahead[reused - held:])
            return frame
    parts = [_read_held(f, table) for f in files]
    frame, merged = _in_id_order(parts, table)
    _AS_OF_CACHE[key] = _History(signatures, [f.height for f in parts], frame, merged)
    return frame


class RecentDays:
    """What a process built for the last few business dates of a lake (a day's world, its price
    book), keyed by (lake root, business date, ...): the day being generated and the day audited
    meanwhile share it across threads; older entries go, and a published day's are released."""

    def __init__(self, kept: int):
        self.kept = kept
        self._entries: dict[tuple, object] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple):
        return self._entries.get(key)

    def put(self, key: tuple, value) -> None:
        with self._lock:
            self._entries.pop(key, None)
            while len(self._entries) >= self.kept:
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = value

    def release(self, lake: "Lake", business_date: date) -> None:
        with self._lock:
            for key in [k for k in self._entries if k[:2] == (lake.root, business_date)]:
                del self._entries[key]


def _missing_days(days: list[date], through: date) -> list[date]:
    have = set(days)
    span = (through - days[0]).days + 1
    return [d for d in (days[0] + timedelta(days=i) for i in range(span)) if d not in have]


def _writer_is_gone(host: str, pid: str, age_seconds: float) -> bool:
    if host != socket.gethostname():
        return age_seconds > STALE_STAGING_SECONDS
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def remove_abandoned_staging(final: Path) -> list[Path]:
    """Delete staged files of this partition whose writer died before publishing them."""
    removed = []
    prefix = f".{final.name}."
    for path in final.parent.glob(f"{prefix}*.staging"):
        writer = path.name[len(prefix):-len(".staging")].rsplit(".", 2)
        if len(writer) != 3:
            continue
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            continue
        if _writer_is_gone(writer[0], writer[1], age):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


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
