"""Strict validation of custom resources against their operators' CRDs (the OpenAPI v3 schema
the API server itself enforces): unknown fields are refused (as the API server prunes or, with
kubectl's --validate=strict, rejects them), types, enums, required fields, bounds and patterns
are checked. Not evaluated: x-kubernetes-validations (CEL rules)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft4Validator


def load_crds(folder: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(group, version, kind) -> JSON schema, for every served version of every CRD there."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for path in sorted(folder.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group = crd["spec"]["group"]
            kind = crd["spec"]["names"]["kind"]
            for v in crd["spec"]["versions"]:
                if v.get("served", True) and "schema" in v:
                    schema = strict(v["schema"]["openAPIV3Schema"])
                    out[(group, v["name"], kind)] = schema
    return out


def strict(node: Any) -> Any:
    node = copy.deepcopy(node)
    _tighten(node, top=True)
    return node


def _tighten(node: Any, top: bool = False) -> None:
    if not isinstance(node, dict):
        return
    if node.pop("x-kubernetes-int-or-string", False):
        node.pop("type", None)
        node.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if node.pop("nullable", False) and "type" in node:
        node["type"] = [node["type"], "null"]
    preserve = node.get("x-kubernetes-preserve-unknown-fields", False)
    if node.get("x-kubernetes-embedded-resource"):
        props = node.setdefault("properties", {})
        for k in ("apiVersion", "kind"):
            props.setdefault(k, {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
    if "properties" in node and not preserve and "additionalProperties" not in node:
        node["additionalProperties"] = False
    if top:
        # metadata is checked by the API server's own ObjectMeta rules, not the CRD.
        node.setdefault("properties", {})["metadata"] = {"type": "object"}
    for key in ("properties", "patternProperties"):
        for child in node.get(key, {}).values():
            _tighten(child)
    for key in ("items", "additionalProperties", "not"):
        if isinstance(node.get(key), dict):
            _tighten(node[key])
    for key in ("allOf", "anyOf", "oneOf"):
        for child in node.get(key, []):
            _tighten(child)


def errors(schemas: dict[tuple[str, str, str], dict[str, Any]], doc: dict[str, Any]) -> list[str]:
    group, _, version = doc["apiVersion"].rpartition("/")
    schema = schemas.get((group, version, doc["kind"]))
    if schema is None:
        return [f"no CRD schema for {doc['apiVersion']} {doc['kind']}"]
    found = sorted(Draft4Validator(schema).iter_errors(doc), key=lambda e: list(e.absolute_path))
    name = doc.get("metadata", {}).get("name")
    return [
        f"{doc['kind']}/{name} at {'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in found
    ]
