# Antechamber. `make run` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

# One venv (.venv) for every target, filled by uv from uv.lock (every package pinned, with
# hashes). uv itself is the version uv.lock pins, installed into the venv by pip with its
# hashes; uv never downloads a Python: the venv is the machine's $(PYTHON).
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
# .pyc files written at install, as pip did: each Django process then starts in about 1 s
# instead of 4 (and PYTHONDONTWRITEBYTECODE=1 machines never write them later).
export UV_COMPILE_BYTECODE ?= 1

.PHONY: run test lint lock lock-check format install clean worker beat screenshots bench scaleout

# The venv without pip (faster); the machine's pip installs uv into it, or, where python3
# has no pip, the venv's own from ensurepip.
UV_PIP_INSTALL := install --quiet --no-deps --only-binary :all: --require-hashes -r $(VENV)/uv-requirement.txt
$(UV):
	test -x $(BIN)/python || $(PYTHON) -m venv --without-pip $(VENV)
	$(BIN)/python tools/uv_requirement.py uv.lock > $(VENV)/uv-requirement.txt
	$(PYTHON) -m pip --python $(BIN)/python $(UV_PIP_INSTALL) 2>/dev/null \
		|| { $(BIN)/python -m ensurepip --default-pip >/dev/null && $(BIN)/python -m pip $(UV_PIP_INSTALL); }

# --locked: installs exactly uv.lock, and fails (run `make lock`) if pyproject.toml has
# changed since the lock was made. Re-runs only when either file changes.
$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --extra dev || { echo "uv.lock does not match pyproject.toml: run make lock, commit uv.lock"; exit 1; }
	touch $(STAMP)

install: $(STAMP)

# The app on SQLite under var/, with tasks run in-process and mail to the console. Links in
# mail point at this server (SITE_URL from HOST and PORT) unless SITE_URL is already set.
RUN_ENV = DJANGO_DEBUG=$${DJANGO_DEBUG:-1} SITE_URL=$${SITE_URL:-http://$(HOST):$(PORT)}
run: $(STAMP)
	mkdir -p var
	$(RUN_ENV) $(BIN)/python manage.py migrate --noinput
	$(RUN_ENV) $(BIN)/python manage.py bootstrap_admin --url http://$(HOST):$(PORT)
	$(RUN_ENV) $(BIN)/python manage.py runserver $(HOST):$(PORT)

# Chromium for the browser tests (Debian's package; Playwright's own download does not work here).
/usr/bin/chromium:
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "Install Chromium (apt-get install chromium) to run the browser tests; they are skipped without it."; fi

# Janus and its browser library for the media tests (Debian's packages), when root.
JANUS_FILES := /usr/bin/janus /usr/share/javascript/janus-gateway/janus.js /usr/share/javascript/webrtc-adapter/adapter.js
$(JANUS_FILES):
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq janus libjs-janus-gateway libjs-webrtc-adapter >/dev/null; \
	else echo "Install janus libjs-janus-gateway libjs-webrtc-adapter to run the media tests; they are skipped without it."; fi

# khal, a calendar that imports the invitation mails in tests/test_calendar_clients.py (Debian's package), when root.
/usr/bin/khal:
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq khal >/dev/null; \
	else echo "Install khal (apt-get install khal) to run the calendar client tests; they are skipped without it."; fi

# axe-core for the accessibility gate in the browser tests, exactly as package-lock.json
# pins it (npm ci), into node_modules/. Node and npm are Debian's packages, when root.
AXE := node_modules/axe-core/axe.min.js
$(AXE): package.json package-lock.json
	@command -v npm >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; } \
		|| echo "Install nodejs and npm (apt-get install nodejs npm) to run the accessibility tests; they are skipped without them."
	@if command -v npm >/dev/null; then npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && touch $(AXE); fi

test: $(STAMP) /usr/bin/chromium $(JANUS_FILES) /usr/bin/khal $(AXE) /usr/sbin/nginx
	mkdir -p var
	$(BIN)/pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$status

lint: lock-check $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy meetings scheduler

# Re-resolves uv.lock after a change to pyproject.toml; `make lock UPGRADE=name` also moves
# one unpinned (transitive) package to its newest release. Commit uv.lock with the change.
lock: | $(UV)
	$(UV) lock $(if $(UPGRADE),--upgrade-package $(UPGRADE))

# Fails when uv.lock no longer matches pyproject.toml (CI runs it first).
lock-check: | $(UV)
	$(UV) lock --check || { echo "uv.lock does not match pyproject.toml: run make lock, commit uv.lock"; exit 1; }

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

worker: $(STAMP)
	$(BIN)/celery -A scheduler worker --loglevel=INFO

beat: $(STAMP)
	$(BIN)/celery -A scheduler beat --loglevel=INFO --schedule var/celerybeat-schedule

# nginx (Debian's package), when root: in front of gunicorn in `make scaleout` and the benchmarks.
/usr/sbin/nginx:
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; \
	else echo "Install nginx (apt-get install nginx) for make scaleout, make bench and the nginx tests."; fi

# wrk, the load generator of the benchmarks (Debian's package), when root.
/usr/bin/wrk:
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; \
	else echo "Install wrk (apt-get install wrk) to run the benchmarks."; fi

# nginx (NGINX_PORT, default 8000) in front of two web servers (WEB1_PORT, WEB2_PORT), two
# workers and one beat (see Procfile); needs DATABASE_URL (PostgreSQL) and REDIS_URL, from
# .env or the environment.
scaleout: $(STAMP) /usr/sbin/nginx
	mkdir -p var
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python manage.py migrate --noinput
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python manage.py collectstatic --noinput --verbosity 0
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/honcho start -f Procfile

# Screenshots of the main pages into docs/screenshots/ (drives the browser test).
screenshots: $(STAMP) /usr/bin/chromium $(AXE)
	ANTECHAMBER_SCREENSHOT_DIR=docs/screenshots $(BIN)/pytest -q -m browser

# Benchmarks against the stack's own limits (docs/BENCHMARKS.md): real gunicorn, Celery,
# PostgreSQL (BENCH_DATABASE_URL, whose schema each script drops and re-creates) and a
# private redis-server on a free port. Never part of `make test`: timings are not tests.
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/antechamber_bench
BENCH_SCRIPTS := booking join_uniformity redemption_storm passcode_flood fanout
bench: $(STAMP) /usr/sbin/nginx /usr/bin/wrk
	@command -v redis-server >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; } \
		|| { echo "bench needs redis-server (apt-get install redis-server)"; exit 1; }
	mkdir -p var
	@psql "$(BENCH_DATABASE_URL)" -c "SELECT 1" >/dev/null 2>&1 \
		|| psql "$(dir $(BENCH_DATABASE_URL))postgres" -c "CREATE DATABASE $(notdir $(BENCH_DATABASE_URL))"
	set -e; for script in $(BENCH_SCRIPTS); do \
		echo "=== benchmarks/$$script.py ==="; \
		env -u REDIS_URL BENCH_DATABASE_URL=$(BENCH_DATABASE_URL) $(BIN)/python benchmarks/$$script.py; \
	done

clean:
	rm -rf $(VENV) var node_modules
