"""The ephemeral Dagster instance of a window run by `grocery-pipeline generate` without DAGSTER_HOME.

Dagster's in-memory event log stores what its persistent storages store, and works like them: a new
connection per statement, its schema looked up again on every event, a planned check serialized
again for each of its partitions, a materialization serialized twice (for its row and for its
asset's last materialization) and its asset's row tried as an insert, which fails but for the
asset's first, before the update. A 90-day window stores 4,500 materializations and 23k planned
check partitions; storing them was over a third of a 90-day tiny window's profile.
`WindowEventLogStorage` stores the same rows with less work.
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager

import dagster as dg
from dagster._core.instance import InstanceType
from dagster._core.launcher.sync_in_memory_run_launcher import SyncInMemoryRunLauncher
from dagster._core.run_coordinator import DefaultRunCoordinator
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log import InMemoryEventLogStorage
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable, AssetKeyTable
from dagster._core.storage.noop_compute_log_manager import NoOpComputeLogManager
from dagster._core.storage.root import TemporaryLocalArtifactStorage
from dagster._core.storage.runs import InMemoryRunStorage
from dagster._time import datetime_from_timestamp
from dagster_shared.serdes import serialize_value
from sqlalchemy.dialects.sqlite import insert as sqlite_insert


class WindowEventLogStorage(InMemoryEventLogStorage):
    """Dagster's in-memory event log, with its schema looked up once (it does not change while the
    process lives), each planned check serialized once for all its partitions (Dagster's own
    storage serializes the same event again for every partition row), a materialization serialized
    once, and its asset's row written by one upsert."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._opened_by = threading.get_ident()
        self._tables: set[str] = set()
        self._index_cols: bool | None = None
        self._serialized = threading.local()  # the event this thread's store_event serialized last

    @contextmanager
    def _connect(self):
        # the connection the storage holds for its life, instead of a new one per statement with
        # the pragmas of a file database (WAL; foreign keys, which the event log tables have none
        # of); SQLite lets only the thread that opened it use it, other threads get their own
        if threading.get_ident() != self._opened_by:
            with super()._connect() as conn:
                yield conn
            return
        with self._db_lock, self._held_conn.begin():
            yield self._held_conn

    def has_table(self, table_name: str) -> bool:
        if table_name not in self._tables and super().has_table(table_name):
            self._tables.add(table_name)
        return table_name in self._tables

    def _has_asset_key_index_cols_on_connection(self, conn) -> bool:
        if self._index_cols is None:
            self._index_cols = super()._has_asset_key_index_cols_on_connection(conn)
        return self._index_cols

    def _event_to_row(self, event) -> dict:
        row = super()._event_to_row(event)
        self._serialized.event = (event, row["event"])
        return row

    def _get_asset_entry_values(self, event, event_id: int, has_asset_key_index_cols: bool) -> dict:
        # An asset's last materialization is the record (storage id and event) of the event just
        # stored: its serialization wraps the event's, which the event's row already holds.
        last, self._serialized.event = getattr(self._serialized, "event", None), None
        if last is None or last[0] is not event or not event.dagster_event.is_step_materialization:
            return super()._get_asset_entry_values(event, event_id, has_asset_key_index_cols)
        values = {"last_materialization": f'{{"__class__": "EventLogRecord", "event_log_entry": {last[1]}, '
                                          f'"storage_id": {event_id}}}',
                  "last_run_id": event.run_id}
        if has_asset_key_index_cols:
            values["last_materialization_timestamp"] = datetime_from_timestamp(event.timestamp)
        return values

    def _store_asset_event(self, conn, event, event_id: int) -> None:
        # Dagster's inserts the asset's row and, when that fails (every event of the asset but its
        # first), updates it: one upsert here
        if not (event.dagster_event and event.dagster_event.asset_key):
            return
        values = self._get_asset_entry_values(event, event_id, self._has_asset_key_index_cols_on_connection(conn))
        if values:
            conn.execute(sqlite_insert(AssetKeyTable)
                         .values(asset_key=event.dagster_event.asset_key.to_string(), **values)
                         .on_conflict_do_update(index_elements=[AssetKeyTable.c.asset_key], set_=values))

    def _store_asset_check_evaluation_planned(self, event, event_id) -> None:
        planned = event.dagster_event.event_specific_data
        keys = planned.partitions_subset.get_partition_keys() if planned.partitions_subset else [None]
        row = dict(asset_key=planned.asset_key.to_string(), check_name=planned.check_name,
                   run_id=event.run_id, execution_status=AssetCheckExecutionRecordStatus.PLANNED.value,
                   evaluation_event=serialize_value(event),
                   evaluation_event_timestamp=self._event_insert_timestamp(event),
                   evaluation_event_storage_id=event_id)
        with self.index_connection() as conn:
            conn.execute(AssetCheckExecutionsTable.insert(), [{**row, "partition": key} for key in keys])


def window_instance(log_level: str) -> dg.DagsterInstance:
    """DAGSTER_HOME's instance, else an ephemeral one (discarded with the process) whose event log is
    `WindowEventLogStorage` and which keeps only the run logs the console shows (`log_level` and
    above; Dagster's events all the same): a 90-day window's info lines, one per asset and day,
    would be a thousand records nobody reads."""
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    return dg.DagsterInstance(
        instance_type=InstanceType.EPHEMERAL,
        local_artifact_storage=TemporaryLocalArtifactStorage(),
        run_storage=InMemoryRunStorage(),
        event_storage=WindowEventLogStorage(),
        compute_log_manager=NoOpComputeLogManager(),
        run_coordinator=DefaultRunCoordinator(),
        run_launcher=SyncInMemoryRunLauncher(),
        settings={"python_logs": {"python_log_level": log_level}},
    )
