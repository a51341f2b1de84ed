#!/usr/bin/env bash
# `make bench`: every bench/bench_*.py beside its baseline in the same run, with the real
# PostgreSQL and Kafka available (TEST_PG_DSN, KAFKA_BOOTSTRAP_SERVERS). Each module prints
# "target, measured, pass" lines, writes its markdown rows to $BENCH_OUT and exits non-zero on a
# miss; this script assembles docs/benchmarks.md and exits non-zero if any module missed.
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
mkdir -p var/bench
status=0
modules=()
for f in bench/bench_*.py; do
  m="$(basename "$f" .py)"
  if [ -n "${BENCH_ONLY:-}" ] && [[ "$m" != *"$BENCH_ONLY"* ]]; then continue; fi
  modules+=("$m")
  echo "== $m"
  BENCH_OUT="var/bench/$m.md" "$UV" run python -m "bench.$m" || status=1
done
{
  echo "# Benchmarks"
  echo
  echo "Written by \`make bench\` ($(date -u +%Y-%m-%d), $(nproc) cores, $(uname -m)). Each figure"
  echo "is measured beside its baseline in the same run; a missed target is marked MISS."
  # Every module's latest results (a BENCH_ONLY run refreshes only its own).
  for f in bench/bench_*.py; do
    m="$(basename "$f" .py)"
    [ -f "var/bench/$m.md" ] || continue
    echo
    cat "var/bench/$m.md"
  done
} > docs/benchmarks.md
exit $status
