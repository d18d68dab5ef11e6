# Burgernet gateway — the two everyday commands are `make demo` and `make test`.
# `make` alone lists the targets.

PYTHON      ?= python3
VENV        := .venv
BIN         := $(VENV)/bin
STAMP       := $(VENV)/.installed
PYTEST_ARGS ?=
ARGS        ?=

.DEFAULT_GOAL := help
.PHONY: help venv system demo-system services smsc-sim web lint test compose-check demo bench migrate serve ivr clean

help: ## List the targets
	@echo "Burgernet gateway — make targets:"
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "Variables: PYTEST_ARGS (extra pytest arguments), ARGS (extra arguments for serve/migrate)"

venv: $(STAMP) ## Create .venv and install the package with its test extras

$(STAMP): pyproject.toml
	@echo "==> creating $(VENV) and installing the package (pip -q: only errors are shown)"
	@if ! out=$$($(PYTHON) -m venv $(VENV) 2>&1); then \
		rm -rf $(VENV); \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "==> '$(PYTHON) -m venv' failed; installing python3-venv"; \
			DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null || exit 1; \
			$(PYTHON) -m venv $(VENV) || exit 1; \
		else \
			echo "$$out" >&2; \
			echo "error: '$(PYTHON) -m venv' failed; install the venv module (Debian: apt-get install python3-venv)" >&2; \
			exit 1; \
		fi; \
	fi
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

system: ## Install the Debian packages the tests need (espeak-ng, ffmpeg, node, debootstrap, chromium) when missing
	bash scripts/ensure-system-packages.sh test

demo-system: # The Debian packages the demo needs (espeak-ng, ffmpeg, node) when missing
	bash scripts/ensure-system-packages.sh demo

services: ## Make sure PostgreSQL and Redis are running on 127.0.0.1 (starts/installs them)
	bash scripts/ensure-services.sh

SMSC_MODULES := tests/smsc/node_modules/.package-lock.json

smsc-sim: $(SMSC_MODULES) ## Install the SMSC simulator's npm packages (tests/smsc, node-smpp)

# `npm ci` installs exactly the lock file; it writes node_modules/.package-lock.json, so the
# packages are reinstalled whenever package.json or the lock file changes.
$(SMSC_MODULES): tests/smsc/package.json tests/smsc/package-lock.json
	@echo "==> installing the SMSC simulator's npm packages (tests/smsc)"
	cd tests/smsc && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

lint: venv ## Check the code: ruff (lint and format) and mypy (docs/development.md); .ci/run runs it first
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: venv system services smsc-sim ## Run the test suite against real PostgreSQL, Redis and Asterisk (PYTEST_ARGS=...)
	$(BIN)/pytest $(PYTEST_ARGS)

compose-check: smsc-sim ## Run docker-compose.yml end to end (Docker, stand-in images, SMSC, SIPp); root, a few minutes
	bash scripts/compose-check.sh

demo: venv demo-system smsc-sim ## Run the embedded demo: SQLite file, in-process queue, SMS via the local SMSC simulator
	$(BIN)/burgernet demo

bench: venv services smsc-sim ## Run the benchmarks (targeting, tip line, SMS, voice, concurrent actions, statistics)
	$(BIN)/python -m bench.targeting
	$(BIN)/python -m bench.tipline
	$(BIN)/python -m bench.sms
	$(BIN)/python -m bench.voice
	$(BIN)/python -m bench.contention
	$(BIN)/python -m bench.stats

migrate: venv ## Apply database migrations to the configured database (ARGS=...)
	$(BIN)/burgernet migrate $(ARGS)

serve: venv ## Start the HTTP API (ARGS=...)
	$(BIN)/burgernet serve $(ARGS)

ivr: venv ## Start the tip line's FastAGI server (ARGS=...)
	$(BIN)/burgernet ivr $(ARGS)

web: ## Re-copy the console's front-end packages (npm) into gateway/web/static (committed)
	cd gateway/web && npm ci --no-audit --no-fund && node build.mjs

clean: ## Remove .venv, var/ and .cache/
	rm -rf $(VENV) var .cache
