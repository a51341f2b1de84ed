#!/usr/bin/env bash
# `make bench`: every benchmark beside its baseline in the same run, on the real PostgreSQL too;
# results go to docs/benchmarks.md; exits non-zero if any target is missed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
UV="${UV:-uv}"
started=0
cleanup() { if [ "$started" = 1 ]; then scripts/services.sh stop || true; fi; }
trap cleanup EXIT INT TERM
if ! scripts/services.sh status >/dev/null 2>&1; then
  started=1
  scripts/services.sh start
fi
# shellcheck disable=SC1091
source "${SERVICES_DIR:-var/services}/env"
export TEST_PG_DSN KAFKA_BOOTSTRAP_SERVERS
status=0
BENCH_OUT=var/bench-ingest.md "$UV" run python -m bench.bench_ingest || status=1
{
  echo "# Benchmarks"
  echo
  echo "Written by \`make bench\` ($(date -u +%Y-%m-%d), $(nproc) cores, $(uname -m)); each figure is"
  echo "measured beside its baseline in the same run. Targets missed are marked MISS."
  echo
  echo "## Ingest"
  echo
  echo "| benchmark | target | measured | result | baseline / note |"
  echo "|---|---|---|---|---|"
  cat var/bench-ingest.md
} > docs/benchmarks.md
exit $status
