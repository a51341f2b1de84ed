#!/usr/bin/env bash
# `make test`: lint, then the whole pytest suite with the real PostgreSQL and Kafka started by
# scripts/services.sh once for the run, and stopped again whatever the outcome.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
UV="${UV:-uv}"

echo "== lint"
"$UV" run ruff check .
"$UV" run ruff format --check .
"$UV" run mypy shared services
"$UV" run lint-imports
"$UV" run python -m shared.events.snapshots --check

echo "== k8s tools (tests/deploy: promtool, kubernetes-validate, operators' CRDs; cached)"
scripts/k8s_tools.sh

echo "== services"
started=0
cleanup() {
  if [ "$started" = 1 ]; then scripts/services.sh stop || true; fi
}
trap cleanup EXIT INT TERM
# Start them unless they already run (then they were not ours to stop).
if ! scripts/services.sh status >/dev/null 2>&1; then
  started=1
  scripts/services.sh start
fi
# shellcheck disable=SC1091
source "${SERVICES_DIR:-var/services}/env"

echo "== tests"
"$UV" run pytest -q -p no:randomly --durations=15 "$@"
