"""deploy/k8s: every overlay renders with `kubectl kustomize`; core resources validate strictly
against the Kubernetes JSON schemas (kubernetes-validate, bundled schemas); custom resources
field by field against the operators' own CRDs (Strimzi, CloudNativePG, KEDA, Prometheus
Operator); and the manifests say what the code does (commands, consumer groups, topics)."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy.crdschema import errors, load_crds
from deploy.k8s_support import OVERLAYS, find, overlay

from shared.events import dlq_topic, topic_for

KUBERNETES_VERSION = "1.32.0"  # the kubectl here (1.32); the schemas are bundled
CORE_GROUPS = {"", "apps", "batch", "policy", "autoscaling", "networking.k8s.io"}
CUSTOM = {
    ("kafka.strimzi.io", "Kafka"),
    ("kafka.strimzi.io", "KafkaNodePool"),
    ("kafka.strimzi.io", "KafkaTopic"),
    ("postgresql.cnpg.io", "Cluster"),
    ("postgresql.cnpg.io", "Database"),
    ("postgresql.cnpg.io", "ScheduledBackup"),
    ("keda.sh", "ScaledObject"),
    ("monitoring.coreos.com", "ServiceMonitor"),
    ("monitoring.coreos.com", "PrometheusRule"),
}
SERVICES = ("ingest", "diagnosis", "campaigns", "content")


def group_of(doc: dict[str, Any]) -> str:
    return doc["apiVersion"].rpartition("/")[0]


def kubernetes_validate(tools: Path, docs: list[dict[str, Any]], tmp: Path) -> tuple[int, str]:
    path = tmp / "core.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    done = subprocess.run(
        [
            str(tools / "venv/bin/kubernetes-validate"),
            "--strict",
            "-k",
            KUBERNETES_VERSION,
            "--quiet",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, done.stdout + done.stderr


@pytest.fixture(scope="module")
def crds(tools: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    return load_crds(tools / "crds")


@pytest.mark.parametrize("name", OVERLAYS)
def test_overlay_core_resources_validate_strictly(name: str, tools: Path, tmp_path: Path) -> None:
    docs = overlay(name)
    core = [d for d in docs if group_of(d) in CORE_GROUPS]
    others = {(group_of(d), d["kind"]) for d in docs if group_of(d) not in CORE_GROUPS}
    assert others <= CUSTOM, f"resources no check covers: {others - CUSTOM}"
    rc, out = kubernetes_validate(tools, core, tmp_path)
    assert rc == 0 and "ERROR" not in out, out[-5000:]
    kinds = {d["kind"] for d in core}
    assert {"Deployment", "Service", "ConfigMap", "ServiceAccount", "PodDisruptionBudget",
            "HorizontalPodAutoscaler", "NetworkPolicy", "Job"} <= kinds  # fmt: skip


@pytest.mark.parametrize("name", OVERLAYS)
def test_overlay_custom_resources_match_their_crds(
    name: str, crds: dict[tuple[str, str, str], dict[str, Any]]
) -> None:
    docs = [d for d in overlay(name) if group_of(d) not in CORE_GROUPS]
    assert {(group_of(d), d["kind"]) for d in docs} >= CUSTOM - {
        ("postgresql.cnpg.io", "ScheduledBackup")
    }
    problems = [p for d in docs for p in errors(crds, d)]
    assert not problems, "\n".join(problems)


def test_strict_checks_refuse_unknown_fields_and_wrong_types(
    tools: Path, tmp_path: Path, crds: dict[tuple[str, str, str], dict[str, Any]]
) -> None:
    docs = overlay("dev")
    deployment = copy.deepcopy(find(docs, "Deployment", "ingest")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    rc, out = kubernetes_validate(tools, [deployment], tmp_path)
    assert rc != 0 and "httpGett" in out

    kafka = copy.deepcopy(find(docs, "Kafka")[0])
    kafka["spec"]["kafka"]["listeners"][0]["tlss"] = False
    assert any("tlss" in e for e in errors(crds, kafka))
    topic = copy.deepcopy(find(docs, "KafkaTopic", "ingest.v1")[0])
    topic["spec"]["partitions"] = "three"
    assert any("partitions" in e for e in errors(crds, topic))
    cluster = copy.deepcopy(find(docs, "Cluster")[0])
    cluster["spec"]["managed"]["roles"][0]["passwordSecrett"] = {"name": "x"}
    assert any("passwordSecrett" in e for e in errors(crds, cluster))
    scaled = copy.deepcopy(find(docs, "ScaledObject", "diagnosis")[0])
    scaled["spec"]["minReplicas"] = 1
    assert any("minReplicas" in e for e in errors(crds, scaled))
    monitor = copy.deepcopy(find(docs, "ServiceMonitor")[0])
    monitor["spec"]["endpoints"][0]["interval"] = "thirty seconds"
    assert any("interval" in e for e in errors(crds, monitor))


@pytest.mark.parametrize("name", OVERLAYS)
def test_workloads_run_the_services_hardened(name: str) -> None:
    docs = overlay(name)
    for svc in SERVICES:
        deployment = find(docs, "Deployment", svc)[0]
        job = find(docs, "Job", f"{svc}-migrate")[0]
        assert find(docs, "ServiceAccount", svc)[0]["automountServiceAccountToken"] is False
        assert find(docs, "PodDisruptionBudget", svc)
        assert find(docs, "Service", svc)
        for workload, command in (
            (deployment, ["python", "-m", f"services.{svc}"]),
            (job, ["python", "-m", f"services.{svc}", "migrate"]),
        ):
            pod = workload["spec"]["template"]["spec"]
            assert pod["automountServiceAccountToken"] is False
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
            (container,) = pod["containers"]
            assert container["command"] == command
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/tmp", "/app/var"}
            assert set(container["resources"]["requests"]) == {"cpu", "memory"}
            assert set(container["resources"]["limits"]) == {"cpu", "memory"}
            env = {e["name"]: e for e in container["env"]}
            assert env["DATABASE_URL"]["value"].endswith(f"@storeops-pg-rw:5432/{svc}")
            assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == f"storeops-pg-{svc}"
            assert "OPS_BOOTSTRAP_API_KEY" in env
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    config = find(docs, "ConfigMap")
    shared = next(c for c in config if c["metadata"]["name"].startswith("storeops-config"))
    assert shared["data"]["KAFKA_BOOTSTRAP_SERVERS"] == "storeops-kafka-kafka-bootstrap:9092"
    assert {"KAFKA_TOPIC_PREFIX", "LOG_LEVEL"} <= set(shared["data"])


def test_autoscalers_follow_the_consumer_groups_the_services_use() -> None:
    """One KEDA kafka trigger per (group, topic) each service subscribes (auth-key sync aside,
    a trickle), none for anything else; the API-only service (ingest) gets a CPU HPA."""
    import importlib

    docs = overlay("prod")
    for svc in SERVICES:
        consumers = importlib.import_module(f"services.{svc}.consumers")
        subs = list(consumers.SUBSCRIPTIONS)
        if svc == "diagnosis":
            subs.append(importlib.import_module("services.diagnosis.notify").SUBSCRIPTION)
        wanted = {(g, t) for g, topics, _ in subs if not g.endswith(".auth-keys") for t in topics}
        scaled = find(docs, "ScaledObject", svc)
        if not wanted:
            assert not scaled
            assert find(docs, "HorizontalPodAutoscaler", svc)
            continue
        triggers = [t["metadata"] for t in scaled[0]["spec"]["triggers"] if t["type"] == "kafka"]
        got = {(t["consumerGroup"], t["topic"]) for t in triggers}
        assert got == wanted, svc
        assert not find(docs, "HorizontalPodAutoscaler", svc), "KEDA owns this one's HPA"


@pytest.mark.parametrize("name", OVERLAYS)
def test_a_kafka_topic_per_producer_topic_and_dlq(name: str) -> None:
    docs = overlay(name)
    topics = {d["spec"]["topicName"]: d for d in find(docs, "KafkaTopic")}
    wanted = {topic_for(p) for p in SERVICES}
    assert set(topics) == wanted | {dlq_topic(t) for t in wanted}
    pool = find(docs, "KafkaNodePool")[0]
    assert sorted(pool["spec"]["roles"]) == ["broker", "controller"]
    kafka = find(docs, "Kafka")[0]
    assert kafka["metadata"]["annotations"] == {
        "strimzi.io/node-pools": "enabled",
        "strimzi.io/kraft": "enabled",
    }
    replicas = pool["spec"]["replicas"]
    for t in topics.values():
        assert t["spec"]["replicas"] <= replicas
        assert t["spec"]["config"]["min.insync.replicas"] < t["spec"]["replicas"] or replicas == 1
    databases = {d["spec"]["name"]: d["spec"]["owner"] for d in find(docs, "Database")}
    assert databases == {s: s for s in SERVICES}
    roles = find(docs, "Cluster")[0]["spec"]["managed"]["roles"]
    assert {r["name"]: r["passwordSecret"]["name"] for r in roles} == {
        s: f"storeops-pg-{s}" for s in SERVICES
    }


def test_prod_is_bigger_than_dev() -> None:
    dev, prod = overlay("dev"), overlay("prod")
    assert find(dev, "KafkaNodePool")[0]["spec"]["replicas"] == 1
    assert find(prod, "KafkaNodePool")[0]["spec"]["replicas"] == 3
    assert find(dev, "Cluster")[0]["spec"]["instances"] == 1
    assert find(prod, "Cluster")[0]["spec"]["instances"] == 3
    assert find(dev, "KafkaTopic", "ingest.v1")[0]["spec"]["partitions"] == 3
    assert find(prod, "KafkaTopic", "ingest.v1")[0]["spec"]["partitions"] == 24
    assert all(d["spec"]["replicas"] == 3 for d in find(prod, "Deployment"))
    assert find(prod, "ScheduledBackup")
    # The dev overlay has one ingest pod: imports on an emptyDir, no ReadWriteMany claim.
    assert not find(dev, "PersistentVolumeClaim")
    assert find(prod, "PersistentVolumeClaim", "ingest-imports")
