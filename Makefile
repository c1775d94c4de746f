# The two commands: `make run` (the client area at http://127.0.0.1:8000) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test venv venv-dev lint

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

venv: $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt

venv-dev: $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt

# One process tree: web, sandbox simulators, background tasks (in-process, or Celery worker + beat when
# REDIS_URL is set) and the Open API gateway. `manage.py run` migrates and seeds first; Ctrl-C stops it all.
run: venv
	DEBUG=$${DEBUG:-1} SANDBOX=$${SANDBOX:-1} $(BIN)/python manage.py run $(RUN_ARGS)

# The suite runs on PostgreSQL: DATABASE_URL when set, else the local `test` database.
test: venv-dev
	DEBUG=1 DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test} $(BIN)/pytest $(PYTEST_ARGS)

lint: venv-dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && DEBUG=1 $(BIN)/mypy .
