"""Thin Dagster wrappers, one module per group: wire generators to the lake and report metadata."""
