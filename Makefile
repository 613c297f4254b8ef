# dockd: everything a fresh Debian machine needs, from two targets.
#   make demo   set up, then ingest a simulated recorder on the embedded defaults
#   make test   set up (system packages too when root), then lint, type-check and test

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# System packages the tests use for real components: udevd, loop-device filesystems
# (FAT32 and exFAT, through FUSE since many kernels lack vfat/exfat), b3sum, PostgreSQL.
APT_PACKAGES := udev dosfstools exfatprogs fusefat exfat-fuse fuse3 mtools b3sum \
	postgresql postgresql-contrib util-linux

.PHONY: demo test check system-deps venv clean bench

$(BIN)/dockd: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,postgres]'
	touch $@

venv: $(BIN)/dockd

system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
		if [ -n "$$missing" ]; then \
			echo "installing system packages: $$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		fi; \
	else \
		echo "not root (or no apt-get): system packages not installed;" \
		     "tests that need udevd, loop devices or PostgreSQL will be skipped and say why"; \
	fi

demo: venv
	@bash scripts/demo.sh

check: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: system-deps venv check
	$(BIN)/pytest

bench: venv
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache src/*.egg-info
