# The README's two commands are `make demo` and `make test`; CI runs `make ci`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench ci clean services

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## Run the demo on embedded PostgreSQL and Redis (no configuration needed).
demo: $(STAMP)
	$(BIN)/dukenet demo

## Run the whole test suite against real PostgreSQL and Redis.
test: $(STAMP)
	bash scripts/ensure-services.sh
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	$(BIN)/python bench/run_all.py

ci: lint test

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
