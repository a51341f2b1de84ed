"""Writes the Grafana dashboards (one per service) next to this file:

    uv run python deploy/k8s/monitoring/dashboards/generate.py

The JSON files are what ships (kustomize puts them in ConfigMaps labelled grafana_dashboard);
tests/deploy checks that they are this script's output and that every metric they query is one
the services export.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "${datasource}"}


def _panel(title: str, exprs: list[tuple[str, str]], unit: str = "short") -> dict[str, Any]:
    return {
        "type": "timeseries",
        "title": title,
        "datasource": DS,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {"refId": chr(65 + i), "datasource": DS, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(exprs)
        ],
    }


def _common(svc: str) -> list[tuple[str, list[dict[str, Any]]]]:
    sel = f'service="{svc}"'
    return [
        (
            "HTTP",
            [
                _panel(
                    "Requests per second by route and status",
                    [
                        (
                            "sum by (route, status) "
                            f"(rate(storeops_http_requests_total{{{sel}}}[5m]))",
                            "{{route}} {{status}}",
                        )
                    ],
                    "reqps",
                ),
                _panel(
                    "Error ratio (5xx) against the 99.9% SLO",
                    [
                        (f"storeops:http_error_ratio:rate5m{{{sel}}}", "5m"),
                        (f"storeops:http_error_ratio:rate1h{{{sel}}}", "1h"),
                        ("0.001", "SLO budget"),
                    ],
                    "percentunit",
                ),
                _panel(
                    "Latency p50 / p99 by route",
                    [
                        (
                            "histogram_quantile(0.5, sum by (le, route) "
                            f"(rate(storeops_http_request_duration_seconds_bucket{{{sel}}}[5m])))",
                            "p50 {{route}}",
                        ),
                        (
                            "histogram_quantile(0.99, sum by (le, route) "
                            f"(rate(storeops_http_request_duration_seconds_bucket{{{sel}}}[5m])))",
                            "p99 {{route}}",
                        ),
                    ],
                    "s",
                ),
                _panel(
                    "Share of requests over 2.5 s (99% SLO)",
                    [(f"storeops:http_slow_ratio:rate5m{{{sel}}}", "5m"), ("0.01", "SLO budget")],
                    "percentunit",
                ),
            ],
        ),
        (
            "Events",
            [
                _panel(
                    "Published per second by topic",
                    [
                        (
                            f"sum by (topic) (rate(storeops_events_published_total{{{sel}}}[5m]))",
                            "{{topic}}",
                        )
                    ],
                    "ops",
                ),
                _panel(
                    "Outbox: backlog and oldest unpublished age",
                    [
                        (f"max(storeops_outbox_backlog{{{sel}}})", "backlog (rows)"),
                        (f"max(storeops_outbox_oldest_age_seconds{{{sel}}})", "oldest age (s)"),
                        (
                            f"sum(rate(storeops_outbox_publish_errors_total{{{sel}}}[5m]))",
                            "failed relay rounds/s",
                        ),
                    ],
                ),
                _panel(
                    "Consumed, failed and dead-lettered per second",
                    [
                        (
                            "sum by (group, topic) "
                            f"(rate(storeops_events_consumed_total{{{sel}}}[5m]))",
                            "handled {{group}} {{topic}}",
                        ),
                        (
                            "sum by (group, kind) (rate(storeops_events_failed_total"
                            f"{{{sel}}}[5m]))",
                            "failed {{group}} {{kind}}",
                        ),
                        (
                            "sum by (group, topic) "
                            f"(increase(storeops_events_dead_lettered_total{{{sel}}}[15m]))",
                            "dead-lettered (15m) {{group}} {{topic}}",
                        ),
                        (
                            f"sum by (group) (rate(storeops_events_duplicate_total{{{sel}}}[5m]))",
                            "duplicates {{group}}",
                        ),
                    ],
                    "ops",
                ),
                _panel(
                    "Consumer lag by group and topic",
                    [
                        (
                            f"sum by (group, topic) (storeops_consumer_lag{{{sel}}})",
                            "{{group}} {{topic}}",
                        )
                    ],
                ),
            ],
        ),
    ]


def _specific(svc: str) -> list[tuple[str, list[dict[str, Any]]]]:
    job = f'job="{svc}"'
    if svc == "ingest":
        return [
            (
                "Data arriving",
                [
                    _panel(
                        "Deliveries per second by source and outcome",
                        [
                            (
                                "sum by (source, outcome) "
                                "(rate(storeops_ingest_deliveries_total[5m]))",
                                "{{source}} {{outcome}}",
                            )
                        ],
                        "ops",
                    ),
                    _panel(
                        "Stores with no data for 36 h",
                        [("max(storeops_ingest_stale_stores)", "stale stores")],
                    ),
                    _panel(
                        "Seconds since the import runner last progressed",
                        [
                            (
                                "time() - max(storeops_import_job_last_progress_timestamp_seconds)",
                                "since last progress",
                            )
                        ],
                        "s",
                    ),
                ],
            )
        ]
    if svc == "diagnosis":
        return [
            (
                "Diagnosis",
                [
                    _panel(
                        "Reports per second by trigger",
                        [
                            (
                                "sum by (trigger) "
                                f"(rate(storeops_diagnosis_reports_total{{{job}}}[5m]))",
                                "{{trigger}}",
                            )
                        ],
                        "ops",
                    ),
                    _panel(
                        "Store-day diagnosis time p50 / p99",
                        [
                            (
                                "histogram_quantile(0.5, sum by (le) "
                                f"(rate(storeops_diagnosis_duration_seconds_bucket{{{job}}}[5m])))",
                                "p50",
                            ),
                            (
                                "histogram_quantile(0.99, sum by (le) "
                                f"(rate(storeops_diagnosis_duration_seconds_bucket{{{job}}}[5m])))",
                                "p99",
                            ),
                        ],
                        "s",
                    ),
                    _panel(
                        "Store-days waiting and failures",
                        [
                            (f"max(storeops_diagnosis_pending_store_days{{{job}}})", "pending"),
                            (
                                "sum by (reason) "
                                f"(increase(storeops_diagnosis_failures_total{{{job}}}[15m]))",
                                "failed (15m) {{reason}}",
                            ),
                        ],
                    ),
                    _panel(
                        "Open findings by owner",
                        [
                            (
                                f"max by (owner) (storeops_findings_open{{{job}}})",
                                "{{owner}}",
                            )
                        ],
                    ),
                    _panel(
                        "Finding transitions per second",
                        [
                            (
                                "sum by (action) "
                                f"(rate(storeops_findings_transitions_total{{{job}}}[5m]))",
                                "{{action}}",
                            )
                        ],
                        "ops",
                    ),
                    _panel(
                        "Notifications: attempts by outcome, pending",
                        [
                            (
                                "sum by (format, outcome) "
                                f"(rate(storeops_notifications_sent_total{{{job}}}[5m]))",
                                "{{format}} {{outcome}}",
                            ),
                            (f"max(storeops_notifications_pending{{{job}}})", "pending"),
                        ],
                    ),
                ],
            )
        ]
    return []


def dashboard(svc: str) -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y = 0
    pid = 1
    for title, row in [*_common(svc), *_specific(svc)]:
        panels.append(
            {"type": "row", "title": title, "id": pid, "collapsed": False,
             "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}}
        )  # fmt: skip
        pid += 1
        y += 1
        for i, p in enumerate(row):
            grid = {"h": 8, "w": 12, "x": 12 * (i % 2), "y": y + 8 * (i // 2)}
            panels.append({**p, "id": pid, "gridPos": grid})
            pid += 1
        y += 8 * ((len(row) + 1) // 2)
    return {
        "uid": f"storeops-{svc}",
        "title": f"storeops / {svc}",
        "tags": ["storeops"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                }
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


SERVICES = ("ingest", "diagnosis", "campaigns", "content")


def render(svc: str) -> str:
    return json.dumps(dashboard(svc), indent=2, sort_keys=True) + "\n"


def main() -> int:
    for svc in SERVICES:
        (HERE / f"{svc}.json").write_text(render(svc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
