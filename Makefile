# The two commands: `make run` (the client area at http://127.0.0.1:8000) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test venv venv-dev lint messages browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

venv: $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	$(MAKE) messages

# The translations (locale/*/LC_MESSAGES/django.po) compiled for Django; needs gettext's msgfmt.
messages:
	@command -v msgfmt >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gettext; \
	  else echo "Compiling the translations needs gettext: sudo apt-get install gettext"; exit 1; fi; }
	DEBUG=1 $(BIN)/python manage.py compilemessages --ignore=.venv -v0

venv-dev: $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	$(MAKE) messages

# One process tree: web, sandbox simulators, background tasks (in-process, or Celery worker + beat when
# REDIS_URL is set) and the Open API gateway. `manage.py run` migrates and seeds first; Ctrl-C stops it all.
run: venv
	DEBUG=$${DEBUG:-1} SANDBOX=$${SANDBOX:-1} $(BIN)/python manage.py run $(RUN_ARGS)

# The suite runs on PostgreSQL: DATABASE_URL when set, else the local `test` database.
test: venv-dev browser
	DEBUG=1 DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test} $(BIN)/pytest $(PYTEST_ARGS)

lint: venv-dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && DEBUG=1 $(BIN)/mypy .

# The browser journeys drive headless Chromium (the Debian package): install it, or say how.
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core; \
	  else echo "The browser tests need Chromium: sudo apt-get install chromium fonts-dejavu-core"; exit 1; fi; }
