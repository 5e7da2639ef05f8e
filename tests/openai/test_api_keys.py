"""``/v1/me/api_keys``, and who may call what: a key only ``/openai/v1/*``, an access token everything else."""

from __future__ import annotations

import logging
from datetime import datetime

import openai
import pytest

from tests.conftest import MODEL_ID, error_of, sign_up
from tests.openai.conftest import QUESTION, async_openai, new_key, openai_error


async def test_a_key_is_shown_once_listed_without_its_secret_and_deleted(client, alice, bob):
    created = await client.post("/v1/me/api_keys", json={"name": "  my laptop "}, headers=alice.headers)
    assert created.status_code == 201, created.text
    key = created.json()
    assert set(key) == {"id", "name", "prefix", "secret", "created_at"}
    assert key["name"] == "my laptop"
    assert key["secret"].startswith("sk-surge-") and len(key["secret"]) >= 50
    assert key["secret"].startswith(key["prefix"]) and len(key["prefix"]) < len(key["secret"]) - 30
    other = await new_key(client, alice, "phone")
    assert other != key["secret"]

    listed = await client.get("/v1/me/api_keys", headers=alice.headers)
    assert listed.status_code == 200
    assert key["secret"] not in listed.text and other not in listed.text
    rows = listed.json()["data"]
    assert [row["name"] for row in rows] == ["my laptop", "phone"]
    assert set(rows[0]) == {"id", "name", "prefix", "created_at", "last_used_at"}
    assert rows[0]["id"] == key["id"] and rows[0]["last_used_at"] is None
    assert (await client.get("/v1/me/api_keys", headers=bob.headers)).json() == {"data": []}

    # Another user's key and an unknown id are both "not found", in Surge's shape.
    stolen = await client.delete(f"/v1/me/api_keys/{key['id']}", headers=bob.headers)
    assert stolen.status_code == 404 and error_of(stolen)["code"] == "not_found"
    deleted = await client.delete(f"/v1/me/api_keys/{key['id']}", headers=alice.headers)
    assert deleted.status_code == 204
    again = await client.delete(f"/v1/me/api_keys/{key['id']}", headers=alice.headers)
    assert again.status_code == 404 and error_of(again)["code"] == "not_found"
    assert [
        row["name"] for row in (await client.get("/v1/me/api_keys", headers=alice.headers)).json()["data"]
    ] == ["phone"]


@pytest.mark.parametrize("name", ["", "   ", "a\x00b", "x" * 101])
async def test_a_key_needs_a_sane_name(client, alice, name):
    response = await client.post("/v1/me/api_keys", json={"name": name}, headers=alice.headers)
    assert response.status_code == 400, response.text
    assert error_of(response)["code"] == "validation_error"


async def test_using_a_key_sets_last_used_at(client, alice):
    key = await new_key(client, alice)
    before = datetime.now().astimezone()
    models = await async_openai(client, key).models.list()
    assert [model.id for model in models.data] == [MODEL_ID]
    used = (await client.get("/v1/me/api_keys", headers=alice.headers)).json()["data"][0]["last_used_at"]
    assert used is not None and datetime.fromisoformat(used) >= before.replace(microsecond=0)


async def test_a_key_works_only_on_the_openai_routes_and_an_access_token_nowhere_there(client, alice):
    key = await new_key(client, alice)
    for path in ("/v1/me", "/v1/me/api_keys", "/v1/conversations", "/v1/models"):
        refused = await client.get(path, headers={"Authorization": f"Bearer {key}"})
        assert refused.status_code == 401, path
        assert error_of(refused)["code"] == "unauthorized", "Surge's shape outside /openai"
    for method, path in (("GET", "/openai/v1/models"), ("POST", "/openai/v1/chat/completions")):
        refused = await client.request(
            method, path, headers=alice.headers, json={"model": MODEL_ID, "messages": QUESTION}
        )
        assert refused.status_code == 401, path
        assert openai_error(refused)["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError) as raised:
        await async_openai(client, alice.access_token).models.list()
    assert raised.value.code == "invalid_api_key"


async def test_a_bad_a_deleted_key_and_a_deleted_accounts_key_are_refused(client, alice):
    bob = await sign_up(client)
    alice_key, bob_key = await new_key(client, alice), await new_key(client, bob)
    assert (await async_openai(client, alice_key).models.list()).data
    assert (await async_openai(client, bob_key).models.list()).data

    key_id = (await client.get("/v1/me/api_keys", headers=alice.headers)).json()["data"][0]["id"]
    assert (await client.delete(f"/v1/me/api_keys/{key_id}", headers=alice.headers)).status_code == 204
    deleted = await client.delete("/v1/me", headers=bob.headers)
    assert deleted.status_code == 204, deleted.text

    for key in (alice_key, bob_key, "sk-surge-" + "A" * 43, "not-even-a-key"):
        for call in (
            lambda k: async_openai(client, k).models.list(),
            lambda k: async_openai(client, k).chat.completions.create(model=MODEL_ID, messages=QUESTION),
        ):
            with pytest.raises(openai.AuthenticationError) as raised:
                await call(key)
            assert raised.value.status_code == 401 and raised.value.code == "invalid_api_key"
            assert raised.value.type == "invalid_request_error"
    raw = await client.get("/openai/v1/models", headers={"Authorization": f"Bearer {alice_key}"})
    assert openai_error(raw)["code"] == "invalid_api_key"


async def test_the_secret_never_reaches_the_logs(client, alice, caplog):
    caplog.set_level(logging.DEBUG)
    key = await new_key(client, alice)
    answer = await async_openai(client, key).chat.completions.create(
        model=MODEL_ID, messages=QUESTION, max_tokens=20
    )
    assert answer.choices[0].message.content
    await client.get("/v1/me/api_keys", headers=alice.headers)
    await client.get("/openai/v1/models", headers={"Authorization": f"Bearer {key}x"})  # a refused one too
    assert caplog.records, "the requests were logged"
    logged = caplog.text + " ".join(str(record.__dict__) for record in caplog.records)
    assert key not in logged and key[9:] not in logged
