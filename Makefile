# isoperp: `make demo` runs the end-to-end story on a local anvil devnet; `make test` runs every test.
# Both set everything up first (idempotent): .venv from requirements.lock, npm ci (anvil, solc-js),
# and the solc launcher that py-solc-x / ape-solidity use.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
SOLC_VERSION := 0.8.28
VENV := .venv
BIN := $(VENV)/bin
ARCH := $(shell uname -m | sed -e 's/x86_64/amd64/' -e 's/aarch64/arm64/')
OS := $(shell uname -s | tr A-Z a-z)
NODE_BIN := $(CURDIR)/node_modules/@foundry-rs/anvil-$(OS)-$(ARCH)/bin
export SOLCX_BINARY_PATH := $(CURDIR)/.solcx
export PATH := $(CURDIR)/$(BIN):$(NODE_BIN):$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup demo test test-fast lint typecheck compile lock clean help
.DEFAULT_GOAL := help

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip>=24" 2>&1 | { grep -v "^WARNING: Location" || true; }

$(VENV)/.installed: $(BIN)/python requirements.lock pyproject.toml setup.py operator/isoperp/tree/_fastmerkle.c
	$(BIN)/pip install -q -r requirements.lock 2>&1 | { grep -v "^WARNING: Location" || true; }
	$(BIN)/pip install -q --no-deps -e . 2>&1 | { grep -v "^WARNING: Location" || true; }
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

.solcx/solc-v$(SOLC_VERSION): node_modules/.installed tools/install-solc.sh tools/solc-launcher.js
	bash tools/install-solc.sh $(SOLC_VERSION) .solcx

setup: $(VENV)/.installed node_modules/.installed .solcx/solc-v$(SOLC_VERSION) ## Install everything (idempotent)
	@$(MAKE) --no-print-directory compile

compile: ## Compile the contracts (ape-solidity through the pinned solc)
	@out=$$($(BIN)/ape compile 2>&1) || { echo "$$out" >&2; echo "contract compilation failed" >&2; exit 1; }

test: setup ## Run the whole test suite (ape test; anvil started by ape-foundry)
	$(BIN)/ruff check operator tests scripts
	$(BIN)/mypy
	ISOPERP_REQUIRE_FAST=1 $(BIN)/ape test tests -q -p no:cacheprovider

demo: setup ## On a fresh anvil: the claim story, then ~1 min of simulated trading with a crash; report in demo-report/
	$(BIN)/isoperp demo

lint: setup ## ruff + mypy
	$(BIN)/ruff check operator tests scripts
	$(BIN)/mypy

lock: ## Re-resolve requirements.in into requirements.lock (needs network access to PyPI)
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv && .lockvenv/bin/pip install -q -r requirements.in
	.lockvenv/bin/pip freeze > requirements.lock && rm -rf .lockvenv

clean: ## Remove build outputs (keeps .venv and node_modules)
	rm -rf .build .cache .isoperp
