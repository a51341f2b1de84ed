"""deploy/k8s/monitoring: the rules pass `promtool check rules` and their unit tests (one per
alert, and they have teeth), every alert has a runbook in docs/operations.md, the dashboards are
generate.py's output, and every metric a rule or dashboard reads is one the services export
(scraped from each service's /metrics, built in-process)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from deploy.k8s_support import K8S, REPO, find, render
from prometheus_client.parser import text_string_to_metric_families

MONITORING = K8S / "monitoring"
DASHBOARDS = MONITORING / "dashboards"
BUILTIN = {"up"}  # series Prometheus makes itself


def rule_groups() -> list[dict[str, Any]]:
    doc = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    groups: list[dict[str, Any]] = doc["spec"]["groups"]
    return groups


def write_rules(folder: Path, groups: list[dict[str, Any]]) -> Path:
    """A PrometheusRule's spec.groups as the plain rules file promtool reads."""
    (folder / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    shutil.copy(MONITORING / "tests" / "alerts.test.yaml", folder / "alerts.test.yaml")
    return folder / "rules.yaml"


def promtool(tools: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tools / "promtool"), *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def alerts() -> list[dict[str, Any]]:
    return [r for g in rule_groups() for r in g["rules"] if "alert" in r]


def test_promtool_checks_the_rules_and_runs_a_test_per_alert(tools: Path, tmp_path: Path) -> None:
    write_rules(tmp_path, rule_groups())
    done = promtool(tools, "check", "rules", "rules.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    done = promtool(tools, "test", "rules", "alerts.test.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    tested = set(re.findall(r"alertname: (\w+)", (tmp_path / "alerts.test.yaml").read_text()))
    assert tested == {a["alert"] for a in alerts()}


def test_the_alert_tests_fail_when_a_rule_breaks(tools: Path, tmp_path: Path) -> None:
    groups = rule_groups()
    for rule in groups[1]["rules"]:
        if rule["alert"] == "StoreopsConsumerLagHigh":
            rule["expr"] = rule["expr"].replace("> 10000", "> 20000")
    write_rules(tmp_path, groups)
    done = promtool(tools, "test", "rules", "alerts.test.yaml", cwd=tmp_path)
    assert done.returncode != 0
    assert "StoreopsConsumerLagHigh" in done.stdout + done.stderr


def test_every_alert_has_a_runbook_section() -> None:
    text = (REPO / "docs" / "operations.md").read_text()
    headings = {h.strip().lower() for h in re.findall(r"^#+ (.+)$", text, re.M)}
    for a in alerts():
        anchor = a["annotations"]["runbook_url"].rsplit("#", 1)[1]
        assert anchor == a["alert"].lower()
        assert a["alert"].lower() in headings, f"no runbook heading for {a['alert']}"
        assert a["labels"]["severity"] in {"page", "ticket", "warning"}


def test_dashboards_are_the_generators_output_and_ship_as_configmaps() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("dashgen", DASHBOARDS / "generate.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    for svc in gen.SERVICES:
        path = DASHBOARDS / f"{svc}.json"
        assert path.read_text() == gen.render(svc), f"{path} is stale: run generate.py"
        board = json.loads(path.read_text())
        assert board["uid"] == f"storeops-{svc}"
        assert [p for p in board["panels"] if p["type"] == "timeseries"]
    (cm,) = find(render(K8S / "overlays" / "prod"), "ConfigMap", "storeops-dashboards")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert set(cm["data"]) == {f"{s}.json" for s in gen.SERVICES}


# ---- metrics used vs metrics exported ------------------------------------------------------


def used_expressions() -> list[str]:
    exprs = [r["expr"] for g in rule_groups() for r in g["rules"]]
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            exprs += [t["expr"] for t in panel.get("targets", [])]
    return exprs


SAMPLES: dict[str, float] = {}


async def exported_metrics(tmp_path: Path) -> set[str]:
    from services.campaigns.main import create_app as campaigns
    from services.content.main import create_app as content
    from services.diagnosis.main import create_app as diagnosis
    from services.ingest.main import create_app as ingest
    from shared.config import (
        CampaignsSettings,
        ContentSettings,
        DiagnosisSettings,
        IngestSettings,
    )

    names: set[str] = set()
    apps = [
        (ingest, IngestSettings),
        (diagnosis, DiagnosisSettings),
        (campaigns, CampaignsSettings),
        (content, ContentSettings),
    ]
    for factory, settings_cls in apps:
        settings = settings_cls(var_dir=tmp_path / settings_cls().service_name)
        app = factory(settings)  # type: ignore[operator]
        async with app.router.lifespan_context(app):
            await asyncio.sleep(0.5)  # let the background loops (import runner, ...) start
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                assert (await client.get("/healthz")).status_code == 200
                await client.get("/v1/no-such-route")
                scraped = await client.get("/metrics")
        assert scraped.status_code == 200
        for family in text_string_to_metric_families(scraped.text):
            suffixes = {
                "counter": ("_total", "_created"),
                "histogram": ("_bucket", "_sum", "_count", "_created"),
                "summary": ("", "_sum", "_count", "_created"),
            }.get(family.type, ("",))
            names |= {family.name + s for s in suffixes}
            for sample in family.samples:
                SAMPLES[sample.name] = sample.value
    return names


async def test_every_metric_used_is_exported(tmp_path: Path) -> None:
    exported = await exported_metrics(tmp_path)
    recorded = {r["record"] for g in rule_groups() for r in g["rules"] if "record" in r}
    used: set[str] = set()
    for expr in used_expressions():
        used |= set(re.findall(r"\bstoreops[_:][\w:]*", expr))
        # Any other selector must be one Prometheus makes itself.
        for name in re.findall(r"(?<![\w:])([a-zA-Z_]\w*)\{", expr):
            assert name.startswith("storeops") or name in BUILTIN, f"unknown series {name}"
    missing = sorted(
        n for n in used if n not in exported and n not in recorded and n not in BUILTIN
    )
    assert not missing, f"used but not exported by any service: {missing}"
    # The ones the issue names, all there: consumer lag, outbox, DLQ, the stuck import.
    assert {
        "storeops_consumer_lag",
        "storeops_outbox_backlog",
        "storeops_outbox_oldest_age_seconds",
        "storeops_events_dead_lettered_total",
        "storeops_import_job_last_progress_timestamp_seconds",
        "storeops_diagnosis_duration_seconds_bucket",
    } <= used
    # The import runner marks its progress as soon as it runs (an idle queue is progress).
    progress = SAMPLES["storeops_import_job_last_progress_timestamp_seconds"]
    assert abs(time.time() - progress) < 120
    # And the check has teeth: a name nobody exports is caught.
    assert "storeops_no_such_metric_total" not in exported


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
