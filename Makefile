# mjweb: `make run` starts the studio, `make test` runs the whole suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test soak bench install lint format ci clean lock messages

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11-3.13 is needed ($(PYTHON) not found; set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

# `make run PORT=8080` (and HOST=0.0.0.0 to listen on every interface): SITE_URL, where the
# provider's webhooks come back, follows unless it is set.
HOST ?= 127.0.0.1
PORT ?= 8000
run: $(STAMP)
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py migrate --no-input
	DEBUG=$${DEBUG:-1} SITE_URL=$${SITE_URL:-http://127.0.0.1:$(PORT)} \
		$(BIN)/python manage.py runall --addrport $(HOST):$(PORT)

# MJWEB_ENV_FILE= : the suite never reads a local .env.
test: $(STAMP)
	MJWEB_ENV_FILE= SECRET_KEY=$${SECRET_KEY:-test-only-not-secret} $(BIN)/python -m pytest $(PYTEST_ARGS)

# The seeded lifecycle simulation over many seeds (tests/gallery/simulation.py); prints the
# worst case seen and, for a failing seed, the line that reruns it.
SEEDS ?= 10000
soak: $(STAMP)
	MJWEB_ENV_FILE= SECRET_KEY=$${SECRET_KEY:-test-only-not-secret} SIM_SEEDS=$(SEEDS) $(BIN)/python -m pytest -q -s tests/gallery/test_simulation.py

# Every benchmark in one run (bench/report.py); set DATABASE_URL for PostgreSQL.
bench: $(STAMP)
	$(BIN)/python bench/report.py $(BENCH_ARGS)

# The Simplified Chinese catalogue: the strings marked in the code and templates gathered into
# locale/zh_Hans/LC_MESSAGES/django.po (translations kept, new ones left empty for a
# translator), then compiled to the django.mo that is committed (needs GNU gettext:
# apt-get install gettext). tests/mjweb/test_i18n.py fails on an untranslated or fuzzy entry
# and on a .mo that is not what the .po compiles to.
MESSAGES_ENV := MJWEB_ENV_FILE= DEBUG=1 SECRET_KEY=$${SECRET_KEY:-messages-only-not-secret}
messages: $(STAMP)
	$(MESSAGES_ENV) $(BIN)/python manage.py makemessages -l zh_Hans --no-obsolete \
		--ignore=.venv --ignore=simulator --ignore=tests --ignore=bench --ignore=data \
		--ignore=staticfiles --ignore=test-artifacts --ignore=mjweb.egg-info
	$(MESSAGES_ENV) $(BIN)/python manage.py compilemessages -l zh_Hans --ignore=.venv

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

ci:
	bash .ci/run

# requirements.lock: every runtime dependency and the s3 extra (not dev), each pinned with its
# hashes, for Python 3.11 on Linux x86_64: what the Dockerfile installs (--require-hashes).
# setuptools, the build backend, is in it too, so the image installs the project itself
# without fetching anything unpinned. Run it after changing pyproject.toml's dependencies;
# it keeps the pins it can, `make lock UV_ARGS=--upgrade` takes the newest allowed.
lock: | $(BIN)/python
	$(BIN)/python -m pip install --quiet "uv>=0.9,<1"
	printf 'setuptools>=70\n' | $(BIN)/uv pip compile pyproject.toml - --extra s3 \
		--generate-hashes --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
		--custom-compile-command "make lock" --output-file requirements.lock $(UV_ARGS)

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
