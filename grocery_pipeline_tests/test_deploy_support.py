"""What the deployment, crash and reader tests share: a sequential reference generation, a
partition-by-partition comparison of two lakes, and child processes started and stopped cleanly.
(No tests here.)"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from datetime import date
from pathlib import Path

import polars as pl

from grocery_pipeline.settings import PROJECT_ROOT

BIN = Path(sys.executable).parent


def generate_reference(data_dir: Path, start: date, end: date, monkeypatch) -> None:
    """The sequential reference: one single-run backfill per partitions definition, in this process."""
    from grocery_pipeline import runner

    monkeypatch.setenv("GROCERY_DATA_DIR", str(data_dir))
    outcome = runner.materialize_window(start, end)
    assert outcome.success, outcome.failures


def published_files(lake_root: Path) -> dict[str, Path]:
    """Every published partition file, by its path inside the lake (staged files are not published)."""
    return {str(p.relative_to(lake_root)): p for p in sorted(lake_root.rglob("*.parquet"))}


def assert_same_partitions(actual: Path, expected: Path) -> int:
    """The same partition files with the same rows in the same order; returns how many were compared."""
    got, want = published_files(actual), published_files(expected)
    assert sorted(got) == sorted(want), (
        f"partitions differ: only here {sorted(set(got) - set(want))[:5]}, "
        f"missing {sorted(set(want) - set(got))[:5]}")
    for name, path in want.items():
        left, right = pl.read_parquet(got[name]), pl.read_parquet(path)
        assert left.schema == right.schema, name
        assert left.equals(right), f"{name}: rows differ from the sequential reference"
    return len(want)


def child_env(**extra: str) -> dict[str, str]:
    """This environment without any grocery or Dagster instance setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GROCERY_", "DAGSTER_"))}
    env.update(extra)
    return env


def start_process(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """A child in its own process group (so it and its run workers stop together), logging to `log`."""
    handle = log.open("wb")
    return subprocess.Popen(args, cwd=PROJECT_ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    """Signal the child's whole process group (its run workers and code servers too), then reap it."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


GENERATE = ("import sys; from datetime import date; from grocery_pipeline import runner; "
            "outcome = runner.materialize_window(date.fromisoformat(sys.argv[1]), date.fromisoformat(sys.argv[2])); "
            "print(outcome.failures); sys.exit(0 if outcome.success else 1)")


def start_generation(data: Path, start: date, end: date, log: Path, **extra: str) -> subprocess.Popen:
    """A real tiny-preset generation of a window (what `grocery-pipeline generate` runs) in a child process."""
    env = child_env(GROCERY_PRESET="tiny", GROCERY_DATA_DIR=str(data), **extra)
    return start_process([sys.executable, "-c", GENERATE, start.isoformat(), end.isoformat()], env, log)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
