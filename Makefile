# mjweb: `make run` starts the studio, `make test` runs the whole suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test soak bench install lint format ci clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is needed ($(PYTHON) not found; set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py migrate --no-input
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py runall

test: $(STAMP)
	SECRET_KEY=$${SECRET_KEY:-test-only-not-secret} $(BIN)/python -m pytest $(PYTEST_ARGS)

# The seeded lifecycle simulation over many seeds (tests/gallery/simulation.py); prints the
# worst case seen and, for a failing seed, the line that reruns it.
SEEDS ?= 10000
soak: $(STAMP)
	SECRET_KEY=$${SECRET_KEY:-test-only-not-secret} SIM_SEEDS=$(SEEDS) $(BIN)/python -m pytest -q -s tests/gallery/test_simulation.py

# Every benchmark in one run (bench/report.py); set DATABASE_URL for PostgreSQL.
bench: $(STAMP)
	$(BIN)/python bench/report.py $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

ci:
	bash .ci/run

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
