# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
export GX_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1

.PHONY: install data demo test test-fast lint format bench bench-quick profile clean purge

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# The CPU build of torch, pinned first: an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

data: $(STAMP)
	$(BIN)/w2s data fetch

demo: data
	@start=$$(date +%s); \
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/w2s run && \
	echo "pipeline wall time: $$(( $$(date +%s) - start )) s"

# Unit and end-to-end tests in two worker processes; a test file stays on one worker (its
# module-scoped fixtures are built once).
test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -n 2 --dist loadfile

# Unit tests only (tests/unit/), in about a minute.
test-fast: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -m "not slow"

# Checks: ruff (lint and format) and mypy, configured in pyproject.toml.
$(VENV)/.installed-lint: $(STAMP)
	$(BIN)/pip install -e '.[test,lint]'
	touch $@

lint: $(VENV)/.installed-lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(VENV)/.installed-lint
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Performance figures (bench/): a JSON report under .w2s/bench/ and a table; about 15-20 min on 2 cores.
$(VENV)/.installed-bench: $(STAMP)
	$(BIN)/pip install -e '.[test,bench]'
	touch $@

bench: data $(VENV)/.installed-bench
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m bench.run

bench-quick: data $(VENV)/.installed-bench
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m bench.run --quick

# One profile of the demo pipeline (pyinstrument): .w2s/bench/profile.html and a text summary.
profile: data $(VENV)/.installed-bench
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m bench.profile

# Only what a rerun rebuilds: caches, run folders, sweep, bench and reproduction scratch, DVC stage
# outputs. The MLflow store and its artifacts (the registry) and the DVC remote under .w2s stay:
# lineage records point into them.
clean:
	rm -rf .w2s/cache .w2s/runs .w2s/sweeps .w2s/bench .w2s/reproduce .w2s/downloads outputs

# Deletes the whole state folder, registry and DVC remote included: asks first, and refuses
# without a terminal to ask on.
purge:
	@if [ ! -t 0 ]; then echo "make purge: refusing without a terminal: it deletes the registry, tracking store and DVC remote in .w2s" >&2; exit 1; fi
	@printf 'Delete .w2s (MLflow registry, run history, artifacts, DVC remote) and outputs/? Type "delete" to confirm: '; \
	read answer; if [ "$$answer" != delete ]; then echo "make purge: nothing deleted" >&2; exit 1; fi
	rm -rf .w2s outputs
