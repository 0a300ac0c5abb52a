# Two entry points for a fresh clone (Python >= 3.11 and make):
#   make demo   - set up .venv and run `xtok demo` on the embedded default corpus
#   make test   - set up .venv and run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# The CPU build of torch; override e.g. TORCH_SPEC="torch==2.13.0 --index-url ..." elsewhere.
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -e '.[test]'
	touch $@

demo: setup
	$(BIN)/xtok demo

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/bench_stream.py

clean:
	rm -rf $(VENV) demo-out .pytest_cache
