"""Compatibility of two versions of an event's JSON Schema (pydantic's model_json_schema output).

Producers and consumers of one topic are deployed independently, and a topic holds messages
written by older producers: a change is safe only if old and new code both still accept what the
other writes. DESIGN.md's rule follows: adding an optional field keeps the version, anything else
is a new version published beside the old one. So this reports as breaking:
- a property removed, or a new property that is required, or a property that became required;
- a changed type, at any depth (through $ref/$defs, arrays, maps and anyOf), including a union
  alternative removed (e.g. no longer nullable) or added (e.g. now nullable);
- an enum/Literal narrowed, and also widened (an old consumer rejects the new value);
- a changed constraint or format (pattern, bounds, lengths, item counts...).
Titles, descriptions, defaults and examples are documentation: changing them is not breaking.
A property that merely stops being required is not reported either: pydantic serializes every
field, so producers keep sending it; its type (e.g. now nullable) is checked like any other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

Schema = Mapping[str, Any]

# Keywords that restrict the accepted values: any change to them changes the contract.
_CONSTRAINTS = (
    "format",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "propertyNames",
    "patternProperties",
)
_MAX_REF_HOPS = 64


def breaking_changes(old_schema: Schema, new_schema: Schema) -> list[str]:
    """Every change from old_schema to new_schema that breaks a producer or a consumer.

    Each entry reads "<location>: <what changed>", the location a path of property names with
    "[]" for array items and "{}" for map values, e.g. "rows[].value: type changed from number to
    string". An empty list means the new schema is a compatible evolution of the old one.
    """
    differ = _Differ(old_schema, new_schema)
    differ.compare(old_schema, new_schema, "", frozenset())
    return differ.problems


class _Differ:
    def __init__(self, old_root: Schema, new_root: Schema) -> None:
        self.old_root = old_root
        self.new_root = new_root
        self.problems: list[str] = []

    def report(self, path: str, message: str) -> None:
        line = f"{path or '<root>'}: {message}"
        if line not in self.problems:
            self.problems.append(line)

    # --- one node --------------------------------------------------------------------------------

    def compare(
        self, old: Schema, new: Schema, path: str, seen: frozenset[tuple[str, str]]
    ) -> None:
        old_variants = _variants(old, self.old_root)
        new_variants = _variants(new, self.new_root)
        if len(old_variants) == 1 and len(new_variants) == 1:
            (old_one, old_ref), (new_one, new_ref) = old_variants[0], new_variants[0]
            old_kind, new_kind = _kind(old_one), _kind(new_one)
            if old_kind != new_kind:
                self.report(path, f"type changed from {old_kind} to {new_kind}")
                return
            self.compare_pair(old_one, old_ref, new_one, new_ref, path, seen)
            return

        old_by_kind = _group_by_kind(old_variants)
        new_by_kind = _group_by_kind(new_variants)
        for kind in old_by_kind:
            if kind not in new_by_kind:
                self.report(path, f"no longer accepts {kind}")
        for kind in new_by_kind:
            if kind not in old_by_kind:
                self.report(
                    path, f"now also accepts {kind} (consumers of the old schema reject it)"
                )
        for kind, olds in old_by_kind.items():
            news = new_by_kind.get(kind)
            if not news:
                continue
            if len(olds) != len(news):
                self.report(
                    path, f"number of {kind} alternatives changed from {len(olds)} to {len(news)}"
                )
            for (old_one, old_ref), (new_one, new_ref) in zip(
                _by_name(olds), _by_name(news), strict=False
            ):
                self.compare_pair(old_one, old_ref, new_one, new_ref, path, seen)

    def compare_pair(
        self,
        old: Schema,
        old_ref: str | None,
        new: Schema,
        new_ref: str | None,
        path: str,
        seen: frozenset[tuple[str, str]],
    ) -> None:
        """Two schemas of the same kind."""
        if old_ref is not None and new_ref is not None:
            # A recursive model: each pair of definitions is compared once per path.
            if (old_ref, new_ref) in seen:
                return
            seen = seen | {(old_ref, new_ref)}
        kind = _kind(old)
        self.compare_enums(old, new, kind, path)
        for keyword in _CONSTRAINTS:
            before, after = old.get(keyword), new.get(keyword)
            if _canonical(before) != _canonical(after):
                self.report(path, f"{keyword} changed from {_show(before)} to {_show(after)}")
        if kind == "object":
            self.compare_objects(old, new, path, seen)
        elif kind == "array":
            self.compare_arrays(old, new, path, seen)

    def compare_enums(self, old: Schema, new: Schema, kind: str, path: str) -> None:
        old_values, new_values = _enum(old), _enum(new)
        if old_values is None and new_values is None:
            return
        if old_values is None:
            self.report(path, f"narrowed from any {kind} to one of {_show(new_values)}")
            return
        if new_values is None:
            self.report(
                path,
                f"widened from one of {_show(old_values)} to any {kind} "
                "(consumers of the old schema reject the new values)",
            )
            return
        old_keys = {_canonical(value) for value in old_values}
        new_keys = {_canonical(value) for value in new_values}
        removed = [value for value in old_values if _canonical(value) not in new_keys]
        added = [value for value in new_values if _canonical(value) not in old_keys]
        if removed:
            self.report(path, f"enum narrowed: {_show(removed)} no longer accepted")
        if added:
            self.report(
                path,
                f"enum widened: {_show(added)} added (consumers of the old schema reject them)",
            )

    def compare_objects(
        self, old: Schema, new: Schema, path: str, seen: frozenset[tuple[str, str]]
    ) -> None:
        old_properties: Mapping[str, Schema] = old.get("properties", {})
        new_properties: Mapping[str, Schema] = new.get("properties", {})
        old_required = set(old.get("required", ()))
        new_required = set(new.get("required", ()))
        for name, old_property in old_properties.items():
            child = _child(path, name)
            if name not in new_properties:
                self.report(child, "property removed")
                continue
            if name in new_required and name not in old_required:
                self.report(child, "became required (older messages may lack it)")
            self.compare(old_property, new_properties[name], child, seen)
        for name in new_properties:
            if name not in old_properties and name in new_required:
                self.report(_child(path, name), "new required property (older messages lack it)")
        for name in sorted(new_required - set(new_properties) - old_required):
            self.report(_child(path, name), "new required property (older messages lack it)")

        old_extra = old.get("additionalProperties", True)
        new_extra = new.get("additionalProperties", True)
        if isinstance(old_extra, Mapping) and isinstance(new_extra, Mapping):
            self.compare(old_extra, new_extra, path + "{}", seen)
        elif isinstance(old_extra, Mapping) or isinstance(new_extra, Mapping):
            self.compare(_as_schema(old_extra), _as_schema(new_extra), path + "{}", seen)
        elif old_extra != new_extra:
            self.report(
                path, f"additionalProperties changed from {_show(old_extra)} to {_show(new_extra)}"
            )

    def compare_arrays(
        self, old: Schema, new: Schema, path: str, seen: frozenset[tuple[str, str]]
    ) -> None:
        old_prefix: list[Schema] = list(old.get("prefixItems", ()))
        new_prefix: list[Schema] = list(new.get("prefixItems", ()))
        if len(old_prefix) != len(new_prefix):
            self.report(
                path, f"tuple length changed from {len(old_prefix)} to {len(new_prefix)} items"
            )
        for index, (old_item, new_item) in enumerate(zip(old_prefix, new_prefix, strict=False)):
            self.compare(old_item, new_item, f"{path}[{index}]", seen)
        old_items, new_items = old.get("items", True), new.get("items", True)
        if old_items is not True or new_items is not True:
            self.compare(_as_schema(old_items), _as_schema(new_items), path + "[]", seen)


# --- helpers -------------------------------------------------------------------------------------


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _as_schema(value: Any) -> Schema:
    """additionalProperties/items may be booleans: true accepts anything, false nothing."""
    if isinstance(value, Mapping):
        return value
    return {} if value else {"not": {}}


def _resolve(schema: Schema, root: Schema) -> tuple[Schema, str | None]:
    """Follow $ref (keeping sibling keywords) and merge allOf; return the schema and last ref."""
    ref_name: str | None = None
    hops = 0
    while "$ref" in schema:
        hops += 1
        if hops > _MAX_REF_HOPS:
            raise ValueError(f"$ref loop at {schema['$ref']!r}")
        ref_name = str(schema["$ref"])
        target = _pointer(root, ref_name)
        siblings = {key: value for key, value in schema.items() if key != "$ref"}
        schema = {**target, **siblings}
    if "allOf" in schema:
        merged: dict[str, Any] = {key: value for key, value in schema.items() if key != "allOf"}
        for part in schema["allOf"]:
            resolved, part_ref = _resolve(part, root)
            ref_name = ref_name or part_ref
            for key, value in resolved.items():
                if key == "properties":
                    merged["properties"] = {**merged.get("properties", {}), **value}
                elif key == "required":
                    merged["required"] = sorted({*merged.get("required", ()), *value})
                else:
                    merged.setdefault(key, value)
        schema = merged
    return schema, ref_name


def _pointer(root: Schema, ref: str) -> Schema:
    if not ref.startswith("#"):
        raise ValueError(f"only local $refs are supported, got {ref!r}")
    node: Any = root
    for token in ref[1:].split("/")[1:]:
        node = node[token.replace("~1", "/").replace("~0", "~")]
    if not isinstance(node, Mapping):
        raise ValueError(f"$ref {ref!r} does not point at a schema")
    return node


def _variants(schema: Schema, root: Schema) -> list[tuple[Schema, str | None]]:
    """The alternatives a schema accepts: anyOf/oneOf members and `type` lists, flattened."""
    schema, ref = _resolve(schema, root)
    for keyword in ("anyOf", "oneOf"):
        if keyword in schema:
            out: list[tuple[Schema, str | None]] = []
            for member in schema[keyword]:
                out.extend(_variants(member, root))
            return out
    types = schema.get("type")
    if isinstance(types, list):
        return [({**schema, "type": one}, ref) for one in types]
    return [(schema, ref)]


def _kind(schema: Schema) -> str:
    declared = schema.get("type")
    if isinstance(declared, str):
        return declared
    values = _enum(schema)
    if values:
        kinds = {_json_kind(value) for value in values}
        return kinds.pop() if len(kinds) == 1 else "any"
    if "properties" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    if schema.get("not") == {}:
        return "nothing"
    return "any"


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _enum(schema: Schema) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    if "enum" in schema:
        return list(schema["enum"])
    return None


def _group_by_kind(
    variants: list[tuple[Schema, str | None]],
) -> dict[str, list[tuple[Schema, str | None]]]:
    groups: dict[str, list[tuple[Schema, str | None]]] = {}
    for variant in variants:
        groups.setdefault(_kind(variant[0]), []).append(variant)
    return groups


def _by_name(variants: list[tuple[Schema, str | None]]) -> list[tuple[Schema, str | None]]:
    """Pair alternatives of one kind by their definition's name, then in order."""
    return sorted(variants, key=lambda variant: (variant[1] or "").rsplit("/", 1)[-1])


def _canonical(value: Any) -> str:
    # JSON text, so that true and 1 differ (they are equal in Python).
    return json.dumps(value, sort_keys=True)


def _show(value: Any) -> str:
    return "none" if value is None else json.dumps(value, ensure_ascii=False)
