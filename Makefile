# edgeseg — two commands for a fresh machine: `make demo` and `make test`.
# Each creates/updates its own virtualenv (.venv) and installs what it needs.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgeseg-installed
# Debian packages the tests and the demo use (checked with dpkg, installed with apt when root).
SYSTEM_PACKAGES ?= mosquitto chromium systemd openssl shellcheck
DEMO_DIR ?= build/demo
# The floor leg: the lowest TensorFlow edgeseg declares (pins in .ci/constraints-floor.txt,
# protobuf 4.25 with them) in its own virtualenv, running the tests of every module that
# calls TensorFlow or protobuf: by directory, so tests added there are picked up.
FLOOR_VENV ?= .venv-floor
FLOOR_BIN := $(FLOOR_VENV)/bin
FLOOR_STAMP := $(FLOOR_VENV)/.edgeseg-installed
FLOOR_CONSTRAINTS := .ci/constraints-floor.txt
FLOOR_TESTS ?= tests/serving tests/exporters

.PHONY: demo test test-floor lint pytest system-deps bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "edgeseg: installing Python packages into $(VENV) (first time: a few minutes)…"
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

$(FLOOR_STAMP): pyproject.toml $(FLOOR_CONSTRAINTS)
	@test -x $(FLOOR_BIN)/python || $(PYTHON) -m venv $(FLOOR_VENV)
	@echo "edgeseg: installing the floor TensorFlow into $(FLOOR_VENV) (first time: a few minutes)…"
	@$(FLOOR_BIN)/python -m pip install --quiet --upgrade pip
	@$(FLOOR_BIN)/python -m pip install --quiet --constraint $(FLOOR_CONSTRAINTS) -e '.[dev]'
	@touch $@

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

pytest: $(STAMP) system-deps
	$(BIN)/python -m pytest

test: lint pytest

test-floor: $(FLOOR_STAMP) system-deps
	@$(FLOOR_BIN)/python -c 'import google.protobuf as p, tensorflow as t; \
	  print("edgeseg: floor leg: tensorflow", t.__version__, "protobuf", p.__version__)' 2>/dev/null
	$(FLOOR_BIN)/python -m pytest $(FLOOR_TESTS)

demo: $(STAMP) system-deps
	$(BIN)/edgeseg demo --workdir $(DEMO_DIR)

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf build .pytest_cache .ruff_cache
