# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
export GX_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1

.PHONY: install lock data demo test test-fast lint format bench bench-quick profile clean purge

# Every install takes its versions from the lock (pip constraints: one version per package, so
# the resolver never backtracks and an install does not depend on the day's releases).
LOCK := requirements.lock
PIP := $(BIN)/pip install --constraint $(LOCK)
# Where torch comes from. Empty: the configured index (on a stock PyPI, torch 2.13.0 for Linux is
# the CUDA build). TORCH_INDEX=https://download.pytorch.org/whl/cpu for the CPU build, .../cu128
# for CUDA 12.8.
TORCH_INDEX ?=

# Which torch build the install took: one marker per TORCH_INDEX, so a later `make install` with
# another TORCH_INDEX finds no marker and installs again (torch reinstalled from the new index).
TORCH_STAMP := $(VENV)/.torch-index-$(subst /,_,$(subst :,_,$(TORCH_INDEX)))
$(TORCH_STAMP):
	@mkdir -p $(VENV) && rm -f $(VENV)/.torch-index-* && touch $@

$(STAMP): pyproject.toml $(LOCK) $(TORCH_STAMP)
	$(PYTHON) -m venv $(VENV)
	$(PIP) pip
	# torch first, on its own, pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(PIP) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX) --force-reinstall) torch==2.13.0
	$(PIP) -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Re-make the lock after a change to the dependencies in pyproject.toml: a fresh environment with
# every extra, frozen. Uses the configured index as it is today; commit the new requirements.lock.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --upgrade pip
	.lock-venv/bin/pip install $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) torch==2.13.0
	.lock-venv/bin/pip install -e '.[test,lint,bench]'
	.lock-venv/bin/python tools/lock.py write .lock-venv $(LOCK)
	rm -rf .lock-venv

data: $(STAMP)
	$(BIN)/w2s data fetch

demo: data
	@start=$$(date +%s); \
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/w2s run && \
	echo "pipeline wall time: $$(( $$(date +%s) - start )) s"

# Unit and end-to-end tests in two worker processes; a test file stays on one worker (its
# module-scoped fixtures are built once).
test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

# Unit tests only (tests/unit/), in about a minute.
test-fast: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -m "not slow"

# Checks: ruff (lint and format) and mypy, configured in pyproject.toml.
$(VENV)/.installed-lint: $(STAMP)
	$(PIP) -e '.[test,lint]'
	touch $@

lint: $(VENV)/.installed-lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(VENV)/.installed-lint
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Performance figures (bench/): a JSON report under .w2s/bench/ and a table; about 20 min on 2 cores.
$(VENV)/.installed-bench: $(STAMP)
	$(PIP) -e '.[test,bench]'
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
