# Two entry points for a fresh clone: `make run` and `make test`. Needs Python >= 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench setup clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dask]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)  ## a week of data into data/ with default settings
	$(BIN)/fastgen generate --data data --days 7

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks --benchmark-only --benchmark-json=benchmarks/results.json

clean:
	rm -rf $(VENV) data/*/ data/fastgen.json
