# handgrad: `make demo` and `make test` each build .venv from nothing when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: all demo test lint typecheck venv clean

all: test

# pip with the constraints file: torch==2.13.0 is the CPU build on these machines' disks.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/handgrad lab
	$(BIN)/handgrad train --data digits --hidden 128 --dropout 0.2 --optimizer adamw --lr 3e-3 \
		--weight-decay 0.01 --schedule cosine --epochs 60 --out runs/digits

LINTED := src tests $(wildcard benchmarks examples)

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
