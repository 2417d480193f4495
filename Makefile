# One command each: set up .venv on a fresh machine, then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.DEFAULT_GOAL := help
.PHONY: help run test lint format bench lock clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# The venv gets the versions the lock pins (what Heroku and the image run), plus the tools.
$(BIN)/bridge: pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	grep -v '^\.$$' requirements.txt > $(VENV)/constraints.txt
	$(BIN)/pip install --quiet -c $(VENV)/constraints.txt -e '.[dev,test]'
	@touch $@

run: $(BIN)/bridge ## start web + worker + embedded Redis + sandbox BigPanda (bridge dev)
	$(BIN)/bridge dev

test: $(BIN)/bridge ## install and run the whole test suite
	$(BIN)/pytest

bench: $(BIN)/bridge ## ingest vs bare Flask, then the worker: latency, calls, rate limit, sweep
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/lifecycle.py

lint: $(BIN)/bridge ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(BIN)/bridge ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# requirements.txt, what Heroku and the image install: pyproject's runtime dependencies (no
# extras) pinned for the .python-version, on the index pip uses (its index-url, read at run time:
# none set means PyPI). Kept pins stay unless pyproject needs others (`UPGRADE=1` bumps them all);
# the last line `.` installs the project itself, with its `bridge` command.
INDEX_URL = $(or $(PIP_INDEX_URL),$(shell $(BIN)/pip config get global.index-url 2>/dev/null))

lock: $(BIN)/bridge ## pin the runtime dependencies in requirements.txt (Heroku, the image)
	$(BIN)/uv pip compile pyproject.toml --quiet --universal \
	  --python-version $$(cat .python-version) $(if $(INDEX_URL),--index-url $(INDEX_URL)) \
	  $(if $(UPGRADE),--upgrade) $(if $(PACKAGE),--upgrade-package $(PACKAGE)) \
	  --custom-compile-command "make lock" --output-file requirements.txt
	printf '%s\n' '# the project itself (its `bridge` command), from this checkout' . >> requirements.txt

clean: ## remove the virtualenv and local data
	rm -rf $(VENV) var .pytest_cache
