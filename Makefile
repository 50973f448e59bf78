# Two entry points for a fresh clone: `make run` and `make test`. Needs Python >= 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: run test bench setup clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dask,postgres]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)  ## a week of data into data/ with default settings
	$(BIN)/fastgen generate --data data --days 7

test: $(STAMP)
	$(BIN)/python -m pytest

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,dask,bench,report]'
	touch $(BENCH_STAMP)

# Every benchmark as users type it; exits 0 on a slower machine, the targets table says where
# it stands. Then the report: Markdown in benchmarks/results.md, chart benchmarks/results.png.
bench: $(BENCH_STAMP)
	$(BIN)/python -m pytest --benchmark-only --benchmark-json=benchmarks/results.json
	$(BIN)/python -m benchmarks.report benchmarks/results.json --png benchmarks/results.png \
		> benchmarks/results.md
	cat benchmarks/results.md

clean:
	rm -rf $(VENV) data/*/ data/fastgen.json
