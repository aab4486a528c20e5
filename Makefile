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

.PHONY: setup data browser demo test lint bench reproduce clean

setup: $(STAMP) data browser

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

# Debian's Chromium for the audit page's browser test (tests/audit/test_browser.py), which
# Playwright drives; Playwright's own browser download is never used. Installed where it can
# be (root, apt-get); elsewhere, or if the install fails, one line says the test is skipped.
# $$STALWART_CHROMIUM names another Chromium.
browser:
	@if [ -n "$$STALWART_CHROMIUM" ] || [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's chromium for the browser test (about a minute)"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq chromium >/dev/null; } \
	  || echo "browser: apt-get could not install chromium; the browser test will be skipped"; \
	else \
	  echo "browser: no /usr/bin/chromium (installing it needs root and apt-get); the browser test will be skipped"; \
	fi

demo: setup
	$(BIN)/stalwart demo

test: setup
	$(BIN)/python -m pytest -q -rs -n 2 --dist loadfile

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
