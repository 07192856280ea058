# edgeseg — two commands for a fresh machine: `make demo` and `make test`.
# Each creates/updates its own virtualenv (.venv) and installs what it needs.
# `make test` also builds .venv-light: `pip install .` with no extras (no TensorFlow), which
# tests/test_light_install.py runs the agent and the CLI in.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgeseg-installed
# Debian packages the tests and the demo use (checked with dpkg, installed with apt when root).
SYSTEM_PACKAGES ?= mosquitto chromium systemd openssl shellcheck
DEMO_DIR ?= build/demo
LIGHT_VENV ?= .venv-light
LIGHT_STAMP := $(LIGHT_VENV)/.edgeseg-installed
LIGHT_SOURCES := $(shell find edgeseg exporters -name '*.py' -o -name '*.json' -o -name '*.html')

.PHONY: demo test lint pytest system-deps bench clean light-venv

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "edgeseg: installing Python packages into $(VENV) (first time: a few minutes)…"
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

# An install step, not a test step: nothing downloads at test time. Reinstalled when the
# sources change, so the light venv always holds this checkout.
$(LIGHT_STAMP): pyproject.toml $(LIGHT_SOURCES)
	@test -x $(LIGHT_VENV)/bin/python || $(PYTHON) -m venv $(LIGHT_VENV)
	@echo "edgeseg: installing the light package (no TensorFlow) into $(LIGHT_VENV)…"
	@$(LIGHT_VENV)/bin/python -m pip install --quiet --upgrade pip
	@$(LIGHT_VENV)/bin/python -m pip install --quiet .
	@touch $@

light-venv: $(LIGHT_STAMP)

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "edgeseg: installing Debian packages:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "edgeseg: missing Debian packages:$$missing"; \
	    echo "  install them with: sudo apt-get install -y$$missing"; \
	  fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .

pytest: $(STAMP) $(LIGHT_STAMP) system-deps
	$(BIN)/python -m pytest

test: lint pytest

demo: $(STAMP) system-deps
	$(BIN)/edgeseg demo --workdir $(DEMO_DIR)

bench: $(STAMP) $(LIGHT_STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf build .pytest_cache .ruff_cache $(LIGHT_VENV)
