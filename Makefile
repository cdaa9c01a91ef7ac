# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DEMO_PRESET ?= small
DEMO_START ?= 2025-01-01
DEMO_DAYS ?= 90

.PHONY: help install install-test demo test test-fast ui bench clean

help:
	@echo "make demo   - install and generate the $(DEMO_DAYS)-day $(DEMO_PRESET) demo window into ./data"
	@echo "make test   - install with test extras and run the test suite"
	@echo "make ui     - start the Dagster UI (dagster dev) on http://127.0.0.1:3000"
	@echo "make bench  - run the benchmarks (rows/s, peak memory)"
	@echo "make dbt-build - dbt build and source freshness on ./data (after make demo)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml setup.py
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(BIN)/python pyproject.toml setup.py
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	$(BIN)/grocery-pipeline generate --preset $(DEMO_PRESET) --start $(DEMO_START) --days $(DEMO_DAYS) --data-dir ./data

test: install-test
	$(BIN)/python -m pytest -q

test-fast: install-test
	$(BIN)/python -m pytest -q -m "not integration and not e2e"

ui: install-dbt
	mkdir -p .dagster_home
	DAGSTER_HOME=$(CURDIR)/.dagster_home $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

# BENCH_ARGS: e.g. "--presets small --no-tpch" (all options: docs/benchmarks.md)
BENCH_ARGS ?=

$(VENV)/.installed-bench: $(VENV)/.installed-test
	$(BIN)/pip install --quiet -e ".[test,bench]"
	touch $@

bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) data .dagster_home

# --- dbt on top of the warehouse (docs/dbt.md) ----------------------------------------------
# `make demo` then `make dbt-build`. DBT_DATA_DIR is the data directory to read (default ./data,
# or GROCERY_DATA_DIR when set); DBT_TARGET is catalog (read-only DuckDB attach) or lake (Parquet).
DBT_DATA_DIR ?= $(or $(GROCERY_DATA_DIR),./data)
DBT_TARGET ?= catalog
DBT_RUN = cd dbt && GROCERY_DATA_DIR=$(abspath $(DBT_DATA_DIR)) $(CURDIR)/$(BIN)/dbt

.PHONY: install-dbt dbt-build dbt-freshness dbt-docs contract

$(VENV)/.installed-dbt: $(BIN)/python pyproject.toml setup.py
	$(BIN)/pip install --quiet -e ".[dbt]"
	touch $@ $(VENV)/.installed

install-dbt: $(VENV)/.installed-dbt

dbt-build: install-dbt
	$(DBT_RUN) build --target $(DBT_TARGET)
	$(DBT_RUN) source freshness --target $(DBT_TARGET)

dbt-freshness: install-dbt
	$(DBT_RUN) source freshness --target $(DBT_TARGET)

dbt-docs: install-dbt
	$(DBT_RUN) docs generate --target $(DBT_TARGET)
	$(DBT_RUN) docs serve --port 8080

contract: install
	$(BIN)/python -m grocery_pipeline.contract --write
