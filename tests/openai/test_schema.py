"""The OpenAPI document describes the new routes: every status they answer, their security, OpenAI's error
envelope on /openai/v1 and Surge's elsewhere."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
async def schema(client) -> dict[str, Any]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


@pytest.mark.parametrize(
    ("path", "method", "statuses", "scheme", "envelope"),
    [
        (
            "/openai/v1/chat/completions",
            "post",
            {"200", "400", "401", "404", "413", "429", "500", "503"},
            "ApiKey",
            "OpenAI",
        ),
        ("/openai/v1/models", "get", {"200", "400", "401", "500", "503"}, "ApiKey", "OpenAI"),
        ("/v1/me/api_keys", "post", {"201", "400", "401", "413", "500", "503"}, "BearerToken", "Error"),
        ("/v1/me/api_keys", "get", {"200", "400", "401", "500", "503"}, "BearerToken", "Error"),
        (
            "/v1/me/api_keys/{key_id}",
            "delete",
            {"204", "400", "401", "404", "500", "503"},
            "BearerToken",
            "Error",
        ),
    ],
)
async def test_the_routes_are_documented(schema, path, method, statuses, scheme, envelope):
    operation = schema["paths"][path][method]
    assert set(operation["responses"]) == statuses
    assert operation["security"] == [{scheme: []}]
    refs = {
        response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        for status, response in operation["responses"].items()
        if int(status) >= 400
    }
    assert refs == {f"{envelope}ErrorEnvelope" if envelope == "OpenAI" else "ErrorEnvelope"}


async def test_the_completion_route_documents_both_answers_and_the_thinking_switch(schema):
    operation = schema["paths"]["/openai/v1/chat/completions"]["post"]
    assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    request = schema["components"]["schemas"]["ChatCompletionRequest"]["properties"]
    assert "thinking" in str(request["chat_template_kwargs"])
