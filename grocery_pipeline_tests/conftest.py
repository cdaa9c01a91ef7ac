from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from grocery_pipeline.dictionaries import load_dictionaries
from grocery_pipeline.settings import DEFAULT_DICTIONARIES_DIR, load_settings
from grocery_pipeline.simulation.context import Day

START = date(2025, 1, 1)


@pytest.fixture(scope="session")
def dictionaries():
    return load_dictionaries(DEFAULT_DICTIONARIES_DIR)


@pytest.fixture(scope="session")
def tiny_settings(tmp_path_factory):
    return load_settings(env={}, preset="tiny", data_dir=tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def tiny_day(tiny_settings, dictionaries):
    return Day(tiny_settings, dictionaries, START)


@pytest.fixture
def dictionaries_copy(tmp_path) -> Path:
    """A writable copy of the shipped dictionaries, for corrupting in tests."""
    target = tmp_path / "dictionaries"
    shutil.copytree(DEFAULT_DICTIONARIES_DIR, target)
    return target


@pytest.fixture
def grocery_env(tmp_path, monkeypatch):
    """Environment for a tiny-preset run writing into a temporary data directory."""
    data = tmp_path / "data"
    monkeypatch.setenv("GROCERY_PRESET", "tiny")
    monkeypatch.setenv("GROCERY_DATA_DIR", str(data))
    monkeypatch.delenv("GROCERY_FAULTS", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return data
