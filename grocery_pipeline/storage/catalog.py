"""The DuckDB catalog: schema `grocery`, one view per table over its Parquet files.

Views use absolute globs, so files published later appear without touching the catalog; the
catalog file is opened read-write only to (re)create a view, briefly and with retries, so readers
holding it read-only never block a run for long.
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import polars as pl

from grocery_pipeline.storage.lake import Lake
from grocery_pipeline.tables import TABLES

SCHEMA = "grocery"
_LOCK_RETRY_SECONDS = 60.0


def view_sql(lake: Lake, table: str) -> str:
    columns = ", ".join(f'"{c.name}"' for c in TABLES[table].columns)
    return (
        f'CREATE OR REPLACE VIEW {SCHEMA}."{table}" AS SELECT {columns} FROM read_parquet('
        f"'{lake.glob(table)}', union_by_name = true, hive_partitioning = false)"
    )


def connect_with_retry(path: Path, read_only: bool = False,
                       timeout: float = _LOCK_RETRY_SECONDS) -> duckdb.DuckDBPyConnection:
    """Open the catalog, waiting while another process holds its write lock."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as error:
            if "lock" not in str(error).lower() or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def _recorded_views(conn: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The view definitions this catalog was last built with (empty for a new catalog)."""
    try:
        return dict(conn.execute("SELECT view_name, definition FROM main.grocery_catalog_views").fetchall())
    except duckdb.CatalogException:
        return {}


# catalog path -> (the file's signature when last read or written here, the views it then held).
# Every step of a run ends by ensuring its views; while the file is unchanged since, this process
# already knows them and need not open the catalog again.
_KNOWN_VIEWS: dict[Path, tuple[tuple, dict[str, str]]] = {}


def _file_signature(path: Path) -> tuple | None:
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return (status.st_ino, status.st_mtime_ns, status.st_size)


def ensure_views(catalog_path: Path, lake: Lake, tables: list[str]) -> list[str]:
    """Create or refresh the views of tables that have published files; returns those changed."""
    signature = _file_signature(catalog_path)
    known = _KNOWN_VIEWS.get(catalog_path)
    recorded = known[1] if known is not None and signature is not None and known[0] == signature else None
    # a view already recorded exactly as wanted exists, so its table has files: no glob needed
    wanted = {t: view_sql(lake, t) for t in tables}
    wanted = {t: sql for t, sql in wanted.items()
              if (recorded is not None and recorded.get(t) == sql) or _has_files(lake, t)}
    if not wanted:
        return []
    if recorded is None and signature is not None:
        with connect_with_retry(catalog_path, read_only=True) as conn:
            recorded = _recorded_views(conn)
        _KNOWN_VIEWS[catalog_path] = (signature, recorded)
    if recorded is not None and all(recorded.get(t) == sql for t, sql in wanted.items()):
        return []
    catalog_path.parent.mkdir(parents=True, exist_ok=True)
    with connect_with_retry(catalog_path) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        conn.execute("CREATE TABLE IF NOT EXISTS main.grocery_catalog_views "
                     "(view_name VARCHAR PRIMARY KEY, definition VARCHAR)")
        recorded = _recorded_views(conn)
        changed = [t for t, sql in wanted.items() if recorded.get(t) != sql]
        for table in changed:
            conn.execute(wanted[table])
            conn.execute("INSERT OR REPLACE INTO main.grocery_catalog_views VALUES (?, ?)",
                         [table, wanted[table]])
        recorded = _recorded_views(conn)
    signature = _file_signature(catalog_path)
    if signature is not None:
        _KNOWN_VIEWS[catalog_path] = (signature, recorded)
    return changed


def _has_files(lake: Lake, table: str) -> bool:
    root = lake.table_dir(table)
    return root.is_dir() and next(root.glob(f"**/{table}.parquet"), None) is not None


def query_frame(conn: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pl.DataFrame:
    """Run a query and return a polars frame (through Arrow)."""
    result = conn.execute(sql, params or [])
    fetch = getattr(result, "to_arrow_table", None) or getattr(result, "fetch_arrow_table")
    return pl.from_arrow(fetch())


def query_catalog(catalog_path: Path, sql: str, params: list | None = None) -> pl.DataFrame:
    """A read-only query of the catalog (never blocks a run that is writing the lake)."""
    with connect_with_retry(catalog_path, read_only=True) as conn:
        return query_frame(conn, sql, params)
