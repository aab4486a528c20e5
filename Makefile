# Two commands on a fresh machine:
#   make demo   sets up everything, then runs the main job on data that ships offline
#   make test   sets up the same way, then runs the test suite
# Both are idempotent: a second run only checks that everything is in place.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STALWART_DATA ?= $(HOME)/.cache/stalwart
export STALWART_DATA
# The CPU wheel on this project's build machines; the same pin gives users their platform's build.
TORCH_PIN ?= torch==2.13.0
TORCHATTACKS_PIN := torchattacks==3.5.1
STAMP := $(VENV)/.installed

.PHONY: setup data demo test lint bench reproduce clean

setup: $(STAMP) data

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the package's dependencies change.
$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_PIN)"
	$(BIN)/python -m pip install --quiet -e ".[dev,text,ray,anomaly,rl]"
	# Test-only reference attacks; --no-deps, as its declared needs pull another torch build.
	$(BIN)/python -m pip install --quiet --no-deps "$(TORCHATTACKS_PIN)"
	touch $@

data: $(STAMP)
	$(BIN)/stalwart datasets --install

demo: setup
	$(BIN)/stalwart demo

test: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: setup
	$(BIN)/python benchmarks/engine_overhead.py
	$(BIN)/python benchmarks/method_cost.py

# Re-run every recorded command of docs/results.md that runs on a CPU (hours) and report the
# figures that moved beyond their spread; `benchmarks/reproduce.py --fast` runs the quick ones.
reproduce: setup
	$(BIN)/python benchmarks/reproduce.py --all

clean:
	rm -rf $(VENV) runs .pytest_cache
