# Every target sets itself up: a fresh machine needs only python3 (3.10+) and pip.
# `make demo` installs pipec with its connectors; `make test` adds the test tools and Apache Beam
# (about 460 MB), so the demo does not wait for them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BASE := $(VENV)/.installed-base
FULL := $(VENV)/.installed-test

.PHONY: demo test lint bench bench-quick clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(BASE): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[connectors]'
	touch $(BASE)

$(FULL): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BASE) $(FULL)

# The quickstart reads and writes paths relative to its own folder (examples/quickstart/out/).
demo: $(BASE)
	cd examples/quickstart && ../../$(BIN)/pipec check quickstart.pipe && \
		../../$(BIN)/pipec run quickstart.pipe --report out/report.json

test: $(FULL)
	$(BIN)/python -m pytest -q

lint: $(FULL)
	$(BIN)/ruff check pipec tests bench examples
	$(BIN)/mypy

bench: $(FULL)
	$(BIN)/python bench/run.py

bench-quick: $(FULL)
	$(BIN)/python bench/run.py --quick

clean:
	rm -rf $(VENV) build *.egg-info
