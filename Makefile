# The two commands: `make run` (demo) and `make test` (whole suite). Each creates .venv if missing,
# from the exact, hash-checked versions in requirements-dev.lock (`make lock` regenerates the locks).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements-dev.lock

.PHONY: run test test-fast lint typecheck bench lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/mlwarden demo

# The whole suite in two passes: the default one (`pytest` alone: everything not marked slow, under
# ten minutes on two cores), then the suites marked slow (servers, crash loops, fresh installs).
test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest --durations=15
	$(BIN)/python -m pytest -m slow --durations=10

test-fast: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/ledger.py

# requirements.lock: runtime + [postgres] (the container image); requirements-dev.lock: + [dev]
# (make, CI). Both with a sha256 for every file of every pinned release. Existing pins are kept;
# `make lock LOCK_ARGS=--upgrade` resolves everything afresh.
lock: $(STAMP)
	$(BIN)/python scripts/lock.py $(LOCK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
