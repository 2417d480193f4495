# One command each: set up .venv on a fresh machine, then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.DEFAULT_GOAL := help
.PHONY: help run test lint format bench clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/bridge: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,test]'
	@touch $@

run: $(BIN)/bridge ## start web + worker + embedded Redis + sandbox BigPanda (bridge dev)
	$(BIN)/bridge dev

test: $(BIN)/bridge ## install and run the whole test suite
	$(BIN)/pytest

bench: $(BIN)/bridge ## ingest throughput against a bare Flask baseline
	$(BIN)/python bench/ingest.py

lint: $(BIN)/bridge ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(BIN)/bridge ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: ## remove the virtualenv and local data
	rm -rf $(VENV) var .pytest_cache
