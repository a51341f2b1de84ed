"""The event contracts: snapshots, examples, decoding and naming (DESIGN.md, "Events")."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from shared.events import (
    MAX_EVENT_BYTES,
    Event,
    UndecodableEvent,
    decode,
    registry,
    snapshots,
    topic_for,
)
from shared.events.compat import breaking_changes
from shared.events.examples import EXAMPLE_STORE, EXAMPLE_TENANT
from shared.events.ingest import MetricsIngestedV1, StoreRegisteredV1

CLASSES: list[type[Event]] = [cls for _, cls in sorted(registry().items())]
IDS = [snapshots.stem(cls) for cls in CLASSES]
ENVELOPE_FIELDS = set(Event.model_fields)

# Every producer's contract as DESIGN.md lists it: removing one is a breaking change, so the list
# is spelled out rather than derived.
EXPECTED = {
    "ingest.tenant_created": "TenantCreatedV1",
    "ingest.tenant_updated": "TenantUpdatedV1",
    "ingest.api_key_created": "ApiKeyCreatedV1",
    "ingest.api_key_revoked": "ApiKeyRevokedV1",
    "ingest.store_registered": "StoreRegisteredV1",
    "ingest.store_updated": "StoreUpdatedV1",
    "ingest.metrics_ingested": "MetricsIngestedV1",
    "ingest.benchmark_ingested": "BenchmarkIngestedV1",
    "ingest.competitor_metrics_ingested": "CompetitorMetricsIngestedV1",
    "ingest.metrics_deleted": "MetricsDeletedV1",
    "ingest.fx_rates_ingested": "FxRatesIngestedV1",
    "diagnosis.diagnosis_completed": "DiagnosisCompletedV1",
    "diagnosis.finding_opened": "FindingOpenedV1",
    "diagnosis.finding_updated": "FindingUpdatedV1",
    "diagnosis.finding_closed": "FindingClosedV1",
    "campaigns.campaign_created": "CampaignCreatedV1",
    "campaigns.campaign_updated": "CampaignUpdatedV1",
    "campaigns.task_due": "TaskDueV1",
    "content.copy_published": "CopyPublishedV1",
    "content.experiment_decided": "ExperimentDecidedV1",
}
TENANT_SCOPED = {
    "ingest.tenant_created",
    "ingest.tenant_updated",
    "ingest.api_key_created",
    "ingest.api_key_revoked",
    "ingest.benchmark_ingested",
    "ingest.fx_rates_ingested",
}
PRODUCERS = {"ingest", "diagnosis", "campaigns", "content"}
TYPE_RULE = re.compile(r"^(?P<producer>[a-z]+)\.(?P<entity_verb>[a-z][a-z0-9]*(?:_[a-z0-9]+)+)$")
# DESIGN.md names this event itself; "due" stands for "became due".
PAST_TENSE_EXCEPTIONS = {"due"}

each_class = pytest.mark.parametrize("cls", CLASSES, ids=IDS)


def _read(path: Any) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_registry_holds_every_producers_contract() -> None:
    assert {cls.TYPE: cls.__name__ for cls in CLASSES} == EXPECTED
    assert all(cls.VERSION == 1 for cls in CLASSES)


# --- snapshots -----------------------------------------------------------------------------------


@each_class
def test_snapshot_exists_and_current_schema_has_no_breaking_change(cls: type[Event]) -> None:
    path = snapshots.schema_path(cls)
    assert path.exists(), f"missing {path.name}: run `uv run python -m shared.events.snapshots`"
    assert breaking_changes(_read(path), cls.model_json_schema()) == []


def test_snapshot_check_passes_on_the_repository() -> None:
    assert snapshots.check() == []


@each_class
def test_snapshot_files_are_rendered_canonically(cls: type[Event]) -> None:
    for path in (snapshots.schema_path(cls), snapshots.example_path(cls)):
        text = path.read_text(encoding="utf-8")
        assert text == snapshots.render(json.loads(text)), path.name
        assert text.endswith("}\n")


# --- examples ------------------------------------------------------------------------------------


@each_class
def test_example_round_trips_through_decode(cls: type[Event]) -> None:
    example = cls.example()  # type: ignore[attr-defined]
    decoded = decode(example.to_bytes())
    assert type(decoded) is cls
    assert decoded == example


@each_class
def test_example_is_fixed_and_tells_the_demo_story(cls: type[Event]) -> None:
    example = cls.example()  # type: ignore[attr-defined]
    assert example == cls.example()  # type: ignore[attr-defined]  # fixed ids and timestamps
    assert example.tenant_id == EXAMPLE_TENANT
    if cls.TYPE in TENANT_SCOPED:
        assert example.store_id is None
        assert example.key == EXAMPLE_TENANT
    else:
        assert cls.model_fields["store_id"].is_required()
        assert example.store_id == EXAMPLE_STORE
        assert example.key == EXAMPLE_STORE
    # Fully populated: no optional field left at None.
    nulls = [name for name, value in example if value is None and name != "store_id"]
    assert nulls == []
    assert len(example.to_bytes()) < MAX_EVENT_BYTES


@each_class
def test_example_validates_against_the_snapshot_schema(cls: type[Event]) -> None:
    schema = _read(snapshots.schema_path(cls))
    Draft202012Validator.check_schema(schema)
    example = cls.example()  # type: ignore[attr-defined]
    Draft202012Validator(schema).validate(example.model_dump(mode="json"))


@each_class
def test_stored_example_still_decodes(cls: type[Event]) -> None:
    decoded = decode(snapshots.example_path(cls).read_bytes())
    assert type(decoded) is cls


# --- decode --------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"not json{", b"\xff\xfe\x00", "", "[1, 2]", "42", "null"])
def test_decode_rejects_what_is_not_a_json_object(raw: bytes | str) -> None:
    with pytest.raises(UndecodableEvent):
        decode(raw)


@pytest.mark.parametrize(
    ("type_", "version"),
    [("ingest.store_exploded", 1), ("ingest.store_registered", 99), (None, None), ("x", "1")],
)
def test_decode_rejects_an_unknown_type_or_version(type_: Any, version: Any) -> None:
    payload = StoreRegisteredV1.example().model_dump(mode="json")
    payload["type"], payload["version"] = type_, version
    with pytest.raises(UndecodableEvent, match="unknown event type"):
        decode(json.dumps(payload))


@each_class
def test_decode_rejects_a_payload_missing_a_required_field(cls: type[Event]) -> None:
    payload = cls.example().model_dump(mode="json")  # type: ignore[attr-defined]
    required = [
        name
        for name in _read(snapshots.schema_path(cls))["required"]
        if name not in ENVELOPE_FIELDS
    ]
    assert required, f"{cls.__name__} has no required field of its own"
    for name in required:
        broken = {key: value for key, value in payload.items() if key != name}
        with pytest.raises(UndecodableEvent, match="invalid"):
            decode(json.dumps(broken))


def test_decode_rejects_a_missing_tenant() -> None:
    payload = StoreRegisteredV1.example().model_dump(mode="json")
    del payload["tenant_id"]
    with pytest.raises(UndecodableEvent):
        decode(json.dumps(payload))


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_metric_values_must_be_finite(value: str) -> None:
    raw = (
        MetricsIngestedV1.example()
        .to_bytes()
        .replace(b'"value":18240.0', f'"value":{value}'.encode())
    )
    assert value.encode() in raw
    with pytest.raises(UndecodableEvent):
        decode(raw)


def test_decode_ignores_unknown_fields_so_adding_an_optional_field_is_compatible() -> None:
    payload = StoreRegisteredV1.example().model_dump(mode="json")
    payload["added_later"] = {"anything": 1}
    assert decode(json.dumps(payload)) == StoreRegisteredV1.example()


# --- naming and topics ---------------------------------------------------------------------------


def _camel(snake: str) -> str:
    return "".join(word.capitalize() for word in snake.split("_"))


@each_class
def test_type_and_class_follow_the_naming_rule(cls: type[Event]) -> None:
    match = TYPE_RULE.match(cls.TYPE)
    assert match, f"{cls.TYPE!r} is not '<producer>.<entity>_<past verb>'"
    producer, entity_verb = match["producer"], match["entity_verb"]
    assert producer in PRODUCERS
    assert cls.__module__ == f"shared.events.{producer}"
    verb = entity_verb.rsplit("_", 1)[1]
    assert verb.endswith("ed") or verb in PAST_TENSE_EXCEPTIONS, f"{verb!r} is not past tense"
    assert re.fullmatch(r"[A-Z][A-Za-z]*V[1-9][0-9]*", cls.__name__)
    assert cls.__name__ == f"{_camel(entity_verb)}V{cls.VERSION}"
    # The Literal defaults and the ClassVars agree, so decode() finds the class by them.
    assert cls.model_fields["type"].default == cls.TYPE
    assert cls.model_fields["version"].default == cls.VERSION


@each_class
def test_topic_is_per_producer_and_major_version(cls: type[Event]) -> None:
    producer = cls.TYPE.split(".", 1)[0]
    assert cls.topic_name() == topic_for(producer, cls.VERSION) == f"{producer}.v{cls.VERSION}"
    assert cls.example().topic == cls.topic_name()  # type: ignore[attr-defined]


def test_the_topic_of_an_ingest_event_is_ingest_v1() -> None:
    assert StoreRegisteredV1.example().topic == "ingest.v1"
    assert MetricsIngestedV1.topic_name() == "ingest.v1"
