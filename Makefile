# The two commands: `make run` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck pytest bench clean schema
JS     := tests/js
AXE    := $(JS)/node_modules/.package-lock.json

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

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

pytest: $(STAMP) $(AXE)
	$(BIN)/pytest $(PYTEST_ARGS)

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
