# neuromosaic: `make demo` runs the main job, `make test` the whole test suite. Both set up what they
# need first (a virtual environment in .venv with every Python tool, and Icarus Verilog from apt).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v iverilog >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq iverilog; }
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	@touch $@

demo: setup
	$(BIN)/neuromosaic demo

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 -ra --durations=15 tests

bench: setup
	$(BIN)/neuromosaic bench lif

clean:
	rm -rf build
