"""Responses that carry tokens or the account export are never cached nor sniffed; a stranger's wrong
passwords from one address do not lock the owner out."""

from __future__ import annotations

from pathlib import Path

import httpx

from backend.app import create_app
from tests.api.test_firebase_auth import firebase_app
from tests.conftest import make_settings, serve, sign_up
from tests.fake_google import FakeGoogle


def assert_secret(response: httpx.Response) -> None:
    assert response.status_code in (200, 201), response.text
    assert "no-store" in response.headers["Cache-Control"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_token_and_export_responses_are_no_store_and_nosniff(client):
    signup = await client.post(
        "/v1/auth/signup", json={"email": "s@example.com", "password": "correct horse"}
    )
    assert_secret(signup)
    login = await client.post("/v1/auth/login", json={"email": "s@example.com", "password": "correct horse"})
    assert_secret(login)
    assert_secret(
        await client.post("/v1/auth/refresh", json={"refresh_token": login.json()["refresh_token"]})
    )
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    assert_secret(await client.get("/v1/me/export", headers=headers))


async def test_a_firebase_session_is_no_store_and_nosniff(database_url: str, tmp_path: Path):
    fake = FakeGoogle().start()
    try:
        async with serve(firebase_app(database_url, tmp_path, fake)) as client:
            token = fake.id_token("uid-secret", email="f@example.com")
            assert_secret(await client.post("/v1/auth/firebase", json={"id_token": token}))
    finally:
        fake.close()


async def test_wrong_passwords_from_one_address_do_not_lock_the_owner_out(database_url: str, tmp_path: Path):
    # Behind a trusted proxy, X-Forwarded-For names the client; the attacker and the owner differ.
    app = create_app(make_settings(database_url, tmp_path, SURGE_TRUSTED_PROXIES="127.0.0.1"))
    async with serve(app) as client:
        owner = await sign_up(client, "owner@example.com")
        attacker = {"X-Forwarded-For": "198.51.100.7"}
        guesses = [
            (
                await client.post(
                    "/v1/auth/login",
                    json={"email": owner.email, "password": f"guess{n:04}"},
                    headers=attacker,
                )
            ).status_code
            for n in range(12)
        ]
        mine = await client.post(
            "/v1/auth/login",
            json={"email": owner.email, "password": owner.password},
            headers={"X-Forwarded-For": "203.0.113.9"},
        )
    assert guesses == [401] * 10 + [429] * 2  # the guessing address is stopped
    assert mine.status_code == 200, mine.text  # the owner, elsewhere, is not
