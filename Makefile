# paygate: `make run` starts the whole suite locally (no Docker), `make test` runs every test.
# Needs only Python 3.11+, make and a C compiler; uv is installed on first use.

SHELL := /bin/bash
.DEFAULT_GOAL := help
.PHONY: help run test lint uv sync tools venv events status stop

# uv on PATH, else the copy `pip install --user uv` put next to python3
UV = $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PYTEST_ARGS ?=

help:
	@echo "make run          start PostgreSQL, Redis, Kafka (Tansu), localstripe, an SMTP sink and every service"
	@echo "make run FRESH=1  the same from a clean .paygate/ state directory"
	@echo "make run TLS=1    the same with HTTPS on the gateway (a local CA in .paygate/tls/)"
	@echo "make run REPLICAS=payment=2  two payment-service processes, the gateway balancing over them"
	@echo "make events TOPIC=order.create   print a topic's messages (FOLLOW=1 keeps following)"
	@echo "make status       the running stack's URLs and state (.paygate/stack.json)"
	@echo "make stop         stop the stack started by make run from another terminal"
	@echo "make test         run the whole test suite against real infrastructure, in two parallel workers"
	@echo "make test TESTS=order-service/tests   one area (any pytest paths or node ids)"
	@echo "make test WORKERS=1 PYTEST_ARGS='-x -s'   one plain pytest process, for debugging"
	@echo "make test WORKERS=3   more workers (each starts its own PostgreSQL, broker, services)"
	@echo "make lint         ruff and mypy"

uv:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || { \
		echo "installing uv with pip"; \
		python3 -m pip install --user --quiet uv 2>/dev/null \
		|| python3 -m pip install --user --quiet --break-system-packages uv \
		|| python3 -m pip install --quiet uv; }

sync: uv
	$(UV) sync --all-packages --frozen

# Debian tools some tests drive: Chromium for the page tests (Playwright never downloads a
# browser here) and promtool (package prometheus) for the alert rules. Installed when missing.
tools:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing Debian packages:$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		else \
			echo "the tests need:$$missing (sudo apt-get install$$missing)" >&2; exit 1; \
		fi; \
	fi

run: sync
	$(UV) run --frozen --no-sync python -m paygate_devstack run $(if $(filter-out 0,$(FRESH)),--fresh) $(if $(filter-out 0,$(TLS)),--tls) $(if $(REPLICAS),--replicas "$(REPLICAS)")

# Through make (not `uv run`), so they work however uv was installed (pip --user puts it off
# PATH) and from inside an activated environment: once `make sync` made .venv, they use its
# python directly and need no uv at all.
VENV_PY = .venv/bin/python
venv:
	@test -x $(VENV_PY) || $(MAKE) --no-print-directory sync

events: venv
	@test -n "$(TOPIC)" || { echo "usage: make events TOPIC=order.create [FOLLOW=1]" >&2; exit 2; }
	@$(VENV_PY) -m paygate_devstack events $(TOPIC) $(if $(filter-out 0,$(FOLLOW)),--follow)

status: venv
	@$(VENV_PY) -m paygate_devstack status

stop: venv
	@$(VENV_PY) -m paygate_devstack stop

# The suite runs in WORKERS pytest-xdist processes (CI has two cores), each a session of its own
# with its own PostgreSQL, Redis, broker, Stripe, SMTP, temp dir and port range; the root
# conftest.py makes each test module one work unit (the e2e modules on the shared suite one
# unit together) and hands out the longest first. WORKERS=1 runs one plain pytest process.
# TESTS narrows it to paths (one area: TESTS=order-service/tests). pytest exits 5 when it
# collected no test: that is a failure here (every package has tests).
WORKERS ?= 2
TESTS ?=
XDIST_ARGS = $(if $(filter-out 0 1,$(WORKERS)),-n $(WORKERS) --dist loadscope --no-loadscope-reorder)
test: sync tools
	@rc=0; $(UV) run --frozen --no-sync pytest $(XDIST_ARGS) --durations=30 $(TESTS) $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests; failing on purpose" >&2; fi; \
	exit $$rc

lint: sync
	$(UV) run --frozen --no-sync ruff check .
	$(UV) run --frozen --no-sync ruff format --check .
	$(UV) run --frozen --no-sync mypy common/src devstack/src $(wildcard gateway/src) $(wildcard *-service/src)
