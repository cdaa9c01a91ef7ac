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

ui: install
	mkdir -p .dagster_home
	DAGSTER_HOME=$(CURDIR)/.dagster_home $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

bench: install-test
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) data .dagster_home
