# Qorgan: `make run` sets everything up and serves the console with demo users and alerts;
# `make test` runs lint and the whole test suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench bench-ingest bench-inbox bench-incidents bench-collect messages requirements clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The console on its embedded defaults: SQLite under var/, a demo organisation and users
# (passwords printed once), alerts from a hunt over the example logs, served on 127.0.0.1:8000
# (another port: make run PORT=8080), with live monitoring: the collector listens on loopback
# (syslog 5514 UDP/TCP, RELP 2514) and the example logs are replayed into it as they happen.
PORT ?= 8000
run: $(STAMP)
	$(BIN)/qorgan demo
	QORGAN_DEMO_REPLAY=true QORGAN_PUBLIC_URL=http://127.0.0.1:$(PORT) \
		$(BIN)/qorgan serve --host 127.0.0.1 --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

test: lint
	$(BIN)/pytest

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

bench: $(STAMP)
	$(BIN)/python bench/hunt.py

bench-ingest: $(STAMP)
	$(BIN)/python bench/ingest.py

# The inbox with a million alerts on SQLite and PostgreSQL (loads them first: about an hour).
bench-inbox: $(STAMP)
	$(BIN)/python bench/inbox.py

# The incident pages, dashboard and reports with 200,000 incidents and 2,000,000 alerts in
# PostgreSQL (loads them first with COPY: about half an hour on two cores).
bench-incidents: $(STAMP)
	$(BIN)/python bench/incidents.py

# Live collection: syslog over TCP into the event log, through `qorgan collect` to stored
# alerts, and an alert's latency, each beside rsyslogd (Debian's rsyslog package) on the same
# stream (a few minutes on a quiet machine).
bench-collect: $(STAMP)
	$(BIN)/python bench/collect.py

# Re-extract the interface's messages (the web package's code and templates, and the titles of
# the rule pack under src/qorgan/detection/rules; see babel.cfg) into the template and merge them
# into the kk, ru and en catalogues (a new language's catalogue is created); then translate what
# is new or empty (tests/web/test_i18n.py lists it).
MESSAGES := src/qorgan/web/translations
messages: $(STAMP)
	$(BIN)/pybabel extract -F src/qorgan/web/babel.cfg --no-wrap --sort-by-file \
		--project Qorgan --copyright-holder "the Qorgan authors" \
		--version "$$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)" \
		-o $(MESSAGES)/messages.pot src/qorgan
	for lang in kk ru en; do \
		if [ -f $(MESSAGES)/$$lang/LC_MESSAGES/messages.po ]; then \
			$(BIN)/pybabel update --no-wrap --no-fuzzy-matching --ignore-obsolete \
				-i $(MESSAGES)/messages.pot -d $(MESSAGES) -l $$lang || exit 1; \
		else \
			$(BIN)/pybabel init --no-wrap -i $(MESSAGES)/messages.pot -d $(MESSAGES) \
				-l $$lang || exit 1; \
		fi; \
	done

# Pinned versions with hashes for production installs (docs/console.md); rerun after a change of
# dependencies in pyproject.toml. Needs the package index.
requirements: $(STAMP)
	$(BIN)/pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --generate-hashes --strip-extras --no-emit-index-url \
		--no-emit-find-links --pip-args "--isolated" --output-file requirements/production.txt \
		pyproject.toml

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
