"""One way to turn a generator into Dagster assets: generate a day, stage it in the lake, audit
it, then publish it (write-audit-publish), for each partition of the run in date order.

A generator is `produce(day, lake) -> {table: frame}`; the tables it returns become assets
`grocery/<table>` with their schema, group, kinds, owners and checks. Nothing here knows what a
store or an order is.
"""


import contextvars
import json
import os
import threading
import time
import warnings
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import dagster as dg
from dagster import AssetExecutionContext
from dagster._core.execution.context.metadata_logging import AssetMetadataHandle, OutputMetadataAccumulator
import polars as pl

from grocery_pipeline import checks as audits, faults
from grocery_pipeline.checks.volume import CALENDAR_READERS
from grocery_pipeline.dictionaries import load_dictionaries
from grocery_pipeline.memory import give_back
from grocery_pipeline.partitions import business_date
from grocery_pipeline.resources import GrocerySettings
from grocery_pipeline.settings import Settings
from grocery_pipeline.simulation.context import Day
from grocery_pipeline.storage import catalog, prices as price_store, world as world_store
from grocery_pipeline.storage.lake import Lake, MissingPartitionError, StagedPartition, Staging, file_signature
from grocery_pipeline.tables import TABLES, Table

KINDS = {"polars", "parquet", "duckdb"}
PREVIEW_ROWS = 5

Produce = Callable[[Day, Lake], dict[str, pl.DataFrame]]


@dataclass(frozen=True)
class Generator:
    """A daily asset's generator, callable without Dagster (benchmarks, notebooks)."""
    asset_name: str
    tables: tuple[Table, ...]
    produce: Produce


# Every generator built by `daily_tables_asset`, by asset name; new assets appear here by themselves.
GENERATORS: dict[str, Generator] = {}
# Called after each published partition with (asset name, partition key, rows by table, seconds);
# the benchmark records per-day cost through it.
PARTITION_OBSERVERS: list[Callable[[str, str, dict[str, int], float], None]] = []


def asset_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["grocery", table])


def column_schema(table: Table) -> dg.TableSchema:
    return dg.TableSchema(columns=[
        dg.TableColumn(c.name, c.sql_type, description=c.description,
                       constraints=dg.TableColumnConstraints(nullable=c.nullable, unique=c.name in table.key
                                                             and len(table.key) == 1))
        for c in table.columns
    ])


def previous_day(key: dg.AssetKey) -> dg.AssetDep:
    """A self-dependency on yesterday: the state chain that orders a table's partitions."""
    return dg.AssetDep(key, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1))


@dataclass(frozen=True)
class CheckOutcome:
    audit: audits.Audit
    finding: audits.Finding
    business_date: date


def run_audits(tables: Iterable[str], ctx: audits.AuditContext,
               which: Callable[[audits.Audit], bool] = lambda audit: True, threads: int = 1) -> list[CheckOutcome]:
    """The outcomes of the tables' audits (those `which` picks), table by table. With `threads`,
    the audits run side by side, those of the tables with the most rows first (the audits of a
    day's tables are independent, and their heavy work releases the GIL)."""
    todo = [audit for table in tables for audit in audits.audits_for(table) if which(audit)]
    if threads > 1 and len(todo) > 1:
        def rows(i: int) -> int:
            return -ctx.frames[todo[i].table].height if todo[i].table in ctx.frames else 0
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="audit_day") as pool:
            running = {i: pool.submit(todo[i].run, ctx) for i in sorted(range(len(todo)), key=rows)}
            findings = [running[i].result() for i in range(len(todo))]
    else:
        findings = [audit.run(ctx) for audit in todo]
    return [CheckOutcome(audit, finding, ctx.business_date) for audit, finding in zip(todo, findings)]


def _check_result(table: str, name: str, outcomes: list[CheckOutcome]) -> dg.AssetCheckResult:
    failed = [o for o in outcomes if not o.finding.passed]
    samples = [k for o in failed for k in o.finding.sample_keys][: audits.SAMPLE_SIZE]
    audit = outcomes[0].audit
    metadata = {
        "offending_rows": sum(o.finding.offending for o in outcomes),
        "sample_keys": dg.MetadataValue.json(samples),
        "partitions_audited": len(outcomes),
        "failed_partitions": dg.MetadataValue.json(sorted({o.business_date.isoformat() for o in failed})),
    }
    details = {k: v for o in (failed or outcomes[-1:]) for k, v in o.finding.detail.items()}
    if details:
        metadata["detail"] = dg.MetadataValue.json(details)
    return dg.AssetCheckResult(
        asset_key=asset_key(table), check_name=name, passed=not failed, metadata=metadata,
        severity=dg.AssetCheckSeverity.ERROR if audit.blocking else dg.AssetCheckSeverity.WARN,
    )


def check_results(outcomes: list[CheckOutcome]) -> list[dg.AssetCheckResult]:
    grouped: dict[tuple[str, str], list[CheckOutcome]] = defaultdict(list)
    for o in outcomes:
        grouped[(o.audit.table, o.audit.name)].append(o)
    return [_check_result(table, name, group) for (table, name), group in grouped.items()]


def files_partition_results(context: AssetExecutionContext) -> bool:
    """Whether a run of several partitions should also file each partition's results under it (for
    the UI's per-partition check health). Dagster takes one event per check and partition, about a
    tenth of a 90-day demo; an ephemeral instance (`grocery-pipeline generate` without DAGSTER_HOME)
    is discarded with the process, so nobody could ever read them there."""
    return len(context.partition_keys) > 1 and not context.instance.is_ephemeral


def log_partition_results(context: AssetExecutionContext, outcomes: list[CheckOutcome]) -> None:
    """File each partition's result under its partition when a run covers several: Dagster files a
    yielded result under the partition only in a one-partition run."""
    for o in outcomes:
        result = _check_result(o.audit.table, o.audit.name, [o])
        context.log_event(dg.AssetCheckEvaluation(
            asset_key=result.asset_key, check_name=o.audit.name, passed=result.passed, metadata=result.metadata,
            severity=result.severity, blocking=o.audit.blocking, partition=o.business_date.isoformat()))


class PartitionRejected(Exception):
    def __init__(self, day: date, failed: list[CheckOutcome]):
        self.day = day
        self.failed = failed
        names = ", ".join(f"{o.audit.name} ({o.finding.offending} rows)" for o in failed)
        super().__init__(f"partition {day} failed blocking check(s): {names}; nothing was published")


def prepare(settings: Settings, frames: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """A partition's frames as they will be written: deliberate faults (off by default) injected,
    then conformed to their tables' schemas."""
    frames = faults.inject(settings.faults, frames)  # deliberate corruption (demos, gate tests)
    return {name: TABLES[name].conform(frame) for name, frame in frames.items()}


def write_audit_publish(settings: Settings, lake: Lake, day: date, frames: dict[str, pl.DataFrame],
                        tick: str | None = None) -> list[CheckOutcome]:
    """Stage every table of the partition, audit them together, then publish all or none."""
    return write_audit_publish_ticks(settings, lake, day, [(tick, frames)])


def write_audit_publish_ticks(settings: Settings, lake: Lake, day: date,
                              parts: Sequence[tuple[str | None, dict[str, pl.DataFrame]]]) -> list[CheckOutcome]:
    """Write-audit-publish several partitions of one business date at once (a day's price ticks):
    stage each part's files, audit each table's rows of all parts together, publish all or none.
    A daily table carried by a tick part (the day-opening price snapshot) is staged at its daily path."""
    writer = DayWriter(settings, lake, day)
    try:
        for tick, frames in parts:
            writer.add(tick, prepare(settings, frames))
    except BaseException:
        writer.discard()
        raise
    return writer.publish()


def _submit(pool: ThreadPoolExecutor, fn: Callable, *args) -> Future:
    """Run `fn` in the pool within a copy of the caller's context (the running Dagster step's)."""
    return pool.submit(contextvars.copy_context().run, fn, *args)


def read_ahead(ctx: audits.AuditContext, tables: Iterable[str]) -> None:
    """Read the published rows the audits of these tables will look up (the dimensions their
    foreign keys name, the day's calendar) before their files are written: a read waits behind
    the writer's encoding tasks in polars' thread pool, and on two cores even a one-row partition
    then took 0.3 s. (Other parents are tables staged alongside.) The calendar only for the tables
    whose audits read it: read for every table, its file was read again for each partition of a
    range run, about a thousand times in a 90-day small window."""
    parents = {c.references[0] for name in tables if name in TABLES for c in TABLES[name].foreign_keys
               if TABLES[c.references[0]].group == "dimensions"}
    for parent in sorted(parents):
        try:
            ctx.published_as_of(parent)
        except MissingPartitionError:
            pass  # the foreign-key audit reports it
    if not CALENDAR_READERS.isdisjoint(tables):
        ctx.same_day("calendar")


Parts = list[tuple[str | None, dict[str, pl.DataFrame]]]  # (tick or None, frames by table)

# While a day of a range run is made: where a generator hands the tables of its daily partition
# that are final before the rest (see `finished_early`).
_EARLY: contextvars.ContextVar[Callable[..., None] | None] = \
    contextvars.ContextVar("grocery_finished_early", default=None)


def finished_early() -> Callable[..., None] | None:
    """For a generator run by `publish_in_order`: a function to call with tables of the day that
    are final while the rest is still being made (the day's receipts while the stock is closed,
    or one region's tables while the next region is simulated), so their files are written
    meanwhile; the generator need not return a handed-over table again (what it returns of such a
    table is ignored). A table is handed over once, unless with `self_contained=True`: the tables
    are then a part of the day that refers to nothing in its other parts (a region's tables),
    audited on its own as soon as it comes (see `DayWriter`), and a table handed over in several
    such parts is written as one file, the parts' rows one after another; every part of the day
    must be handed over so. None elsewhere (nothing to hand them to)."""
    return _EARLY.get()


IN_FLIGHT_PARTS = 2  # a day audited part by part: parts written and audited while the next is made
# a day audited part by part: its whole-day audits run side by side once its last part is made (one
# after another they left a core idle at the end of an xl day)
WHOLE_DAY_AUDIT_THREADS = 2


class DayWriter:
    """Write-audit-publish of one business date whose parts (a day's price ticks, or the regions of
    a daily part) are added one by one: each part's files are written in a second thread as soon
    as it is added (a table that comes in several parts gets one file, a part after another), so
    the writes of a day's first parts overlap the making of its later ones. `publish` audits the
    frames of all parts together while the writes finish, then publishes all of them or none.

    A day of parts added as self-contained (a region's tables, see `finished_early`) is audited
    whole like any other while it is small; once it has more rows than a run would generate the
    next day beside (`Settings.overlap_max_rows`), its parts are audited one by one in a third
    thread as they come, and the day keeps of them only the columns its whole-day audits read
    (`Audit.day_reads`): a day of operations at xl is not held whole. Such a day holds at most
    `IN_FLIGHT_PARTS` parts in the writer's and the auditor's queues (adding a part waits for the
    oldest), and its files are not served to the next day from memory."""

    def __init__(self, settings: Settings, lake: Lake, day: date):
        self.settings, self.lake, self.day = settings, lake, day
        self.parts: Parts = []
        self.previews: dict[str, str] = {}  # each table's first rows, as text
        self._previewed_rows: set[str] = set()  # tables whose preview shows rows
        self._ctx: audits.AuditContext | None = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stage")
        self._writes: list[Future] = []
        self._files: dict[tuple[str, str | None], Staging] = {}  # touched only by the writer thread
        self._self_contained: bool | None = None               # what the parts are, once one came
        self._auditor: ThreadPoolExecutor | None = None        # audits self-contained parts one by one
        self._part_findings: list[Future] = []
        self._in_flight: list[list[Future]] = []  # each part's writes (and audit) under way
        self._rows = 0

    def add(self, tick: str | None, frames: dict[str, pl.DataFrame], self_contained: bool = False) -> None:
        """Stage a `prepare`d part (nothing is published before `publish`)."""
        if self._ctx is None:
            self._ctx = audits.AuditContext(self.settings, self.lake, self.day, {})
        if frames:
            if self._self_contained is not None and self._self_contained != self_contained:
                raise ValueError(f"{self.day}: a day's parts are all self-contained or none is")
            self._self_contained = self_contained
        read_ahead(self._ctx, frames)  # before these writes start
        if self._auditor is not None:
            # a day audited part by part holds IN_FLIGHT_PARTS parts in the writer's and the auditor's
            # queues, else a faster simulation piles regions up (one part waited on left a core idle
            # while the writer waited for the auditor)
            while len(self._in_flight) >= IN_FLIGHT_PARTS:
                wait(self._in_flight.pop(0))
        in_flight = []
        for name, frame in frames.items():
            table = TABLES[name]
            in_flight.append(_submit(self._writer, self._append, table,
                                     tick if table.partitioning == "price_tick" else None, frame,
                                     not self_contained, self._auditor is None))
            if name not in self.previews or (frame.height and name not in self._previewed_rows):
                self.previews[name] = _preview(frame)  # the first part with rows, else the first part
                if frame.height:
                    self._previewed_rows.add(name)
        self._writes += in_flight
        if self_contained and frames:
            self._rows += sum(frame.height for frame in frames.values())
            if self._auditor is None and self._rows > self.settings.overlap_max_rows:
                # too big a day to hold whole: the parts held so far are audited one by one, and so
                # is every later part as it comes; the day keeps what its whole-day audits read
                self._auditor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit")
                for _, held in self.parts:
                    if held:
                        self._part_findings.append(_submit(self._auditor, self._audit_part, held))
                self.parts = [(t, _day_reads(fs)) for t, fs in self.parts]
            if self._auditor is not None:
                self._part_findings.append(_submit(self._auditor, self._audit_part, frames))
                in_flight.append(self._part_findings[-1])
                frames = _day_reads(frames)
        self._in_flight.append(in_flight)
        self.parts.append((tick, frames))

    def _append(self, table: Table, tick: str | None, frame: pl.DataFrame, last: bool, read_back: bool) -> None:
        """Stage the frame (in the writer thread); `last`: the partition comes in one part, written at
        once; `read_back`: the published frame may be served to the next day from memory (not for
        a day audited part by part: a run's last day would hold an xl day's state for nothing)."""
        key = (table.name, tick)
        if key not in self._files:
            self._files[key] = self.lake.staging(table, self.day, tick)
        self._files[key].append(frame, last, read_back)

    def _audit_part(self, frames: dict[str, pl.DataFrame]) -> dict[str, audits.Finding]:
        return audit_part(self._ctx.of_part(frames), frames)

    def _audit(self) -> list[CheckOutcome]:
        audited = frames_by_table(self.parts)
        ctx = self._ctx or audits.AuditContext(self.settings, self.lake, self.day, {})
        if self._auditor is None:
            ctx.frames.update(audited)
            return run_audits(audited, ctx)
        self._auditor.shutdown(wait=False)  # its last parts are audited beside the whole-day audits
        return day_outcomes(ctx, audited, (part.result() for part in self._part_findings))

    def publish(self) -> list[CheckOutcome]:
        published = False
        try:
            outcomes = self._audit()
            self._writer.shutdown(wait=True)
            for write in self._writes:
                write.result()  # a failed write fails the partition
            staged: list[StagedPartition] = [file.close() for file in self._files.values()]
            failed = [o for o in outcomes if o.audit.blocking and not o.finding.passed]
            if failed:
                raise PartitionRejected(self.day, failed)
            for s in staged:
                self.lake.publish(s)
            published = True
            return outcomes
        finally:
            if not published:
                self.discard()

    def discard(self) -> None:
        """Drop whatever was staged (after the writes and audits under way have ended)."""
        if self._auditor is not None:
            self._auditor.shutdown(wait=True)
        self._writer.shutdown(wait=True)
        for file in self._files.values():
            file.abandon()
        self._files = {}
        self._writes = []


def audit_part(ctx: audits.AuditContext, frames: dict[str, pl.DataFrame]) -> dict[str, audits.Finding]:
    """The part-by-part audits of a self-contained part of a day (`AuditContext.of_part`), by audit name."""
    return {o.audit.name: o.finding for o in run_audits(frames, ctx, lambda audit: audit.day_reads is None)}


def day_outcomes(ctx: audits.AuditContext, kept: dict[str, pl.DataFrame],
                 part_findings: Iterable[dict[str, audits.Finding]]) -> list[CheckOutcome]:
    """The outcomes of a day audited part by part: each audit's findings over the parts added up,
    and the whole-day audits run on what the day kept of its parts (`_day_reads`)."""
    ctx.frames.update(kept)
    whole_day = {o.audit.name: o for o in run_audits(kept, ctx, lambda audit: audit.day_reads is not None,
                                                     threads=WHOLE_DAY_AUDIT_THREADS)}
    findings: dict[str, list[audits.Finding]] = defaultdict(list)
    for part in part_findings:  # the last parts' audits may still be running meanwhile
        for name, finding in part.items():
            findings[name].append(finding)
    return [whole_day[audit.name] if audit.day_reads is not None
            else CheckOutcome(audit, audits.merged_finding(findings[audit.name]), ctx.business_date)
            for table in kept for audit in audits.audits_for(table)]


def record_outcomes(lake: Lake, table: str, day: date, outcomes: list[CheckOutcome], rows: int) -> None:
    """Keep the audit outcomes of a partition just published beside its file (a hidden JSON that
    names the file's signature), for a later step that reports the same table's checks
    (`audit_published`): the price ticks audit the day's snapshot before they publish it, and the
    daily `price_snapshots` asset reports those checks."""
    path = lake.partition_path(table, day)
    record = {"file": list(file_signature(path)), "rows": rows,
              "audits": [{"name": o.audit.name, "offending": o.finding.offending,
                          "sample_keys": o.finding.sample_keys, "detail": o.finding.detail} for o in outcomes]}
    target = _outcomes_path(path)
    temp = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temp.write_text(json.dumps(record, default=str))
    os.replace(temp, target)


def recorded_outcomes(lake: Lake, table: str, day: date) -> tuple[list[CheckOutcome], int] | None:
    """`record_outcomes` of the partition, if they were recorded for the very file published now
    (same path, inode, modification time and size) and for the table's audits as they are."""
    path = lake.partition_path(table, day)
    try:
        record = json.loads(_outcomes_path(path).read_text())
        if record["file"] != list(file_signature(path)):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    by_name = {audit.name: audit for audit in audits.audits_for(table)}
    if sorted(by_name) != sorted(r["name"] for r in record["audits"]):
        return None
    return [CheckOutcome(by_name[r["name"]], audits.Finding(r["offending"], r["sample_keys"], r["detail"]), day)
            for r in record["audits"]], record["rows"]


def _outcomes_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.audits.json")


def audit_published(settings: Settings, lake: Lake, day: date, table: str) -> tuple[list[CheckOutcome], int]:
    """The audits of a published partition and its row count: those recorded for the very file
    when it was published (`record_outcomes`), else read part by part
    (`Settings.region_store_products` rows each): an xl day's 8M-row price snapshot is not read
    whole to be audited again."""
    recorded = recorded_outcomes(lake, table, day)
    if recorded is not None:
        return recorded
    ctx = audits.AuditContext(settings, lake, day, {})
    findings, kept, rows = [], [], 0
    for part in lake.read_in_parts(table, day, settings.region_store_products):
        frames = {table: part}
        findings.append(audit_part(ctx.of_part(frames), frames))
        kept.append(_day_reads(frames)[table])
        rows += part.height
    return day_outcomes(ctx, {table: pl.concat(kept)}, findings), rows


def _day_reads(frames: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """What a day keeps of a self-contained part: the columns its whole-day audits read, and the
    key (a table's row count stays)."""
    return {name: frame.select(list(dict.fromkeys([*TABLES[name].key, *audits.day_columns(name)])))
            for name, frame in frames.items()}


def frames_by_table(parts: Parts, daily_only: bool = False) -> dict[str, pl.DataFrame]:
    """Each table's rows of all parts (a table in several parts: its parts one after another)."""
    by_table: dict[str, list[pl.DataFrame]] = defaultdict(list)
    for _, frames in parts:
        for name, frame in frames.items():
            if not daily_only or TABLES[name].partitioning != "price_tick":
                by_table[name].append(frame)
    return {name: pl.concat(fs) if len(fs) > 1 else fs[0] for name, fs in by_table.items()}


# What a published day's generation and audits kept in memory (its world, its price book): dropped
# once the day is published, so a run holds at most the day being generated and the one audited.
DAY_CACHES = (world_store.release_day, price_store.release_day)


@dataclass(frozen=True)
class PublishedPartition:
    key: str
    parts: Parts           # of a day audited part by part, only what its whole-day audits read
    outcomes: list[CheckOutcome]
    seconds: float  # since the previous partition of the run was published (or the run started)
    previews: dict[str, str] = field(default_factory=dict)  # each table's first rows, as text

    @property
    def frames(self) -> dict[str, pl.DataFrame]:
        """The frames of a daily partition (its parts: the tables finished early, then the rest)."""
        return _daily_frames(self.parts)


def _daily_frames(parts: Parts) -> dict[str, pl.DataFrame]:
    return frames_by_table(parts, daily_only=True)


def publish_in_order(settings: Settings, lake: Lake, days: Iterable[tuple[str, date, Callable[[], Parts]]],
                     overlap: bool) -> Iterator[PublishedPartition]:
    """Generate (`make()`) and write-audit-publish each business date's parts, oldest first.

    With `overlap`, day d+1 is generated while day d is written and audited in a second thread
    (when day d has at most `settings.overlap_max_rows` rows, which bounds peak memory): the
    generator reads day d's daily frames through the lake's pending partitions
    (`Lake.hold_pending`) as it would read them once published. Publishing stays in date order,
    and a day that fails its audits raises `PartitionRejected` before any later day is published.
    Only for generators that read the previous day solely through `Lake.read_partition` or
    `Lake.scan_partition` (or carry it in memory).
    """
    clock = time.perf_counter()
    pending: tuple[str, date, DayWriter, Future] | None = None

    def published(key: str, day: date, writer: DayWriter, outcomes: list[CheckOutcome],
                  big: bool = False) -> PublishedPartition:
        nonlocal clock
        for release in DAY_CACHES:
            release(lake, day)
        if big:
            give_back()  # a big day's arrays, before the next day allocates its own
        now = time.perf_counter()
        out = PublishedPartition(key, writer.parts, outcomes, now - clock, writer.previews)
        clock = now
        return out

    def finish() -> PublishedPartition:
        nonlocal pending
        key, day, writer, future = pending
        pending = None
        try:
            outcomes = future.result()
        finally:
            lake.release_pending(day, _daily_frames(writer.parts))
        return published(key, day, writer, outcomes)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish") as publisher:
        for key, day, make in days:
            writer = DayWriter(settings, lake, day)
            handed_over = False  # to `publish`, which discards what it does not publish
            early: set[str] = set()

            def stage_early(frames: dict[str, pl.DataFrame], self_contained: bool = False,
                            writer: DayWriter = writer) -> None:
                writer.add(None, prepare(settings, frames), self_contained)
                early.update(frames)

            try:
                token = _EARLY.set(stage_early)
                try:
                    for tick, frames in make():  # each part is staged as soon as it is made
                        if tick is None:
                            frames = {n: f for n, f in frames.items() if n not in early}
                        writer.add(tick, prepare(settings, frames))
                except BaseException:
                    if pending is not None:
                        finish()  # the day before failing its audits is the cause to report
                    raise
                finally:
                    _EARLY.reset(token)
                if pending is not None:
                    yield finish()  # a rejected day d raises here: day d+1's staged files go
                parts = writer.parts
                rows = sum(f.height for _, frames in parts for f in frames.values())
                handed_over = True
                if overlap and rows <= settings.overlap_max_rows:
                    lake.hold_pending(day, _daily_frames(parts))
                    pending = (key, day, writer, _submit(publisher, writer.publish))
                else:
                    yield published(key, day, writer, writer.publish(), big=rows > settings.overlap_max_rows)
            finally:
                if not handed_over:
                    writer.discard()
            del parts, writer  # not alive while the next day is generated (callers drop theirs too)
        if pending is not None:
            yield finish()


def publish_partitions(settings: Settings, dictionaries, lake: Lake, keys: Sequence[str], produce: Produce,
                       overlap: bool) -> Iterator[PublishedPartition]:
    """`publish_in_order` for a daily generator: one part per business date, the frames of `produce`."""
    def day(key: str) -> tuple[str, date, Callable[[], Parts]]:
        d = business_date(key)
        return key, d, lambda: [(None, produce(Day(settings, dictionaries, d), lake))]

    return publish_in_order(settings, lake, map(day, keys), overlap)


class PartitionMetadata:
    """Each partition's own row count (and first rows, as text) on its materialization: what a
    MaterializeResult carries goes on every partition of a range run.

    Recorded as the partitions are published and handed to Dagster at once (`hand_over`, before
    the run's MaterializeResults, which is when Dagster reads it). Dagster's `add_asset_metadata`
    copies and type-checks all the metadata recorded before it and lists the run's partitions
    again on every call, so a call per partition cost the square of the run's partitions (0.83 ms
    a call by the end of a 90-day window's 2,160 price ticks). This puts the same entries in the
    step's metadata, checked the same way (an asset of the step, a partition of the run)."""

    def __init__(self, context: AssetExecutionContext):
        self._context = context
        self._assets = context.assets_def.keys
        self._partitions = frozenset(context.partition_keys)
        self._entries: dict[tuple[dg.AssetKey, str], dict[str, object]] = {}

    def add(self, table: str, partition_key: str, rows: int, preview: str | None = None) -> None:
        key = asset_key(table)
        if key not in self._assets or partition_key not in self._partitions:
            raise ValueError(f"metadata for {table} partition {partition_key}, which this run does not materialize")
        metadata: dict[str, object] = {"dagster/row_count": rows}
        if preview is not None:
            metadata["preview"] = dg.MetadataValue.md(preview)
        self._entries[key, partition_key] = metadata

    def hand_over(self) -> None:
        """Put what was recorded in the step's metadata, in one step (the step's own private
        accumulator: Dagster offers no call for many partitions' metadata)."""
        step = self._context.op_execution_context._step_execution_context
        accumulated = step._metadata_accumulator
        entries = {AssetMetadataHandle(asset_key=key, partition_key=partition):
                   {**accumulated.get_asset_metadata(key, partition), **metadata}
                   for (key, partition), metadata in self._entries.items()}
        step._metadata_accumulator = OutputMetadataAccumulator(
            per_output_metadata={**accumulated.per_output_metadata, **entries})
        self._entries = {}


def _preview(frame: pl.DataFrame) -> str:
    head = frame.head(PREVIEW_ROWS)
    cols = head.columns[:8]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in head.select(cols).iter_rows():
        lines.append("| " + " | ".join("" if v is None else str(v) for v in row) + " |")
    return "\n".join(lines)


def daily_tables_asset(
    name: str,
    tables: Sequence[Table],
    produce: Produce,
    partitions_def: dg.PartitionsDefinition,
    deps: Sequence[str | dg.AssetKey | dg.AssetDep] = (),
    self_dependent: bool = False,
    code_version: str = "1",
    pool: str | None = None,
    overlap: bool = False,
) -> dg.AssetsDefinition:
    """A multi-asset that generates `tables` for each daily partition of a run, oldest first
    (`overlap`: generate each day while the one before is written and audited; see
    `publish_partitions`)."""
    GENERATORS[name] = Generator(name, tuple(tables), produce)

    def as_dep(d):
        if isinstance(d, dg.AssetDep):
            return d
        return dg.AssetDep(d if isinstance(d, dg.AssetKey) else asset_key(d))

    specs = []
    for table in tables:
        key = asset_key(table.name)
        table_deps = [as_dep(d) for d in deps] + ([previous_day(key)] if self_dependent else [])
        specs.append(dg.AssetSpec(
            key=key, group_name=table.group, description=table.description, kinds=KINDS,
            owners=list(table.owners), code_version=code_version, deps=table_deps,
            metadata={"dagster/column_schema": column_schema(table),
                      "grocery/primary_key": ", ".join(table.key),
                      "grocery/partitioning": table.partitioning},
        ))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)  # partitioned checks are in preview
        check_specs = [  # partitioned like the asset: a one-partition run attaches its results to the partition
            dg.AssetCheckSpec(a.name, asset=asset_key(t.name), description=a.description, blocking=a.blocking,
                              partitions_def=partitions_def)
            for t in tables for a in audits.audits_for(t.name)
        ]

    @dg.multi_asset(name=name, specs=specs, check_specs=check_specs, partitions_def=partitions_def,
                    backfill_policy=dg.BackfillPolicy.single_run(), can_subset=False,
                    # one run at a time per state chain (pool limits: deploy/dagster.yaml)
                    pool=pool or (f"grocery_chain_{name}" if self_dependent else None))
    def _asset(context: AssetExecutionContext, grocery: GrocerySettings):
        settings = grocery.resolve()
        dictionaries = load_dictionaries(settings.dictionaries_dir)
        lake = Lake(settings.lake_dir)
        keys = sorted(context.partition_keys)
        outcomes: list[CheckOutcome] = []
        metadata = PartitionMetadata(context)
        try:
            for published in publish_partitions(settings, dictionaries, lake, keys, produce, overlap):
                outcomes += published.outcomes
                for table, frame in published.frames.items():
                    metadata.add(table, published.key, frame.height, published.previews[table])
                context.log.info(f"{published.key}: published "
                                 + ", ".join(f"{t}={f.height}" for t, f in published.frames.items())
                                 + f" in {published.seconds:.2f}s")
                for observe in PARTITION_OBSERVERS:
                    observe(name, published.key, {t: f.height for t, f in published.frames.items()},
                            published.seconds)
                del published  # the day's frames are not kept while the next day is generated
        except PartitionRejected as rejected:
            if files_partition_results(context):
                log_partition_results(context, outcomes + rejected.failed)
            for result in check_results(outcomes + rejected.failed):
                yield result
            raise dg.Failure(description=str(rejected), metadata={
                "partition": rejected.day.isoformat(), "failed_checks": dg.MetadataValue.json(
                    [o.audit.name for o in rejected.failed])}) from None
        catalog.ensure_views(settings.warehouse_path, lake, [t.name for t in tables])
        metadata.hand_over()
        for table in tables:
            yield dg.MaterializeResult(asset_key=asset_key(table.name), metadata={
                "partitions": len(keys),
                "path": dg.MetadataValue.path(str(lake.table_dir(table.name))),
                "settings": dg.MetadataValue.json(settings.fingerprint()),
                "dictionaries_version": dictionaries.fingerprint,
            })
        if files_partition_results(context):
            log_partition_results(context, outcomes)
        for result in check_results(outcomes):
            yield result

    return _asset
