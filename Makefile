# The two commands a fresh machine needs: `make run` and `make test`.
SHELL := /bin/bash
UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
export UV_LINK_MODE := copy

.PHONY: run test install lint bench services stop-services snapshots clean

$(UV):
	python3 -m pip install --quiet --user "uv==$(UV_VERSION)" || python3 -m pip install --quiet "uv==$(UV_VERSION)"

install: $(UV)
	$(UV) sync --frozen --quiet

## The whole platform in one process on http://127.0.0.1:8000 with the demo tenant and data.
run: install
	$(UV) run python -m services --demo

## The whole suite: lint, unit, and integration on a real Kafka broker and PostgreSQL.
test: install
	UV="$(UV)" scripts/test.sh

lint: install
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy shared services
	$(UV) run lint-imports
	$(UV) run python -m shared.events.snapshots --check

bench: install
	UV="$(UV)" scripts/bench.sh

services:
	scripts/services.sh start

stop-services:
	scripts/services.sh stop

snapshots: install
	$(UV) run python -m shared.events.snapshots

clean:
	scripts/services.sh stop || true
	rm -rf var
