"""Hostile request bodies and query strings are answered 400 in Surge's envelope, never 500."""

from __future__ import annotations

import base64

import msgspec

from tests.conftest import error_of

NUL = "a\u0000b"


async def test_a_nul_character_in_a_body_string_is_a_validation_error(client, alice):
    # PostgreSQL's text type cannot hold U+0000: stored, it failed with a 500.
    cases = [
        (
            "POST",
            "/v1/auth/signup",
            {"email": "nul@example.com", "password": "correct horse", "display_name": NUL},
        ),
        ("PATCH", "/v1/me", {"display_name": NUL}),
        ("POST", "/v1/conversations", {"title": NUL}),
        ("POST", "/v1/devices", {"platform": "ios", "push_token": NUL}),
    ]
    for method, path, body in cases:
        response = await client.request(method, path, json=body, headers=alice.headers)
        assert response.status_code == 400, (path, response.text)
        assert error_of(response)["code"] == "validation_error"
    assert (await client.get("/v1/me", headers=alice.headers)).json()["display_name"] is None


async def test_a_nul_character_nested_in_a_body_or_a_key_is_a_validation_error(client, alice):
    conversation = (await client.post("/v1/conversations", json={}, headers=alice.headers)).json()
    for body in ({"content": NUL}, {"content": "fine", "extra": {NUL: 1}}, {"content": "x", "a": [[NUL]]}):
        response = await client.post(
            f"/v1/conversations/{conversation['id']}/messages", json=body, headers=alice.headers
        )
        assert response.status_code == 400, response.text
        assert error_of(response)["fields"] == {"body": "contains U+0000"}


async def test_an_escaped_backslash_before_u0000_is_plain_text(client, alice):
    # `\\u0000` in JSON is a backslash and the five characters "u0000": harmless, and accepted.
    response = await client.patch("/v1/me", content=b'{"display_name": "\\\\u0000"}', headers=alice.headers)
    assert response.status_code == 200, response.text
    assert response.json()["display_name"] == "\\u0000"


async def test_a_nul_character_in_a_query_parameter_is_a_validation_error(client, alice):
    response = await client.get("/v1/conversations", params={"q": NUL}, headers=alice.headers)
    assert response.status_code == 400, response.text
    assert error_of(response)["fields"] == {"q": "contains U+0000"}


async def test_json_nested_thousands_deep_is_a_validation_error(client, alice):
    for opening, closing in ((b"[", b"]"), (b'{"a":', b"}")):
        body = opening * 5000 + b"1" + closing * 5000
        response = await client.patch(
            "/v1/me", content=body, headers={**alice.headers, "Content-Type": "application/json"}
        )
        assert response.status_code == 400, response.text
        assert error_of(response)["code"] == "validation_error"


def cursor_of(position: object) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(position)).decode().rstrip("=")


async def test_a_tampered_cursor_is_a_validation_error(client, alice):
    for _ in range(3):
        await client.post("/v1/conversations", json={"title": "t"}, headers=alice.headers)
    page = (await client.get("/v1/conversations?limit=1", headers=alice.headers)).json()
    pinned, activity, last_id = msgspec.json.decode(
        base64.urlsafe_b64decode(page["next_cursor"] + "=" * (-len(page["next_cursor"]) % 4))
    )
    tampered = [
        [pinned, activity.replace("+00:00", ""), last_id],  # a naive timestamp
        [pinned, "0001-01-01T00:00:00+14:00", last_id],  # before year 1 in UTC
        [[], activity, last_id],
        [pinned, activity, {"id": last_id}],
        "[" * 3000,
    ]
    for position in tampered:
        cursor = cursor_of(position) if not isinstance(position, str) else cursor_of(position)[:500]
        response = await client.get(
            "/v1/conversations", params={"limit": 1, "cursor": cursor}, headers=alice.headers
        )
        assert response.status_code == 400, (position, response.text)
        assert error_of(response)["fields"] == {"cursor": "invalid"}
