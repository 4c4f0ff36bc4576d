# Two entry points: `make demo` and `make test`. Everything else is a helper for them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Test-only node tools (anvil, solc-js), pinned by package-lock.json; installed, never
# downloaded by the tests themselves.
NODE_STAMP := node_modules/.installed
CONTRACTS  := tests/sources/contracts
# Debian's Chromium for the dashboard's browser test (Playwright drives it; it never
# downloads a browser of its own).
CHROMIUM   := /usr/bin/chromium
# Debian's promtool (package prometheus) and docker-compose check the deployment files in
# deploy/ (tests/deploy); no Docker daemon is needed. Where a service manager allows it, the
# prometheus package also starts its own server on :9090.
PROMETHEUS     := /usr/bin/prometheus
DOCKER_COMPOSE := /usr/bin/docker-compose
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint typecheck bench-ingest contracts clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

$(CHROMIUM):
	$(SUDO) apt-get install -y --no-install-recommends chromium \
	  || ($(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium)

$(PROMETHEUS):
	$(SUDO) apt-get install -y --no-install-recommends prometheus \
	  || ($(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends prometheus)

$(DOCKER_COMPOSE):
	$(SUDO) apt-get install -y --no-install-recommends docker-compose \
	  || ($(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends docker-compose)

# Regenerates the committed ERC-721 test artifact from its Solidity source with solc-js.
contracts: $(NODE_STAMP)
	node $(CONTRACTS)/compile.js

demo: $(STAMP)
	$(BIN)/trustscore-stream demo

test: $(STAMP) $(NODE_STAMP) $(CHROMIUM) $(PROMETHEUS) $(DOCKER_COMPOSE)
	$(BIN)/ruff check .
	$(BIN)/mypy
	# Two test processes, a test file each at a time: most integration tests wait on workers
	# and the broker, so two share the 2 cores well (14 min in one, 7 in two).
	$(BIN)/pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

bench-ingest: $(STAMP)
	$(BIN)/pip install --quiet -e ".[dev,bench]"
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache build *.egg-info
