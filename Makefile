# Two commands on a fresh machine with only python3 and make:
#   make demo   - set up .venv, install, run `forecast demo`
#   make test   - set up .venv, install (plus the browser the report test needs), run the tests
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# The tests also need the optional Spark extra: its engine test must not skip in CI.
TEST_STAMP := $(VENV)/.installed-test-stamp

.PHONY: demo test lint bench system-deps clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,spark]'
	@touch $(TEST_STAMP)

demo: $(STAMP)
	$(BIN)/forecast demo

# System packages the tests use (headless Chromium for the report's browser test, Java for
# the Spark engine's test, the PostgreSQL server that the `--data URL` tests start themselves).
system-deps:
	@bash scripts/install-system-deps.sh

# One test process per CPU (2 in CI); a test file runs whole in one process, so its module
# fixtures are built once. `pytest` alone still runs everything in one process.
test: $(TEST_STAMP) system-deps lint
	$(BIN)/python -m pytest -q -n auto --dist loadfile

# Style and structure: ruff's rules and formatting, and the package's layers (import-linter
# contracts in pyproject.toml: no arrow points up, the report reads outputs only, no cycle).
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python benchmarks/features.py
	$(BIN)/python benchmarks/train.py
	$(BIN)/python benchmarks/accuracy.py
	$(BIN)/python benchmarks/speed.py
	$(BIN)/python benchmarks/score.py
	$(BIN)/python benchmarks/score_report.py
	$(BIN)/python benchmarks/scale.py
	$(BIN)/python benchmarks/serve.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache
