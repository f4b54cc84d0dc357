# Crieur: `make run` starts the whole stack locally, `make test` checks everything. Both set themselves up.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BOOT := $(shell infra/find-python.sh)
VENV := .venv
PY := $(VENV)/bin/python
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
# `sam build` without Docker needs the runtime's Python (3.13) first on PATH.
SAM_PATH := $(dir $(PYTHON_BOOT)):$(PATH)
export AWS_DEFAULT_REGION ?= eu-west-3
# Browser tests: Debian's chromium (never a downloaded browser build) and axe-core pinned in tests/browser.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
AXE := tests/browser/node_modules/.installed

.PHONY: help run test lint typecheck cfn-lint build unit integration e2e browser chromium deploy console-upload clean bench soak

help:
	@echo "make run    start Crieur locally (moto, API on 127.0.0.1:3000, workers, sandbox)"
	@echo "make test   lint, type-check, cfn-lint, sam build and every test"
	@echo "make build  sam build (no Docker needed)"
	@echo "make browser  the browser tests alone: the console and the widget in Chromium, audited by axe-core"
	@echo "make bench  benchmarks: cold start, AWS calls, latency, fan-out, cost (table + benchmarks/results/latest.json)"
	@echo "make soak   1,000 publications through the local stack under injected faults (about 10 minutes)"
	@echo "make deploy sam build && sam deploy --guided, then the console's files (make console-upload STACK=name)"

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

# aws-sam-cli pins an older boto3, so it lives in a tool environment of its own.
$(SAM_VENV)/.installed:
	@test -x $(SAM_VENV)/bin/python || $(PYTHON_BOOT) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet 'aws-sam-cli>=1.130'
	@touch $@

run: $(VENV)/.installed
	$(PY) -m infra.local

bench: $(VENV)/.installed
	$(PY) -m benchmarks

soak: $(VENV)/.installed
	$(PY) -m benchmarks.soak

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy layers/crieur/crieur functions infra

cfn-lint: $(VENV)/.installed
	$(VENV)/bin/cfn-lint template.yaml infra/*.yaml

# Then bytecode into the artefacts: sam build leaves none, and Lambda would compile every module at each cold start.
build: $(SAM_VENV)/.installed $(VENV)/.installed
	PATH="$(SAM_PATH)" $(SAM) build --template-file template.yaml --parallel
	$(PY) -m infra.precompile .aws-sam/build

unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit

integration: $(VENV)/.installed
	$(PY) -m pytest tests/integration

e2e: $(VENV)/.installed
	$(PY) -m pytest tests/e2e

chromium:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }

$(AXE): tests/browser/package-lock.json
	cd tests/browser && npm ci --no-audit --no-fund
	@touch $@

browser: $(VENV)/.installed chromium $(AXE)
	$(PY) -m pytest tests/browser

test: lint typecheck cfn-lint build chromium $(AXE)
	$(PY) -m pytest

deploy: build
	PATH="$(SAM_PATH)" $(SAM) deploy --guided
	$(MAKE) console-upload

# The console's static files into the deployed stack's ConsoleBucket (STACK: the name given to sam deploy).
STACK ?= crieur
console-upload: $(VENV)/.installed
	$(PY) -m infra.console_upload --stack $(STACK)

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache
