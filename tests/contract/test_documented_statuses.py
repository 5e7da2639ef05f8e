"""Statuses no fuzzer provokes on demand are still documented where they can happen: a body over the cap
(413) on every route that reads one, an unreachable database (503) on every route that uses it."""

from __future__ import annotations

from typing import Any

OPERATIONS_WITHOUT_DATABASE = {("get", "/healthz"), ("get", "/metrics"), ("get", "/readyz")}


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


async def test_every_route_documents_a_full_body_and_an_unreachable_database(client):
    schema = (await client.get("/schema/openapi.json")).json()
    undocumented = []
    for method, path, operation in operations(schema):
        statuses = set(operation["responses"])
        if "requestBody" in operation and "413" not in statuses:
            undocumented.append(f"{method.upper()} {path}: 413")
        if (method, path) not in OPERATIONS_WITHOUT_DATABASE and "503" not in statuses:
            undocumented.append(f"{method.upper()} {path}: 503")
    assert not undocumented
