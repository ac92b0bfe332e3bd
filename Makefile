# Qorgan: `make run` sets everything up and runs a hunt over the shipped examples;
# `make test` runs lint and the whole test suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# A hunt exits 1 when alerts fire; that is the expected outcome of the demo.
run: $(STAMP)
	$(BIN)/qorgan hunt examples/logs --min-level medium --format table || [ $$? -eq 1 ]

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

test: lint
	$(BIN)/pytest

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

bench: $(STAMP)
	$(BIN)/python bench/hunt.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
