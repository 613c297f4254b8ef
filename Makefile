# dockd: everything a fresh Debian machine needs, from two targets.
#   make demo   set up, then ingest a simulated recorder on the embedded defaults
#   make test   set up (system packages too when root), then lint, type-check and test
#   make test-stress   the same suite while stress-ng loads the CPUs and the disk beside it

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# System packages the tests use for real components: udevd, loop-device filesystems
# (FAT32 and exFAT, through FUSE since many kernels lack vfat/exfat), b3sum, PostgreSQL;
# Chromium for the web view's browser tests, with CJK fonts so their screenshots show Chinese.
APT_PACKAGES := 7zip udev dosfstools exfatprogs fusefat exfat-fuse fuse3 mtools b3sum \
	postgresql postgresql-contrib util-linux stress-ng xorriso udftools sqlite3 systemd python3-venv slapd ldap-utils \
	chromium fonts-noto-cjk poppler-utils
# The load beside `make test-stress`: what shook races out of the dock tests (issue 9).
STRESS := stress-ng --cpu 2 --io 1 --quiet --timeout 4h

.PHONY: demo test test-stress check docs-check fuzz system-deps venv clean bench deb

$(BIN)/dockd: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,postgres]'
	touch $@

venv: $(BIN)/dockd

MACHINE_ID_FILE ?= /etc/machine-id

system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
		if [ -n "$$missing" ]; then \
			echo "installing system packages: $$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		fi; \
		if [ ! -s $(MACHINE_ID_FILE) ]; then \
			echo "giving this machine an id in $(MACHINE_ID_FILE) (as systemd does at first boot;" \
			     "dockd tells its own PostgreSQL processes by it)"; \
			tr -d '-' </proc/sys/kernel/random/uuid >$(MACHINE_ID_FILE); \
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
	$(BIN)/lint-imports --no-cache

test: system-deps venv check
	$(BIN)/pytest

# The suite exactly as `make test` runs it (check, then pytest), with $(STRESS) running
# from before it starts until it ends, however it ends; the exit code is the suite's.
# (The --timeout only keeps a stress-ng from outliving a make killed with SIGKILL.)
test-stress: system-deps venv
	@command -v stress-ng >/dev/null || { echo "stress-ng not found: apt install stress-ng" >&2; exit 1; }
	@setsid $(STRESS) & stress=$$!; \
	trap 'kill -TERM -- -$$stress 2>/dev/null; wait $$stress 2>/dev/null' EXIT; \
	trap 'exit 130' INT TERM; \
	echo "stress-ng running beside the suite (pid $$stress): $(STRESS)"; \
	$(MAKE) --no-print-directory check && $(BIN)/pytest; \
	exit $$?

# Every dockd command the README and docs/ show, run against a demo station
# (tests/integration/test_docs.py runs the same check inside `make test`).
docs-check: venv
	$(BIN)/python scripts/docs_check.py

# Fuzz the ID-file parser, file-name parsing with the shipped rules, and the config
# loader (atheris; not part of `make test`): FUZZ_SECONDS each, one after another.
FUZZ_SECONDS ?= 600
fuzz: venv
	bash fuzz/run.sh $(FUZZ_SECONDS)

bench: venv
	$(BIN)/python bench/ingest.py

# dockd_<version>_<arch>.deb in the repository root: a venv at /opt/dockd made by the
# system python3, the units, sysusers/tmpfiles entries, the config and the docs
# (packaging/build-deb.sh says why not dh-virtualenv). Needs python3-venv, dpkg-deb.
deb:
	bash packaging/build-deb.sh

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache src/*.egg-info build *.deb
