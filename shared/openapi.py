"""The OpenAPI documents say what the routes do: every error status a route can answer, with the
problem+json schema, servers at the root (routes carry /v1 themselves), and one merged document
for the embedded app."""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from shared.errors import PROBLEM_JSON

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details; `errors` lists each field at fault (422).",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                },
                "required": ["loc", "msg"],
            },
        },
    },
    "required": ["type", "title", "status"],
}

# What any route may answer from the shared layers: the body guard and validation (400/422),
# authentication (401/403), tenant isolation (404), body size (413), rate limits (429), an
# unreachable dependency (503). 405 comes from the router for undeclared methods.
COMMON = {
    "400": "Malformed request (JSON that does not parse, a body cut short)",
    "401": "Missing or invalid API key",
    "403": "The key's role or store scope does not allow this",
    "404": "Not found, or another tenant's (or an out-of-scope) resource",
    "405": "Method not allowed (the Allow header lists the methods of the path)",
    "413": "The body is over the size limit",
    "414": "The request line (URL) is over the limit",
    "415": "Unsupported media type",
    "422": "The request is not valid: `errors` names each field",
    "429": "Rate limited: retry after Retry-After seconds",
    "431": "Request headers over the limit",
    "500": "Unexpected error",
    "503": "A dependency is unreachable; nothing was written",
}
WRITES = {"409": "Conflict (state, or an Idempotency-Key reused with another body)"}
PUBLIC_PATHS = ("/healthz", "/readyz", "/metrics")


def _problem_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def complete(doc: dict[str, Any]) -> dict[str, Any]:
    """Add the problem responses to every operation of a generated document."""
    doc = copy.deepcopy(doc)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            responses = op["responses"]
            wanted = dict(COMMON)
            if method in ("post", "put", "patch", "delete"):
                wanted.update(WRITES)
            if path in PUBLIC_PATHS:
                wanted = {"503": COMMON["503"]} if path == "/readyz" else {}
            for code, description in wanted.items():
                existing = responses.get(code)
                if existing is None or "HTTPValidationError" in str(existing):
                    responses[code] = _problem_response(description)
    return doc


def install_openapi(app: FastAPI) -> None:
    """Serve the completed document at the app's openapi_url, with servers at the root."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                routes=app.routes,
                servers=[{"url": "/", "description": "routes carry their /v1 prefix"}],
            )
            app.openapi_schema = complete(doc)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def merge(title: str, docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One document for several services on one port: paths united (a path served by two
    services, like /v1/stores/{store_id}/..., keeps each service's operations), component
    schemas renamed `<service>.<name>` where two services define one name differently."""
    out: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1.0.0"},
        "servers": [{"url": "/"}],
        "paths": {},
        "components": {"schemas": {}},
    }
    schemas: dict[str, Any] = out["components"]["schemas"]
    for service, doc in docs.items():
        own = doc.get("components", {}).get("schemas", {})
        renames = {n: f"{service}.{n}" for n, s in own.items() if n in schemas and schemas[n] != s}
        text = doc
        if renames:
            text = _rename_refs(doc, renames)
            own = text.get("components", {}).get("schemas", {})
        for name, schema in own.items():
            schemas[renames.get(name, name)] = schema
        for path, item in text.get("paths", {}).items():
            merged = out["paths"].setdefault(path, {})
            for method, op in item.items():
                merged.setdefault(method, op)
    return out


def _rename_refs(doc: dict[str, Any], renames: dict[str, str]) -> dict[str, Any]:
    prefix = "#/components/schemas/"

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if k == "$ref" and isinstance(v, str) and v.startswith(prefix):
                    name = v[len(prefix) :]
                    out[k] = prefix + renames.get(name, name)
                else:
                    out[k] = walk(v)
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    result: dict[str, Any] = walk(doc)
    return result
