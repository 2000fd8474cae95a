# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
export GX_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1

.PHONY: install data demo test test-fast clean

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

test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q

test-fast: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf .w2s outputs metrics.json
