# smsgw developer commands. `make run` and `make test` work on a fresh machine with Python 3.11+,
# make and the package registries (npm is used for one interop peer when present).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@if command -v npm >/dev/null 2>&1; then \
		npm install --silent --no-audit --no-fund --prefix tests/interop >/dev/null \
		|| echo "warning: npm install failed; the npm interop tests will be skipped"; \
	else echo "note: npm not found; the npm interop tests will be skipped"; fi
	touch $(STAMP)

install: $(STAMP)

run: install
	@bash scripts/dev-run.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest -q

test: lint typecheck unit

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) tests/interop/node_modules .pytest_cache .mypy_cache .ruff_cache
