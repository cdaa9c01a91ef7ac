"""The storage of record (an atomic Parquet lake) and the DuckDB query catalog over it."""
