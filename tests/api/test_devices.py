"""/v1/devices, as API.md describes them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from backend.db import models as m
from tests.conftest import error_of

PHONE = {"platform": "ios", "push_token": "fcm-token-alice-iphone", "app_version": "2.4.1", "locale": "en-GB"}


async def register(client, account, **body):
    response = await client.post("/v1/devices", json={**PHONE, **body}, headers=account.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_registering_a_device_returns_it_without_the_push_token(client, alice):
    response = await client.post("/v1/devices", json=PHONE, headers=alice.headers)
    assert response.status_code == 201
    device = response.json()
    assert set(device) == {"id", "platform", "app_version", "locale", "created_at", "last_seen_at"}
    assert (device["platform"], device["app_version"], device["locale"]) == ("ios", "2.4.1", "en-GB")
    assert device["created_at"].endswith("Z")
    assert PHONE["push_token"] not in response.text


async def test_optional_fields_may_be_left_out(client, alice):
    device = await register(
        client, alice, platform="web", push_token="browser-token", app_version=None, locale=None
    )
    assert (device["app_version"], device["locale"]) == (None, None)


async def test_listing_shows_my_devices_and_never_their_tokens(client, alice, bob):
    mine = await register(client, alice)
    await register(client, bob, push_token="fcm-token-bob")
    response = await client.get("/v1/devices", headers=alice.headers)
    assert response.status_code == 200
    assert [device["id"] for device in response.json()["data"]] == [mine["id"]]
    assert "fcm-token" not in response.text


async def test_registering_the_same_token_again_updates_that_device(client, alice, sessions):
    first = await register(client, alice)
    # Seen a day ago: registering again must move last_seen_at (within one clock tick it could not show).
    async with sessions() as session:
        await session.execute(
            update(m.Device)
            .where(m.Device.id == uuid.UUID(first["id"]))
            .values(last_seen_at=datetime.now(UTC) - timedelta(days=1))
        )
        await session.commit()
    again = await register(client, alice, app_version="2.5.0", locale=None)
    assert again["id"] == first["id"]
    assert again["app_version"] == "2.5.0"
    assert again["locale"] == "en-GB"  # not sent: unchanged
    assert again["created_at"] == first["created_at"]
    seen_again = datetime.fromisoformat(again["last_seen_at"])
    assert abs(seen_again - datetime.now(UTC)) < timedelta(minutes=1)
    assert len((await client.get("/v1/devices", headers=alice.headers)).json()["data"]) == 1


async def test_a_token_registered_by_another_account_moves_to_the_caller(client, alice, bob):
    alices = await register(client, alice)
    bobs = await register(client, bob, platform="ios")
    assert bobs["id"] == alices["id"]
    assert (await client.get("/v1/devices", headers=alice.headers)).json()["data"] == []
    assert [
        device["id"] for device in (await client.get("/v1/devices", headers=bob.headers)).json()["data"]
    ] == [alices["id"]]
    # Alice can no longer remove it: it is bob's now.
    gone = await client.delete(f"/v1/devices/{alices['id']}", headers=alice.headers)
    assert gone.status_code == 404


async def test_deleting_my_device(client, alice):
    device = await register(client, alice)
    response = await client.delete(f"/v1/devices/{device['id']}", headers=alice.headers)
    assert response.status_code == 204
    assert (await client.get("/v1/devices", headers=alice.headers)).json()["data"] == []


async def test_another_users_device_is_not_found_and_stays(client, alice, bob):
    device = await register(client, alice)
    response = await client.delete(f"/v1/devices/{device['id']}", headers=bob.headers)
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
    assert len((await client.get("/v1/devices", headers=alice.headers)).json()["data"]) == 1


async def test_an_unknown_device_is_not_found(client, alice):
    response = await client.delete("/v1/devices/01a2271c-0000-7000-8000-000000000000", headers=alice.headers)
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


async def test_devices_need_a_bearer_token(client):
    for response in (
        await client.post("/v1/devices", json=PHONE),
        await client.get("/v1/devices"),
        await client.delete("/v1/devices/01a2271c-0000-7000-8000-000000000000"),
    ):
        assert response.status_code == 401
        assert error_of(response)["code"] == "unauthorized"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"platform": "windows-phone", "push_token": "t"}, "platform"),
        ({"platform": "ios", "push_token": ""}, "push_token"),
        ({"platform": "ios", "push_token": "x" * 4097}, "push_token"),
        ({"platform": "ios"}, "push_token"),
        ({"platform": "ios", "push_token": "t", "locale": "x" * 36}, "locale"),
    ],
)
async def test_an_invalid_registration_is_a_validation_error_naming_the_field(client, alice, body, field):
    response = await client.post("/v1/devices", json=body, headers=alice.headers)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert field in " ".join(
        [*error.get("fields", {}).keys(), *error.get("fields", {}).values(), error["message"]]
    )
    assert "x" * 100 not in response.text


async def test_the_export_lists_devices_without_their_tokens(client, alice):
    device = await register(client, alice)
    document = (await client.get("/v1/me/export", headers=alice.headers)).json()
    assert [item["id"] for item in document["devices"]] == [device["id"]]
    assert document["devices"][0]["platform"] == "ios"
    assert PHONE["push_token"] not in str(document)


async def test_deleting_the_account_deletes_its_devices(client, alice, bob, sessions):
    await register(client, alice)
    await register(client, bob, push_token="fcm-token-bob")
    assert (await client.delete("/v1/me", headers=alice.headers)).status_code == 204
    async with sessions() as session:
        owners = list(await session.scalars(select(m.Device.user_id)))
        assert [str(owner) for owner in owners] == [bob.id]
        assert await session.scalar(select(func.count()).select_from(m.Device)) == 1


async def test_a_database_failure_while_registering_never_logs_the_push_token(
    client, alice, caplog, monkeypatch
):
    import logging

    from sqlalchemy import text

    from backend.push.service import DeviceService

    async def broken(self, user_id, *, push_token, **fields):
        # A statement that fails with the token among its parameters, as a lost connection would.
        await self.session.execute(text("INSERT INTO no_such_table VALUES (:token)"), {"token": push_token})

    monkeypatch.setattr(DeviceService, "register", broken)
    caplog.set_level(logging.INFO)
    response = await client.post("/v1/devices", json=PHONE, headers=alice.headers)
    assert response.status_code == 500
    logged = "\n".join(
        f"{record.getMessage()} {record.__dict__} {record.exc_text}" for record in caplog.records
    )
    assert "no_such_table" in logged
    assert PHONE["push_token"] not in logged
