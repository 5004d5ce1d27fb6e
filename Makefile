# The two commands of the README:  `make demo`  and  `make test`.
# Everything they need is installed from here: a venv with the packages uv.lock pins,
# MinIO built from source with `go install`, Kafka resolved from Maven Central.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
UV_VERSION := 0.13.9
PACKAGES := foundation edgecore components pipelines serving edge_sync testkit

.PHONY: setup demo test lint browser containers images notebooks stack-down

# The venv holds the versions uv.lock pins (`uv lock` after changing pyproject.toml's
# dependencies); --inexact keeps the uv that installs it.
$(STAMP): pyproject.toml uv.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "edgecore needs Python 3.11: set PYTHON=python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q 'uv==$(UV_VERSION)'
	$(BIN)/uv sync --frozen --inexact --all-extras --compile-bytecode --python $(BIN)/python
	touch $(STAMP)

# Bytecode is written at install time, not left to the first import: where
# PYTHONDONTWRITEBYTECODE is set (it is on these machines) every process would otherwise
# compile everything it imports from source, each time (TensorFlow: 20 s instead of 7 s).
setup: $(STAMP)
	$(BIN)/python -m compileall -q $(PACKAGES) tests bench
	$(BIN)/edgecore stack install

demo: setup
	$(BIN)/edgecore stack up
	$(BIN)/edgecore stack smoke
	$(BIN)/edgecore demo

lint: $(STAMP)
	$(BIN)/uv lock --check
	$(BIN)/ruff check .
	$(BIN)/mypy $(PACKAGES)
	$(BIN)/lint-imports

# The page tests drive a real browser: Debian's Chromium and its ChromeDriver (root or sudo).
browser:
	@test -x /usr/bin/chromedriver || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y --no-install-recommends chromium chromium-driver \
	  || { $$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends chromium chromium-driver; }; }

# Containers without a Docker engine: Debian's podman and runc, and mmdebstrap for the
# images' base where no container registry is reachable, and busybox-static for the modelcar
# base (root or sudo).
containers:
	@test -x /usr/bin/podman -a -x /usr/bin/mmdebstrap -a -x /usr/sbin/runc -a -x /bin/busybox || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y --no-install-recommends podman runc mmdebstrap busybox-static \
	  || { $$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends podman runc mmdebstrap busybox-static; }; }

# The training, serving and services images, built from uv.lock and pushed to the stack's
# registry (edgecore images pin then points overlays and pipelines at their digests).
images: setup containers
	$(BIN)/edgecore stack up
	$(BIN)/edgecore images build

test: setup lint browser containers
	$(BIN)/pytest

# Run the notebooks against the local stack and store them with their outputs (plots and all).
notebooks: setup
	EDGECORE_SAVE_NOTEBOOKS=1 $(BIN)/pytest -q tests/test_notebooks.py

stack-down:
	$(BIN)/edgecore stack down
