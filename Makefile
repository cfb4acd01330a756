# Two entry points, each making the virtual environment it needs:
#   make demo   run the quickstart batch: scripted agents in git worktrees of a sample repository
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

DEMO_REPO ?= build/quickstart-repo

demo: $(STAMP)
	$(BIN)/python examples/quickstart/make_sample_repo.py --force $(DEMO_REPO)
	$(BIN)/agentfleet run -f examples/quickstart --repo $(DEMO_REPO)

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
	$(BIN)/python bench/worktrees.py
	$(BIN)/python bench/runner_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
