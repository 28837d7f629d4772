# ZETA Sync — set-up and everyday commands. Only python3 is needed on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/var/dagster_home

.PHONY: venv demo test ui bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip check
	touch $(STAMP)

venv: $(STAMP)

## Start the simulators on loopback, materialize every asset into var/zeta.db, print a summary.
demo: $(STAMP)
	$(PY) -m pipelines.local demo

## Unit and end-to-end tests (real Dagster, real loopback HTTP, real SQLite).
test: $(STAMP)
	$(PY) -m pytest -q

## Dagster UI (webserver + daemon) on the same instance as `make demo`, simulators included.
ui: $(STAMP)
	$(PY) -m pipelines.local ui

## Benchmarks; figures go into the README's performance section.
bench: $(STAMP)
	$(PY) -m benchmarks.catalogue_sync
	$(PY) -m benchmarks.catalogue_stages
	$(PY) -m benchmarks.bot_queries
	$(PY) -m benchmarks.push

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) var *.egg-info
