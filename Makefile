# edgeseg — two commands for a fresh machine: `make demo` and `make test`.
# Each creates/updates its own virtualenv (.venv) and installs what it needs.
# `make test` also builds .venv-light: `pip install .` with no extras (no TensorFlow), which
# tests/test_light_install.py runs the agent and the CLI in.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgeseg-installed
# Debian packages the tests and the demo use (checked with dpkg, installed with apt when root).
# The GStreamer ones: PyGObject (python3-gi) and GStreamer for pipeline sources and the test
# RTSP server (x264enc is in plugins-ugly), ffmpeg for the test MJPEG-over-HTTP camera.
SYSTEM_PACKAGES ?= mosquitto chromium systemd openssl shellcheck strace ffmpeg python3-gi \
	gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-gst-rtsp-server-1.0 \
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly
# Debian's PyGObject, seen from the virtualenv (its python may not be Debian's).
SYSTEM_GI ?= /usr/lib/python3/dist-packages/gi
DEMO_DIR ?= build/demo
LIGHT_VENV ?= .venv-light
LIGHT_STAMP := $(LIGHT_VENV)/.edgeseg-installed
LIGHT_SOURCES := $(shell find edgeseg exporters -name '*.py' -o -name '*.json' -o -name '*.html')


# The floor leg: the lowest TensorFlow edgeseg declares (pins in .ci/constraints-floor.txt,
# protobuf 4.25 with them) in its own virtualenv, running the tests of every module that
# calls TensorFlow or protobuf: by directory, so tests added there are picked up.
FLOOR_VENV ?= .venv-floor
FLOOR_BIN := $(FLOOR_VENV)/bin
FLOOR_STAMP := $(FLOOR_VENV)/.edgeseg-installed
FLOOR_CONSTRAINTS := .ci/constraints-floor.txt
FLOOR_TESTS ?= tests/serving tests/exporters

.PHONY: demo test test-floor lint pytest system-deps venv-gi bench clean light-venv

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
	@rm -rf build/lib build/bdist.*  # setuptools reuses these: a deleted module would ship
	@$(LIGHT_VENV)/bin/python -m pip install --quiet .
	@touch $@

light-venv: $(LIGHT_STAMP)

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

# The pip OpenCV wheel has no GStreamer: pipeline sources are read through PyGObject.
# Link Debian's gi package into the virtualenv when the venv cannot import it yet; its C
# extension loads when the venv's python has Debian's minor version (both 3.11 on bookworm).
venv-gi: $(STAMP) system-deps
	@$(BIN)/python -c 'import gi' 2>/dev/null || { \
	  site=$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	  if [ -d $(SYSTEM_GI) ]; then ln -sfn $(SYSTEM_GI) "$$site/gi"; fi; \
	  $(BIN)/python -c 'import gi; gi.require_version("Gst", "1.0")' 2>/dev/null || { \
	    rm -f "$$site/gi"; \
	    echo "edgeseg: this venv's python cannot load Debian's PyGObject ($(SYSTEM_GI));"; \
	    echo "  GStreamer pipeline sources need: apt-get install libgirepository1.0-dev"; \
	    echo "  libcairo2-dev pkg-config, then $(BIN)/pip install PyGObject"; }; }

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

pytest: $(STAMP) $(LIGHT_STAMP) system-deps venv-gi
	$(BIN)/python -m pytest

test: lint pytest

test-floor: $(FLOOR_STAMP) system-deps
	@$(FLOOR_BIN)/python -c 'import google.protobuf as p, tensorflow as t; \
	  print("edgeseg: floor leg: tensorflow", t.__version__, "protobuf", p.__version__)' 2>/dev/null
	$(FLOOR_BIN)/python -m pytest $(FLOOR_TESTS)

demo: $(STAMP) system-deps venv-gi
	$(BIN)/edgeseg demo --workdir $(DEMO_DIR)

bench: $(STAMP) $(LIGHT_STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf build .pytest_cache .ruff_cache $(LIGHT_VENV)
