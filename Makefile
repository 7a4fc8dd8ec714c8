# The two commands: `make run` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck pytest bench clean schema lock
JS     := tests/js
AXE    := $(JS)/node_modules/.package-lock.json

# Exactly the versions in the lock files (what CI tested, what the Dockerfile installs),
# then the project itself; `pip check` fails if pyproject.toml names a package the lock
# lacks (run `make lock`).
$(STAMP): pyproject.toml requirements.lock requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/pip check
	touch $(STAMP)

# Refresh the lock files from pyproject.toml: new dependencies are added and pinned,
# pinned ones stay as they are unless UPGRADE=1 (then everything moves to its newest).
COMPILE = $(BIN)/pip-compile --quiet --strip-extras --allow-unsafe --no-emit-index-url \
	--no-emit-find-links --no-emit-trusted-host $(if $(UPGRADE),--upgrade)
lock: $(STAMP)
	$(COMPILE) -o requirements.lock pyproject.toml
	$(COMPILE) --extra dev -o requirements-dev.lock pyproject.toml

# Embedded defaults: SQLite subscribers.db, outbox transport. The example issue's
# picture goes into the media folder the app serves (/media/), the issue is stored and
# a test copy written to outbox/, then the web app starts. On the first run a staff
# account ADMIN_EMAIL is created and its password printed once.
MEDIA_DIR = $${DIGESTMAIL_MEDIA_DIR:-media}
ADMIN_EMAIL ?= admin@example.org
run: $(STAMP)
	mkdir -p "$(MEDIA_DIR)" && cp examples/vol-4.1-hero.jpg "$(MEDIA_DIR)/"
	$(BIN)/digestmail init
	$(BIN)/digestmail staff add "$(ADMIN_EMAIL)" --generate-password --if-no-staff
	-$(BIN)/digestmail send "$$($(BIN)/digestmail issue add examples/vol-4.1.md --ready)" \
	    --test-to reader@example.org
	$(BIN)/digestmail serve

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# Two workers for most tests (2 cores); tests of real processes against the clock then
# run alone, so that a loaded core cannot make them miss a deadline.
pytest: $(STAMP) $(AXE)
	$(BIN)/pytest -n 2 -m "not serial" $(PYTEST_ARGS)
	$(BIN)/pytest -m serial $(PYTEST_ARGS)

# axe-core for the browser tests, at the exact version of tests/js/package-lock.json.
# Without npm the accessibility checks are skipped (and fail in CI, which installs it).
$(AXE): $(JS)/package.json $(JS)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	    npm ci --prefix $(JS) --ignore-scripts --no-audit --no-fund --loglevel=error; \
	else echo "npm not found: the axe-core accessibility checks will be skipped"; fi

bench: $(STAMP)
	$(BIN)/python bench/render.py
	$(BIN)/python bench/import.py
	$(BIN)/python bench/send.py
	$(BIN)/python -m bench.transports

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache test-artifacts $(JS)/node_modules

# Pre-release only: regenerate the baseline migration from the models.
schema: $(STAMP)
	rm -f src/digestmail/migrations/versions/0001_initial_schema.py /tmp/digestmail-schema.db
	PYTHONPATH=src $(BIN)/python -c "from alembic import command; from digestmail.migrate import alembic_config; command.revision(alembic_config('sqlite:////tmp/digestmail-schema.db'), message='initial schema', autogenerate=True, rev_id='0001')"
	$(BIN)/ruff format -q src/digestmail/migrations
	$(BIN)/ruff check -q --fix src/digestmail/migrations
	rm -f /tmp/digestmail-schema.db
