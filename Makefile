# Surge: `make run` starts the embedded service, `make test` runs the whole suite.
# Only Python >= 3.11 and make are needed; uv is installed on first use if missing.

SHELL := /bin/bash
PYTHON ?= python3
# uv from PATH, else the one pip installs as a module (`python3 -m uv`), which works whether pip put it
# in the user site or found it already installed.
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
export UV_PYTHON_DOWNLOADS := never

.PHONY: help run test test-fast lint format bench-db bench-gateway bench-routing spike chaos clean

help:
	@echo "make run       the service on the embedded default (SQLite), printing its URL"
	@echo "make test      the whole test suite"
	@echo "make lint      ruff and mypy"
	@echo "make format    ruff format"
	@echo "make bench-db  GET /v1/conversations latency with 1,000 conversations (PostgreSQL)"
	@echo "make bench-gateway  what Surge adds between a client and an SGLang worker"
	@echo "make bench-routing  routing policies (and sglang-router) on a simulated fleet"
	@echo "make spike     Locust's app-store spike on PostgreSQL+Redis, report in spike-report/ (SPIKE_ARGS=...)"
	@echo "make chaos     dependency faults under load (on a PostgreSQL and Redis of its own), docs/results/chaos.md"

.venv/.synced: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || { \
		echo "uv not found: installing it with pip (user site)"; \
		$(PYTHON) -m pip install --user --quiet uv || \
		$(PYTHON) -m pip install --user --quiet --break-system-packages uv; }
	$(UV) sync --frozen
	@touch $@

run: .venv/.synced
	$(UV) run --frozen python -m loadtests.dev

test: .venv/.synced
	$(UV) run --frozen pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

test-fast: .venv/.synced
	$(UV) run --frozen pytest -n 2 --dist loadgroup -m "not slow" $(PYTEST_ARGS)

lint: .venv/.synced
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy backend sdk_python/surge loadtests/sglang_sim

format: .venv/.synced
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

bench-db: .venv/.synced
	$(UV) run --frozen python -m loadtests.bench_conversations

clean:
	rm -rf .venv .surge .pytest_cache .mypy_cache .ruff_cache

bench-gateway: .venv/.synced
	$(UV) run --frozen python -m loadtests.bench_gateway

# WORKLOAD.md's size is --turns 3000 --warmup 300 (about 25 minutes on 2 cores); the default fits in 10.
BENCH_ARGS ?= --turns 1000 --warmup 100
bench-routing: .venv/.synced
	$(UV) run --frozen python -m loadtests.bench_routing $(BENCH_ARGS)

spike: .venv/.synced
	$(UV) run --frozen python -m loadtests.spike $(SPIKE_ARGS)

# Starts a PostgreSQL and a Redis of its own and restarts those (CHAOS_ARGS="--only redis_restart" etc.).
chaos: .venv/.synced
	$(UV) run --frozen python -m loadtests.chaos $(CHAOS_ARGS)
