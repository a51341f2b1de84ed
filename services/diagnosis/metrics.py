"""Prometheus metrics of diagnosis. The names are a contract: the Grafana dashboards and alert
rules (deploy/k8s/monitoring) query exactly these."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

REPORTS = Counter(
    "storeops_diagnosis_reports_total",
    "Diagnosis reports produced, by trigger (scheduled, late_data, request)",
    ["trigger"],
)
DURATION = Histogram(
    "storeops_diagnosis_duration_seconds",
    "Time to diagnose one store-day end to end (load, engine, persist), by trigger",
    ["trigger"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
FAILURES = Counter(
    "storeops_diagnosis_failures_total",
    "Store-days whose automatic diagnosis failed (retried at a later round)",
    ["reason"],
)
FINDINGS_OPEN = Gauge(
    "storeops_findings_open",
    "Findings open or acknowledged, by owner and severity (all tenants)",
    ["owner", "severity"],
)
TRANSITIONS = Counter(
    "storeops_findings_transitions_total",
    "Finding transitions requested by users, by action",
    ["action"],
)
PENDING = Gauge(
    "storeops_diagnosis_pending_store_days",
    "Store-days due for diagnosis found at the last scheduler round",
)

_OWNERS = ("promotion", "designer", "merchandising", "customer_service", "logistics", "operations")
_SEVERITIES = ("low", "medium", "high", "critical")


def set_open(counts: Iterable[tuple[str, str, int]]) -> None:
    seen = {(o, s): n for o, s, n in counts}
    for o in _OWNERS:
        for s in _SEVERITIES:
            FINDINGS_OPEN.labels(o, s).set(seen.get((o, s), 0))
