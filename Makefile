# edgeseg — two commands for a fresh machine: `make demo` and `make test`.
# Each creates/updates its own virtualenv (.venv) and installs what it needs.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgeseg-installed
# Debian packages the tests and the demo use (checked with dpkg, installed with apt when root).
SYSTEM_PACKAGES ?= mosquitto chromium systemd openssl shellcheck strace
DEMO_DIR ?= build/demo

.PHONY: demo test lint pytest system-deps bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "edgeseg: installing Python packages into $(VENV) (first time: a few minutes)…"
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet -e '.[dev]'
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

demo: $(STAMP) system-deps
	$(BIN)/edgeseg demo --workdir $(DEMO_DIR)

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf build .pytest_cache .ruff_cache
