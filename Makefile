# The README's two commands: `make demo` and `make test`. Each sets up .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast bench lint typecheck clean dev-down

demo: $(STAMP)  ## set up, then run the receipts product on its sample mail (embedded default)
	$(BIN)/tracks demo

test: $(STAMP)  ## set up, then run the whole test suite (real nats-server + PostgreSQL it starts itself)
	$(BIN)/pytest -m "not slow" -n 2 --dist loadfile
	$(BIN)/pytest -m slow

test-fast: $(STAMP)  ## everything but the slow chaos, soak and outage tests (a few minutes)
	$(BIN)/pytest -m "not slow" -n 2 --dist loadfile

bench: $(STAMP)  ## throughput and latency vs a raw nats-py chain; JSON in bench-results/
	$(BIN)/tracks bench --json bench-results/bench.json

lint: $(STAMP)  ## style, formatting, and the layers (import-linter contract in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

dev-down: $(STAMP)
	$(BIN)/tracks dev down

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
