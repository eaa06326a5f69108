# Two entry points (README "Quick start"): `make reproduce` and `make test`.
# Each creates .venv on first use and installs a pinned CPU torch (an unpinned torch may pull a
# multi-GB CUDA build), then the package with its dev extras.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
TORCH  ?= torch==2.13.0
STAMP   = $(VENV)/.installed
OUT    ?= runs
SCALE  ?= quick
# Experiments whose paper scale finishes in ≤ 15 min on a 2-core CPU (README "Paper scale").
PAPER_CPU = parity,parity_variance,pwl,flat_activation,noise_decomposition,vanishing,shattered_1d,activations

.PHONY: setup reproduce reproduce-paper-cpu test test-all lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

reproduce: $(STAMP)
	$(BIN)/gradprobe reproduce --scale $(SCALE) --out $(OUT)

reproduce-paper-cpu: $(STAMP)
	$(BIN)/gradprobe reproduce --scale paper --only $(PAPER_CPU) --out $(OUT)-paper

# pytest exits 5 when it collects no test; that is not a failure of the suite.
test: $(STAMP)
	$(BIN)/python -m pytest -q; rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m "slow or not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
