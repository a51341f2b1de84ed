"""breaking_changes() on real snapshots, deliberately mutated."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from shared.events import registry, snapshots
from shared.events.compat import breaking_changes
from shared.events.ingest import CompetitorMetricsIngestedV1, MetricsIngestedV1, StoreRegisteredV1


def _snapshot(cls: type) -> dict[str, Any]:
    return json.loads(snapshots.schema_path(cls).read_text(encoding="utf-8"))


@pytest.fixture
def store() -> dict[str, Any]:
    return _snapshot(StoreRegisteredV1)


@pytest.fixture
def metrics() -> dict[str, Any]:
    return _snapshot(MetricsIngestedV1)


def _changed(old: dict[str, Any], mutate: Any) -> list[str]:
    new = copy.deepcopy(old)
    mutate(new)
    return breaking_changes(old, new)


@pytest.mark.parametrize(("type_", "version"), sorted(registry()))
def test_a_snapshot_is_compatible_with_itself(type_: str, version: int) -> None:
    cls = registry()[(type_, version)]
    schema = _snapshot(cls)
    assert breaking_changes(schema, copy.deepcopy(schema)) == []
    assert breaking_changes(schema, cls.model_json_schema()) == []


def test_removing_a_property_is_breaking(store: dict[str, Any]) -> None:
    def mutate(schema: dict[str, Any]) -> None:
        del schema["properties"]["category"]
        schema["required"].remove("category")

    assert _changed(store, mutate) == ["category: property removed"]


def test_removing_an_optional_property_is_breaking(store: dict[str, Any]) -> None:
    assert _changed(store, lambda s: s["properties"].pop("status")) == ["status: property removed"]


def test_retyping_a_property_is_breaking(store: dict[str, Any]) -> None:
    def mutate(schema: dict[str, Any]) -> None:
        schema["properties"]["name"] = {"title": "Name", "type": "integer"}

    assert _changed(store, mutate) == ["name: type changed from string to integer"]


def test_retyping_integer_to_number_is_breaking(metrics: dict[str, Any]) -> None:
    def mutate(schema: dict[str, Any]) -> None:
        schema["properties"]["accepted"]["type"] = "number"

    assert _changed(metrics, mutate) == ["accepted: type changed from integer to number"]


def test_retyping_a_nested_defs_property_is_breaking(metrics: dict[str, Any]) -> None:
    def mutate(schema: dict[str, Any]) -> None:
        schema["$defs"]["MetricRowV1"]["properties"]["value"]["type"] = "string"

    assert _changed(metrics, mutate) == ["rows[].value: type changed from number to string"]


def test_retyping_map_values_is_breaking(metrics: dict[str, Any]) -> None:
    def mutate(schema: dict[str, Any]) -> None:
        row = schema["$defs"]["MetricRowV1"]
        row["properties"]["dimensions"]["additionalProperties"] = {"type": "integer"}

    assert _changed(metrics, mutate) == ["rows[].dimensions{}: type changed from string to integer"]


def test_retyping_array_items_is_breaking() -> None:
    from shared.events.campaigns import CampaignCreatedV1

    old = _snapshot(CampaignCreatedV1)

    def mutate(schema: dict[str, Any]) -> None:
        task = schema["$defs"]["TaskV1"]["properties"]["depends_on"]
        task["items"] = {"type": "integer"}

    assert _changed(old, mutate) == ["tasks[].depends_on[]: type changed from string to integer"]


def test_making_an_optional_property_required_is_breaking(store: dict[str, Any]) -> None:
    assert "status" not in store["required"]
    changes = _changed(store, lambda s: s["required"].append("status"))
    assert changes == ["status: became required (older messages may lack it)"]


def test_adding_a_required_property_is_breaking(store: dict[str, Any]) -> None:
    def mutate(schema: dict[str, Any]) -> None:
        schema["properties"]["vat_id"] = {"type": "string"}
        schema["required"].append("vat_id")

    assert _changed(store, mutate) == ["vat_id: new required property (older messages lack it)"]


def test_narrowing_an_enum_is_breaking(store: dict[str, Any]) -> None:
    def mutate(schema: dict[str, Any]) -> None:
        schema["properties"]["platform"]["enum"].remove("jd")

    assert _changed(store, mutate) == ['platform: enum narrowed: ["jd"] no longer accepted']


def test_narrowing_an_enum_inside_defs_is_breaking() -> None:
    from shared.events.diagnosis import DiagnosisCompletedV1

    old = _snapshot(DiagnosisCompletedV1)

    def mutate(schema: dict[str, Any]) -> None:
        schema["$defs"]["KpiV1"]["properties"]["direction"]["enum"] = ["up", "down"]

    assert _changed(old, mutate) == ['kpis[].direction: enum narrowed: ["flat"] no longer accepted']


def test_changing_a_const_is_breaking(store: dict[str, Any]) -> None:
    def mutate(schema: dict[str, Any]) -> None:
        schema["properties"]["version"]["const"] = 2

    assert _changed(store, mutate) == [
        "version: enum narrowed: [1] no longer accepted",
        "version: enum widened: [2] added (consumers of the old schema reject them)",
    ]


def test_widening_an_enum_is_breaking_for_old_consumers(store: dict[str, Any]) -> None:
    def mutate(schema: dict[str, Any]) -> None:
        schema["properties"]["platform"]["enum"].append("amazon")

    changes = _changed(store, mutate)
    assert len(changes) == 1
    assert changes[0].startswith('platform: enum widened: ["amazon"] added')


def test_dropping_null_from_a_union_is_breaking() -> None:
    old = _snapshot(CompetitorMetricsIngestedV1)

    def mutate(schema: dict[str, Any]) -> None:
        schema["properties"]["competitor_name"] = {"type": "string"}

    assert _changed(old, mutate) == ["competitor_name: no longer accepts null"]


def test_making_a_property_nullable_is_breaking(store: dict[str, Any]) -> None:
    def mutate(schema: dict[str, Any]) -> None:
        schema["properties"]["name"] = {"anyOf": [schema["properties"]["name"], {"type": "null"}]}

    changes = _changed(store, mutate)
    assert len(changes) == 1
    assert changes[0].startswith("name: now also accepts null")


def test_changing_a_constraint_is_breaking(store: dict[str, Any]) -> None:
    def mutate(schema: dict[str, Any]) -> None:
        schema["properties"]["currency"]["pattern"] = "^[A-Z]{3,4}$"

    assert _changed(store, mutate) == [
        'currency: pattern changed from "^[A-Z]{3}$" to "^[A-Z]{3,4}$"'
    ]


def test_renaming_a_definition_is_not_breaking(metrics: dict[str, Any]) -> None:
    def mutate(schema: dict[str, Any]) -> None:
        schema["$defs"]["RowV1"] = schema["$defs"].pop("MetricRowV1")
        schema["properties"]["rows"]["items"]["$ref"] = "#/$defs/RowV1"

    assert _changed(metrics, mutate) == []


def test_adding_an_optional_property_is_not_breaking(store: dict[str, Any]) -> None:
    def mutate(schema: dict[str, Any]) -> None:
        schema["properties"]["notes"] = {"anyOf": [{"type": "string"}, {"type": "null"}]}

    assert _changed(store, mutate) == []


def test_adding_an_optional_nested_property_is_not_breaking(metrics: dict[str, Any]) -> None:
    def mutate(schema: dict[str, Any]) -> None:
        row = schema["$defs"]["MetricRowV1"]
        row["properties"]["unit"] = {"default": None, "type": "null"}

    assert _changed(metrics, mutate) == []


def test_documentation_changes_are_not_breaking(store: dict[str, Any]) -> None:
    def mutate(schema: dict[str, Any]) -> None:
        schema["description"] = "reworded"
        schema["properties"]["name"]["title"] = "Display name"
        schema["properties"]["status"]["default"] = "archived"

    assert _changed(store, mutate) == []


def test_recursive_definitions_terminate() -> None:
    node = {
        "$defs": {
            "Node": {
                "properties": {
                    "value": {"type": "integer"},
                    "children": {"items": {"$ref": "#/$defs/Node"}, "type": "array"},
                },
                "required": ["value", "children"],
                "type": "object",
            }
        },
        "$ref": "#/$defs/Node",
    }
    assert breaking_changes(node, copy.deepcopy(node)) == []
    changed = copy.deepcopy(node)
    changed["$defs"]["Node"]["properties"]["value"]["type"] = "string"
    assert breaking_changes(node, changed) == ["value: type changed from integer to string"]


def test_several_changes_are_all_reported(store: dict[str, Any]) -> None:
    def mutate(schema: dict[str, Any]) -> None:
        del schema["properties"]["category"]
        schema["properties"]["market"]["type"] = "integer"
        schema["properties"]["status"]["enum"] = ["active"]

    changes = _changed(store, mutate)
    assert len(changes) == 3
    assert any(change.startswith("category:") for change in changes)
    assert any(change.startswith("market:") for change in changes)
    assert any(change.startswith("status:") for change in changes)
