# Two entry points, each making the virtual environment it needs:
#   make demo   schedule the quickstart batch with the real engine (and regenerate the CRDs)
#   make test   lint, type-check and run the whole test suite

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint unit bench crds clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("agentfleet needs Python >= 3.11, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/agentfleet crds --output crds
	$(BIN)/agentfleet simulate -f examples/quickstart

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest

test: lint unit

crds: $(STAMP)
	$(BIN)/agentfleet crds --output crds

bench: $(STAMP)
	$(BIN)/python bench/schedule.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
